"""The 2-axis table's decision rule, its renderings, the charts and the report files (fast, no browser)."""

from __future__ import annotations

import html
import math
import re

import numpy as np
import pandas as pd
import pytest

from scalebench.api import Axis, MethodCard
from scalebench.report import charts
from scalebench.report.table import primary_metric, scalability_table
from scalebench.report.tablefmt import markdown_table, render_terminal_table, table_display
from scalebench.report.trend import (
    FIXED,
    FLAT,
    IMPROVES,
    INCONCLUSIVE,
    ONE_SEED,
    SIGN_TEST,
    T_TEST,
    DecisionRule,
    Floor,
    judge_axis,
    sign_test,
    spearman,
    t_test,
)
from scalebench.results import load_results
from tests.report_fixtures import EMOJI, EXPECTED, FLOOR, XSS, curve_records, make_record, synthetic_zoo, write_run

K = [1, 2, 5, 10, 20, 50]
RNG = np.random.default_rng(7)


def seeds_matrix(curve: list[float], n_seeds: int = 3, sd: float = 0.0, rng=RNG) -> np.ndarray:
    return np.asarray(curve)[None, :] + rng.normal(0, sd, size=(n_seeds, len(curve)))


# --- the rule on constructed curves ------------------------------------------------------

def judge(values, q, better="lower", rule=DecisionRule(), min_effect=0.10, floor=None):
    return judge_axis(values, q, better, rule, min_effect=min_effect, floor=floor)


def test_clearly_improving_curve_improves_by_t_test_with_few_seeds():
    q = seeds_matrix([80, 60, 40, 25, 15, 10], sd=1.0)
    ev = judge(K, q)
    assert ev.verdict == IMPROVES, ev.reason
    assert ev.rel > 0.8 and ev.rho > 0.9 and ev.n_seeds == 3 and ev.p_up < 1e-3
    assert ev.test.startswith(T_TEST) and "df=2" in ev.test and ev.test in ev.reason
    assert (ev.lo, ev.hi, ev.end_at) == (1, 50, 20) and ev.conclusive


def test_five_or_more_seeds_use_the_exact_sign_test():
    q = seeds_matrix([80, 60, 40, 25, 15, 10], n_seeds=6, sd=1.0)
    ev = judge(K, q)
    assert ev.verdict == IMPROVES and ev.test == f"{SIGN_TEST} (6 seeds)"
    assert ev.p_up == pytest.approx(1 / 64)  # every seed above the minimum effect
    assert DecisionRule().sign_min_seeds == 5 and DecisionRule(alpha=0.01).sign_min_seeds == 7


def test_sign_test_and_t_test_p_values():
    assert sign_test([0.2, 0.3, 0.1, 0.4, 0.2]) == (pytest.approx(1 / 32), pytest.approx(1.0))
    assert sign_test([0.2, -0.3, 0.1, 0.4, 0.2, 0.0])[0] == pytest.approx(6 / 32)  # 4 of 5 nonzero: (5+1)/32
    from scipy.stats import ttest_1samp

    d = [0.3, 0.1, 0.25]
    up, down = t_test(d)
    assert up == pytest.approx(ttest_1samp(d, 0, alternative="greater").pvalue)
    assert down == pytest.approx(ttest_1samp(d, 0, alternative="less").pvalue)
    assert all(math.isnan(p) for p in t_test([0.2, 0.2]))  # no spread: no test


def test_forcing_the_sign_test_with_four_seeds_is_inconclusive():
    q = seeds_matrix([80, 60, 40, 25, 15, 10], n_seeds=4, sd=1.0)
    assert judge(K, q).verdict == IMPROVES  # auto: t-test
    ev = judge(K, q, rule=DecisionRule(test="sign"))
    assert ev.verdict == INCONCLUSIVE and "needs ≥ 5" in ev.reason and ev.p_up == pytest.approx(1 / 16)


def test_flat_noisy_curve_is_not_improves():
    q = seeds_matrix([30.0] * 6, n_seeds=4, sd=2.0, rng=np.random.default_rng(1))
    ev = judge(K, q)
    assert ev.verdict == FLAT and ev.p_down < 0.05 and "significantly below" in ev.reason
    q = seeds_matrix([30.0] * 6, n_seeds=3, sd=2.0, rng=np.random.default_rng(0))
    ev = judge(K, q)  # same truth, other noise: the test cannot tell, and says so
    assert ev.verdict == INCONCLUSIVE and "within the noise" in ev.reason


