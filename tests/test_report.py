"""The 2-axis table's decision rule, its renderings, the charts and the report files (fast, no browser)."""

from __future__ import annotations

import html
import io
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from scalebench.api import Axis, MethodCard
from scalebench.report import charts
from scalebench.report.identity import frame_identities
from scalebench.report.table import primary_metric, scalability_table
from scalebench.report.tablefmt import markdown_table, render_terminal_table, table_display
from scalebench.results import load_results
from scalebench.verdict.decide import FIXED, FLAT, IMPROVES, INCONCLUSIVE, WORSE, DecisionRule
from scalebench.verdict.words import describe, header
from tests.report_fixtures import EMOJI, EXPECTED, FLOOR, XSS, curve_records, make_record, synthetic_zoo, write_run

K = [1, 2, 5, 10, 20, 50]
XSS_NAME = html.escape(f"{XSS}/{XSS}")


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
    t.attrs["header"] = header(DecisionRule(), 2, {"[bold]x[/bold]": 3, "gpt": 1, "vae": 1})  # row names in it
    console = Console(record=True, width=320)
    console.print(render_terminal_table(t))
    assert "[bold]x[/bold]" in console.export_text()
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
    order = [page.index(x) for x in ('id="summary-grid"', 'id="scalability-table"', 'id="chart-quality_vs_K"',
                                     'id="chart-sk_heatmap"', 'id="samples-h"', '<details id="provenance">')]
    assert order == sorted(order)
    assert re.search(r'<details id="provenance">\s*<summary>', page) and "<details id=\"provenance\" open" not in page
    assert "<h2>Provenance" not in page
    assert re.search(r'<details id="evidence" class="table"><summary>', page)  # the full table: one click away
    ours = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)  # the page without plotly.js and figure data
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
    # small multiples: the floor band in the panels of the families that record it (diffusion, cm), one legend entry
    band = [tr for tr in figs["K"].data if tr.name == charts.FLOOR_NAME]
    assert len(band) == 2 and all(b.fill == "toself" for b in band) and [b.showlegend for b in band] == [True, False]
    titles = [a.text for a in figs["K"].layout.annotations]
    assert titles == ["diffusion", "ebm", "cm", "mar", charts.ONE_SHOT_PANEL]  # seed order, then registry order
    panel_of = {tr.xaxis: titles[int(tr.xaxis[1:] or 1) - 1] for tr in figs["K"].data}
    assert sorted(panel_of[b.xaxis] for b in band) == ["cm", "diffusion"]
    lo, hi = FLOOR[0] - 2 * FLOOR[1], FLOOR[0] + 2 * FLOOR[1]
    assert min(band[0].y) == pytest.approx(lo) and max(band[0].y) == pytest.approx(hi)
    assert min(band[0].x) == 1 and max(band[0].x) == 50  # across the shared x range
    assert not any(tr.name == charts.FLOOR_NAME for tr in figs["S"].data)  # gpt and mar record no floor
    assert {tr.name for tr in figs["S"].data if tr.meta} == {"gpt", "mar (K=16)", XSS_NAME, "vae"}


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
    from PIL import Image

    from scalebench.report.previews import PAD_GREY, load_previews, preview_png, preview_points

    run, df = zoo
    points = preview_points(df)
    assert [lab for lab, _ in points[("gpt", "default")]] == ["S=1 K=1 seed=0", "S=64 K=1 seed=0"]
    ids = [pid for chosen in points.values() for _, pid in chosen]
    prev = load_previews([run], ids)
    assert set(prev) == set(ids) and prev[ids[0]].shape == (16, 1, 8, 8)
    png = preview_png(prev[ids[0]])  # 16 digits as one 35 × 35 grey PNG, pixels as stored
    img = np.asarray(Image.open(io.BytesIO(png)))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and img.shape == (35, 35) and len(png) < 2000
    assert np.array_equal(img[:8, :8], np.round(prev[ids[0]][0, 0] * 255).astype(np.uint8))
    assert (img[8, :] == round(PAD_GREY * 255)).all()  # the padding between samples


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
    ident = frame_identities(one_shot_run)[ONE_SHOT[method]]
    assert one.marker.symbol == ident.marker and one.marker.size == 14 and one.legendgroup == charts.ONE_SHOT_GROUP
    titled = [tr for tr in fig.data if getattr(tr.legendgrouptitle, "text", None)]
    assert [tr.legendgrouptitle.text for tr in titled] == [charts.ONE_SHOT_GROUP]  # one heading for the group
    assert one.legendrank > max(tr.legendrank or 1000 for tr in fig.data if tr.name not in ONE_SHOT)  # listed last
    curve = by_name["ddim"] if chart.endswith("_K") or chart in ("quality_vs_nfe", "quality_vs_flops",
                                                                  "quality_vs_latency") else by_name["gpt"]
    assert curve.mode == charts.CURVE_MODE == "lines+markers" and len(curve.x) > 1, chart
    assert curve.legendgroup is None and curve.marker.size == 8
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
    from PIL import Image

    from scalebench.report.previews import mosaic, preview_png

    rng = np.random.default_rng(0)
    rgb, grey = rng.random((4, 3, 6, 6)), rng.random((4, 1, 8, 8))
    m = mosaic(rgb, cols=2)
    assert m.shape == (13, 13, 3) and np.allclose(m[:6, :6], rgb[0].transpose(1, 2, 0)) and (m[6] == 1.0).all()
    colour, plain = (Image.open(io.BytesIO(preview_png(x))) for x in (rgb, grey))
    assert colour.mode == "RGB" and colour.size == (27, 6) and plain.mode == "L"  # 4 samples in a row
    assert np.abs(np.asarray(colour)[:, :6].astype(int) - np.round(rgb[0].transpose(1, 2, 0) * 255)).max() <= 1


