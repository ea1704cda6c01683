"""History store, step detector and site: a planted step is named at its commit, a flat history has none."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scalebench.cli import app
from scalebench.history.series import histories
from scalebench.history.site import build_site, sparkline
from scalebench.history.steps import detect_steps, noise_scale, partition, weighted_median
from scalebench.history.store import ENTRY, entries, file_run, machine_name
from scalebench.history.synthetic import Noise, fake_sha, measured_noise, simulate, write_store
from tests.report_fixtures import make_record, write_run

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def noise() -> Noise:
    """This machine's run-to-run noise, measured from the committed ci-speed runs of one commit."""
    n = measured_noise(sorted((ROOT / "results/baseline-ci-speed").glob("run-*")))
    assert 0.01 < n.sigma < 0.2 and len(n.spreads) >= 12
    return n


# ---- the detector -------------------------------------------------------------------------------------------


def test_weighted_median_and_noise_scale():
    assert weighted_median(np.array([1.0, 2.0, 3.0]), np.ones(3)) == 2.0
    assert weighted_median(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 10.0])) == 3.0
    steps = np.r_[np.zeros(10), np.ones(10)]  # one level step spoils one difference only
    assert noise_scale(steps, floor=1e-6) == pytest.approx(1e-6)


def test_partition_finds_clean_levels():
    x = np.r_[np.zeros(8), np.full(6, 1.0), np.full(7, -0.5)]
    assert partition(x, np.full(len(x), 50.0), beta=3.0) == [8, 14]


def test_a_lone_outlier_is_not_a_step():
    y = np.full(20, 1.0)
    y[9] = 1.5  # one slow run: min segment 2 and the L1 fit keep it noise
    assert detect_steps(y * np.exp(np.linspace(0, 0.001, 20))) == []


def test_deterministic_series_small_change_below_threshold():
    y = [10.0] * 10 + [10.2] * 10  # a 2 % change of a deterministic metric: found, but under 5 %
    assert detect_steps(y) == []
    assert [s.index for s in detect_steps(y, threshold=0.01)] == [10]


def test_wide_spread_runs_count_less():
    rng = np.random.default_rng(0)
    y = np.exp(rng.normal(0, 0.01, 24))
    y[12:15] *= 1.3  # three slow runs, each from a disturbed machine (10× the usual spread)
    spreads = np.full(24, 0.05)
    assert [s.index for s in detect_steps(y)] == [12, 15]  # unweighted, it is a step up and back
    spreads[12:15] = 0.5
    assert detect_steps(y, spreads) == []


def test_planted_step_in_machine_noise_is_found_at_its_commit(noise):
    s = simulate(np.random.default_rng(7), 24, noise, step_at=12, step=0.15)
    found = detect_steps(s.median, s.spread)
    assert [(f.index, round(f.change, 2) > 0.05) for f in found] == [(12, True)]


def test_detector_rates_on_machine_noise(noise):
    """A small version of benchmarks/history_steps.py: false alarms stay rare, 15 % steps are found."""
    rng = np.random.default_rng(11)
    n, trials = 20, 60
    alarms = sum(bool(detect_steps((s := simulate(rng, n, noise)).median, s.spread)) for _ in range(trials))
    found = 0
    for _ in range(trials):
        at = int(rng.integers(5, n - 4))
        s = simulate(rng, n, noise, at, 0.15)
        found += any(abs(f.index - at) <= 1 and f.change > 0 for f in detect_steps(s.median, s.spread))
    assert alarms / trials <= 0.10
    assert found / trials >= 0.5


# ---- the store ----------------------------------------------------------------------------------------------


def _run(tmp: Path, name: str = "ci-speed", commit: str | None = None, lat: float = 1e-3) -> Path:
    rec = make_record("gpt", 4, 1, 0, {}, latency_s=lat, with_preview=False)
    return write_run(tmp / name, [rec], {"spec": {"name": name}, "git_commit": commit or fake_sha(0)})


def test_file_run_layout_and_refusals(tmp_path):
    run = _run(tmp_path)
    store = tmp_path / "store"
    e = file_run(run, store, machine="box", date="2026-01-02T03:04:05+02:00", subject="s")
    assert e.path == store / "box" / fake_sha(0) / "ci-speed"
    assert sorted(p.name for p in e.path.iterdir()) == [ENTRY, "manifest.json", "points.jsonl"]
    meta = json.loads((e.path / ENTRY).read_text())
    assert meta["date"] == "2026-01-02T01:04:05+00:00" and meta["calibration_s"] == 0.01
    assert json.loads((store / "box" / "machine.json").read_text())["derived"] is False
    with pytest.raises(Exception, match="pass --replace"):
        file_run(run, store, machine="box")
    file_run(run, store, machine="box", replace=True)
    assert [x.commit for x in entries(store)] == [fake_sha(0)]


def test_derived_machine_name_is_a_safe_dir():
    hw = {"cpu": "AMD EPYC 7B13 64-Core Processor", "cores": 2, "gpu": "", "torch": "2.14.1"}
    assert machine_name(hw) == "amd-epyc-7b13-64-2c-torch2.14.1"
    assert machine_name({**hw, "gpu": "NVIDIA H200"}) == "nvidia-h200-torch2.14.1"


