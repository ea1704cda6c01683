"""The decision: adjusted p-values of one cell's tests → its verdict.

Each tested cell contributes up to three hypotheses to the table's family: the direction
(two-sided, p = 2·min(p_up, p_down): ▲ or ▼ by the sign of the gain), no gain (TOST) and, with
a data floor, at the floor. The family's p-values are adjusted together (Benjamini–Hochberg by
default, false discovery rate ≤ α; Holm for the family-wise error ≤ α; or none), then, in order:

▲ improves (direction significant, gain > 0, and the start not already within the floor's margin:
"better than held-out data" is not a gain) · ▼ worse (direction significant, gain < 0) ·
● at the data floor (the end is within the floor's margin) · ■ no gain (equivalent to a change
smaller than the minimum effect) · ? inconclusive (none of them; always with one replicate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from scalebench.multiplicity import CORRECTIONS, adjust_p_values
from scalebench.verdict.stats import AxisEffect

IMPROVES, WORSE, FLAT, AT_FLOOR = "improves", "worse", "no gain", "at floor"
INCONCLUSIVE, FIXED, NO_DATA = "inconclusive", "fixed", "no data"
VERDICTS = (IMPROVES, WORSE, FLAT, AT_FLOOR, INCONCLUSIVE, FIXED, NO_DATA)
CONCLUSIVE = (IMPROVES, WORSE, FLAT, AT_FLOOR, FIXED)
TESTS = ("direction", "equiv", "floor")


@dataclass(frozen=True)
class DecisionRule:
    """Settings of the rule; the defaults are the documented ones.

    `min_effect=None` takes the metric's declared `rel_tolerance` (the table passes it).
    """

    alpha: float = 0.05
    min_effect: float | None = None
    top: int = 2
    floor_z: float = 2.0
    correction: Literal["bh", "holm", "none"] = "bh"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha={self.alpha} must lie strictly between 0 and 1")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction={self.correction!r}; use one of {', '.join(CORRECTIONS)}")


def raw_tests(effect: AxisEffect) -> dict[str, float]:
    """The hypotheses this cell adds to the family (raw p-values); empty when untested."""
    if not effect.tested:
        return {}
    out = {"direction": min(1.0, 2 * min(effect.p_up, effect.p_down)), "equiv": effect.p_equiv}
    if math.isfinite(effect.p_floor):
        out["floor"] = effect.p_floor
    return out


def decide(effect: AxisEffect, rule: DecisionRule, adjusted: Mapping[str, float] | None = None
           ) -> tuple[str, str, float]:
    """(verdict, the test that decided it or "", its adjusted p). `adjusted` defaults to the raw p's."""
    if not effect.values:
        return NO_DATA, "", math.nan
    if len(effect.values) < 2:
        return FIXED, "", math.nan
    if effect.n == 0:
        return NO_DATA, "", math.nan
    ps = dict(raw_tests(effect) if adjusted is None else adjusted)
    if not ps:
        return INCONCLUSIVE, "", math.nan
    a = rule.alpha
    if ps.get("direction", 1.0) < a and not (effect.gain > 0 and effect.start_at_floor):
        return (IMPROVES if effect.gain > 0 else WORSE), "direction", ps["direction"]
    if ps.get("floor", 1.0) < a:
        return AT_FLOOR, "floor", ps["floor"]
    if ps.get("equiv", 1.0) < a:
        return FLAT, "equiv", ps["equiv"]
    best = min(ps, key=lambda k: ps[k])
    return INCONCLUSIVE, best, ps[best]


def decide_all(effects: Sequence[AxisEffect], rule: DecisionRule) -> tuple[list[tuple[str, str, float]], int]:
    """Verdicts of many cells judged as one family: ([(verdict, test, p_adj)], number of hypotheses)."""
    raw = [raw_tests(e) for e in effects]
    flat = [(i, k, p) for i, r in enumerate(raw) for k, p in r.items()]
    adj = adjust_p_values([p for _, _, p in flat], rule.correction)
    per: list[dict[str, float]] = [{} for _ in effects]
    for (i, k, _), p in zip(flat, adj, strict=True):
        per[i][k] = p
    return [decide(e, rule, per[i]) for i, e in enumerate(effects)], len(flat)
