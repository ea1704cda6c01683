"""scikit-learn's `load_digits` (8×8, 17 grey levels 0..16, 10 classes), embedded, no download.

Views: tokens (N, 64) ints 0..16 raster order; continuous (N, 1, 8, 8) in [-1, 1]
(optionally dequantised); pyramid: average-pooled and re-quantised at 1, 2, 4, 8 sides.
Canonical form: floats in [0, 1] on the 17-level grid, N×1×8×8.

Splits (fixed, seeded; disjoint), so that no net judges data it was trained on:

- ``train`` (1000) — trains the generators only;
- ``features`` (397) — trains the judges: the feature net behind FID/KID/precision/recall/diversity
  and the reference likelihood model (`refnet`), so no judge has seen an image a generator could copy;
- ``reference`` (400) — held out from every net: the FID/KID and precision/recall reference,
  and the real data whose nearest-neighbour distances set the memorisation threshold;
- ``test`` = features ∪ reference (797) — everything the generators never saw: test NLL.

Which real images measure each metric's data floor is decided in `metrics/floor.py` (never the
split the metric's own judge was trained on).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from scalebench.data.base import SampleForm
from scalebench.metrics import QUALITY_METRICS

LEVELS = 17  # grey levels 0..16
SIDE = 8
SPLIT_SEED = 0
N_REFERENCE = 400
N_FEATURES = 397
SPLITS = ("train", "features", "reference", "test", "all")


def quantise(x: torch.Tensor, levels: int = LEVELS) -> torch.Tensor:
    """Round floats in [0, 1] to the nearest of `levels` grid values (clamping outliers)."""
    return torch.round(x.clamp(0.0, 1.0) * (levels - 1)) / (levels - 1)


def to_tokens(x: torch.Tensor, levels: int = LEVELS) -> torch.Tensor:
    """Canonical [0, 1] images (N, 1, s, s) → (N, s*s) integer tokens in raster order."""
    return torch.round(x.clamp(0, 1) * (levels - 1)).long().flatten(1)


def from_tokens(tokens: torch.Tensor, levels: int = LEVELS) -> torch.Tensor:
    """(N, s*s) tokens → canonical (N, 1, s, s) floats in [0, 1]."""
    n, d = tokens.shape
    side = int(round(d**0.5))
    return tokens.float().view(n, 1, side, side) / (levels - 1)


def to_continuous(x: torch.Tensor) -> torch.Tensor:
    """Canonical [0, 1] → [-1, 1] (what the density models are trained on)."""
    return x * 2.0 - 1.0


def from_continuous(x: torch.Tensor) -> torch.Tensor:
    return (x + 1.0) / 2.0


def dequantise(x: torch.Tensor, gen: torch.Generator | None = None, levels: int = LEVELS) -> torch.Tensor:
    """Uniform dequantisation within each grey level's bin, in [0, 1] (for density models)."""
    noise = torch.rand(x.shape, generator=gen, device=x.device) - 0.5
    return (x + noise / (levels - 1)).clamp(0.0, 1.0)


def downsample(x: torch.Tensor, side: int, levels: int = LEVELS) -> torch.Tensor:
    """Average-pool canonical 8×8 images to side×side and re-quantise (the pyramid view)."""
    if side == x.shape[-1]:
        return quantise(x, levels)
    return quantise(F.adaptive_avg_pool2d(x, side), levels)


def upsample(x: torch.Tensor, side: int = SIDE) -> torch.Tensor:
    """Nearest-neighbour upsampling to side×side (how coarse samples become canonical)."""
    if x.shape[-1] == side:
        return x
    return F.interpolate(x, size=(side, side), mode="nearest")


class Digits:
    """The embedded `digits` dataset with fixed, seeded, disjoint splits (see the module docstring)."""

    name = "digits"
    form = SampleForm(shape=(1, SIDE, SIDE), dtype="float", levels=LEVELS,
                      description="floats in [0, 1], N×1×8×8, on the 17-level grid")
    metrics = QUALITY_METRICS  # every registered quality metric applies to the digits
    generator_split = "train"
    reference_split = "reference"

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from sklearn.datasets import load_digits

        d = load_digits()
        images = d.images.astype(np.float32) / 16.0  # exact grid values k/16
        rng = np.random.default_rng(SPLIT_SEED)
        perm = rng.permutation(len(images))
        split = np.full(len(images), "train", dtype=object)
        split[perm[:N_REFERENCE]] = "reference"
        split[perm[N_REFERENCE:N_REFERENCE + N_FEATURES]] = "features"
        return images, d.target.astype(np.int64), split

    def _mask(self, split: str) -> np.ndarray:
        _, _, which = self._arrays
        members = {"test": ("features", "reference"), "all": ("train", "features", "reference")}.get(split, (split,))
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {list(SPLITS)}")
        return np.isin(which, members)

    def canonical(self, split: str = "train") -> torch.Tensor:
        images, _, _ = self._arrays
        return torch.from_numpy(images[self._mask(split)]).unsqueeze(1).clone()

    def labels(self, split: str = "train") -> torch.Tensor:
        _, labels, _ = self._arrays
        return torch.from_numpy(labels[self._mask(split)]).clone()

    def tokens(self, split: str = "train") -> torch.Tensor:
        return to_tokens(self.canonical(split))

    def continuous(self, split: str = "train") -> torch.Tensor:
        return to_continuous(self.canonical(split))

    def pyramid(self, split: str = "train", sides: tuple[int, ...] = (1, 2, 4, 8)) -> dict[int, torch.Tensor]:
        x = self.canonical(split)
        return {s: downsample(x, s) for s in sides}

    def quantise(self, x: torch.Tensor) -> torch.Tensor:
        return quantise(x)

    def fingerprint(self) -> dict[str, object]:
        return {"dataset": self.name, "split_seed": SPLIT_SEED, "splits": "train/features/reference v2",
                "n_reference": N_REFERENCE, "n_features": N_FEATURES, "levels": LEVELS, "side": SIDE}
