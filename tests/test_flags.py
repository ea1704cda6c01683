"""Copies and collapse are flagged wherever a point is ranked: the table row, the summary, the report."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from scalebench.flags import COLLAPSE, COPIES, Z, flags_of, point_flags
from tests.degenerate import register

register()

N = 300
METRICS = ["fid", "precision", "recall", "diversity", "ref_nll", "memorisation", "memorisation_feat"]
REAL = {"memorisation": 0.004, "memorisation_floor": 0.012, "memorisation_floor_sd": 0.007,
        "memorisation_feat": 0.01, "memorisation_feat_floor": 0.012, "memorisation_feat_floor_sd": 0.007,
        "recall": 0.88, "recall_floor": 0.90, "recall_floor_sd": 0.02,
        "diversity": 0.97, "diversity_floor": 1.0, "diversity_floor_sd": 0.01,
        "precision": 0.85, "precision_floor": 0.90, "precision_floor_sd": 0.02}


def test_real_looking_metrics_raise_no_flag() -> None:
    assert flags_of(REAL) == ([], [])
    assert flags_of({"fid": 3.0}) == ([], [])  # no floor recorded: nothing to judge against


def test_copies_need_both_the_band_and_the_ratio() -> None:
    flags, reasons = flags_of({**REAL, "memorisation_feat": 0.9})
    assert flags == [COPIES] and "memorisation_feat 0.9" in reasons[0]
    inside = REAL["memorisation_floor"] + (Z - 0.5) * REAL["memorisation_floor_sd"]
    assert flags_of({**REAL, "memorisation": inside})[0] == []  # inside the 3-sd band
    tiny = {**REAL, "memorisation": 0.0015, "memorisation_floor": 0.001, "memorisation_floor_sd": 0.0001}
    assert flags_of(tiny)[0] == []  # far outside a tiny band, but not twice the floor's rate


def test_collapse_is_low_spread_at_realistic_precision_not_noise() -> None:
    one_image = {**REAL, "recall": 0.0, "diversity": 0.0, "precision": 1.0}
    assert flags_of(one_image)[0] == [COLLAPSE]
    noise = {**REAL, "recall": 0.0, "diversity": 0.05, "precision": 0.0, "ref_nll": 6.3, "ref_nll_floor": 2.0,
             "ref_nll_floor_sd": 0.01}  # a 1-step sampler: bad on every metric, misleads no one
    assert flags_of(noise)[0] == []
    odd_digit = {**noise, "ref_nll": 1.78}  # outside the k-NN manifold, yet "better than real" on ref-NLL
    assert flags_of(odd_digit)[0] == [COLLAPSE] and "ref_nll 1.78" in flags_of(odd_digit)[1][0]
    assert flags_of({**REAL, "diversity": 0.6})[0] == []  # below the band, not below half the floor
    both = {**one_image, "memorisation": 1.0}
    assert flags_of(both)[0] == [COPIES, COLLAPSE]
    assert flags_of({**REAL, "recall": math.nan})[0] == []


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sweep: the verbatim copier, one image repeated, and a normal zoo generator (the VAE, at another n)."""
    from scalebench.sweep.runner import run_sweep
    from scalebench.sweep.spec import parse_spec
    from tests.conftest import toy_spec

    out = tmp_path_factory.mktemp("flags") / "run"
    spec = parse_spec(toy_spec(samples=N, batch_size=N, metrics=METRICS, seeds=[0],
                               generators=[{"name": "copier"}, {"name": "collapser"},
                                           {"name": "vae", "samples": N - 100, "batch_size": N - 100}]))
    run_sweep(spec, out, progress=False)
    return out


@pytest.fixture(scope="module")
def results(sweep: Path) -> pd.DataFrame:
    from scalebench.results import load_results

    return load_results(sweep)


@pytest.mark.slow
def test_points_are_flagged_by_what_they_did(results: pd.DataFrame) -> None:
    pf = point_flags(results).set_index("generator")
    assert pf.loc["copier", "flags"] == COPIES and "memorisation 1" in pf.loc["copier", "reason"]
    assert pf.loc["collapser", "flags"] == COLLAPSE
    assert pf.loc["vae", "flags"] == ""  # a normal zoo point
    copier = results[results["generator"] == "copier"].set_index("metric")["value"]
    assert copier["ref_nll"] >= copier["ref_nll_floor"] - 2 * copier["ref_nll_floor_sd"]  # no longer "better than real"


@pytest.mark.slow
def test_table_row_summary_and_report_carry_the_flags(results: pd.DataFrame, sweep: Path, tmp_path: Path) -> None:
    from scalebench.report.html import write_report
    from scalebench.report.table import scalability_table
    from scalebench.report.tablefmt import markdown_table
    from scalebench.summary import summary_frame

    t = scalability_table(results, "fid").set_index("generator")
    assert t.loc["copier", "flags"] == "copies 1/1" and t.loc["collapser", "flags"] == "collapse 1/1"
    assert t.loc["vae", "flags"] == ""
    assert "copies 1/1" in markdown_table(t.reset_index())
    s = summary_frame(results).set_index("generator")
    assert (s.loc["copier", "flags"], s.loc["collapser", "flags"], s.loc["vae", "flags"]) == (COPIES, COLLAPSE, "")
    page = write_report(sweep, tmp_path / "report").read_text(encoding="utf-8")
    rows = re.findall(r"<tr>(.*?)</tr>", page.split('id="scalability-table"')[1].split("</table>")[0])
    copier_row = next(r for r in rows if "<td>copier</td>" in r)
    assert '<td class="flagged">copies 1/1</td>' in copier_row
    assert not any('class="flagged"' in r for r in rows if "<td>vae</td>" in r)
    assert '<span class="badge">copies</span> copier' in page


@pytest.mark.slow
def test_flagged_points_are_never_the_pareto_frontier(results: pd.DataFrame) -> None:
    from scalebench.report import charts

    fig = charts.quality_vs_latency(results, "fid")
    front = next(tr for tr in fig.data if tr.name == "Pareto frontier")
    assert all("copier" not in t and "collapser" not in t for t in front.text)
    ringed = next(tr for tr in fig.data if tr.name == charts.FLAG_NAME)
    assert sorted(t.split(" ")[0] for t in ringed.text) == ["collapser", "copier"]


@pytest.mark.slow
def test_a_chart_mixing_sample_sizes_names_each_n_and_draws_each_floor(results: pd.DataFrame) -> None:
    from scalebench.report import charts

    for fig in (charts.quality_vs_latency(results, "fid"), charts.quality_vs_K(results, "fid")):
        names = [tr.name for tr in fig.data]
        assert any(n.startswith("vae") and n.endswith(f"(n={N - 100})") for n in names), names
        assert any(n.startswith("copier") and n.endswith(f"(n={N})") for n in names), names
        assert {f"{charts.FLOOR_NAME} at n={N - 100}", f"{charts.FLOOR_NAME} at n={N}"} <= set(names), names