def test_dirty_or_unknown_commit_is_refused(tmp_path):
    with pytest.raises(Exception, match=r"uncommitted changes .*--commit SHA"):
        file_run(_run(tmp_path, commit=fake_sha(1) + "+dirty"), tmp_path / "s")
    with pytest.raises(Exception, match=r"names no commit .*--commit"):
        file_run(_run(tmp_path / "b", commit="unknown"), tmp_path / "s")


def test_machines_are_separate_lines(tmp_path):
    store = tmp_path / "store"
    for i in range(3):
        for m, lat in (("fast", 1e-3), ("slow", 3e-3)):
            file_run(_run(tmp_path / f"{m}{i}", commit=fake_sha(i), lat=lat), store, machine=m,
                     date=f"2026-01-0{i + 1}T00:00:00+00:00")
    hs = histories(entries(store))
    assert [(h.machine, len(h.runs)) for h in hs] == [("fast", 3), ("slow", 3)]
    assert {h.key for h in hs} != 1 and all(len({r.latency for r in h.runs}) == 1 for h in hs)


# ---- the site and the CLI -----------------------------------------------------------------------------------


def test_planted_step_store_names_the_commit(tmp_path, noise):
    store = tmp_path / "store"
    shas = write_store(store, 24, noise, seed=0, step_at=12, step=0.15)
    index, points = build_site(store, tmp_path / "site")
    found = [(p.label, f.metric, f.kind, f.first.commit, f.last_before.commit) for p in points for f in p.findings]
    assert found == [("gpt S=4 K=1", "latency_s", "regression", shas[12], shas[11])]
    html = index.read_text(encoding="utf-8")
    assert f"{shas[11][:10]}..{shas[12][:10]}" in html and "1 regression(s), 0 improvement(s)" in html


def test_flat_store_reports_nothing(tmp_path, noise):
    store = tmp_path / "store"
    write_store(store, 24, noise, seed=0)
    index, points = build_site(store, tmp_path / "site")
    assert [f for p in points for f in p.findings] == []
    assert 'id="no-findings"' in index.read_text(encoding="utf-8")


def test_cli_add_and_build(tmp_path):
    store = tmp_path / "store"
    for i in range(4):
        run = _run(tmp_path / f"r{i}", commit=fake_sha(i), lat=1e-3 * (1 + i))
        r = runner.invoke(app, ["history", "add", str(run), "--store", str(store), "--machine", "m"])
        assert r.exit_code == 0, r.output
        assert "filed" in r.output
    r = runner.invoke(app, ["history", str(store), "--out", str(tmp_path / "site")])  # `history STORE` = build
    assert r.exit_code == 0, r.output
    assert "1 points" in r.output and (tmp_path / "site" / "index.html").is_file()
    r = runner.invoke(app, ["history", "build", str(store), "--out", str(tmp_path / "site2"), "--normalize"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args, message", [
    (["history", "{tmp}/missing", "--out", "{tmp}/site"], "history store {tmp}/missing does not exist"),
    (["history", "{tmp}/empty", "--out", "{tmp}/site"], "holds no runs"),
    (["history", "add", "{tmp}/empty", "--store", "{tmp}/s"], "has no manifest.json"),
    (["history", "add", "{tmp}/missing", "--store", "{tmp}/s"], "run directory {tmp}/missing does not exist"),
    (["history", "add", "{tmp}/run", "--store", "{tmp}/s", "--machine", "../x"], "not a safe directory name"),
    (["history", "add", "{tmp}/run", "--store", "{tmp}/s", "--commit", "zz"], "names no commit"),
    (["history", "{tmp}/s0", "--out", "{tmp}/site", "--threshold", "0"], "--threshold 0.0"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    run = _run(tmp_path)
    (tmp_path / "run").symlink_to(run)
    file_run(run, tmp_path / "s0", machine="m")
    r = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert message.format(tmp=tmp_path) in lines[0]


def test_sparkline_marks_steps():
    svg = sparkline([1.0, 1.0, 2.0, math.nan, 2.0], [(2, "#a11")])
    assert svg.startswith("<svg") and svg.count("<circle") == 1 and "<script" not in svg
    assert sparkline([1.0]) == ""


def test_committed_real_store_builds(tmp_path):
    """results/history-cpu: ci-speed run at ≥ 5 commits of this repository (docs/history.md)."""
    store = ROOT / "results/history-cpu"
    found = entries(store)
    assert len({e.commit for e in found}) >= 5 and {e.spec for e in found} == {"ci-speed"}
    index, points = build_site(store, tmp_path / "site")
    assert len(points) == 4 and all(len(p.runs) == len(found) for p in points)


def test_commits_in_one_second_keep_their_git_order(tmp_path):
    from scalebench.history.store import Entry, order_key

    same = "2026-01-01T00:00:00+00:00"
    es = [Entry("m", sha, "s", same, "", tmp_path, depth=d) for sha, d in (("f" * 40, 1), ("0" * 40, 2))]
    assert [e.depth for e in sorted(es, key=order_key)] == [1, 2]  # not the sha order


def test_a_half_written_entry_is_not_read(tmp_path):
    store = tmp_path / "store"
    e = file_run(_run(tmp_path), store, machine="m")
    shutil.copytree(e.path, e.path.with_name(".ci-speed-tmp123"))  # left by a killed `history add`
    assert [x.spec for x in entries(store)] == ["ci-speed"]
