"""Memorisation: the fraction of samples that are (near-)copies of a generator-training image.

For every sample, the distance to its nearest neighbour in the generators' training split,
in pixel space (L2 on the quantised 8×8 image) and in the feature net's embedding. A sample
counts as a copy when it is closer to a training image than all but `QUANTILE` of real
*unseen* images are (the reference split's own nearest-neighbour distances to the training
split set the threshold), so real held-out data scores ≈ QUANTILE by construction and a
model that returns training images verbatim scores 1.0. Lower is better; read it next to
FID, which a copying model would otherwise win.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

QUANTILE = 0.01
SPACES = (("pixel", "memorisation"), ("feature", "memorisation_feat"))


def nn_distance(x: torch.Tensor, ref: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """L2 distance of each row of x (N, d) to its nearest row of ref (M, d), float64."""
    ref = ref.double()
    return torch.cat([torch.cdist(x[i:i + chunk].double(), ref).min(dim=1).values
                      for i in range(0, len(x), chunk)]) if len(x) else torch.zeros(0, dtype=torch.float64)


def _embed(x: torch.Tensor, space: str, device: str) -> torch.Tensor:
    if space == "pixel":
        return x.flatten(1).double().cpu()
    from scalebench.metrics.features import feature_extractor

    return feature_extractor(device)(x.to(device)).double().cpu()


@functools.cache
def _reference(dataset: Any, space: str, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(training-split embeddings, each reference image's nearest-neighbour distance to them), once per process."""
    train = _embed(dataset.quantise(dataset.canonical(dataset.generator_split)), space, device)
    unseen = _embed(dataset.quantise(dataset.canonical(dataset.reference_split)), space, device)
    return train, nn_distance(unseen, train)


def threshold_of(unseen_distances: torch.Tensor) -> float:
    """The copy threshold: the `QUANTILE` quantile of unseen real images' distances to the training split."""
    return float(torch.quantile(unseen_distances, QUANTILE))


def reference_distances(dataset: Any, space: str, device: str = "cpu") -> torch.Tensor:
    """Nearest-neighbour distances of the reference split to the training split (the floor cross-fits on them)."""
    return _reference(dataset, space, device)[1]


@torch.no_grad()
def memorisation(samples: torch.Tensor, dataset: Any, device: str = "cpu") -> dict[str, float]:
    """{"memorisation": pixel-space copy fraction, "memorisation_feat": feature-space copy fraction}."""
    x = dataset.quantise(samples.detach().float())
    out = {}
    for space, key in SPACES:
        train, unseen = _reference(dataset, space, device)
        d = nn_distance(_embed(x, space, device), train)
        out[key] = float((d <= threshold_of(unseen)).double().mean()) if len(d) else float("nan")
    return out


def thresholds(dataset: Any, device: str = "cpu") -> dict[str, float]:
    """The copy thresholds in each space (for docs and tests)."""
    return {space: threshold_of(_reference(dataset, space, device)[1]) for space in ("pixel", "feature")}


def score(x: torch.Tensor, dataset: Any, device: str, names: list[str]) -> dict[str, float]:
    """The registry's entry for both copy fractions (`scalebench.metrics.METRICS`)."""
    return memorisation(x, dataset, device=device)


def floor(dataset: Any, metrics: list[str], n: int, device: str) -> dict[str, dict[str, Any]]:
    """Copy fraction of held-out reference images under a threshold set by the rest (cross-fitted)."""
    from scalebench.metrics.floor import DRAWS, entry

    out = {}
    for space, key in SPACES:
        if key not in metrics:
            continue
        d = reference_distances(dataset, space, device)
        m = min(n, len(d) // 2)
        values = []
        for i in range(DRAWS):
            perm = torch.randperm(len(d), generator=torch.Generator().manual_seed(i))
            held, rest = d[perm[:m]], d[perm[m:]]
            values.append(float((held <= threshold_of(rest)).double().mean()))
        out[key] = entry(values, n, f"{dataset.reference_split}, threshold cross-fitted", len(d), False,
                          held_out=m, threshold_size=len(d) - m)
    return out
