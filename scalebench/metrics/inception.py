"""Inception-v3 features for FID/KID on RGB (or any-size) datasets, from local weights only.

The network is torchmetrics' `NoTrainInceptionV3` (torch-fidelity's port of the 2015-12-05
TensorFlow graph, the one behind published FID numbers), 2048-d pool features, resized to 299²
with TensorFlow-1.x bilinear interpolation (`antialias=False`, torch-fidelity's and the original
FID's resize; torchmetrics' own default antialiases and gives other numbers). Nothing is
downloaded: the weights file is looked up in this order (`weights_path`):

1. the spec: `dataset_args = { inception = "/path/to/file.pth" }`;
2. the environment variable `SCALEBENCH_INCEPTION`;
3. the torch hub cache, `$TORCH_HOME/hub/checkpoints/` (default `~/.cache/torch/hub/checkpoints/`),
   under torch-fidelity's name (`weights-inception-2015-12-05-6726825d.pth`, what torchmetrics
   downloads when online) or pytorch-fid's (`pt_inception-2015-12-05-6726825d.pth`, the same weights).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from scalebench.errors import ScalebenchError

ENV = "SCALEBENCH_INCEPTION"
HUB_FILES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
NUM_FEATURES = 2048
KIND = "inception-v3-2048-tf1x"  # the feature net's name in identities (net, layer, resize)
BATCH = 64  # images per forward pass (299² activations: ~1.3 GB at 64 in float32)
MEMO_IMAGES = 16384  # per-image feature memo (8 KiB each): floors redraw the same real images


class MissingInception(ScalebenchError, FileNotFoundError):
    """No local Inception weights: one line naming the file and where to put it."""


def hub_dir() -> Path:
    """torch's hub checkpoint folder ($TORCH_HOME/hub/checkpoints), without importing torch.hub's network code."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(explicit: str = "") -> Path:
    """The Inception weights file: the spec's path, else $SCALEBENCH_INCEPTION, else the hub cache."""
    for value, where in ((explicit, f"dataset_args.inception = {explicit!r}"),
                         (os.environ.get(ENV, ""), f"{ENV}={os.environ.get(ENV, '')!r}")):
        if value:
            p = Path(value).expanduser()
            if not p.is_file():
                raise MissingInception(f"{where} is not a file; give the Inception weights file "
                                       f"({HUB_FILES[0]}, from {URL})")
            return p.resolve()
    for name in HUB_FILES:
        if (hub_dir() / name).is_file():
            return (hub_dir() / name).resolve()
    raise MissingInception(f"Inception weights for FID/KID not found: put {HUB_FILES[0]} (from {URL}) in "
                           f"{hub_dir()}/, or set {ENV}=/path/to/it, or dataset_args.inception = \"/path/to/it\"")


def weights_identity(path: Path) -> str:
    """The feature net's identity: what it is and the content hash of its weights."""
    from scalebench.zoo import file_hash

    return f"{KIND}:{file_hash(path)}"


class InceptionFeatures(nn.Module):
    """The `feature=` module torchmetrics' FID/KID (and precision/recall, diversity) get for such datasets.

    Takes canonical floats in [0, 1] (N, C, H, W), C = 1 or 3; rounds them to uint8 as torchmetrics'
    `normalize=True` does for its own Inception, repeats a grey channel three times, and runs the
    net in batches. Features are memoised per image (its uint8 bytes): the data floor redraws
    the same real images many times, and FID, KID, precision/recall and diversity all embed the
    same samples, so each image passes through Inception once per process.
    """

    def __init__(self, net: nn.Module, batch: int = BATCH, memo: int = MEMO_IMAGES) -> None:
        super().__init__()
        self.net = net.eval()
        self.num_features = NUM_FEATURES
        self.batch, self.memo_size = batch, memo
        self._memo: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    def train(self, mode: bool = True) -> InceptionFeatures:  # noqa: ARG002 - always eval
        return super().train(False)

    @staticmethod
    def to_uint8(x: torch.Tensor) -> torch.Tensor:
        if torch.is_floating_point(x):
            x = torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8)
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"Inception features need (N, 1 or 3, H, W) images; got {tuple(x.shape)}")
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = next(self.net.parameters()).device
        u8 = self.to_uint8(x).cpu().contiguous()
        keys = [hashlib.blake2b(img.numpy().tobytes(), digest_size=16, person=_shape_tag(img)).digest()
                for img in u8]
        todo = list(dict.fromkeys(k for k in keys if k not in self._memo))
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        for j in range(0, len(todo), self.batch):
            chunk = todo[j:j + self.batch]
            idx = torch.tensor([first[k] for k in chunk])
            feats = self.net(u8[idx].to(device)).float().cpu()
            for k, f in zip(chunk, feats, strict=True):
                self._memo[k] = f
        out = torch.stack([self._memo[k] for k in keys]) if keys else torch.zeros(0, NUM_FEATURES)
        for k in keys:
            self._memo.move_to_end(k)
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return out.to(device)


def _shape_tag(img: torch.Tensor) -> bytes:
    """The image's shape as blake2b's 16-byte personalisation (equal bytes, other shape: other key)."""
    return "x".join(map(str, img.shape)).encode()[:16].ljust(16, b"\0")


_NETS: dict[tuple[str, str, str], InceptionFeatures] = {}


def load_inception(path: Path, device: str | torch.device = "cpu") -> InceptionFeatures:
    """torchmetrics' NoTrainInceptionV3 with the weights at `path` (cached per file content and device).

    The file is first read with `weights_only=True` so a file that is not a plain state dict is
    refused (one line) before torch-fidelity's own loader, which unpickles, ever sees it.
    """
    key = (str(path), weights_identity(path), str(device))
    if key not in _NETS:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
            raise MissingInception(f"{path} is not an Inception state dict ({type(e).__name__}); give "
                                   f"{HUB_FILES[0]} from {URL}") from None
        if not isinstance(state, dict) or "Mixed_7c.branch1x1.conv.weight" not in state:
            raise MissingInception(f"{path} is not torch-fidelity's Inception-v3 state dict; give {HUB_FILES[0]} "
                                   f"from {URL}")
        try:
            import torch_fidelity  # noqa: F401 - torchmetrics' Inception is torch-fidelity's network
        except ImportError:
            raise MissingInception("Inception FID needs torch-fidelity, which is not installed; "
                                   "pip install 'scalebench[inception]'") from None
        from torchmetrics.image.fid import NoTrainInceptionV3

        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(NUM_FEATURES)],
                                 feature_extractor_weights_path=str(path), antialias=False)
        _NETS[key] = InceptionFeatures(net.to(device))
    return _NETS[key]
