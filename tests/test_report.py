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
from scalebench.results import load_results
from scalebench.verdict.decide import FIXED, FLAT, IMPROVES, INCONCLUSIVE, WORSE, DecisionRule
from scalebench.verdict.words import describe
from tests.report_fixtures import EMOJI, EXPECTED, FLOOR, XSS, curve_records, make_record, synthetic_zoo, write_run

K = [1, 2, 5, 10, 20, 50]


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
    cm = t[t["generator"] == "cm"].iloc[0]  # starts inside the floor margin: not counted either way
    assert cm["agrees"] == "? (K at floor)" and cm["K_start_at_floor"]
    assert (cm["floor"], cm["floor_sd"]) == pytest.approx((0.87, 0.05))
    diff = t[t["generator"] == "diffusion"].iloc[0]
    assert diff["floor"] == pytest.approx(0.87) and not diff["K_start_at_floor"]
    assert diff["K_min_effect"] == pytest.approx(0.10)
    assert "Benjamini–Hochberg" in t.attrs["header"] and t.attrs["hypotheses"] >= 8
    mar = t[t["generator"] == "mar"].iloc[0]
    assert mar["S_at"] == "K=16" and mar["K_at"] == "S=16" and mar["agrees"] == "yes"
    gpt = t[t["generator"] == "gpt"].iloc[0]
    assert gpt["S_lo"] == 1 and gpt["S_hi"] == 64 and gpt["S_n"] == 3  # the failed seed-99 point is ignored


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
    assert row["better"] == "higher" and row["K"] == IMPROVES and row["K_effect"] > 0


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
    assert rows["d3"].K == WORSE and rows["d3"].agrees == "no (K)"  # refinement per the seed, but worse


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
    assert XSS in text and "▲ improves" in text and "▼ worse" in text  # literal, not parsed as markup
    assert not EMOJI.search(text) and not EMOJI.search(md)
    assert "Benjamini–Hochberg" in md and "t-interval" in describe(DecisionRule())


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
    assert {"generator", "S", "K", "S_effect", "K_effect_lo", "K_effect_hi", "K_test", "K_p_up", "K_p_down",
            "K_p_equiv", "K_p_floor", "K_p_adj", "K_min_effect", "K_rho", "agrees", "floor", "floor_sd",
            "K_start_at_floor"} <= set(csv.columns)
    assert set(csv["K"]) == {"fixed", "improves", "worse", "at floor"}  # words in the CSV, not marks
    assert (tmp_path / "rep" / "table.md").read_text().startswith("Quality metric")
    # top-down: table, then the main charts, then more, then samples, then the provenance, collapsed
    order = [page.index(x) for x in ('id="scalability-table"', 'id="chart-quality_vs_K"', 'id="chart-sk_heatmap"',
                                     "<h2>Samples</h2>", '<details id="provenance">')]
    assert order == sorted(order)
    assert re.search(r'<details id="provenance">\s*<summary>', page) and "<details id=\"provenance\" open" not in page
    assert "<h2>Provenance" not in page
    ours = re.sub(r"<script>.*?</script>", "", page, flags=re.S)  # the page without the inlined plotly.js
    assert not EMOJI.search(ours), EMOJI.findall(ours)
    assert '<td class="v v-yes">▲ improves</td>' in ours and '<td class="v v-floor">● at floor</td>' in ours
    assert '<td class="v v-worse">▼ worse</td>' in ours and "0.87 ± 0.05" in ours
    assert "Benjamini–Hochberg" in ours and "TOST" in ours  # the rule names its error control and tests


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
    assert "at every value (raw p): K=1 ▲, K=4 ▲, K=16 ▲" in shown
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
