"""Diversity: how spread out the samples are in feature space, relative to real data.

Reference NLL alone rewards mode collapse (one perfect digit repeated scores well), and FID
mixes fidelity with coverage; this number isolates spread. It is the mean pairwise L2
distance between feature-net embeddings of the samples, divided by the same quantity for
the real reference split, so ≈1 means "as varied as real digits" and →0 means collapse.
Features, not pixels: pixel distance is dominated by stroke thickness and one-pixel offsets,
while the classifier's embedding separates digit identity and style. Low values mean
collapse *or* off-manifold samples (the classifier maps non-digits to a small region:
uniform noise scores ≈0.3), so read it next to FID/ref-NLL.
"""

from __future__ import annotations

from typing import Any

import torch

_REF: dict[str, float] = {}


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean L2 distance over all unordered pairs i≠j of (N, d) features (float64)."""
    f = features.double()
    n = f.shape[0]
    if n < 2:
        return float("nan")
    d = torch.cdist(f, f)
    return float(d.sum() / (n * (n - 1)))


def reference_spread(dataset: Any, split: str | None = None, device: str = "cpu") -> float:
    """Mean pairwise feature distance of the real split (from the cached reference features)."""
    from scalebench.metrics.fid import reference_features, reference_path

    split = split or dataset.reference_split
    key = str(reference_path(dataset, split))
    if key not in _REF:
        _REF[key] = mean_pairwise_distance(reference_features(dataset, split, device))
    return _REF[key]


@torch.no_grad()
def diversity(samples: torch.Tensor, dataset: Any, device: str = "cpu", reference_split: str | None = None) -> float:
    """Mean pairwise feature distance of the (quantised) samples / that of the real split."""
    from scalebench.metrics.fid import extractor_for

    x = dataset.quantise(samples.detach().float()).to(device)
    feats = extractor_for(dataset, device)(x).cpu()
    return mean_pairwise_distance(feats) / reference_spread(dataset, reference_split, device)


def score(x: torch.Tensor, dataset: Any, device: str, names: list[str]) -> dict[str, float]:
    """The registry's entry for `diversity` (`scalebench.metrics.METRICS`)."""
    return {"diversity": diversity(x, dataset, device=device)}


def score_features(fake: torch.Tensor, real: torch.Tensor, dataset: Any, device: str,
                   names: list[str]) -> dict[str, float]:
    """Diversity from features of both sides (the data floor redraws the reference)."""
    return {"diversity": mean_pairwise_distance(fake) / mean_pairwise_distance(real)}
