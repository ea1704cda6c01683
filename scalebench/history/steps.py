"""Step detection over a commit history: where did a series change level, and by how much?

The idea is asv's `step_detect` (a piecewise-constant fit with a penalty per segment, each run
weighted by its spread), written from the description, not copied:

1. Work in log space for positive series, so a step is a ratio and one penalty fits all scales.
2. Estimate the series' run-to-run noise robustly from successive differences
   (1.4826 · median|Δx| / √2: a level step spoils one difference, not the estimate), with a floor.
3. Weight each run by 1 / (noise · max(1, its spread / the median spread)): a run measured on a
   disturbed machine (wide p10–p90) counts less.
4. Fit the piecewise-constant levels that minimise Σ wᵢ|xᵢ − level| + β · segments by optimal
   partitioning (dynamic programming over all segmentations; L1 so that one slow run moves
   nothing), with segments of at least `min_size` runs: a single odd run is noise, not a step.
   β = `penalty` · log(n), calibrated by `benchmarks/history_steps.py` for its false-alarm rate.
5. Report the boundaries whose level ratio reaches `threshold` (default 5 %).

A step found at position i lies between the run before it and run i: with every commit measured
that is one commit; otherwise it is the range of commits between the two runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PENALTY = 1.5  # β = PENALTY · log(n): ~4 % false alarms per 20-commit flat history (benchmarks/history_steps.py)
MIN_SIZE = 2
THRESHOLD = 0.05
NOISE_FLOOR = 0.002  # 0.2 % in log units: deterministic series (quality metrics) still need a scale


@dataclass(frozen=True)
class Step:
    """A change of level: `index` is the first run at the new level."""

    index: int
    before: float  # level of the segment before, in the series' units
    after: float

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else math.inf

    @property
    def change(self) -> float:
        """Relative change, e.g. +0.15 for 15 % higher."""
        return self.ratio - 1.0


def noise_scale(x: np.ndarray, floor: float = NOISE_FLOOR) -> float:
    """Robust run-to-run scale from successive differences (unaffected by a few level steps)."""
    if len(x) < 3:
        return floor
    d = np.abs(np.diff(x))
    return max(float(1.4826 * np.median(d) / math.sqrt(2.0)), floor)


def weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, 0.5 * cw[-1])])


def segment_costs(x: np.ndarray, w: np.ndarray, min_size: int) -> np.ndarray:
    """cost[j, e] = Σ_{j≤i<e} wᵢ|xᵢ − weighted median| (inf where e − j < min_size)."""
    n = len(x)
    cost = np.full((n + 1, n + 1), np.inf)
    for j in range(n):
        for e in range(j + min_size, n + 1):
            xs, ws = x[j:e], w[j:e]
            cost[j, e] = float(np.sum(ws * np.abs(xs - weighted_median(xs, ws))))
    return cost


def partition(x: np.ndarray, w: np.ndarray, beta: float, min_size: int = MIN_SIZE) -> list[int]:
    """Optimal partitioning: the start index of every segment after the first."""
    n = len(x)
    if n < 2 * min_size:
        return []
    cost = segment_costs(x, w, min_size)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    back = np.zeros(n + 1, dtype=int)
    for e in range(min_size, n + 1):
        cand = best[:e] + cost[:e, e] + beta
        j = int(np.argmin(cand))
        best[e], back[e] = cand[j], j
    cuts, e = [], n
    while e > 0:
        e = int(back[e])
        if e > 0:
            cuts.append(e)
    return sorted(cuts)


def detect_steps(values: Sequence[float], spreads: Sequence[float] | None = None, *,
                 threshold: float = THRESHOLD, penalty: float = PENALTY, min_size: int = MIN_SIZE,
                 floor: float = NOISE_FLOOR) -> list[Step]:
    """Level steps of a series in commit order (NaNs are dropped; indices refer to the input).

    `spreads`: each run's own relative spread (e.g. (p90 − p10) / median); None weights runs equally.
    """
    y = np.asarray(values, dtype=float)
    keep = np.flatnonzero(np.isfinite(y))
    y = y[keep]
    if len(y) < 2 * min_size:
        return []
    positive = bool(np.all(y > 0))
    x = np.log(y) if positive else y / max(float(np.median(np.abs(y))), 1e-12)
    sigma = noise_scale(x, floor)
    factor = np.ones(len(x))
    if spreads is not None:
        s = np.asarray(spreads, dtype=float)[keep]
        ok = np.isfinite(s) & (s > 0)
        if ok.any():
            factor[ok] = np.maximum(1.0, s[ok] / float(np.median(s[ok])))
    w = 1.0 / (sigma * factor)
    cuts = partition(x, w, penalty * math.log(len(x)), min_size)
    bounds = [0, *cuts, len(x)]
    levels = [weighted_median(y[a:b], w[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    steps = []
    for k, cut in enumerate(cuts):
        step = Step(int(keep[cut]), levels[k], levels[k + 1])
        if abs(step.change) >= threshold:
            steps.append(step)
    return steps
