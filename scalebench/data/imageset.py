"""What image datasets held in memory as uint8 share (imagefolder, cifar10): form, splits, metrics.

Canonical form: C×H×W floats in [0, 1] on 256 levels (k/255), C = 1 or 3. Judged by Inception
(`metrics/inception.py`): FID, KID, precision/recall and diversity. Not declared: `ref_nll` and
`memorisation_feat` (the project's digit-only reference nets), and pixel `memorisation`, whose
floor needs a third real split unseen by generators and by the reference; a spec asking for them
on these datasets records nothing for them, as for any metric a dataset does not declare.

Splits (the names the harness asks for): ``train`` (what generators train on), ``reference``
(held out: the FID/KID and precision/recall reference, and the test-NLL data), ``test`` (=
``reference``), ``all``. The feature-net metrics' data floor draws from ``train`` ∪ ``reference``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch

from scalebench.data.base import SampleForm
from scalebench.errors import ScalebenchError

LEVELS = 256
SPLITS = ("train", "reference", "test", "all")
METRICS = ("fid", "kid", "precision", "recall", "diversity", "test_nll")


class DataError(ScalebenchError, ValueError):
    """Image data that cannot be used as given (one line: the file or folder and the fix)."""


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Round floats in [0, 1] to the 256-level grid k/255 (clamping outliers)."""
    return torch.round(x.clamp(0.0, 1.0) * (LEVELS - 1)) / (LEVELS - 1)


class ImageSet:
    """Base for uint8 image datasets: subclasses set `name`, `inception` and implement `_load`.

    `_load()` returns (images uint8 N×C×H×W, reference mask bool N); everything else (canonical
    floats per split, quantisation, form) is shared here."""

    feature_net = "inception"
    metrics = METRICS
    generator_split = "train"
    reference_split = "reference"
    name = "images"
    inception = ""  # the spec's Inception weights path ("" = look it up: metrics/inception.py)

    def _load(self) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @cached_property
    def _data(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, ref = self._load()
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise DataError(f"{self.name}: images must be uint8 N×(1|3)×H×W; got {images.dtype} {tuple(images.shape)}")
        return images, ref

    @property
    def form(self) -> SampleForm:
        c, h, w = self.shape
        return SampleForm(shape=(c, h, w), dtype="float", levels=LEVELS,
                          description=f"floats in [0, 1], N×{c}×{h}×{w}, on the 256-level grid")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self._data[0].shape[1:])  # type: ignore[return-value]

    def _mask(self, split: str) -> torch.Tensor:
        _, ref = self._data
        masks = {"train": ~ref, "reference": ref, "test": ref, "all": torch.ones_like(ref)}
        if split not in masks:
            raise ValueError(f"{self.name} has no split {split!r}; use one of {list(SPLITS)}")
        return masks[split]

    def uint8(self, split: str = "train") -> torch.Tensor:
        return self._data[0][self._mask(split)]

    def canonical(self, split: str = "train") -> torch.Tensor:
        return self.uint8(split).float() / (LEVELS - 1)

    def quantise(self, x: torch.Tensor) -> torch.Tensor:
        return quantise(x)

    def fingerprint(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError
