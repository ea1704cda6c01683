"""Improved precision and recall (Kynkäänniemi et al. 2019) on the feature net's embedding.

FID folds fidelity and coverage into one number; these separate them. Each set of features
defines a manifold: the union of balls around its points, each of radius the distance to its
k-th nearest neighbour within the set (k = 3, the paper's choice). Precision = fraction of
generated samples inside the real manifold (fidelity); recall = fraction of real reference
images inside the generated manifold (coverage). Both in [0, 1], higher is better.
"""

from __future__ import annotations

from typing import Any

import torch

K_NEAREST = 3


def knn_radii(f: torch.Tensor, k: int = K_NEAREST) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row (float64)."""
    d = torch.cdist(f, f)
    return d.kthvalue(k + 1, dim=1).values  # +1: the row itself is its own nearest, at 0


def coverage(points: torch.Tensor, support: torch.Tensor, k: int = K_NEAREST) -> float:
    """Fraction of `points` inside the k-NN manifold of `support`."""
    radii = knn_radii(support, k)
    inside = (torch.cdist(points, support) <= radii.unsqueeze(0)).any(dim=1)
    return float(inside.double().mean())


@torch.no_grad()
def precision_recall(samples: torch.Tensor, dataset: Any, device: str = "cpu", k: int = K_NEAREST,
                     reference_split: str | None = None) -> dict[str, float]:
    """{"precision", "recall"} of canonical samples against the reference split's features."""
    from scalebench.metrics.fid import extractor_for, reference_features

    x = dataset.quantise(samples.detach().float()).to(device)
    fake = extractor_for(dataset, device)(x).double().cpu()
    return precision_recall_features(fake, reference_features(dataset, reference_split, device), k)


def precision_recall_features(fake: torch.Tensor, real: torch.Tensor, k: int = K_NEAREST) -> dict[str, float]:
    """`precision_recall` on features of both sides (the data floor redraws the reference)."""
    fake, real = fake.double(), real.double()
    if len(fake) <= k or len(real) <= k:
        return {"precision": float("nan"), "recall": float("nan")}
    return {"precision": coverage(fake, real, k), "recall": coverage(real, fake, k)}


def score(x: torch.Tensor, dataset: Any, device: str, names: list[str]) -> dict[str, float]:
    """The registry's entry for precision and recall (`scalebench.metrics.METRICS`)."""
    return precision_recall(x, dataset, device=device)


def score_features(fake: torch.Tensor, real: torch.Tensor, dataset: Any, device: str,
                   names: list[str]) -> dict[str, float]:
    """Precision and recall from features of both sides (the data floor redraws the reference)."""
    return precision_recall_features(fake, real)