def test_small_consistent_gain_below_the_minimum_effect_is_no_gain():
    q = seeds_matrix([30, 29.8, 29.5, 29.3, 29.0, 28.5], sd=0.05)
    ev = judge(K, q)
    assert 0 < ev.rel < 0.10
    assert ev.verdict == FLAT and "(min 10%)" in ev.reason


def test_minimum_effect_comes_from_the_caller_not_a_global_ten_percent():
    q = seeds_matrix([30, 29, 28, 27, 26.5, 26], sd=0.05)  # +12.5 %
    assert judge(K, q, min_effect=0.10).verdict == IMPROVES
    assert judge(K, q, min_effect=0.20).verdict == FLAT  # kid's declared tolerance is 20 %
    assert judge(K, q, min_effect=0.20, rule=DecisionRule(min_effect=0.05)).verdict == IMPROVES  # override
    with pytest.raises(ValueError, match="rel_tolerance"):
        judge_axis(K, q, "lower")


def test_two_seeds_with_a_modest_effect_are_inconclusive():
    q = seeds_matrix([36, 33, 31, 30, 30, 30], n_seeds=2, sd=2.5, rng=np.random.default_rng(1))
    ev = judge(K, q)
    assert ev.verdict == INCONCLUSIVE and not ev.conclusive
    assert "2 seeds, df=1" in ev.reason and "within the noise" in ev.reason


def test_single_value_is_fixed():
    ev = judge([1], np.array([[40.0], [41.0]]))
    assert ev.verdict == FIXED and "one value" in ev.reason and ev.conclusive


def test_improves_then_saturates_improves():
    curve = [60, 30, 12, 10, 10.3, 9.9]  # last point wobbles above the best
    ev = judge(K, seeds_matrix(curve, sd=0.4))
    assert ev.verdict == IMPROVES, ev.reason
    assert ev.q_end == pytest.approx(np.mean(seeds_matrix(curve, sd=0.0)[:, -2:]), abs=0.5)


def test_getting_worse_is_no_gain():
    ev = judge(K, seeds_matrix([10, 12, 15, 20, 30, 40], sd=0.5))
    assert ev.verdict == FLAT and ev.rel < 0


def test_direction_comes_from_better():
    rising = seeds_matrix([0.2, 0.4, 0.6, 0.75, 0.85, 0.9], sd=0.01)
    assert judge(K, rising, "higher").verdict == IMPROVES
    assert judge(K, rising, "lower").verdict == FLAT
    with pytest.raises(ValueError, match="better"):
        judge(K, rising, "up")


def test_one_seed_without_a_floor_is_inconclusive_however_large():
    ev = judge(K, np.asarray([[80, 60, 40, 25, 15, 10]]))
    assert ev.verdict == INCONCLUSIVE and "1 seed" in ev.reason and ev.test == "none"


def test_one_seed_with_a_floor_needs_a_margin_of_ten_floor_sds():
    floor = Floor(0.87, 0.05)
    huge = judge(K, np.asarray([[80, 60, 40, 25, 15, 10]]), floor=floor)
    assert huge.verdict == IMPROVES and huge.test.startswith(ONE_SEED)
    # 4.0 → 3.5 is +12.5 %, 0.1 above the 10 % minimum (0.4), but 10 floor sd = 0.5: cannot tell
    small = judge(K, np.asarray([[4.0, 3.9, 3.8, 3.6, 3.5, 3.5]]), floor=floor)
    assert small.verdict == INCONCLUSIVE and "floor sd" in small.reason
    flat = judge(K, np.asarray([[30.0, 30.2, 29.9, 30.1, 30.0, 30.0]]), floor=floor)
    assert flat.verdict == FLAT  # 3.0 short of the minimum effect, ≫ 10 floor sd
    zigzag = judge(K, np.asarray([[60, 5, 8, 70, 65, 20]]), floor=floor)  # +29 % start → end, but ρ < 0
    assert zigzag.verdict == INCONCLUSIVE and "ρ" in zigzag.reason


