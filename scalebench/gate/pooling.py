"""Each side of a comparison: the records of one point pooled over the runs (rounds) that measured it.

Raw per-sample timings are pooled for the raw-sample test; one latency per run, in run order
(round-2 before round-10), is kept for the paired test across rounds.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalebench.gate.stats import finite
from scalebench.gate.thresholds import CompareError
from scalebench.record import FLOOR_SUFFIX, Record
from scalebench.results import latest_records, read_manifest, run_dirs

KEY_FIELDS = ("generator", "sampler", "S", "K", "seed", "n", "batch_size", "dtype", "device")
TOLERANCE_COSTS = ("nfe", "flops")  # deterministic: gated by rel_tolerance, no test
INFO_COSTS = ("peak_mem_bytes",)  # process-wide RSS peak on CPU: shown, never gated


@dataclass
class PooledPoint:
    """One grid point of one side, pooled over the runs (rounds) that measured it."""

    point_id: str
    record: Record  # the latest ok record (or the latest failed one): settings, labels
    runs: list[str] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)  # per-sample seconds (or /calibration)
    run_latency: list[float] = field(default_factory=list)  # one latency per ok run, in run (round) order
    latency: float = math.nan
    latency_p10: float = math.nan
    latency_p90: float = math.nan
    values: dict[str, float] = field(default_factory=dict)  # quality metrics + nfe/flops/peak mem
    floors: dict[str, float] = field(default_factory=dict)  # "<metric>_floor": the data floor's mean (shown only)
    errors: list[str] = field(default_factory=list)
    ok_runs: int = 0

    @property
    def ok(self) -> bool:
        return self.ok_runs > 0

    @property
    def key(self) -> tuple[Any, ...]:
        return tuple(getattr(self.record, f) for f in KEY_FIELDS) + (self.record.compile,)

    @property
    def label(self) -> str:
        r = self.record
        return f"{r.generator}/{r.sampler} S={r.S} K={r.K} seed={r.seed}"


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else math.nan


def _natural(text: str) -> list[Any]:
    """Sort key so that round-2 comes before round-10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _pool(point_id: str, recs: list[tuple[Record, float, str]]) -> PooledPoint:
    """Pool (record, latency scale, run name) triples of one point."""
    from scalebench.timing import percentile

    ok = [(r, s, run) for r, s, run in recs if r.ok]
    latest = max((r for r, _, _ in (ok or recs)), key=lambda r: str(r.ended_at or r.started_at or ""))
    p = PooledPoint(point_id=point_id, record=latest, runs=[run for _, _, run in recs], ok_runs=len(ok),
                    errors=[str(r.error) for r, _, _ in recs if not r.ok])
    fallback: dict[str, list[float]] = defaultdict(list)
    values: dict[str, list[float]] = defaultdict(list)
    floors: dict[str, list[float]] = defaultdict(list)
    for r, scale, _ in sorted(ok, key=lambda t: _natural(t[2])):
        run_samples = [float(t) / scale for t in r.timing.per_sample_s or [] if finite(t)]
        p.samples.extend(run_samples)
        cost = r.cost
        if run_samples:
            p.run_latency.append(statistics.median(run_samples))
        elif finite(cost.latency_s):
            p.run_latency.append(cost.latency_s / scale)
        for k in ("latency_s", "latency_p10_s", "latency_p90_s"):
            if finite(getattr(cost, k)):
                fallback[k].append(getattr(cost, k) / scale)
        for k in (*TOLERANCE_COSTS, *INFO_COSTS):
            if finite(getattr(cost, k)):
                values[k].append(float(getattr(cost, k)))
        for k, v in r.metrics.items():
            if finite(v):
                values[k].append(float(v))
        for k, floor in r.floors.items():
            if finite(floor.mean):
                floors[k + FLOOR_SUFFIX].append(float(floor.mean))
    if p.samples:
        p.latency = statistics.median(p.samples)
        p.latency_p10, p.latency_p90 = percentile(p.samples, 10), percentile(p.samples, 90)
    else:
        p.latency = _mean(fallback["latency_s"])
        p.latency_p10, p.latency_p90 = _mean(fallback["latency_p10_s"]), _mean(fallback["latency_p90_s"])
    p.values = {k: _mean(v) for k, v in values.items()}
    p.floors = {k: _mean(v) for k, v in floors.items()}
    return p


def load_side(paths: Sequence[str | Path], normalize: bool = False) -> dict[str, PooledPoint]:
    """point_id → PooledPoint over every run directory under `paths` (rounds are pooled).

    With `normalize`, each run's latencies are divided by its manifest's `calibration_s`
    before pooling, so runs from different machines (or moments) become comparable.
    """
    grouped: dict[str, list[tuple[Record, float, str]]] = defaultdict(list)
    for d in run_dirs(paths):
        scale = 1.0
        if normalize:
            cal = read_manifest(d).get("calibration_s")
            if not finite(cal) or cal <= 0:
                raise CompareError(f"{d}/manifest.json has no calibration_s; re-run it with this scalebench "
                                   "or drop --normalize")
            scale = float(cal)
        for pid, rec in latest_records(d).items():
            grouped[pid].append((rec, scale, str(d)))
    return {pid: _pool(pid, recs) for pid, recs in grouped.items()}
