"""The decision rule for one axis of one method: does quality improve with more steps?

Input is a seeds × axis-values matrix of one quality metric (NaN where a point is missing),
the axis values, the metric's direction of "better" (from `METRICS`, never the name), its
minimum effect (`MetricSpec.rel_tolerance`) and, when the records carry one, the metric's
**data floor** (the metric of real held-out data against the reference, mean ± sd). The rule
is written once here and in docs/scalability-table.md.

Per seed s (a seed is usable when it has the smallest axis value and one of the tail values):

- goodness g = −q (lower is better) or +q (higher is better). With a floor, the band is
  floor mean ± `floor_z`·sd and g is clipped at the band's edge e = ±floor − `floor_z`·sd:
  being "better than real data" is not measurable, so gains inside the band count as zero.
- start_s = q at the smallest axis value; end_s = mean of q over the `top` largest values
  (`top` = min(2, ⌊values/2⌋)), so a saturated curve whose last point wobbles still counts.
- rel_s = (g_end_s − g_start_s) / |start_s| (clipped g), positive = better.

The minimum effect is m = max(rel_tolerance, `floor_z`·floor sd / |mean start|). The test is
run on d_s = rel_s − m, one-sided both ways, at level `alpha`:

- ≥ `sign_min_seeds` seeds (5 at α = 0.05, the fewest with which it can reach α): the **exact
  sign test** over seeds (distribution-free): p_up = P(Binom(n, ½) ≥ #{d_s > 0}), ties dropped.
- 2 … 4 seeds: the **one-sample t-test** over seeds on d_s (df = n − 1; assumes each seed's
  metric, a statistic of many samples, is roughly normal). With 2 seeds it needs t > 6.31.
- 1 seed (or seeds whose values are identical): no test. Only with a floor whose sd > 0:
  "improves" when the clipped gain exceeds the minimum effect by `single_seed_floor_sds`
  floor sd, "no gain" when it falls short of it by as much; otherwise inconclusive.

Verdicts: **improves** when p_up < α, the mean improvement ≥ m and Spearman ρ > 0 (the mean
curve trends the right way); **no gain** (significantly flat or worse) when p_down < α and the
end is not inside the floor band; **inconclusive** otherwise (too few seeds, inside the noise,
or at the data floor — both ends inside the band, or a gain that ends in the band and whose
part outside the band is too small); **fixed** when fewer than two axis values were measured.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

IMPROVES, FLAT, INCONCLUSIVE, FIXED, NO_DATA = "improves", "no gain", "inconclusive", "fixed", "no data"
VERDICTS = (IMPROVES, FLAT, INCONCLUSIVE, FIXED, NO_DATA)
CONCLUSIVE = (IMPROVES, FLAT, FIXED)

SIGN_TEST, T_TEST, ONE_SEED, NO_TEST = "exact sign test", "one-sample t-test", "1-seed floor rule", "none"


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
class DecisionRule:
    """Settings of the rule; the defaults are the documented ones.

    `min_effect=None` takes the metric's declared `rel_tolerance` (the table passes it);
    `test="auto"` picks the sign test from `sign_min_seeds` seeds and the t-test below that,
    "sign" or "t" force one (with "sign", fewer seeds than it needs are inconclusive).
    """

    alpha: float = 0.05
    min_effect: float | None = None
    top: int = 2
    floor_z: float = 2.0
    single_seed_floor_sds: float = 10.0
    test: Literal["auto", "sign", "t"] = "auto"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha={self.alpha} must lie strictly between 0 and 1")
        if self.test not in ("auto", "sign", "t"):
            raise ValueError(f"test={self.test!r}; use 'auto', 'sign' or 't'")

    @property
    def sign_min_seeds(self) -> int:
        """The fewest seeds with which the exact one-sided sign test can reach `alpha` (5 at 0.05)."""
        return max(1, math.ceil(math.log2(1 / self.alpha) + 1e-12))

    def describe(self) -> str:
        return (f"▲ improves: the per-seed improvement (smallest axis value → mean of the {self.top} largest, "
                f"clipped at the data floor band mean ± {self.floor_z:g} sd) exceeds the minimum effect (the "
                f"metric's rel_tolerance, or the floor band's half-width if larger) by a one-sided test at "
                f"α = {self.alpha:g} — exact sign test with ≥ {self.sign_min_seeds} seeds, one-sample t-test with "
                f"2–{self.sign_min_seeds - 1}, no test with 1 seed (then a {self.single_seed_floor_sds:g}-floor-sd "
                f"margin, only when a floor is recorded) — and Spearman ρ > 0. ■ no gain: the same test says it "
                f"is below the minimum effect (flat or worse). ? inconclusive: neither (too few seeds, within the "
                f"noise, or at the data floor). — fixed: one value measured.")


@dataclass(frozen=True)
class AxisEvidence:
    """Why a cell got its verdict: the numbers the rule looked at."""

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
    min_effect: float = math.nan
    test: str = NO_TEST
    p_up: float = math.nan
    p_down: float = math.nan
    rho: float = math.nan
    n_seeds: int = 0
    floor: float = math.nan
    floor_sd: float = math.nan
    at_floor: str = ""

    @property
    def conclusive(self) -> bool:
        return self.verdict in CONCLUSIVE

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


def sign_test(d: Sequence[float]) -> tuple[float, float]:
    """Exact one-sided sign test of median(d) > 0 and < 0: (p_up, p_down); zeros are dropped."""
    d = np.asarray(d, dtype=float)
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    n = pos + neg
    if n == 0:
        return 1.0, 1.0

    def tail(k: int) -> float:  # P(Binom(n, 1/2) >= k)
        return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n

    return tail(pos), tail(neg)


def t_test(d: Sequence[float]) -> tuple[float, float]:
    """One-sample one-sided t-test of mean(d) > 0 and < 0: (p_up, p_down); NaN when sd is 0."""
    from scipy.special import stdtr  # Student-t CDF; half the import time of scipy.stats

    d = np.asarray(d, dtype=float)
    n = len(d)
    sd = float(d.std(ddof=1)) if n >= 2 else 0.0
    if n < 2 or not sd > 1e-12 * max(1.0, float(np.abs(d).max())):
        return math.nan, math.nan
    t = float(d.mean()) / (sd / math.sqrt(n))
    return float(stdtr(n - 1, -t)), float(stdtr(n - 1, t))


def _top_k(n_values: int, top: int) -> int:
    return max(1, min(top, n_values // 2))


def _pct(v: float) -> str:
    return "nan" if not math.isfinite(v) else f"{v:+.0%}"


def judge_axis(values: Sequence[int], q: np.ndarray, better: Literal["lower", "higher"],
               rule: DecisionRule = DecisionRule(), *, min_effect: float | None = None,
               floor: Floor | None = None) -> AxisEvidence:
    """Apply the rule to `q` (seeds × values, NaN = missing) measured at axis `values`.

    `min_effect` is the metric's declared relative tolerance (`METRICS[m].rel_tolerance`);
    `rule.min_effect`, when set, overrides it. `floor` is the metric's data floor, if known.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better={better!r}; use 'lower' or 'higher' (from METRICS[metric].better)")
    m_decl = rule.min_effect if rule.min_effect is not None else min_effect
    if m_decl is None or not math.isfinite(m_decl) or m_decl < 0:
        raise ValueError(f"min_effect={m_decl!r}: pass the metric's declared rel_tolerance (METRICS[m]."
                         "rel_tolerance) or set DecisionRule.min_effect")
    q = np.asarray(q, dtype=float).reshape(-1, len(values))
    order = np.argsort(values)
    vals = np.asarray(values)[order]
    q = q[:, order]
    keep = ~np.all(np.isnan(q), axis=0)
    vals, q = vals[keep], q[:, keep]
    q = q[~np.all(np.isnan(q), axis=1)]
    fl = (floor.mean, floor.sd) if floor is not None else (math.nan, math.nan)
    if len(vals) == 0:
        return AxisEvidence(NO_DATA, "no values for this metric", floor=fl[0], floor_sd=fl[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(q, axis=0)
    if len(vals) < 2:
        v0 = int(vals[0])
        return AxisEvidence(FIXED, f"one value measured ({v0})", (v0,), v0, v0, float(mean[0]), float(mean[0]),
                            n_seeds=len(q), floor=fl[0], floor_sd=fl[1])
    sign = -1.0 if better == "lower" else 1.0
    k = _top_k(len(vals), rule.top)
    edge = sign * floor.mean - rule.floor_z * floor.sd if floor is not None else math.inf  # in goodness units

    # per-seed start and end (seeds lacking either are not usable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        start_s, end_s = q[:, 0], np.nanmean(q[:, -k:], axis=1)
    usable = np.isfinite(start_s) & np.isfinite(end_s)
    start_s, end_s = start_s[usable], end_s[usable]
    n = len(start_s)
    start, end = float(mean[0]), float(np.nanmean(mean[-k:]))
    finite = np.isfinite(mean)
    rho = spearman(vals[finite], sign * mean[finite])
    scale_of = np.vectorize(lambda s, e: abs(s) if abs(s) > 1e-12 else max(abs(e), 1e-12), otypes=[float])

    def clipped_rel(s: np.ndarray | float, e: np.ndarray | float) -> np.ndarray:
        gs, ge = np.minimum(sign * np.asarray(s), edge), np.minimum(sign * np.asarray(e), edge)
        return (ge - gs) / scale_of(s, e)

    rel = float(clipped_rel(start, end))
    m = m_decl
    if floor is not None and floor.sd > 0:
        m = max(m, rule.floor_z * floor.sd / float(scale_of(start, end)))
    start_in, end_in = sign * start >= edge, sign * end >= edge
    at_floor = "both" if start_in and end_in else "start" if start_in else "end" if end_in else ""
    ev = dict(values=tuple(int(v) for v in vals), lo=int(vals[0]), hi=int(vals[-1]), q_lo=start,
              q_hi=float(mean[-1]), end_at=int(vals[-k]), q_end=end, rel=rel, min_effect=m, rho=rho, n_seeds=n,
              floor=fl[0], floor_sd=fl[1], at_floor=at_floor)
    if n == 0:
        return AxisEvidence(NO_DATA, "no seed has both ends of the axis", **ev)

    if at_floor == "both":
        lo_b, hi_b = floor.band(rule.floor_z)  # type: ignore[union-attr]
        return AxisEvidence(INCONCLUSIVE, f"at the data floor: both ends inside the band {lo_b:.3g}–{hi_b:.3g}"
                            f" (improvement {_pct(rel)} counted outside it)", **ev)
    d = clipped_rel(start_s, end_s) - m
    test, p_up, p_down = NO_TEST, math.nan, math.nan
    if n >= 2 and rule.test != "t" and (rule.test == "sign" or n >= rule.sign_min_seeds):
        test, (p_up, p_down) = f"{SIGN_TEST} ({n} seeds)", sign_test(d)
    elif n >= 2 and rule.test != "sign":
        p_up, p_down = t_test(d)
        if math.isfinite(p_up):
            test = f"{T_TEST} ({n} seeds, df={n - 1})"
    single = not math.isfinite(p_up)  # one seed, or seeds with identical values
    if single and rule.test != "sign" and floor is not None and floor.sd > 0:
        margin = rule.single_seed_floor_sds * floor.sd / float(scale_of(start, end))
        test = f"{ONE_SEED} (±{rule.single_seed_floor_sds:g} floor sd; no test)"
        gap = rel - m
        p_up, p_down = (0.0 if gap > margin else 1.0), (0.0 if gap < -margin else 1.0)
    ev.update(test=test, p_up=p_up, p_down=p_down)

    alpha = rule.alpha
    effect = f"improvement {_pct(rel)} (min {m:.0%})"
    p_txt = f"{test}: p={p_up:.2g}" if math.isfinite(p_up) and not test.startswith(ONE_SEED) else test
    if p_up < alpha and rel >= m and rho > 0:
        return AxisEvidence(IMPROVES, f"{effect}, {p_txt}, ρ={rho:+.2f}", **ev)
    if p_down < alpha and not end_in:
        p_down_txt = f"{test}: p={p_down:.2g}" if not test.startswith(ONE_SEED) else test
        return AxisEvidence(FLAT, f"{effect} is significantly below the minimum ({p_down_txt})", **ev)
    # inconclusive: say why
    if p_up < alpha and rel >= m:
        why = f"{effect} but no monotone trend (ρ={rho:+.2f} ≤ 0)"
    elif end_in:
        why = f"reaches the data floor; the gain outside the band is {_pct(rel)} (min {m:.0%})"
    elif test.startswith(SIGN_TEST) and n < rule.sign_min_seeds:
        why = f"{effect}; {n} seeds: the exact sign test needs ≥ {rule.sign_min_seeds} to reach α={alpha:g}"
    elif test == NO_TEST:
        if n >= 2:
            why = f"{n} seeds with identical values and no floor with a spread: no noise estimate"
        else:
            why = "1 seed and no floor with a spread: nothing to test against"
        why = f"{effect}; {why}"
    else:
        side, p = ("improves", p_up) if rel >= m else ("no gain", p_down)
        why = (f"{effect} within the noise ({test}: p={p:.2g} ≥ α={alpha:g} for {side})"
               if not test.startswith(ONE_SEED) else f"{effect} within ±{rule.single_seed_floor_sds:g} floor sd (1 seed)")
    return AxisEvidence(INCONCLUSIVE, why, **ev)