def test_a_curve_inside_the_floor_band_is_inconclusive():
    floor = Floor(0.87, 0.05)  # band 0.77 … 0.97
    q = seeds_matrix([0.95, 0.8, 0.7, 0.65, 0.62, 0.6], n_seeds=6, sd=0.005)
    plain = judge(K, q)
    assert plain.verdict == IMPROVES  # without the floor: a 35 % "win"
    ev = judge(K, q, floor=floor)
    assert ev.verdict == INCONCLUSIVE and "data floor" in ev.reason and ev.at_floor == "both"
    assert ev.rel == pytest.approx(0.0) and (ev.floor, ev.floor_sd) == (0.87, 0.05)


def test_the_gain_counts_only_down_to_the_floor_band():
    floor = Floor(0.87, 0.05)
    big = judge(K, seeds_matrix([130, 40, 8, 2, 0.7, 0.5], sd=0.05), floor=floor)
    assert big.verdict == IMPROVES and big.at_floor == "end"
    assert big.rel == pytest.approx((130 - 0.97) / 130, abs=1e-3)  # end clipped at the band's top
    near = judge(K, seeds_matrix([1.02, 0.95, 0.8, 0.7, 0.6, 0.5], sd=0.002), floor=floor)
    assert near.verdict == INCONCLUSIVE and "reaches the data floor" in near.reason  # 1.02 → 0.97: +5 %
    worse = judge(K, seeds_matrix([0.9, 0.95, 1.5, 2.0, 3.0, 4.0], sd=0.01), floor=floor)
    assert worse.verdict == FLAT and worse.at_floor == "start"  # starts at the floor, then gets worse


def test_the_floor_raises_the_minimum_effect():
    floor = Floor(10.0, 1.5)  # band half-width 3 = 15 % of a start of 20
    q = seeds_matrix([20, 19, 18.5, 18, 17.5, 17.4], n_seeds=6, sd=0.01)  # +13 %, all above 13 (band top)
    assert judge(K, q).verdict == IMPROVES
    ev = judge(K, q, floor=floor)
    assert ev.min_effect == pytest.approx(0.15, rel=1e-3) and ev.verdict == FLAT


def test_missing_points_and_two_values():
    q = np.array([[50.0, 10.0], [np.nan, 11.0], [52.0, np.nan], [51.0, 10.5]])
    ev = judge([4, 64], q)
    assert ev.values == (4, 64) and ev.n_seeds == 2  # seeds missing an end do not enter the test
    assert ev.verdict == IMPROVES, ev.reason


def test_spearman_matches_definition():
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert spearman([1, 2, 3], [5, 5, 5]) == 0.0


# --- the table from records ---------------------------------------------------------------

@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    run = synthetic_zoo(tmp_path_factory.mktemp("zoo"))
    return run, load_results(run)


def test_table_cells_match_the_constructed_zoo(zoo):
    _, df = zoo
    t = scalability_table(df, cards={})
    got = {(r.generator, r.sampler): (r.S, r.K) for r in t.itertuples()}
    assert got == EXPECTED
    assert list(t["category"]) == sorted(t["category"], key=["neither", "sequence", "refinement",
                                                             "both-outer-S", "both-outer-K"].index)
    ebm = t[t["generator"] == "ebm"].iloc[0]
    assert ebm["agrees"] == "no (K)" and ebm["seed_K"] == "scales"  # a conclusive disagreement
    cm = t[t["generator"] == "cm"].iloc[0]  # inside the floor band: not counted either way
    assert cm["agrees"] == "? (K inconclusive)" and cm["K_at_floor"] == "both"
    assert (cm["floor"], cm["floor_sd"]) == pytest.approx((0.87, 0.05))
    diff = t[t["generator"] == "diffusion"].iloc[0]
    assert diff["floor"] == pytest.approx(0.87) and diff["K_at_floor"] == "" and diff["K_min_effect"] == pytest.approx(0.10)
    mar = t[t["generator"] == "mar"].iloc[0]
    assert mar["S_at"] == "K=16" and mar["K_at"] == "S=16" and mar["agrees"] == "yes"
    gpt = t[t["generator"] == "gpt"].iloc[0]
    assert gpt["S_lo"] == 1 and gpt["S_hi"] == 64 and gpt["S_n_seeds"] == 3  # the failed seed-99 point is ignored


