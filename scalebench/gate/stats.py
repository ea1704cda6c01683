"""The gate's statistics: the latency test of one point, its attainable p, and the correction across points.

With ≥ MIN_ROUNDS paired rounds (round i of A and B ran back to back) a one-sided paired
t-test on the per-round log ratios: the rounds are the independent units, because the raw
samples of one round share that moment's load. With fewer rounds a one-sided Mann-Whitney U
on the pooled raw samples, whose exact test cannot go below 1/C(n₁+n₂, n₁). Either way a
point's test must be able to reach α after the correction, or the gate says it cannot
detect a slowdown (`attainable`) instead of passing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scalebench import multiplicity
from scalebench.gate.thresholds import CompareError
from scalebench.multiplicity import CORRECTIONS

MIN_ROUNDS = 3  # paired rounds from which the paired t-test applies (df ≥ 2); fewer: Mann-Whitney on raw samples
CORRECTION_NAMES = {"holm": "Holm–Bonferroni", "bh": "Benjamini–Hochberg", "none": "no correction"}


def finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def min_p_value(n1: int, n2: int) -> float:
    """The smallest one-sided p-value an exact Mann-Whitney U test can reach with n1, n2 samples."""
    return 1.0 / math.comb(n1 + n2, n1) if n1 and n2 else 1.0


def ratio_of(base: float, cand: float) -> float:
    if base == cand:
        return 1.0
    if base == 0 or not math.isfinite(base):
        return math.inf if cand > 0 else -math.inf if cand < 0 else math.nan
    return cand / base


def paired_t(logs: Sequence[float]) -> tuple[float, float, tuple[float, float]]:
    """One-sided paired t-test on per-round log ratios (df = rounds − 1): (p slower, p faster,
    95 % interval of the ratio). Round i of A and B ran back to back, so each log ratio carries
    that moment's load on both sides and the rounds are the independent units."""
    from scipy.stats import t as student

    n = len(logs)
    mean = statistics.fmean(logs)
    sd = statistics.stdev(logs) if n > 1 else math.nan
    if not sd > 0:  # identical log ratios: no spread to test against
        p_slow = 0.0 if mean > 0 else 1.0
        p_fast = 0.0 if mean < 0 else 1.0
        return p_slow, p_fast, (math.exp(mean), math.exp(mean))
    se = sd / math.sqrt(n)
    tstat = mean / se
    half = float(student.ppf(0.975, n - 1)) * se
    return (float(student.sf(tstat, n - 1)), float(student.cdf(tstat, n - 1)),
            (math.exp(mean - half), math.exp(mean + half)))


@dataclass(frozen=True)
class LatencyTest:
    """The latency evidence of one point before the decision: ratio, one-sided p-values, the test.

    `p_slow`/`p_fast` are None when there is nothing to test (`note` says why); `p_min` is the
    smallest one-sided p the test could give with this data (0 for the t-test), which decides
    whether a slowdown is detectable at all after the correction across points.
    """

    ratio: float
    p_slow: float | None
    p_fast: float | None
    test: str
    note: str = ""
    p_min: float = 1.0
    ci: tuple[float, float] | None = None  # 95 % interval of the ratio (paired t only)
    rounds: int = 0
    samples: tuple[int, int] = (0, 0)

    @property
    def tested(self) -> bool:
        return self.p_slow is not None and self.p_fast is not None


def latency_test(base: Sequence[float], cand: Sequence[float], base_value: float | None = None,
                 cand_value: float | None = None, base_rounds: Sequence[float] = (),
                 cand_rounds: Sequence[float] = ()) -> LatencyTest:
    """Ratio and one-sided p-values (slower, faster) of the candidate's latency against the baseline's.

    With ≥ MIN_ROUNDS paired rounds (`base_rounds`/`cand_rounds`: one latency per run, round i
    of A and B ran back to back) the test is a one-sided paired t-test on the per-round log
    ratios and the ratio is exp(mean log ratio): the rounds, not the raw samples, are the
    independent units (samples of one round share that moment's load). With fewer rounds the
    test is a one-sided Mann-Whitney U on the pooled raw per-sample timings `base`/`cand`
    (asv's rule), whose smallest p is 1/C(n₁+n₂, n₁) (`p_min`).
    """
    b_med = statistics.median(base) if base else base_value
    c_med = statistics.median(cand) if cand else cand_value
    if b_med is None or c_med is None or not (finite(b_med) and finite(c_med)):
        return LatencyTest(math.nan, None, None, "none", "no latency on one side")
    ratio = ratio_of(b_med, c_med)
    n_rounds = len(base_rounds) if len(base_rounds) == len(cand_rounds) else 0
    paired = n_rounds >= MIN_ROUNDS and all(finite(x) and x > 0 for x in (*base_rounds, *cand_rounds))
    if paired:
        logs = [math.log(c / b) for b, c in zip(base_rounds, cand_rounds, strict=True)]
        p_slow, p_fast, ci = paired_t(logs)
        return LatencyTest(math.exp(statistics.fmean(logs)), p_slow, p_fast,
                           f"paired t over {n_rounds} rounds (df={n_rounds - 1})", p_min=0.0, ci=ci,
                           rounds=n_rounds, samples=(len(base), len(cand)))
    if not (base and cand):
        return LatencyTest(ratio, None, None, "none", "no raw timing samples on "
                           + ("either side" if not (base or cand) else "one side")
                           + f" and {n_rounds or min(len(base_rounds), len(cand_rounds))} paired round(s)",
                           rounds=n_rounds)
    from scipy.stats import mannwhitneyu

    p_slow = float(mannwhitneyu(cand, base, alternative="greater").pvalue)
    p_fast = float(mannwhitneyu(cand, base, alternative="less").pvalue)
    return LatencyTest(ratio, p_slow, p_fast, f"Mann-Whitney n={len(base)}/{len(cand)}",
                       p_min=min_p_value(len(base), len(cand)), rounds=n_rounds, samples=(len(base), len(cand)))


DEFAULT_CORRECTION = "holm"


def adjust_p_values(ps: Sequence[float], method: str = DEFAULT_CORRECTION) -> list[float]:
    """`scalebench.multiplicity.adjust_p_values`, with an unknown `--correction` as a CompareError."""
    if method not in CORRECTIONS:
        raise CompareError(f"--correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    return multiplicity.adjust_p_values(ps, method)


def attainable(t: LatencyTest, family: int, correction: str, alpha: float) -> str:
    """'' when a slowdown at this point alone could reach a corrected p < alpha, else why not.

    The best case is this point holding the smallest p of its family at the test's floor
    `p_min`; Holm and Benjamini–Hochberg then multiply it by the family size.
    """
    if not t.tested:
        return t.note or "nothing to test"
    best = t.p_min * (family if correction != "none" else 1)
    if best < alpha:
        return ""
    over = (f" × {family} points ({CORRECTION_NAMES[correction]}) = {min(best, 1):.2g}"
            if correction != "none" and family > 1 else "")
    return f"cannot detect a slowdown: {t.test}'s smallest p is {t.p_min:.2g}{over}, not below α = {alpha:g}"


