"""A store's runs regrouped as one history per point: its latency and quality over commits, and its steps.

A point is (machine, spec, generator, sampler, S, K, device, dtype, threads, batch size, compile):
the settings that change its numbers. Different machines are different points, so their runs
are never on one line. `normalize` divides latencies by each run's calibration figure
(runs of one machine on hosts of different speed).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scalebench.history.steps import PENALTY, THRESHOLD, Step, detect_steps
from scalebench.history.store import Entry
from scalebench.record import Record
from scalebench.results import latest_records

KEY_FIELDS = ("generator", "sampler", "S", "K", "device", "dtype", "threads", "batch_size", "compile")


@dataclass
class Run:
    """One commit's measurement of a point."""

    entry: Entry
    latency: float | None
    p10: float | None
    p90: float | None
    metrics: dict[str, float]

    @property
    def spread(self) -> float | None:
        if self.latency and self.p10 is not None and self.p90 is not None:
            return (self.p90 - self.p10) / self.latency
        return None


@dataclass
class Finding:
    """A detected step of one metric of one point, judged by the metric's direction."""

    metric: str
    step: Step
    kind: str  # "regression" or "improvement"
    first: Entry  # the first run at the new level
    last_before: Entry  # the run before it: the step came from a commit in (last_before, first]

    @property
    def range(self) -> str:
        return f"{self.last_before.short}..{self.first.short}"


@dataclass
class PointHistory:
    machine: str
    spec: str
    settings: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    better: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def key(self) -> str:
        raw = "|".join([self.machine, self.spec, *(str(self.settings.get(k)) for k in KEY_FIELDS)])
        return hashlib.sha1(raw.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        s = self.settings
        sampler = "" if s.get("sampler") in (None, "", "default") else f"/{s['sampler']}"
        return f"{s.get('generator')}{sampler} S={s.get('S')} K={s.get('K')}"

    def metric_names(self) -> list[str]:
        names = {m for r in self.runs for m in r.metrics}
        return sorted(names, key=lambda m: (m != "fid", m))

    def values(self, metric: str) -> list[float]:
        if metric == "latency_s":
            return [math.nan if r.latency is None else r.latency for r in self.runs]
        return [r.metrics.get(metric, math.nan) for r in self.runs]


def _settings(rec: Record) -> dict[str, Any]:
    out = {k: getattr(rec, k) for k in KEY_FIELDS}
    out["compile"] = rec.compile
    return out


def _run(entry: Entry, rec: Record, normalize: bool) -> Run:
    scale = 1.0
    if normalize:
        cal = rec.calibration_s or entry.calibration_s
        scale = 1.0 / cal if cal else math.nan
    lat, p10, p90 = rec.cost.latency_s, rec.cost.latency_p10_s, rec.cost.latency_p90_s
    metrics = {k: float(v) for k, v in rec.metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    return Run(entry, None if lat is None else lat * scale, None if p10 is None else p10 * scale,
               None if p90 is None else p90 * scale, metrics)


def histories(entries: Sequence[Entry], normalize: bool = False, threshold: float = THRESHOLD,
              penalty: float = PENALTY) -> list[PointHistory]:
    """One history per point (entries in commit order), with its steps detected and judged."""
    from scalebench.metrics import METRICS

    points: dict[tuple, PointHistory] = {}
    for e in entries:
        for rec in latest_records(e.path).values():
            if not rec.ok:
                continue
            st = _settings(rec)
            k = (e.machine, e.spec, *(str(st[f]) for f in KEY_FIELDS))
            ph = points.setdefault(k, PointHistory(e.machine, e.spec, st))
            ph.runs.append(_run(e, rec, normalize))
    for ph in points.values():
        ph.better = {m: (METRICS[m].better if m in METRICS else "lower") for m in ["latency_s", *ph.metric_names()]}
        spreads = [r.spread if r.spread is not None else math.nan for r in ph.runs]
        for m, better in ph.better.items():
            steps = detect_steps(ph.values(m), spreads if m == "latency_s" else None,
                                 threshold=threshold, penalty=penalty)
            for s in steps:
                worse = s.change > 0 if better == "lower" else s.change < 0
                ph.findings.append(Finding(m, s, "regression" if worse else "improvement",
                                           ph.runs[s.index].entry, ph.runs[s.index - 1].entry))
    return sorted(points.values(), key=lambda p: (p.machine, p.spec, str(p.settings["generator"]),
                                                  str(p.settings["sampler"]), p.settings["S"] or 0,
                                                  p.settings["K"] or 0, str(p.settings["device"])))