def test_primary_metric_defaults_to_fid_then_first_quality(zoo, tmp_path):
    _, df = zoo
    assert primary_metric(df) == "fid"
    run = write_run(tmp_path / "r", [make_record("g", 1, 1, 0, {"diversity": 0.5, "ref_nll": 2.0})])
    assert primary_metric(load_results(run)) == "ref_nll"  # METRICS order: ref_nll before diversity
    with pytest.raises(ValueError, match="unknown metric"):
        scalability_table(df, metric="nope")


def test_higher_is_better_metric_through_the_table(tmp_path):
    recs = curve_records("sharp", "K", K, lambda v, s: 0.2 + 0.7 * (1 - math.exp(-v / 4)) + 0.01 * s,
                         metric="diversity")
    t = scalability_table(load_results(write_run(tmp_path / "r", recs)), metric="diversity")
    row = t.iloc[0]
    assert row["better"] == "higher" and row["K"] == IMPROVES and row["K_rel"] > 0


def test_card_fixed_axis_is_dash(tmp_path):
    recs = curve_records("m", "K", K, lambda v, s: 50 / v + s)
    df = load_results(write_run(tmp_path / "r", recs))
    card = MethodCard("m", "m", "refinement", S=Axis.fixed(1), K=Axis.fixed(1))
    t = scalability_table(df, cards={"m": card})
    assert t.iloc[0]["K"] == FIXED and "card" in t.iloc[0]["K_reason"]


def test_min_effect_is_the_metrics_declared_tolerance(tmp_path):
    """A 15 % gain improves FID (tolerance 10 %) but not KID (tolerance 20 %): same numbers, two metrics."""
    recs = curve_records("m", "K", K, lambda v, s: 100 - 15 * (K.index(v) >= 3) + 0.01 * s, metric="fid")
    for r, kid in zip(recs, curve_records("m", "K", K, lambda v, s: 100 - 15 * (K.index(v) >= 3) + 0.01 * s,
                                          metric="kid"), strict=True):
        r["metrics"] |= kid["metrics"]
    df = load_results(write_run(tmp_path / "r", recs))
    fid, kid = scalability_table(df, metric="fid").iloc[0], scalability_table(df, metric="kid").iloc[0]
    assert fid["K"] == IMPROVES and fid["K_min_effect"] == pytest.approx(0.10)
    assert kid["K"] == FLAT and kid["K_min_effect"] == pytest.approx(0.20)


def test_agreement_uses_only_conclusive_cells(tmp_path):
    two_seeds = curve_records("d2", "K", K, lambda v, s: 36 - 6 * (v > 1) + 2.5 * (-1) ** (s + v), seeds=(0, 1))
    worse = curve_records("d3", "K", K, lambda v, s: 10 + v + 0.1 * s, seeds=(0, 1, 2))
    t = scalability_table(load_results(write_run(tmp_path / "r", two_seeds + worse)), cards={})
    rows = {r.generator: r for r in t.itertuples()}
    assert rows["d2"].K == INCONCLUSIVE and rows["d2"].agrees == "? (K inconclusive)"  # not a disagreement
    assert rows["d3"].K == FLAT and rows["d3"].agrees == "no (K)"  # refinement per the seed, but worse


@pytest.mark.parametrize("column, value", [("n", 128), ("device", "cuda"), ("dtype", "bfloat16"),
                                           ("dataset", "other")])
def test_averages_refuse_to_mix_n_dtype_device_or_dataset(tmp_path, column, value):
    a = curve_records("gen", "K", K, lambda v, s: 50 / v + s, seeds=(0, 1, 2), run="a")
    b = curve_records("gen", "K", K, lambda v, s: 50 / v + s, seeds=(0, 1, 2), run="b")
    for r in b:
        r[column] = value
        r["point_id"] = "b-" + r["point_id"]
    write_run(tmp_path / "runs" / "a", a)
    write_run(tmp_path / "runs" / "b", b)
    df = load_results(tmp_path / "runs")
    want = f"different {column} .*{column}=.* in run a.*"
    with pytest.raises(ValueError, match=want):
        charts.quality_vs_K(df)
    if column != "dataset":  # the table keeps datasets apart as separate rows; within one it refuses
        with pytest.raises(ValueError, match=want):
            scalability_table(df)
    else:
        assert len(scalability_table(df)) == 2
    with pytest.raises(ValueError, match=f"latencies with different {column}"):
        charts.latency_vs_K(df)
    scalability_table(load_results(tmp_path / "runs" / "a"))  # one run alone is fine


