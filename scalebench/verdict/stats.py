"""The statistic behind a verdict: the effect of one axis on one quality metric, per replicate.

Input is a replicates × axis-values matrix of one metric (NaN = missing). A replicate is one
(checkpoint, sampling seed) pair: its metric values along the axis share the checkpoint and the
seed, so the replicate, not the point, is the unit of the test.

Per replicate r: start_r = q at the smallest axis value, end_r = mean of q over the `top` largest
values (`top` = min(2, ⌊values/2⌋), so a saturated curve whose last point wobbles still counts) and
the effect e_r = log(end_r / start_r) — unclipped; when a metric takes values ≤ 0 (KID can), the
relative change (end_r − start_r) / |mean start| instead. The gain g_r = −e_r when lower is better,
+e_r when higher is. Over the n usable replicates: mean ḡ, standard error s/√n, df = n − 1, a 95 %
t-interval, and four one-sided t-tests against the declared minimum effect M (log(1 + m) on the
log scale, m on the relative one):

- improves:  H0 ḡ ≤ +M   (p_up)
- worse:     H0 ḡ ≥ −M   (p_down)
- no gain:   TOST equivalence, H0 |ḡ| ≥ M   (p_equiv = max of the two one-sided p's)
- at floor:  H0 the end is worse than the data floor by more than its margin (floor_z floor sd, or
  m·|floor| when that is larger), on d_r = margin − (end_r − floor) in the "worse" direction (p_floor)

One replicate, or replicates with identical values, give no noise estimate: no test, no interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

LEVEL = 0.95  # the interval printed beside each effect


@dataclass(frozen=True)
class Floor:
    """A metric's data floor: its value for real held-out data against the reference, mean ± sd."""

    mean: float
    sd: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.mean) or not (self.sd >= 0 and math.isfinite(self.sd)):
            raise ValueError(f"a floor needs a finite mean and a finite sd ≥ 0, got {self.mean!r} ± {self.sd!r}")

    def band(self, z: float) -> tuple[float, float]:
        return self.mean - z * self.sd, self.mean + z * self.sd


@dataclass(frozen=True)
class AxisEffect:
    """The numbers a verdict is decided from (NaN where not defined)."""

    values: tuple[int, ...] = ()
    lo: int | None = None
    hi: int | None = None
    end_at: int | None = None
    q_lo: float = math.nan  # mean over replicates at the smallest value
    q_hi: float = math.nan  # … at the largest value
    q_end: float = math.nan  # … of the per-replicate ends (mean of the `top` largest values)
    n: int = 0  # usable replicates (both ends measured)
    scale: Literal["log", "relative", ""] = ""
    gain: float = math.nan  # mean gain in the effect scale, > 0 = better
    se: float = math.nan
    effect: float = math.nan  # relative change of the metric, start → end (−0.83 = 83 % lower)
    effect_lo: float = math.nan  # its 95 % interval
    effect_hi: float = math.nan
    min_effect: float = math.nan  # the declared minimum effect m (relative)
    p_up: float = math.nan
    p_down: float = math.nan
    p_equiv: float = math.nan
    p_floor: float = math.nan
    floor: float = math.nan
    floor_sd: float = math.nan
    floor_margin: float = math.nan
    start_at_floor: bool = False  # the mean start is already within the floor's margin: no gain left to show
    rho: float = math.nan  # Spearman ρ of the mean curve against the axis, in the "better" direction

    @property
    def tested(self) -> bool:
        return math.isfinite(self.p_up)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["values"] = ",".join(map(str, self.values))
        return d


