"""Decisions of one matched point: latency (ratio beyond the threshold and significant) and the
quality metrics and deterministic costs (worse in their declared direction beyond `rel_tolerance`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scalebench.gate.stats import LatencyTest, attainable, finite, latency_test, ratio_of
from scalebench.gate.thresholds import DEFAULT_THRESHOLD, pct

DEFAULT_ALPHA = 0.05
Verdict = Literal["regression", "improvement", "ok", "failed", "info", "insufficient"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    ratio: float
    p_value: float | None = None  # the p-value the decision used (adjusted for multiplicity in compare_runs)
    test: str = ""
    note: str = ""
    p_raw: float | None = None  # before the correction across points


def decide_latency(t: LatencyTest, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
                   p_slow: float | None = None, p_fast: float | None = None, adjusted: str = "",
                   reach: str = "") -> Decision:
    """Regression iff ratio > 1 + threshold and the slower-p (adjusted, if given) < alpha; the mirror
    for improvements; "insufficient" when the point cannot be tested or its test cannot reach α
    (`reach`, from `attainable`)."""
    if not math.isfinite(t.ratio) and not t.tested:
        return Decision("info", t.ratio, test=t.test, note=t.note)
    if not t.tested or reach:
        return Decision("insufficient", t.ratio, None, t.test, reach or t.note)
    ps = t.p_slow if p_slow is None else p_slow
    pf = t.p_fast if p_fast is None else p_fast
    assert ps is not None and pf is not None
    ratio = t.ratio
    test = t.test + (f", {adjusted}" if adjusted else "")
    slower, faster = ratio > 1 + threshold, ratio < 1 / (1 + threshold)
    p, raw = (ps, t.p_slow) if ratio >= 1 else (pf, t.p_fast)
    sig_slow, sig_fast = ps < alpha, pf < alpha
    after = f" after the correction (raw p={raw:.2g})" if adjusted and raw is not None and raw < alpha else ""
    if slower:
        if sig_slow:
            return Decision("regression", ratio, p, test, p_raw=raw)
        return Decision("ok", ratio, p, test, f"slower by {ratio - 1:.1%} but not significant{after}", raw)
    if faster:
        if sig_fast:
            return Decision("improvement", ratio, p, test, p_raw=raw)
        return Decision("ok", ratio, p, test, f"faster by {1 - ratio:.1%} but not significant{after}", raw)
    note = f"significant but within ±{pct(threshold)}" if (sig_slow and ratio > 1) or (sig_fast and ratio < 1) else ""
    return Decision("ok", ratio, p, test, note, raw)


def latency_decision(base: Sequence[float], cand: Sequence[float], threshold: float = DEFAULT_THRESHOLD,
                     alpha: float = DEFAULT_ALPHA, base_value: float | None = None, cand_value: float | None = None,
                     base_runs: Sequence[float] = (), cand_runs: Sequence[float] = ()) -> Decision:
    """One point on its own (no correction across points): `latency_test` then `decide_latency`."""
    t = latency_test(base, cand, base_value, cand_value, base_runs, cand_runs)
    return decide_latency(t, threshold, alpha, reach=attainable(t, 1, "none", alpha))


def metric_decision(metric: str, base: float, cand: float, tolerance: float | None = None) -> Decision:
    """Quality or deterministic cost: worse in the declared direction by more than rel_tolerance."""
    from scalebench.metrics import METRICS

    spec = METRICS.get(metric)
    better = spec.better if spec else "lower"
    tol = tolerance if tolerance is not None else (spec.rel_tolerance if spec else 0.05)
    if not (finite(base) and finite(cand)):
        return Decision("info", math.nan, test="none", note="not finite on one side")
    ratio = ratio_of(base, cand)
    if base == cand:
        return Decision("ok", 1.0, test=f"±{pct(tol)}")
    rel = (cand - base) / abs(base) if base != 0 else math.copysign(math.inf, cand - base)
    worse = rel > tol if better == "lower" else rel < -tol
    improved = rel < -tol if better == "lower" else rel > tol
    verdict: Verdict = "regression" if worse else "improvement" if improved else "ok"
    return Decision(verdict, ratio, None, f"±{pct(tol)} ({better} is better)")