# --- renderings and escaping -------------------------------------------------------------

def test_markdown_and_terminal_renderings(zoo):
    _, df = zoo
    t = scalability_table(df, cards={})
    md = markdown_table(t)
    assert "<script>" not in md and html.escape(XSS, quote=False) in md
    assert md.count("\n| ") == len(t) + 1  # header + one line per row
    d = table_display(t)
    assert list(d.columns)[:5] == ["category", "generator", "sampler", "S", "K"]
    from rich.console import Console

    console = Console(record=True, width=320)
    console.print(render_terminal_table(t, evidence=True))
    text = console.export_text()
    assert XSS in text and "▲ improves" in text and "? inconclusive" in text  # literal, not parsed as markup
    assert not EMOJI.search(text) and not EMOJI.search(md)
    assert "exact sign test" in DecisionRule().describe() and "t-test" in DecisionRule().describe()


def test_report_files_and_escaping(zoo, tmp_path):
    from scalebench.report.html import write_report

    run, _ = zoo
    index = write_report([run], tmp_path / "rep", cards={})
    assert index.name == "index.html"
    page = index.read_text(encoding="utf-8")
    assert XSS not in page and "alert(1)</script>" not in page  # neither in HTML nor in the figure JSON
    assert html.escape(XSS) in page
    assert '<meta http-equiv="Content-Security-Policy"' in page and html.escape("default-src 'none'") in page
    csv = pd.read_csv(tmp_path / "rep" / "table.csv")
    assert {"generator", "S", "K", "S_rel", "K_test", "K_p_up", "K_p_down", "K_min_effect", "K_rho", "agrees",
            "floor", "floor_sd", "K_at_floor"} <= set(csv.columns)
    assert set(csv["K"]) == {"fixed", "improves", "no gain", "inconclusive"}  # words in the CSV, not marks
    assert (tmp_path / "rep" / "table.md").read_text().startswith("Quality metric")
    # top-down: table, then the main charts, then more, then samples, then the provenance, collapsed
    order = [page.index(x) for x in ('id="scalability-table"', 'id="chart-quality_vs_K"', 'id="chart-sk_heatmap"',
                                     "<h2>Samples</h2>", '<details id="provenance">')]
    assert order == sorted(order)
    assert re.search(r'<details id="provenance">\s*<summary>', page) and "<details id=\"provenance\" open" not in page
    assert "<h2>Provenance" not in page
    ours = re.sub(r"<script>.*?</script>", "", page, flags=re.S)  # the page without the inlined plotly.js
    assert not EMOJI.search(ours), EMOJI.findall(ours)
    assert '<td class="v v-yes">▲ improves</td>' in ours and '<td class="v v-unsure">? inconclusive</td>' in ours
    assert '<td class="v v-no">■ no gain</td>' in ours and "0.87 ± 0.05" in ours
    assert "exact sign test" in ours  # the rule names its tests


# --- charts ---------------------------------------------------------------------------------