# --- one identity per method, ticks, frontiers, small multiples (issue 28) ------------------

def test_every_registered_method_has_its_own_stable_identity() -> None:
    from scalebench.generators import GENERATORS
    from scalebench.report import identity

    identity.family_order.cache_clear()  # other tests register generators after an earlier report cached it
    identity.sampler_order.cache_clear()
    order = identity.family_order()
    assert order[:3] == ("diffusion", "gpt", "pixelcnn") and set(GENERATORS.names()) <= set(order)
    pairs = [(g, s) for g in order for s in identity.sampler_order(g)]
    assert len(pairs) >= 30 and ("diffusion", "ddim") in pairs  # every registered generator × sampler
    ids = identity.identities(pairs)
    looks = [(i.colour, i.marker, i.dash) for i in ids.values()]
    assert len(set(looks)) == len(looks)  # no two methods look alike
    by_family = {g: {ids[(g, s)].colour.lower() for s in identity.sampler_order(g)[:1]} for g in order}
    assert len({c for cs in by_family.values() for c in cs}) == len(identity.COLOURS)  # a colour per family
    # a method's look depends on its name only: not on which other methods a report holds
    alone = identity.identities([("diffusion", "ddpm")])[("diffusion", "ddpm")]
    assert alone == ids[("diffusion", "ddpm")] != ids[("diffusion", "ddim")]
    assert alone.dash != "solid" and alone.marker.endswith("-open")  # a second sampler: dashed, open markers
    # unregistered names (synthetic results, a user's label) come after the registered ones, by name
    more = identity.identities([("zz-mine", None), ("aa-mine", "default"), ("gpt", None)])
    assert more[("gpt", "default")] == ids[("gpt", "ancestral")]  # "default" is the card's first sampler
    assert more[("aa-mine", "default")] != more[("zz-mine", "default")]


def test_identity_is_the_same_in_every_chart(zoo):
    _, df = zoo
    ids = frame_identities(df)
    seen: dict[str, set] = {}
    for fig in (charts.quality_vs_K(df), charts.quality_vs_S(df), charts.quality_vs_latency(df),
                charts.quality_vs_flops(df), charts.latency_vs_K(df), charts.latency_vs_S(df)):
        for tr in fig.data:
            if tr.meta:
                seen.setdefault(tr.meta["method"], set()).add((tr.marker.color, tr.marker.symbol, tr.line.dash))
    assert len(seen) == len(ids) == 7
    by_name = {f"{g}/{s}": i for (g, s), i in ids.items()}
    for method, looks in seen.items():
        i = by_name[method]
        assert looks == {(i.colour, i.marker, i.dash)}, method


