"""The one entry point the runner calls for sample-quality metrics.

Generators return canonical floats; everything here is judged on `dataset.quantise(samples)`
so every method is scored on the same grid. Only requested metrics that the
dataset declares (`dataset.metrics`) are computed; `test_nll` is a property of the model,
not of samples, so the runner gets it from `HasLikelihood.nll`, not from here. With
`floors=True` each metric also gets its data floor (`<metric>_floor`, `<metric>_floor_sd`:
real data at the same n; see `floor.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import torch

log = logging.getLogger(__name__)

SAMPLE_METRICS = ("fid", "kid", "ref_nll", "diversity", "precision", "recall", "memorisation", "memorisation_feat")


def compute_quality(samples: torch.Tensor, dataset: Any, device: str = "cpu",
                    metrics: Iterable[str] = SAMPLE_METRICS, floors: bool = False) -> dict[str, float]:
    """{metric name: value} for the requested sample metrics that apply to `dataset` (+ floors)."""
    wanted = [m for m in metrics if m in SAMPLE_METRICS and m in tuple(dataset.metrics)]
    x = dataset.quantise(samples.detach().float().cpu())
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    with torch.inference_mode(False), torch.no_grad():
        fk = tuple(m for m in ("fid", "kid") if m in wanted)
        if fk:
            from scalebench.metrics.fid import fid_kid

            res = fid_kid(x, dataset, device=device, which=fk)
            out.update({k: res[k] for k in fk})
        if "diversity" in wanted:
            from scalebench.metrics.diversity import diversity

            out["diversity"] = diversity(x, dataset, device=device)
        if "ref_nll" in wanted:
            from scalebench.metrics.refnll import ref_nll

            out["ref_nll"] = ref_nll(x, device=device, dataset=dataset)
        if {"precision", "recall"} & set(wanted):
            from scalebench.metrics.precision_recall import precision_recall

            out.update(precision_recall(x, dataset, device=device))
        if {"memorisation", "memorisation_feat"} & set(wanted):
            from scalebench.metrics.memorisation import memorisation

            out.update(memorisation(x, dataset, device=device))
    result = {m: out[m] for m in wanted}
    if floors and wanted:
        from scalebench.metrics.floor import data_floor

        for m, f in data_floor(dataset, wanted, len(x), device).items():
            result[f"{m}_floor"], result[f"{m}_floor_sd"] = f["mean"], f["sd"]
    log.debug("quality metrics %s on %d samples in %.2fs", sorted(result), x.shape[0], time.perf_counter() - t0)
    return result
