"""The dataset contract: a dataset decides the canonical sample form and which metrics apply.

The runner only talks to this interface, so another image set (CIFAR-10, a folder of
images) or token sequences (text) plug in without touching it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class SampleForm:
    """The canonical form every generator for this dataset returns."""

    shape: tuple[int, ...]  # per-sample shape, e.g. (1, 8, 8)
    dtype: str  # "float" (images in [0, 1]) or "long" (token ids)
    levels: int | None = None  # number of quantisation levels the metrics judge on
    low: float = 0.0  # declared value range of a float form (ignored for "long")
    high: float = 1.0
    description: str = ""


class Dataset(Protocol):
    name: str
    form: SampleForm
    metrics: tuple[str, ...]  # names of metrics (see scalebench.metrics) that apply
    # optional: feature_net = "digits-cnn" (the default) | "inception": the net behind FID/KID,
    # precision/recall and diversity (scalebench/metrics/featurenets.py); an "inception" dataset
    # may carry `inception`, the spec's weights path ("" = $SCALEBENCH_INCEPTION, then torch's hub cache)

    def canonical(self, split: str) -> torch.Tensor:
        """The split's examples in canonical form (already on the quantisation grid)."""
        ...

    def quantise(self, x: torch.Tensor) -> torch.Tensor:
        """Project generator output onto the grid the metrics judge (e.g. 17 grey levels)."""
        ...

    def fingerprint(self) -> dict[str, object]:
        """Every choice that changes the data (for cache keys and point identity)."""
        ...
