"""The decision rule for one axis of one method: does quality improve with more steps?

Input is a seeds × axis-values matrix of one quality metric (NaN where a point is missing),
the axis values, and the metric's direction of "better" (from `METRICS`, never the name).
The rule is written once here and in docs/scalability-table.md:

- **start** = mean over seeds at the smallest axis value; **end** = the best of the means at
  the largest `top` axis values (`top` = min(2, half the values), so a saturated curve whose
  last point wobbles still counts, but a mid-curve dip does not); with two values, end is
  the largest.
- **rel** = relative improvement start → end, signed so that positive means better:
  (start − end) / |start| for lower-is-better, (end − start) / |start| for higher.
- **ρ** = Spearman rank correlation of axis value with the mean curve's goodness (+1 =
  quality improves at every step; ties averaged; a constant curve gives 0).
- **CI** = percentile bootstrap over seeds (seeds resampled as whole curves, so the pairing
  of points that share a seed is kept) of rel, recomputing start, end and the choice of end.

Verdict: "—" when fewer than two axis values were measured. With ≥ 2 seeds, "✅" needs all of
CI lower bound > 0, rel ≥ `min_effect` (10 %), and ρ > 0. With one seed there is no CI, so
the bar is higher: rel ≥ `single_seed_min_effect` (25 %) and ρ ≥ `single_seed_min_rho` (0.5)
when three or more values were measured. Anything else is "❌", with the failed conditions in
`reason`. A flat noisy curve fails the effect size and the CI; an improves-then-saturates
curve passes because start → end is large and ρ stays positive.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

IMPROVES, FLAT, FIXED, NO_DATA = "✅", "❌", "—", "?"


@dataclass(frozen=True)
class DecisionRule:
    """Thresholds of the rule; the defaults are the documented ones."""

    min_effect: float = 0.10
    single_seed_min_effect: float = 0.25
    single_seed_min_rho: float = 0.5
    confidence: float = 0.95
    n_boot: int = 2000
    top: int = 2
    boot_seed: int = 0

    def describe(self) -> str:
        return (f"✅ needs: ≥2 seeds → {self.confidence:.0%} bootstrap CI of the relative improvement "
                f"excludes 0, improvement ≥ {self.min_effect:.0%}, Spearman ρ > 0; 1 seed → improvement "
                f"≥ {self.single_seed_min_effect:.0%} and ρ ≥ {self.single_seed_min_rho:g} (3+ values). "
                f"Improvement = smallest value → best of the {self.top} largest. — = one value measured.")


@dataclass(frozen=True)
class AxisEvidence:
    """Why a cell got its symbol: the numbers the rule looked at."""

    verdict: str
    reason: str
    values: tuple[int, ...] = ()
    lo: int | None = None
    hi: int | None = None
    q_lo: float = math.nan
    q_hi: float = math.nan
    end_at: int | None = None
    q_end: float = math.nan
    rel: float = math.nan
    ci_lo: float = math.nan
    ci_hi: float = math.nan
    rho: float = math.nan
    n_seeds: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["values"] = ",".join(map(str, self.values))
        return d


def average_ranks(a: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (as scipy.stats.rankdata, without importing scipy)."""
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


def _top_k(n_values: int, top: int) -> int:
    return max(1, min(top, n_values // 2))


def _improvement(curves: np.ndarray, sign: float, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rel, end value and end index for each row of `curves` (rows × values)."""
    start = curves[:, 0]
    tail = sign * curves[:, -k:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tail_filled = np.where(np.isnan(tail), -np.inf, tail)
        j = np.argmax(tail_filled, axis=1)
        end = curves[:, -k:][np.arange(len(curves)), j]
        scale = np.abs(start)
        scale = np.where(scale > 1e-12, scale, np.maximum(np.abs(end), 1e-12))
        rel = sign * (end - start) / scale
    return rel, end, curves.shape[1] - k + j


def judge_axis(values: Sequence[int], q: np.ndarray, better: Literal["lower", "higher"],
               rule: DecisionRule = DecisionRule()) -> AxisEvidence:
    """Apply the rule to `q` (seeds × values, NaN = missing) measured at axis `values`."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better={better!r}; use 'lower' or 'higher' (from METRICS[metric].better)")
    q = np.asarray(q, dtype=float).reshape(-1, len(values))
    order = np.argsort(values)
    vals = np.asarray(values)[order]
    q = q[:, order]
    keep = ~np.all(np.isnan(q), axis=0)
    vals, q = vals[keep], q[:, keep]
    q = q[~np.all(np.isnan(q), axis=1)]
    n_seeds = len(q)
    if len(vals) == 0:
        return AxisEvidence(NO_DATA, "no values for this metric")
    if len(vals) < 2:
        return AxisEvidence(FIXED, f"one value measured ({int(vals[0])})", (int(vals[0]),), int(vals[0]),
                            int(vals[0]), float(np.nanmean(q[:, 0])), float(np.nanmean(q[:, 0])), n_seeds=n_seeds)
    sign = -1.0 if better == "lower" else 1.0
    k = _top_k(len(vals), rule.top)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(q, axis=0)
    rel_a, end_a, end_i = _improvement(mean[None, :], sign, k)
    rel, end, end_idx = float(rel_a[0]), float(end_a[0]), int(end_i[0])
    finite = ~np.isnan(mean)
    rho = spearman(vals[finite], sign * mean[finite])
    ci_lo = ci_hi = math.nan
    failed: list[str] = []
    if n_seeds >= 2:
        rng = np.random.default_rng(rule.boot_seed)
        idx = rng.integers(0, n_seeds, size=(rule.n_boot, n_seeds))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            curves = np.nanmean(q[idx], axis=1)
        boot, _, _ = _improvement(curves, sign, k)
        boot = boot[np.isfinite(boot)]
        alpha = (1 - rule.confidence) / 2
        ci_lo, ci_hi = (float(v) for v in np.quantile(boot, [alpha, 1 - alpha])) if len(boot) else (math.nan,) * 2
        if not ci_lo > 0:
            failed.append(f"CI [{ci_lo:+.0%}, {ci_hi:+.0%}] includes 0")
        if not rel >= rule.min_effect:
            failed.append(f"improvement {rel:+.0%} < {rule.min_effect:.0%}")
        if not rho > 0:
            failed.append(f"ρ={rho:+.2f} ≤ 0")
    else:
        if not rel >= rule.single_seed_min_effect:
            failed.append(f"improvement {rel:+.0%} < {rule.single_seed_min_effect:.0%} (1 seed)")
        if len(vals) >= 3 and not rho >= rule.single_seed_min_rho:
            failed.append(f"ρ={rho:+.2f} < {rule.single_seed_min_rho:g} (1 seed)")
    verdict = FLAT if failed else IMPROVES
    reason = "; ".join(failed) if failed else (
        f"improves {rel:+.0%}" + (f", CI [{ci_lo:+.0%}, {ci_hi:+.0%}]" if n_seeds >= 2 else " (1 seed)")
        + f", ρ={rho:+.2f}")
    return AxisEvidence(verdict, reason, tuple(int(v) for v in vals), int(vals[0]), int(vals[-1]),
                        float(mean[0]), float(mean[-1]), int(vals[end_idx]), end, rel, ci_lo, ci_hi, rho, n_seeds)
