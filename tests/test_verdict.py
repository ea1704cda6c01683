"""The verdict rule alone: the statistic (effect, interval, p-values), the decision, the words."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalebench.verdict.decide import (
    AT_FLOOR,
    FIXED,
    FLAT,
    IMPROVES,
    INCONCLUSIVE,
    NO_DATA,
    WORSE,
    DecisionRule,
    adjust_p_values,
    decide,
    decide_all,
    raw_tests,
)
from scalebench.verdict.stats import Floor, axis_effect, spearman
from scalebench.verdict.words import describe, effect_text, header, pct, reason

K = [1, 2, 5, 10, 20, 50]


def reps(curve: list[float], n: int = 3, log_sd: float = 0.0, seed: int = 0) -> np.ndarray:
    """n replicates of a curve with multiplicative noise."""
    rng = np.random.default_rng(seed)
    return np.asarray(curve)[None, :] * np.exp(rng.normal(0, log_sd, size=(n, len(curve))))


def verdict(q, better="lower", m=0.10, floor=None, values=K, rule=DecisionRule()):
    e = axis_effect(values, q, better, m, floor, top=rule.top, floor_z=rule.floor_z)
    return decide(e, rule)[0], e


def test_the_effect_is_the_unclipped_log_ratio_with_a_t_interval():
    q = np.array([[80, 60, 40, 25, 15, 10], [84, 61, 41, 26, 15.5, 9.5], [78, 59, 39, 24, 14.5, 10.5]])
    e = axis_effect(K, q, "lower", 0.10)
    logs = np.log(q[:, -2:].mean(axis=1) / q[:, 0])
    assert e.scale == "log" and e.n == 3 and (e.lo, e.hi, e.end_at) == (1, 50, 20)
    assert e.effect == pytest.approx(math.expm1(logs.mean()))
    from scipy import stats

    lo, hi = stats.t.interval(0.95, 2, loc=logs.mean(), scale=stats.sem(logs))
    assert (e.effect_lo, e.effect_hi) == (pytest.approx(math.expm1(lo)), pytest.approx(math.expm1(hi)))
    g = -logs  # gain: lower is better
    assert e.p_up == pytest.approx(stats.ttest_1samp(g, math.log1p(0.10), alternative="greater").pvalue)
    assert e.p_down == pytest.approx(stats.ttest_1samp(g, -math.log1p(0.10), alternative="less").pvalue)
    assert decide(e, DecisionRule())[0] == IMPROVES


def test_a_curve_that_gets_worse_is_worse_not_no_gain():
    v, e = verdict(reps([10, 12, 15, 20, 30, 40], log_sd=0.02))
    assert v == WORSE and e.effect > 2
    v, _ = verdict(reps([0.2, 0.4, 0.6, 0.75, 0.85, 0.9], log_sd=0.01), better="lower")
    assert v == WORSE
    v, _ = verdict(reps([0.2, 0.4, 0.6, 0.75, 0.85, 0.9], log_sd=0.01), better="higher")
    assert v == IMPROVES


def test_flat_is_no_gain_by_equivalence_and_a_noisy_flat_curve_is_inconclusive():
    v, e = verdict(reps([30.0] * 6, n=5, log_sd=0.01))
    assert v == FLAT and e.p_equiv < 0.05
    v, e = verdict(reps([30.0] * 6, n=3, log_sd=0.15, seed=3))
    assert v == INCONCLUSIVE and e.p_equiv > 0.05


def test_one_replicate_is_never_conclusive_however_large():
    v, e = verdict(np.asarray([[800, 60, 40, 25, 15, 1]]), floor=Floor(0.87, 0.05))
    assert v == INCONCLUSIVE and not e.tested and math.isnan(e.effect_lo)
    assert "1 replicate" in reason("fid", e, v, "", math.nan, DecisionRule())


def test_identical_replicates_give_no_test():
    q = np.array([[80, 60, 40, 25, 15, 10]] * 3, dtype=float)
    v, e = verdict(q)
    assert v == INCONCLUSIVE and "identical" in reason("fid", e, v, "", math.nan, DecisionRule())


def test_a_curve_ending_at_the_data_floor_without_a_significant_gain_is_at_floor():
    floor = Floor(1.0, 0.1)  # margin max(2·0.1, 10 % of 1.0) = 0.2
    v, e = verdict(reps([1.05, 1.1, 1.0, 1.05, 1.0, 1.02], n=4, log_sd=0.01), floor=floor)
    assert v == AT_FLOOR and e.p_floor < 0.05 and e.floor_margin == pytest.approx(0.2)


def test_a_gain_that_starts_inside_the_floor_margin_is_not_credited():
    floor = Floor(0.87, 0.05)  # 0.95 → 0.6: "better than real data" is no gain
    v, e = verdict(reps([0.95, 0.8, 0.7, 0.65, 0.62, 0.6], n=4, log_sd=0.005), floor=floor)
    assert e.start_at_floor and e.p_up < 1e-3 and v == AT_FLOOR
    v, _ = verdict(reps([0.95, 0.8, 0.7, 0.65, 0.62, 0.6], n=4, log_sd=0.005))
    assert v == IMPROVES  # without the floor it would be a 35 % "win"


def test_a_large_gain_down_to_the_floor_improves():
    v, e = verdict(reps([130, 40, 8, 2, 1.0, 0.9], log_sd=0.03), floor=Floor(0.87, 0.05))
    assert v == IMPROVES and not e.start_at_floor


def test_minimum_effect_is_the_callers():
    q = reps([30, 29, 28, 27, 26.5, 26], n=4, log_sd=0.003)  # −12.5 %
    assert verdict(q, m=0.10)[0] == IMPROVES
    assert verdict(q, m=0.20)[0] == FLAT  # kid's declared tolerance
    with pytest.raises(ValueError, match="rel_tolerance"):
        axis_effect(K, q, "lower", math.nan)
    with pytest.raises(ValueError, match="better"):
        axis_effect(K, q, "up", 0.1)


def test_metrics_with_non_positive_values_use_the_relative_change():
    q = np.array([[0.01, 0.005, -0.001, 0.0], [0.011, 0.004, 0.0, -0.0005], [0.012, 0.006, 0.001, 0.0]])
    e = axis_effect([1, 2, 4, 8], q, "lower", 0.2)
    assert e.scale == "relative" and e.effect < -0.9


def test_fixed_and_no_data():
    e = axis_effect([1], np.array([[40.0], [41.0]]), "lower", 0.1)
    assert decide(e, DecisionRule())[0] == FIXED
    e = axis_effect([4, 64], np.array([[50.0, np.nan], [np.nan, 11.0]]), "lower", 0.1)
    assert e.n == 0 and decide(e, DecisionRule())[0] == NO_DATA


def test_missing_points_drop_only_the_replicates_that_lack_an_end():
    q = np.array([[50.0, 10.0], [np.nan, 11.0], [52.0, np.nan], [51.0, 10.5], [49.0, 10.2]])
    e = axis_effect([4, 64], q, "lower", 0.1)
    assert e.values == (4, 64) and e.n == 3 and decide(e, DecisionRule())[0] == IMPROVES


def test_adjustment_controls_the_family():
    assert adjust_p_values([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert adjust_p_values([0.01, 0.04, 0.03], "bh") == pytest.approx([0.03, 0.04, 0.04])
    assert adjust_p_values([0.01, 0.04], "none") == [0.01, 0.04]
    with pytest.raises(ValueError, match="correction"):
        adjust_p_values([0.1], "bonferroni")


def test_decide_all_adjusts_every_cell_together():
    """A cell significant on its own loses it among many null cells; the family size is reported."""
    strong = axis_effect(K, reps([80, 60, 40, 25, 15, 10], n=3, log_sd=0.02), "lower", 0.1)
    borderline = axis_effect(K, reps([30, 29, 28, 27, 25, 24.5], n=3, log_sd=0.04, seed=5), "lower", 0.1)
    nulls = [axis_effect(K, reps([30.0] * 6, n=3, log_sd=0.1, seed=s), "lower", 0.1) for s in range(20)]
    alone = decide(borderline, DecisionRule())
    decided, hypotheses = decide_all([strong, borderline, *nulls], DecisionRule(correction="holm"))
    assert hypotheses == sum(len(raw_tests(e)) for e in [strong, borderline, *nulls])
    assert decided[0][0] == IMPROVES and decided[0][2] >= strong.p_up
    assert decided[1][2] >= alone[2]


def test_words():
    assert pct(-0.834) == "−83 %" and pct(0.5) == "+50 %"
    e = axis_effect(K, reps([80, 60, 40, 25, 15, 10], n=3, log_sd=0.02), "lower", 0.1)
    assert effect_text("fid", e).startswith("FID −") and "[" in effect_text("fid", e)
    h = header(DecisionRule(), 12, 1)
    assert "Benjamini–Hochberg" in h and "12 tests" in h and "sampling seeds of one checkpoint" in h
    assert "3 trained checkpoints" in header(DecisionRule(correction="holm"), 12, 3)
    # a table mixing rows of one checkpoint and rows of three says which is which
    mixed = header(DecisionRule(), 12, {"gpt": 1, "vae": 1, "diffusion/ddim": 3})
    assert "sampling seeds of one checkpoint (no training variance), except (checkpoint, sampling seed) pairs " \
           "over 3 trained checkpoints for diffusion/ddim." in mixed
    assert header(DecisionRule(), 12, {"a": 3, "b": 3}) == header(DecisionRule(), 12, 3)
    assert "TOST" in describe(DecisionRule())


def test_spearman_matches_definition():
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert spearman([1, 2, 3], [5, 5, 5]) == 0.0