def test_step_ticks_are_thinned_on_the_log_scale():
    assert charts.thin_ticks([1, 4, 16, 64]) == [1, 4, 16, 64]
    got = charts.thin_ticks([1, 4, 14.2, 15.1, 16, 64])  # blockwise's steps taken next to S = 16
    assert got[0] == 1 and got[-1] == 64 and len(got) == 4
    assert all(math.log10(b / a) >= math.log10(64) / charts.MAX_TICKS for a, b in zip(got, got[1:], strict=False))
    t = charts.log_ticks([0.6, 80])
    assert t["tickvals"] == [1, 3, 10, 30, 100] and t["ticktext"] == ["1", "3", "10", "30", "100"]
    assert charts.log_ticks([1e6, 4e9])["ticktext"] == ["1M", "10M", "100M", "1G"]  # 3.6 decades: decades only
    assert charts.log_ticks([2, 30])["tickvals"] == [2, 5, 10, 20]
    assert charts.log_ticks([-1, 0]) == {}


def _many_methods(tmp_path, n_methods: int = 14):
    """n methods along K with FID curves at different costs: a frontier chart with more than HIGHLIGHT of them."""
    recs = []
    for i in range(n_methods):
        recs += curve_records(f"m{i:02d}", "K", [1, 4, 16], lambda v, s, i=i: 10 + 3 * i + 40 / v + 0.1 * s,
                              seeds=(0, 1))
    return load_results(write_run(tmp_path / "many", recs))


def test_frontier_highlights_at_most_ten_methods_and_fades_the_rest(tmp_path):
    df = _many_methods(tmp_path)
    fig = charts.quality_vs_latency(df)
    methods = [tr for tr in fig.data if tr.meta]
    bright = [tr.name for tr in methods if tr.opacity == 1]
    faded = [tr for tr in methods if tr.opacity < 1]
    assert len(methods) == 14 and len(bright) == charts.HIGHLIGHT and len(faded) == 4
    assert all(tr.meta["fade"] for tr in faded) and not any(tr.meta["fade"] for tr in methods if tr.opacity == 1)
    front = next(tr for tr in fig.data if tr.name == "Pareto frontier")
    on_front = {t.split(" S=")[0] for t in front.text}
    assert on_front <= set(bright)  # whatever is on the frontier is highlighted
    assert "m13" not in bright  # the worst curve at every cost is faded
    assert fig.layout.height >= 21 * 16  # as tall as its legend: no scrolling legend


def test_small_multiples_draw_each_panels_floor_at_its_own_n(tmp_path):
    a = curve_records("diffusion", "K", K, lambda v, s: 5 + 60 / v + 0.1 * s, sampler="ddim", floor=(2.0, 0.1))
    b = curve_records("ebm", "K", [1, 10, 100], lambda v, s: 40 - 5 * math.log10(v) + 0.1 * s, floor=(3.0, 0.2))
    for r in b:
        r["n"] = 32
        r["point_id"] += ":n32"
    fig = charts.quality_vs_K(load_results(write_run(tmp_path / "r", a + b)))
    titles = [x.text for x in fig.layout.annotations]
    assert titles == ["diffusion", "ebm"]
    bands = {tr.name: tr for tr in fig.data if tr.fill == "toself"}
    assert set(bands) == {f"{charts.FLOOR_NAME} at n=32", f"{charts.FLOOR_NAME} at n=64"}
    assert bands[f"{charts.FLOOR_NAME} at n=64"].xaxis == "x" and bands[f"{charts.FLOOR_NAME} at n=32"].xaxis == "x2"
    assert max(bands[f"{charts.FLOOR_NAME} at n=32"].y) == pytest.approx(3.4)
    assert fig.layout.yaxis2.matches == "y" and fig.layout.xaxis2.matches == "x"  # shared axes
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.tickvals == (1, 5, 20, 100)  # K of both, thinned
    assert {tr.name for tr in fig.data if tr.meta} == {"diffusion/ddim (n=64)", "ebm (n=32)"}


