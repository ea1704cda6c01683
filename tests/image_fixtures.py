"""Test data for the image datasets, made on the spot: PNG folders, a fake CIFAR-10 copy in the real
pickle format, a randomly initialised Inception saved like torch-fidelity's weights, and a toy
generator that fits any dataset."""

from __future__ import annotations

import pickle
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from scalebench.api import Axis, Budget, MethodCard
from scalebench.generators import GENERATORS
from scalebench.params import Param


def write_folder(root: Path, n: int = 40, side: int = 16, mode: str = "RGB", seed: int = 0,
                 nested: bool = True) -> Path:
    """`n` random images (smooth blobs, so they are not all alike) as PNG, half in each of two class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = root / (("cats", "dogs")[i % 2] if nested else "")
        sub.mkdir(parents=True, exist_ok=True)
        c = 3 if mode == "RGB" else 1
        a = (rng.random((4, 4, c)) * 255).astype(np.uint8)
        im = Image.fromarray(a[..., 0] if c == 1 else a, mode).resize((side, side), Image.Resampling.BILINEAR)
        im.save(sub / f"{i:03d}.png")
    return root


def write_fake_cifar(root: Path, n_train: int = 5, n_test: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """root/cifar-10-batches-py/ in CIFAR-10's python format: one pickled dict per batch ("data": uint8
    rows of 3072 = 3×32×32 channel-major, "labels": ints), and batches.meta with "label_names"."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 256, (5 * n_train, 3072), dtype=np.uint8)
    test = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    for i in range(5):
        rows = train[i * n_train:(i + 1) * n_train]
        with open(folder / f"data_batch_{i + 1}", "wb") as f:
            pickle.dump({"batch_label": f"training batch {i + 1} of 5", "data": rows,
                         "labels": [j % 10 for j in range(len(rows))], "filenames": ["f.png"] * len(rows)}, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"batch_label": "testing batch 1 of 1", "data": test,
                     "labels": [j % 10 for j in range(len(test))], "filenames": ["f.png"] * len(test)}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"], "num_cases_per_batch": n_train, "num_vis": 3072}, f)
    return train.reshape(-1, 3, 32, 32), test.reshape(-1, 3, 32, 32)


def random_inception(path: Path, seed: int = 0) -> Path:
    """torch-fidelity's FeatureExtractorInceptionV3, randomly initialised (He init, so features are
    O(1) rather than vanishing), saved as a state dict like the real weights file."""
    from torch import nn
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, strict=True: None), \
            mock.patch("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", return_value={}):
        torch.manual_seed(seed)
        net = FeatureExtractorInceptionV3("random", ["2048"])
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return path


class ImageNoise:
    """A generator for any image dataset: smooth noise that sharpens with K (a stand-in for a real model)."""

    card = MethodCard(name="image-noise", family="test", category="refinement", S=Axis.fixed(1),
                      K=Axis(meaning="steps", default=1, low=1, high=8), paper="none", dataset="")
    params = (Param("side", "int", 16), Param("channels", "int", 3))

    def __init__(self, device: str = "cpu", side: int = 16, channels: int = 3) -> None:
        self.side, self.channels, self.device = side, channels, device

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        coarse = torch.rand(n, self.channels, 4, 4, generator=rng)
        x = torch.nn.functional.interpolate(coarse, size=(self.side, self.side), mode="bilinear")
        return (0.5 + (x - 0.5) * budget.K / 8).clamp(0, 1)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        return budget.K


if "image-noise" not in GENERATORS:
    GENERATORS.register("image-noise", ImageNoise)
