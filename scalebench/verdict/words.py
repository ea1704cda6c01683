"""The words of a verdict: marks, the effect with its interval, the reason, the rule's description.

Marks are geometric shapes from the WGL4 set (▲ ▼ ■ ● ? — ·), present in every common font,
never emoji: every rendering (terminal, Markdown, CSV words, HTML) shows the same cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from scalebench.verdict.decide import (
    AT_FLOOR,
    FIXED,
    FLAT,
    IMPROVES,
    INCONCLUSIVE,
    NO_DATA,
    WORSE,
    DecisionRule,
)
from scalebench.verdict.stats import LEVEL, AxisEffect

MARKS = {IMPROVES: "▲", WORSE: "▼", FLAT: "■", AT_FLOOR: "●", INCONCLUSIVE: "?", FIXED: "—", NO_DATA: "·"}
LABELS = {v: f"{m} {v}" for v, m in MARKS.items()}
MEANINGS = {
    IMPROVES: "better by more than the metric's minimum effect (the interval clears it)",
    WORSE: "worse by more than the minimum effect",
    AT_FLOOR: "quality already indistinguishable from held-out data (within the floor's margin)",
    FLAT: "the change is shown to be smaller than the minimum effect",
    INCONCLUSIVE: "cannot tell: one replicate, or an interval that spans the decision",
    FIXED: "the axis is fixed for this method",
    NO_DATA: "no finite value of the metric",
}
TEST_WORDS = {"direction": "direction", "equiv": "equivalence", "floor": "floor equivalence"}
CORRECTION_NAMES = {"bh": "Benjamini–Hochberg", "holm": "Holm", "none": "no correction"}


def pct(v: float) -> str:
    """−0.834 → '−83 %' (a typographic minus; '+' for gains)."""
    if not math.isfinite(v):
        return "n/a"
    s = f"{v * 100:+.0f}" if abs(v) >= 0.01 or v == 0 else f"{v * 100:+.1f}"
    return s.replace("-", "−") + " %"


def effect_text(metric: str, e: AxisEffect) -> str:
    """'FID −83 % [−86, −79]': the relative change start → end and its 95 % interval."""
    if not math.isfinite(e.effect):
        return ""
    name = metric.upper() if metric in ("fid", "kid") else metric
    text = f"{name} {pct(e.effect)}"
    if math.isfinite(e.effect_lo):
        lo, hi = pct(e.effect_lo).removesuffix(" %"), pct(e.effect_hi).removesuffix(" %")
        text += f" [{lo}, {hi}]"
    return text


def reason(metric: str, e: AxisEffect, verdict: str, test: str, p_adj: float, rule: DecisionRule) -> str:
    """One short line: the effect and interval, then why this verdict."""
    if verdict == FIXED:
        return f"one value measured ({e.lo})" if e.values else "fixed by the method card"
    if verdict == NO_DATA:
        return "no replicate has both ends of the axis" if e.values else "no values for this metric"
    eff = effect_text(metric, e)
    reps = f"{e.n} replicate{'s' if e.n != 1 else ''}"
    if not e.tested:
        why = ("1 replicate: no interval, never conclusive" if e.n == 1
               else f"{reps} with identical values: no noise estimate")
        return f"{eff}; {why}"
    p = f"p_adj={p_adj:.2g}"
    if verdict in (IMPROVES, WORSE):
        why = f"beyond ±{pct(e.min_effect).lstrip('+')} ({p})"
    elif verdict == AT_FLOOR:
        why = f"end within {e.floor_margin:.3g} of the floor {e.floor:.3g} ({p})"
    elif verdict == FLAT:
        why = f"within ±{pct(e.min_effect).lstrip('+')} ({p})"
    else:
        why = f"undecided at α={rule.alpha:g} (best: {TEST_WORDS.get(test, test)} {p})"
    return f"{eff}, {reps}; {why}"


def replicate_words(checkpoints: int | Mapping[str, int]) -> str:
    """What the table's replicates are: `checkpoints` is one count for every row, or row name → count."""
    counts = dict(checkpoints) if isinstance(checkpoints, Mapping) else {"": checkpoints}
    by_count: dict[int, list[str]] = {}
    for name, k in sorted(counts.items()):
        by_count.setdefault(max(int(k), 1), []).append(name)

    def words(k: int) -> str:
        if k == 1:
            return "sampling seeds of one checkpoint (no training variance)"
        return f"(checkpoint, sampling seed) pairs over {k} trained checkpoints"

    if len(by_count) <= 1:
        return f"replicates are {words(next(iter(by_count), 1))}"
    common = max(by_count, key=lambda k: (len(by_count[k]), -k))  # the rows' usual kind, then the exceptions
    rest = "; ".join(f"{words(k)} for {', '.join(by_count[k])}" for k in sorted(by_count) if k != common)
    return f"replicates are {words(common)}, except {rest}"


def header(rule: DecisionRule, hypotheses: int, n_checkpoints: int | Mapping[str, int] = 1) -> str:
    """The line above every rendering of the table: the error control and what a replicate is."""
    if rule.correction == "none" or hypotheses <= 1:
        control = f"α = {rule.alpha:g} per test, {hypotheses} tests, no correction"
    else:
        rate = "false discovery rate" if rule.correction == "bh" else "family-wise error"
        control = f"{CORRECTION_NAMES[rule.correction]} over the table's {hypotheses} tests ({rate} ≤ {rule.alpha:g})"
    return f"Verdicts: {control}; intervals are {LEVEL:.0%} t-intervals (unadjusted); {replicate_words(n_checkpoints)}."


def describe(rule: DecisionRule) -> str:
    """The rule in one paragraph (printed under `scalebench table`)."""
    return (f"Per replicate, the effect is the log ratio of the metric from the smallest axis value to the mean of "
            f"the {rule.top} largest (unclipped), with a {LEVEL:.0%} t-interval over replicates. "
            f"▲ improves / ▼ worse: the change exceeds the metric's minimum effect (rel_tolerance) in a two-sided "
            f"test. ● at floor: the end is within max({rule.floor_z:g} floor sd, minimum effect) of the data "
            f"floor (one-sided equivalence). ■ no gain: the change is within ± the minimum effect (TOST). "
            f"? inconclusive: none of these, or one replicate. All tests of one table are adjusted together "
            f"({CORRECTION_NAMES[rule.correction]}, α = {rule.alpha:g}). — fixed: one value measured.")
