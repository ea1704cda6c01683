"""The one entry point the runner calls for sample-quality metrics: a loop over the registry.

Generators return canonical floats; everything here is judged on `dataset.quantise(samples)`
so every method is scored on the same grid. Only requested metrics that the dataset declares
(`dataset.metrics`) and that are computed from samples (`Metric.compute`) are computed;
`test_nll` is a property of the model, so the runner gets it from `HasLikelihood.nll`. With
`floors=True` each metric also gets its data floor (real data at the same n; see `floor.py`) in
the flat form of the tidy frame's rows (`<metric>_floor`, `<metric>_floor_sd`), which
`scalebench.flags` reads; a record keeps floors apart (`Record.floors`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import torch

from scalebench.metrics import SAMPLE_METRICS, function, grouped

log = logging.getLogger(__name__)


def compute_quality(samples: torch.Tensor, dataset: Any, device: str = "cpu",
                    metrics: Iterable[str] = SAMPLE_METRICS, floors: bool = False) -> dict[str, float]:
    """{metric name: value} for the requested sample metrics that apply to `dataset` (+ floors)."""
    wanted = [m for m in metrics if m in SAMPLE_METRICS and m in tuple(dataset.metrics)]
    x = dataset.quantise(samples.detach().float().cpu())
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    with torch.inference_mode(False), torch.no_grad():
        for path, names in grouped(wanted, "compute").items():
            out.update(function(path)(x, dataset, device, names))
    result = {m: out[m] for m in wanted}
    if floors and wanted:
        from scalebench.metrics.floor import data_floor
        from scalebench.record import FLOOR_SD_SUFFIX, FLOOR_SUFFIX

        for m, f in data_floor(dataset, wanted, len(x), device).items():
            result[m + FLOOR_SUFFIX], result[m + FLOOR_SD_SUFFIX] = f["mean"], f["sd"]
    log.debug("quality metrics %s on %d samples in %.2fs", sorted(result), x.shape[0], time.perf_counter() - t0)
    return result