def test_every_chart_builds_with_error_bars(zoo):
    _, df = zoo
    figs = {
        "K": charts.quality_vs_K(df), "S": charts.quality_vs_S(df), "nfe": charts.quality_vs_nfe(df),
        "flops": charts.quality_vs_flops(df), "lat": charts.quality_vs_latency(df), "heat": charts.sk_heatmap(df),
        "latS": charts.latency_vs_S(df), "latK": charts.latency_vs_K(df),
    }
    for name, fig in figs.items():
        assert len(fig.data) >= 1, name
    diff = next(tr for tr in figs["K"].data if tr.name == "diffusion/ddim")
    assert list(diff.x) == K and diff.error_y.array is not None and max(diff.error_y.array) > 0
    assert figs["K"].layout.xaxis.type == "log"
    assert any(tr.name == "Pareto frontier" for tr in figs["lat"].data)
    assert not any(XSS in str(tr.name) for tr in figs["K"].data)  # names are escaped for Plotly
    assert len([tr for tr in figs["heat"].data if tr.type == "heatmap"]) == 1  # only mar varies both
    # FID spans ~80 → ~0.6 (> a decade): the quality axes are logarithmic; latency stays log-log
    assert figs["K"].layout.yaxis.type == "log" and figs["nfe"].layout.yaxis.type == "log"
    band = [tr for tr in figs["K"].data if tr.name == charts.FLOOR_NAME]
    assert len(band) == 1 and band[0].fill == "toself"
    lo, hi = FLOOR[0] - 2 * FLOOR[1], FLOOR[0] + 2 * FLOOR[1]
    assert min(band[0].y) == pytest.approx(lo) and max(band[0].y) == pytest.approx(hi)
    assert min(band[0].x) == 1 and max(band[0].x) == 50
    s_band = [tr for tr in figs["S"].data if tr.name == charts.FLOOR_NAME]  # one floor per metric and n
    assert len(s_band) == 1 and max(s_band[0].x) == 64


def test_total_nfe_chart_says_which_axis_buys_more(zoo, tmp_path):
    _, df = zoo
    fig = charts.quality_vs_total_nfe(df)
    names = [tr.name for tr in fig.data]
    # mar (S, K in {1, 4, 16}): one solid line per K (S varies) and one dashed line per S (K varies)
    assert sorted(n for n in names if "S varies" in n) == [f"mar: S varies, K={k}" for k in (1, 16, 4)]
    assert len([n for n in names if "K varies" in n]) == 3
    assert {tr.line.dash for tr in fig.data if "K varies" in tr.name} == {"dash"}
    # fid = 5 + 40/√S + 30/√K: per doubling of NFE, S gains 7.5 and K 5.625 (least squares on log2 NFE)
    ex = charts.axis_exchange(charts.aggregate(df, "fid"), "lower").set_index("axis")
    assert ex.loc["S", "gain_per_doubling"] == pytest.approx(7.5, rel=0.02)
    assert ex.loc["K", "gain_per_doubling"] == pytest.approx(5.625, rel=0.02) and ex.loc["K", "slices"] == 3
    assert "S buys more" in fig.layout.annotations[0].text
    # K the better axis when it is (swap the roles), and "no method" when nothing varies both
    recs = [make_record("m", S, Kv, s, {"fid": 5 + 10 / math.sqrt(S) + 40 / math.sqrt(Kv)}, category="both-outer-S")
            for s in (0, 1) for S in (1, 4) for Kv in (1, 4, 16)]
    swapped = charts.quality_vs_total_nfe(load_results(write_run(tmp_path / "r", recs)))
    assert "K buys more" in swapped.layout.annotations[0].text
    one = load_results(write_run(tmp_path / "one", curve_records("m", "K", K, lambda v, s: 20 + 10 / v + s)))
    assert "no method varies both" in charts.quality_vs_total_nfe(one).layout.annotations[0].text


def test_both_axes_rows_show_the_verdict_at_every_value_of_the_other_axis(zoo, tmp_path):
    _, df = zoo
    t = scalability_table(df, cards={})
    mar = t[t["generator"] == "mar"].iloc[0]
    assert mar["S_pattern"] == "K=1:improves,K=4:improves,K=16:improves"
    assert mar["K_pattern"] == "S=1:improves,S=4:improves,S=16:improves"
    assert t[t["generator"] == "gpt"].iloc[0]["S_pattern"] == ""  # one axis varied: no pattern
    shown = table_display(t).set_index("generator").loc["mar", "S evidence"]
    assert "at every value: K=1 ▲, K=4 ▲, K=16 ▲" in shown
    # K helps only where S is small: the pattern shows it though the table's slice (S=16) does not
    recs = [make_record("m", S, Kv, s, {"fid": 5 + (40 / math.sqrt(Kv) if S == 1 else 0) + 0.05 * s},
                        category="both-outer-S") for s in (0, 1, 2) for S in (1, 16) for Kv in (1, 4, 16)]
    row = scalability_table(load_results(write_run(tmp_path / "r", recs)), cards={}).iloc[0]
    assert row["K_at"] == "S=16" and row["K"] != "improves"
    assert row["K_pattern"] == f"S=1:improves,S=16:{row['K']}"


