"""The feature net behind FID, KID and diversity: a small CNN classifier for 8×8 digits.

Inception-v3 features are meaningless on 8×8 images with 17 grey levels, so, as small-image
papers do ("Fréchet LeNet distance"), scalebench trains its own classifier and uses its 64-d
penultimate layer as the embedding. It is trained on the `features` split only, which no
generator sees, so the metric cannot reward a generator for reproducing images the feature
net memorised. The weights ship in `scalebench/zoo/features.safetensors`; `scalebench train
features` (→ `train()`) remakes them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scalebench.data.digits import LEVELS, SIDE

log = logging.getLogger(__name__)

NAME = "features"
NUM_FEATURES = 64
NUM_CLASSES = 10


class DigitCNN(nn.Module):
    """conv32-conv64-pool-conv64-pool-fc64-fc10 (~74k parameters, ~0.3 MB in float32).

    `features` returns the pre-activation of the 64-unit hidden layer: unlike post-ReLU
    activations it has no dead (constant-zero) coordinates, so the feature covariance that
    FID compares is full rank and closer to Gaussian.
    """

    def __init__(self, width: int = 32, num_features: int = NUM_FEATURES, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width * 2 * 2, num_features)
        self.head = nn.Linear(num_features, NUM_CLASSES)
        self.dropout = nn.Dropout(dropout)
        self.num_features = num_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 8, 8) floats in [0, 1] → (N, num_features) penultimate pre-activations."""
        h = F.relu(self.conv1(x * 2.0 - 1.0))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # 4×4
        h = F.max_pool2d(F.relu(self.conv3(h)), 2)  # 2×2
        return self.fc(h.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.dropout(F.relu(self.features(x))))


def to_grid(x: torch.Tensor, levels: int = LEVELS) -> torch.Tensor:
    """Any image tensor torchmetrics may hand over → float (N, 1, 8, 8) exactly on the grid.

    Floats are taken as [0, 1]; integer tensors (e.g. uint8 0..255 from a `(x*255).byte()`
    conversion) are scaled by 1/255. Rounding to the `levels` grid afterwards restores the
    exact values k/16: 255/16 is not an integer, so a uint8 round trip is off by up to
    0.5/255, far below the half grid step of 8/255.
    """
    if not torch.is_floating_point(x):
        x = x.float() / 255.0
    x = x.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() == 2 and x.shape[1] == SIDE * SIDE:
        x = x.view(-1, 1, SIDE, SIDE)
    if tuple(x.shape[1:]) != (1, SIDE, SIDE):
        raise ValueError(f"feature net expects (N, 1, {SIDE}, {SIDE}) images; got {tuple(x.shape)}")
    return torch.round(x.clamp(0.0, 1.0) * (levels - 1)) / (levels - 1)


class FeatureExtractor(nn.Module):
    """The `feature=` module given to torchmetrics' FID/KID: images → (N, num_features).

    torchmetrics passes images to a custom module unchanged (its `normalize` flag only
    converts for the built-in Inception), and reads `num_features` instead of probing with
    a random uint8 image. The module never leaves eval mode and never tracks gradients.
    """

    def __init__(self, net: DigitCNN, levels: int = LEVELS) -> None:
        super().__init__()
        self.net = net.eval()
        self.levels = levels
        self.num_features = int(net.num_features)

    def train(self, mode: bool = True) -> FeatureExtractor:  # noqa: ARG002 - always eval
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = next(self.net.parameters()).device
        return self.net.features(to_grid(x.to(device), self.levels))


_CACHE: dict[tuple[str, str], DigitCNN] = {}


def load_feature_net(device: str | torch.device = "cpu") -> DigitCNN:
    """The shipped feature net on `device`, in eval mode (cached per device and checkpoint hash)."""
    from scalebench.zoo import checkpoint_hash, load_module

    key = (str(device), checkpoint_hash(NAME))
    if key not in _CACHE:
        _CACHE[key] = load_module(NAME, lambda meta: DigitCNN(**meta.get("arch", {})), device)[0]
    return _CACHE[key]


def feature_extractor(device: str | torch.device = "cpu") -> FeatureExtractor:
    return FeatureExtractor(load_feature_net(device))


def shift_augment(x: torch.Tensor, gen: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Random integer translations by up to `max_shift` pixels (zero fill), one per image.

    Digits are roughly centred but not exactly; shift invariance keeps the features from
    over-reacting to a one-pixel offset, which a generator should not be penalised much for.
    """
    n, _, h, w = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (n, w)
    idx_n = torch.arange(n)[:, None, None]
    return padded[idx_n, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def default_recipe() -> Any:
    from scalebench.training import Recipe

    return Recipe(steps=3000, batch_size=128, lr=3e-3, weight_decay=1e-4, warmup=100,
                  grad_clip=1.0, ema=0.999, seed=0, threads=1)


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    return float((net(x).argmax(1) == y).float().mean())


def train(recipe: Any = None, out_dir: Path | None = None) -> Path:
    """Train the feature net on the `features` split only (1-pixel shift augmentation) and save it.

    The checkpoint's metadata records the recipe, the architecture and the held-out
    accuracy on the `reference` split (tests recompute it rather than trust it).
    """
    from scalebench.data.digits import Digits
    from scalebench.training import fit_model, seeded
    from scalebench.zoo import save_checkpoint

    recipe = recipe or default_recipe()
    ds = Digits()
    x, y = ds.canonical("features"), ds.labels("features")  # the only split the feature net sees
    arch = {"width": 32, "num_features": NUM_FEATURES, "dropout": 0.2}
    with seeded(recipe.seed):
        net = DigitCNN(**arch)

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        xb, yb = batch
        return F.cross_entropy(model(shift_augment(xb, gen)), yb, label_smoothing=0.05)

    t0 = time.perf_counter()
    ema, stats = fit_model(net, (x, y), loss_fn, recipe)
    train_s = time.perf_counter() - t0
    acc_test = accuracy(ema, ds.canonical("reference"), ds.labels("reference"))
    acc_gen = accuracy(ema, ds.canonical("train"), ds.labels("train"))
    acc_train = accuracy(ema, x, y)
    log.info("feature net: test accuracy %.4f, train accuracy %.4f (%.1fs)", acc_test, acc_train, train_s)
    meta = {"name": NAME, "arch": arch, "test_accuracy": round(acc_test, 5), "split": "features",
            "generator_split_accuracy": round(acc_gen, 5),
            "train_accuracy": round(acc_train, 5), "train_seconds": round(train_s, 1),
            "final_loss": stats["final_loss"], "recipe": stats["recipe"],
            "dataset": ds.fingerprint(), "torch": torch.__version__}
    state = {k: v for k, v in ema.state_dict().items()}
    return save_checkpoint(NAME, state, meta, directory=out_dir)