def test_summary_grid_cells(zoo):
    from scalebench.report.grid import summary_grid

    _, df = zoo
    t = scalability_table(df, cards={})
    t.loc[t["generator"] == "gpt", "flags"] = "copies 1/12"
    page = summary_grid(t, frame_identities(df), df)
    cells = re.findall(r'<div class="cell (agree-\w+)" data-row="(\d+)" title="([^"]*)"[^>]*>(.*?)</div></div>', page)
    assert len(cells) == len(t) == 7
    by_name = {re.search(r'class="cname">([^<]*)<', body).group(1): (cls, int(row), tip, body)
               for cls, row, tip, body in cells}
    cls, row, tip, body = by_name["gpt"]
    assert t.iloc[row]["generator"] == "gpt" and cls == "agree-yes"
    assert ">S ▲ −79 %<" in body and ">K —<" in body and '<div class="cb"><span class="badge">copies 1/12</span>' in body
    assert "S 1→64: fid" in html.unescape(tip) and "flag: copies 1/12" in html.unescape(tip)  # evidence: a hover away
    assert by_name["ebm"][0] == "agree-no" and "disagrees: K" in by_name["ebm"][3]
    assert by_name["cm"][0] == "agree-open" and "K ● " in by_name["cm"][3]
    assert html.escape(f"{XSS}/{XSS}") in page and XSS not in page
    assert "5 of 7 agree with the seed" in page and "seed: S scales · K does not" in page


def test_report_page_embeds_plotly_once_compressed_and_figures_without_template(zoo, tmp_path):
    import base64
    import gzip
    from pathlib import Path

    import plotly

    from scalebench.report.html import write_report
    from scalebench.report.previews import preview_points

    run, _ = zoo
    page = write_report([run], tmp_path / "rep", cards={}).read_text(encoding="utf-8")
    blob = re.findall(r'<script type="application/octet-stream" id="plotly-js-gz">([^<]*)</script>', page)
    shipped = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    assert len(blob) == 1 and gzip.decompress(base64.b64decode(blob[0])) == shipped
    assert page.count("plotly.js v") == 0  # never inlined uncompressed as well
    figures = [json.loads(f) for f in re.findall(r'<script type="application/json" id="data-[^"]+">(.*?)</script>',
                                                  page, flags=re.S)]
    assert len(figures) >= 10 and not any({"template", "title"} & set(f["layout"]) for f in figures)  # both once
    assert len(page.encode()) < 3_000_000
    shown = sum(len(chosen) for chosen in preview_points(load_results(run)).values())
    assert page.count('<img src="data:image/png;base64,') == shown


def test_the_outer_loop_is_measured_from_the_counted_nfe() -> None:
    """ards (AR once, then K − 1 passes: NFE = S + K − 1) is additive, so its declared outer K is marked
    declared only; ar_diffusion's K + (S − 1)⌈K/2⌉ has an S × K interaction, so its nesting is measured."""
    from scalebench.report.table import IMPROVES, NESTED, SEQUENTIAL, _agreement, measured_outer
    from scalebench.report.tablefmt import outer_text

    def nfe(f):
        return pd.DataFrame([{"S": s, "K": k, "value": float(f(s, k))} for s in (1, 4, 16) for k in (1, 2, 5)])

    assert measured_outer(nfe(lambda s, k: s + k - 1)) == SEQUENTIAL
    assert measured_outer(nfe(lambda s, k: k + (s - 1) * -(-k // 2))) == NESTED
    assert measured_outer(nfe(lambda s, k: s)[lambda d: d["K"] == 1]) == ""  # one axis only: nothing to read
    yes = {"S": IMPROVES, "K": IMPROVES}
    assert _agreement(yes, "both-outer-K", "K", NESTED) == "yes"
    assert _agreement(yes, "both-outer-K", "K", SEQUENTIAL) == "? (outer declared only: NFE additive in S and K)"
    assert outer_text(pd.Series({"outer": "K", "outer_measured": SEQUENTIAL})) == "K (declared only)"
    assert outer_text(pd.Series({"outer": "S", "outer_measured": NESTED})) == "S"