def test_linear_quality_axis_when_values_span_less_than_a_decade(tmp_path):
    df = load_results(write_run(tmp_path / "r", curve_records("m", "K", K, lambda v, s: 20 + 10 / v + s)))
    fig = charts.quality_vs_K(df)
    assert fig.layout.yaxis.type == "linear" and not any(tr.name == charts.FLOOR_NAME for tr in fig.data)
    assert charts.log_axis([130, 0.5]) and not charts.log_axis([130, 14]) and not charts.log_axis([130, -0.01])


def test_pareto_front():
    x = np.array([1.0, 2.0, 3.0, 4.0, 2.5])
    y = np.array([50.0, 30.0, 35.0, 10.0, 20.0])
    assert list(charts.pareto_front(x, y, "lower")) == [0, 1, 4, 3]
    assert list(charts.pareto_front(x, -y, "higher")) == [0, 1, 4, 3]


def test_previews_load_and_grid(zoo):
    from scalebench.report.previews import load_previews, preview_points

    run, df = zoo
    points = preview_points(df)
    assert [lab for lab, _ in points[("gpt", "default")]] == ["S=1 K=1 seed=0", "S=64 K=1 seed=0"]
    ids = [pid for chosen in points.values() for _, pid in chosen]
    prev = load_previews([run], ids)
    assert set(prev) == set(ids) and prev[ids[0]].shape == (16, 1, 8, 8)
    fig = charts.sample_grid({lab: prev[pid] for lab, pid in points[("gpt", "default")]})
    assert len(fig.data) == 2


def test_cli_table_and_report(zoo, tmp_path):
    from typer.testing import CliRunner

    from scalebench.cli import app

    run, _ = zoo
    r = CliRunner().invoke(app, ["table", str(run), "--markdown"])
    assert r.exit_code == 0, r.output
    assert "| category |" in r.output and "&lt;script&gt;" in r.output
    r = CliRunner().invoke(app, ["table", str(tmp_path / "missing")])
    assert r.exit_code == 2
    r = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rep" / "index.html").is_file()


def test_speed_only_results_give_a_report_without_table(tmp_path):
    from scalebench.report.html import NO_TABLE, write_report

    recs = [make_record("fast", 1, k, 0, {}) for k in (1, 2, 4)]
    run = write_run(tmp_path / "speed", recs)
    index = write_report([run], tmp_path / "rep", cards={})
    page = index.read_text(encoding="utf-8")
    assert 'id="scalability-table"' not in page and 'id="chart-latency_vs_K"' in page
    assert (tmp_path / "rep" / "table.md").read_text().strip() == NO_TABLE
    with pytest.raises(ValueError, match="no quality metric"):
        scalability_table(load_results(run))


# --- one-shot baselines (S and K fixed: one budget) ---------------------------------------

QUALITY_CHARTS = {
    "quality_vs_K": charts.quality_vs_K, "quality_vs_S": charts.quality_vs_S, "quality_vs_nfe": charts.quality_vs_nfe,
    "quality_vs_flops": charts.quality_vs_flops, "quality_vs_latency": charts.quality_vs_latency,
    "latency_vs_K": lambda df, metric=None: charts.latency_vs_K(df),
    "latency_vs_S": lambda df, metric=None: charts.latency_vs_S(df),
}


# The shipped one-shot families (generator, sampler as the runner records it): gan's single sampler,
# vae's two (each its own point, so its own marker) and flow's one. Their cards fix S = K = 1.
ONE_SHOT = {"gan": ("gan", "default"), "vae/sample": ("vae", "sample"), "vae/mode": ("vae", "mode"),
            "flow/inverse": ("flow", "inverse")}


@pytest.fixture(scope="module")
def one_shot_run(tmp_path_factory):
    recs = curve_records("ddim", "K", K, lambda v, s: 10 + 60 * math.exp(-v / 3) + 0.3 * s)
    recs += curve_records("gpt", "S", [1, 4, 16, 64], lambda v, s: 80 / math.sqrt(v) + 2 + 0.3 * s, category="sequence")
    for i, (gen, sampler) in enumerate(ONE_SHOT.values()):
        recs += [make_record(gen, 1, 1, s, {"fid": 25.0 + 5 * i + s}, sampler=sampler, category="neither")
                 for s in (0, 1, 2)]
    return load_results(write_run(tmp_path_factory.mktemp("oneshot") / "r", recs))