def average_ranks(a: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (as scipy.stats.rankdata, without importing scipy.stats)."""
    a = np.asarray(a, dtype=float)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(1, len(a) + 1)
    for v in np.unique(a):
        tied = a == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ with average ranks for ties; 0 when either side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    sx, sy = rx.std(), ry.std()
    if len(rx) < 2 or sx == 0 or sy == 0:
        return 0.0
    return float(((rx - rx.mean()) * (ry - ry.mean())).mean() / (sx * sy))


def t_sf(t: float, df: int) -> float:
    """P(T_df > t): the one-sided p-value of a t statistic."""
    from scipy.special import stdtr  # Student-t CDF; half the import time of scipy.stats

    return float(stdtr(df, -t))


def t_quantile(p: float, df: int) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def _top_k(n_values: int, top: int) -> int:
    return max(1, min(top, n_values // 2))


def _has_spread(x: np.ndarray) -> bool:
    return len(x) >= 2 and float(x.std(ddof=1)) > 1e-12 * max(1.0, float(np.abs(x).max()))


def axis_effect(values: Sequence[int], q: np.ndarray, better: Literal["lower", "higher"], min_effect: float,
                floor: Floor | None = None, *, top: int = 2, floor_z: float = 2.0) -> AxisEffect:
    """The effect of the axis on `q` (replicates × values, NaN = missing) measured at axis `values`."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better={better!r}; use 'lower' or 'higher' (from METRICS[metric].better)")
    if not (math.isfinite(min_effect) and min_effect >= 0):
        raise ValueError(f"min_effect={min_effect!r}: pass the metric's declared rel_tolerance (≥ 0)")
    q = np.asarray(q, dtype=float).reshape(-1, len(values))
    order = np.argsort(values)
    vals = np.asarray(values)[order]
    q = q[:, order]
    keep = ~np.all(np.isnan(q), axis=0)
    vals, q = vals[keep], q[:, keep]
    q = q[~np.all(np.isnan(q), axis=1)]
    floor_fields = dict(floor=floor.mean, floor_sd=floor.sd) if floor is not None else {}
    if len(vals) == 0:
        return AxisEffect(min_effect=min_effect, **floor_fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(q, axis=0)
    if len(vals) < 2:
        v0 = int(vals[0])
        return AxisEffect((v0,), v0, v0, v0, float(mean[0]), float(mean[0]), float(mean[0]),
                          n=len(q), min_effect=min_effect, **floor_fields)
    sign = -1.0 if better == "lower" else 1.0
    k = _top_k(len(vals), top)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        start, end = q[:, 0], np.nanmean(q[:, -k:], axis=1)
    usable = np.isfinite(start) & np.isfinite(end)
    start, end = start[usable], end[usable]
    n = len(start)
    finite = np.isfinite(mean)
    base = dict(values=tuple(int(v) for v in vals), lo=int(vals[0]), hi=int(vals[-1]), end_at=int(vals[-k]),
                q_lo=float(np.mean(start)) if n else float(mean[0]), q_hi=float(mean[-1]),
                q_end=float(np.mean(end)) if n else math.nan, n=n, min_effect=min_effect,
                rho=spearman(vals[finite], sign * mean[finite]), **floor_fields)
    if n == 0:
        return AxisEffect(**base)
    log_scale = bool(np.all(start > 0) and np.all(end > 0))
    if log_scale:
        e, margin = np.log(end / start), math.log1p(min_effect)
    else:
        e, margin = (end - start) / max(abs(float(np.mean(start))), 1e-12), min_effect
    g = sign * e
    gain = float(g.mean())
    out: dict[str, Any] = dict(base, scale="log" if log_scale else "relative", gain=gain)
    to_effect = (lambda x: math.expm1(x)) if log_scale else (lambda x: x)
    out["effect"] = to_effect(float(e.mean()))
    if floor is not None:
        out["floor_margin"] = max(floor_z * floor.sd, min_effect * abs(floor.mean))
        out["start_at_floor"] = bool(-sign * (float(np.mean(start)) - floor.mean) <= out["floor_margin"])
    if not _has_spread(g):  # one replicate, or identical ones: no noise estimate, no test
        return AxisEffect(**out)
    df = n - 1
    se = float(g.std(ddof=1)) / math.sqrt(n)
    half = t_quantile(0.5 + LEVEL / 2, df) * se
    out.update(se=se, effect_lo=to_effect(float(e.mean()) - half), effect_hi=to_effect(float(e.mean()) + half),
               p_up=t_sf((gain - margin) / se, df), p_down=t_sf(-(gain + margin) / se, df))
    out["p_equiv"] = max(t_sf((gain + margin) / se, df), t_sf(-(gain - margin) / se, df))
    if floor is not None:
        d = out["floor_margin"] - (-sign) * (end - floor.mean)  # > 0: the end is within the margin of the floor
        if _has_spread(d):
            out["p_floor"] = t_sf(float(d.mean()) / (float(d.std(ddof=1)) / math.sqrt(n)), df)
    return AxisEffect(**out)
