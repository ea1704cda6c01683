"""The metric registry: one declaration per metric, and everything else is a loop over it.

A `Metric` says which way is better, how big a change matters, which models it needs, how to
compute it from samples and how to compute its data floor. `quality.compute_quality` and
`floor.data_floor` only loop over these declarations, so adding a metric is its module (the
functions named below), one line here and its test. Functions are named as "module:function"
strings and imported on first use, so reading the registry never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Metric:
    """A metric's declaration: the direction of "better" comes from here, never from its name.

    compute: "module:function" `(x, dataset, device, names) -> {name: value}` on quantised samples;
      metrics naming the same function are computed by one call ("" = not computed from samples).
    floor: "module:function" `(dataset, names, n, device) -> {name: floor entry}`: real data at the
      same n (`floor.py`); metrics naming the same function share its draws ("" = no floor).
    on_features: "module:function" `(fake, real, dataset, device, names) -> {name: value}` from
      feature-net features of both sides (the feature floor redraws the reference with it).
    feature_net: the dataset's feature net embeds the samples (it enters the floor's identity).
    reference_model: the separate reference likelihood model scores the samples.
    """

    name: str
    better: Literal["lower", "higher"]
    kind: Literal["quality", "cost"] = "quality"
    unit: str = ""
    rel_tolerance: float = 0.05
    description: str = ""
    compute: str = ""
    floor: str = ""
    on_features: str = ""
    feature_net: bool = False
    reference_model: bool = False


FEATURE_FLOOR = "scalebench.metrics.floor:feature_floor"
MEMORISATION = "scalebench.metrics.memorisation"

METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("fid", "lower", rel_tolerance=0.10,
           description="Fréchet distance of feature-net features to the reference split",
           compute="scalebench.metrics.fid:score", floor=FEATURE_FLOOR,
           on_features="scalebench.metrics.fid:score_features", feature_net=True),
    Metric("kid", "lower", rel_tolerance=0.20,
           description="kernel (MMD) distance of feature-net features to the reference split",
           compute="scalebench.metrics.fid:score", floor=FEATURE_FLOOR,
           on_features="scalebench.metrics.fid:score_features", feature_net=True),
    Metric("ref_nll", "lower", unit="bits/dim", rel_tolerance=0.05,
           description="bits/dim of the samples under the separate reference AR model (Gen PPL)",
           compute="scalebench.metrics.refnll:score", floor="scalebench.metrics.floor:ref_nll_floor",
           reference_model=True),
    Metric("precision", "higher", rel_tolerance=0.05,
           description="fraction of samples inside the real k-NN feature manifold (Kynkäänniemi et al. 2019)",
           compute="scalebench.metrics.precision_recall:score", floor=FEATURE_FLOOR,
           on_features="scalebench.metrics.precision_recall:score_features", feature_net=True),
    Metric("recall", "higher", rel_tolerance=0.05,
           description="fraction of real reference images inside the samples' k-NN feature manifold",
           compute="scalebench.metrics.precision_recall:score", floor=FEATURE_FLOOR,
           on_features="scalebench.metrics.precision_recall:score_features", feature_net=True),
    Metric("memorisation", "lower", rel_tolerance=0.5,
           description="fraction of samples nearer (pixels) to a training image than 99% of unseen real images",
           compute=f"{MEMORISATION}:score", floor=f"{MEMORISATION}:floor"),
    Metric("memorisation_feat", "lower", rel_tolerance=0.5,
           description="the same in the feature net's embedding",
           compute=f"{MEMORISATION}:score", floor=f"{MEMORISATION}:floor", feature_net=True),
    Metric("diversity", "higher", rel_tolerance=0.05,
           description="mean pairwise feature distance of samples / that of real data (≈1 good, 0 collapse)",
           compute="scalebench.metrics.diversity:score", floor=FEATURE_FLOOR,
           on_features="scalebench.metrics.diversity:score_features", feature_net=True),
    Metric("test_nll", "lower", unit="bits/dim", rel_tolerance=0.02,
           description="test-split NLL in bits/dim (exact or a bound: see nll_kind); a property of the model, "
                       "from `HasLikelihood.nll`, not of samples"),
    Metric("latency_s", "lower", kind="cost", unit="s/sample", rel_tolerance=0.10,
           description="median wall-clock seconds per sample"),
    Metric("nfe", "lower", kind="cost", unit="calls",
           description="network function evaluations in sequence per batch"),
    Metric("flops", "lower", kind="cost", unit="FLOP/sample",
           description="FLOPs per sample, counted by torch.utils.flop_counter (attention by formula: metrics/cost.py)"),
    Metric("peak_mem_bytes", "lower", kind="cost", unit="bytes",
           description="bytes torch allocated above the pre-batch level during one batch (CPU: live tensor storages "
                       "tracked per op; CUDA: allocator peak)"),
]}

SAMPLE_METRICS = tuple(name for name, m in METRICS.items() if m.compute)
"""Metrics computed from samples (`quality.compute_quality`), in registry order."""
FEATURE_METRICS = tuple(name for name, m in METRICS.items() if m.feature_net)
"""Metrics that need the dataset's feature net (a speed-only sweep loads none of them)."""
QUALITY_METRICS = tuple(name for name, m in METRICS.items() if m.kind == "quality")
"""Every quality metric: what a dataset that accepts them all declares (`data/digits.py`)."""


def function(path: str) -> Callable[..., Any]:
    """The function named "module:function" (imported on first use)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def grouped(names: Iterable[str], attribute: str) -> dict[str, list[str]]:
    """{function path: the metrics of `names` that name it as `attribute`}, in first-seen order."""
    groups: dict[str, list[str]] = {}
    for name in names:
        path = getattr(METRICS[name], attribute)
        if path:
            groups.setdefault(path, []).append(name)
    return groups