@pytest.mark.parametrize("method", list(ONE_SHOT))
@pytest.mark.parametrize("chart", list(QUALITY_CHARTS))
def test_one_shot_family_is_a_single_marker_on_every_quality_and_latency_chart(one_shot_run, chart, method):
    fig = QUALITY_CHARTS[chart](one_shot_run, "fid")
    by_name = {tr.name: tr for tr in fig.data}
    one = by_name[method]
    assert one.mode == "markers" and len(one.x) == 1 and one.showlegend is not False, chart
    assert one.marker.symbol == charts.ONE_SHOT_SYMBOL and one.legendgroup == charts.ONE_SHOT_GROUP
    titled = [tr for tr in fig.data if getattr(tr.legendgrouptitle, "text", None)]
    assert [tr.legendgrouptitle.text for tr in titled] == [charts.ONE_SHOT_GROUP]  # one heading for the group
    assert one.legendrank > max(tr.legendrank or 1000 for tr in fig.data if tr.name not in ONE_SHOT)  # listed last
    curve = by_name["ddim"] if chart.endswith("_K") or chart in ("quality_vs_nfe", "quality_vs_flops",
                                                                  "quality_vs_latency") else by_name["gpt"]
    assert curve.mode == charts.CURVE_MODE == "lines+markers" and len(curve.x) > 1, chart
    assert curve.legendgroup is None and curve.marker.symbol is None
    assert fig.layout.legend.groupclick == "toggleitem"  # clicking a baseline hides only that one
    if chart in ("quality_vs_nfe", "quality_vs_flops", "quality_vs_latency"):  # every curve is a line here
        assert by_name["gpt"].mode == "lines+markers" and len(by_name["gpt"].x) == 4


def test_one_shot_methods_are_those_with_one_budget(one_shot_run):
    agg = charts.aggregate(one_shot_run, "fid")
    assert charts.one_shot_methods(agg) == set(ONE_SHOT)
    assert charts.one_shot_methods(agg.iloc[0:0]) == set()


def test_one_shot_family_is_dash_on_both_axes_of_the_table(one_shot_run):
    from scalebench.methods.flow import FlowGenerator
    from scalebench.methods.vae import VAEGenerator

    gan_card = MethodCard("gan", "GAN", "neither", S=Axis.fixed(1), K=Axis.fixed(1))
    shipped = {"gan": gan_card, "vae": VAEGenerator.card, "flow": FlowGenerator.card}  # vae/flow: the real cards
    for cards in ({}, shipped):  # one measured budget, or the card, gives "—"
        t = scalability_table(one_shot_run, cards=cards)
        shown = table_display(t)
        for gen, sampler in ONE_SHOT.values():
            pick = (t["generator"] == gen) & (t["sampler"].fillna("default") == sampler)
            assert pick.sum() == 1, (gen, sampler)
            row = t[pick].iloc[0]
            assert (row["S"], row["K"], row["agrees"]) == (FIXED, FIXED, "yes"), (gen, sampler)
            cells = shown[pick.to_numpy()].iloc[0]
            assert cells["S"] == cells["K"] == "— fixed" and cells["seed S"] == cells["seed K"] == "■ does not"


def test_sample_grids_keep_colour_for_rgb_previews() -> None:
    rng = np.random.default_rng(0)
    rgb, grey = rng.random((4, 3, 6, 6)), rng.random((4, 1, 8, 8))
    m = charts.mosaic(rgb, cols=2)
    assert m.shape == (13, 13, 3) and np.allclose(m[:6, :6], rgb[0].transpose(1, 2, 0)) and (m[6] == 1.0).all()
    fig = charts.sample_grid({"colour": rgb, "grey": grey})
    assert [t.type for t in fig.data] == ["image", "heatmap"]
    assert fig.data[0].z.dtype == np.uint8 and fig.data[0].z.shape == (6, 27, 3)  # 4 samples in a row
