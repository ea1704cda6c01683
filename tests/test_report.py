"""The 2-axis table's decision rule, its renderings, the charts and the report files (fast, no browser)."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import pytest
from report_fixtures import EXPECTED, XSS, curve_records, make_record, synthetic_zoo, write_run

from scalebench.api import Axis, MethodCard
from scalebench.report import charts
from scalebench.report.table import primary_metric, scalability_table
from scalebench.report.tablefmt import markdown_table, render_terminal_table, table_display
from scalebench.report.trend import FIXED, FLAT, IMPROVES, DecisionRule, judge_axis, spearman
from scalebench.results import load_results

K = [1, 2, 5, 10, 20, 50]
RNG = np.random.default_rng(7)


def seeds_matrix(curve: list[float], n_seeds: int = 3, sd: float = 0.0, rng=RNG) -> np.ndarray:
    return np.asarray(curve)[None, :] + rng.normal(0, sd, size=(n_seeds, len(curve)))


# --- the rule on constructed curves ------------------------------------------------------

def test_clearly_improving_curve_is_tick():
    q = seeds_matrix([80, 60, 40, 25, 15, 10], sd=1.0)
    ev = judge_axis(K, q, "lower")
    assert ev.verdict == IMPROVES, ev.reason
    assert ev.rel > 0.8 and ev.ci_lo > 0.7 and ev.rho > 0.9 and ev.n_seeds == 3
    assert (ev.lo, ev.hi) == (1, 50)


def test_flat_noisy_curve_is_cross():
    q = seeds_matrix([30.0] * 6, n_seeds=4, sd=2.0, rng=np.random.default_rng(3))
    ev = judge_axis(K, q, "lower")
    assert ev.verdict == FLAT
    assert not (ev.ci_lo > 0 and ev.rel >= 0.10)


def test_flat_curve_with_lucky_end_is_not_tick():
    """Small consistent gain (CI excludes 0) below the minimum effect is still ❌."""
    q = seeds_matrix([30, 29.8, 29.5, 29.3, 29.0, 28.5], sd=0.05)
    ev = judge_axis(K, q, "lower")
    assert ev.ci_lo > 0 and ev.rel < 0.10
    assert ev.verdict == FLAT and "< 10%" in ev.reason


def test_single_value_is_fixed():
    ev = judge_axis([1], np.array([[40.0], [41.0]]), "lower")
    assert ev.verdict == FIXED and "one value" in ev.reason


def test_improves_then_saturates_is_tick():
    curve = [60, 30, 12, 10, 10.3, 9.9]  # last point wobbles above the best
    ev = judge_axis(K, seeds_matrix(curve, sd=0.4), "lower")
    assert ev.verdict == IMPROVES, ev.reason
    one = judge_axis(K, np.asarray([curve]), "lower")  # one seed: the stricter fallback
    assert one.verdict == IMPROVES, one.reason
    assert math.isnan(one.ci_lo)


def test_getting_worse_is_cross():
    ev = judge_axis(K, seeds_matrix([10, 12, 15, 20, 30, 40], sd=0.5), "lower")
    assert ev.verdict == FLAT and ev.rel < 0


def test_direction_comes_from_better():
    rising = seeds_matrix([0.2, 0.4, 0.6, 0.75, 0.85, 0.9], sd=0.01)
    assert judge_axis(K, rising, "higher").verdict == IMPROVES
    assert judge_axis(K, rising, "lower").verdict == FLAT
    with pytest.raises(ValueError, match="better"):
        judge_axis(K, rising, "up")  # type: ignore[arg-type]


def test_single_seed_fallback_needs_large_effect_and_trend():
    rule = DecisionRule()
    bump = judge_axis(K, np.asarray([[36, 30, 31, 29.5, 30.5, 30]]), "lower", rule)  # 18 % from a high start
    assert bump.verdict == FLAT and "1 seed" in bump.reason
    zigzag = judge_axis(K, np.asarray([[60, 10, 55, 12, 58, 20]]), "lower", rule)  # big Δ, no trend
    assert zigzag.verdict == FLAT and "ρ" in zigzag.reason


def test_missing_points_and_two_values():
    q = np.array([[50.0, 10.0], [np.nan, 11.0], [52.0, np.nan]])
    ev = judge_axis([4, 64], q, "lower")
    assert ev.verdict == IMPROVES and ev.values == (4, 64)


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
    assert ebm["agrees"] == "no (K)" and ebm["seed_K"] == "✅"
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

    console = Console(record=True, width=200)
    console.print(render_terminal_table(t, evidence=True))
    text = console.export_text()
    assert XSS in text and "✅" in text  # shown literally, not parsed as markup


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
    assert {"generator", "S", "K", "S_rel", "K_ci_lo", "K_rho", "agrees"} <= set(csv.columns)
    assert (tmp_path / "rep" / "table.md").read_text().startswith("Quality metric")


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
