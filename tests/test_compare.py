"""The speed gate's decision rule, thresholds, matching and the `compare` command's exit codes."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalebench.cli import app
from scalebench.gate import (
    CompareError,
    Thresholds,
    adjust_p_values,
    compare_runs,
    latency_decision,
    latency_test,
    metric_decision,
    min_p_value,
    paired_t,
    parse_fraction,
)
from scalebench.results import MANIFEST, RecordWriter

runner = CliRunner()


def _noise(center: float, n: int, seed: int, spread: float = 0.03) -> list[float]:
    rng = random.Random(seed)
    return [center * (1 + rng.gauss(0, spread)) for _ in range(n)]


# ---------------------------------------------------------------------------- decision rule

def test_clear_slowdown_is_a_regression() -> None:
    d = latency_decision(_noise(1.0, 40, 0), _noise(1.3, 40, 1))
    assert d.verdict == "regression" and d.ratio > 1.2 and d.p_value < 1e-6 and "Mann-Whitney" in d.test


def test_clear_speedup_is_an_improvement() -> None:
    assert latency_decision(_noise(1.0, 40, 0), _noise(0.7, 40, 1)).verdict == "improvement"


def test_noise_is_not_a_regression() -> None:
    fired = [latency_decision(_noise(1.0, 40, 2 * s), _noise(1.0, 40, 2 * s + 1)).verdict for s in range(50)]
    assert set(fired) == {"ok"}


def test_ratio_beyond_threshold_but_not_significant_passes() -> None:
    base, cand = [1.0, 5.0, 2.0, 9.0, 3.0, 0.5], [1.2, 6.0, 2.5, 8.0, 4.0, 0.4]
    d = latency_decision(base, cand)
    assert d.ratio > 1.1 and d.p_value > 0.05
    assert d.verdict == "ok" and "not significant" in d.note


def test_significant_but_tiny_passes() -> None:
    d = latency_decision(_noise(1.0, 400, 0, spread=0.005), _noise(1.03, 400, 1, spread=0.005))
    assert d.p_value < 1e-10 and d.ratio < 1.1
    assert d.verdict == "ok" and "within" in d.note


def test_threshold_moves_the_line() -> None:
    base, cand = _noise(1.0, 40, 0), _noise(1.07, 40, 1)
    assert latency_decision(base, cand, threshold=0.10).verdict == "ok"
    assert latency_decision(base, cand, threshold=0.05).verdict == "regression"


def test_too_few_samples_cannot_detect() -> None:
    d = latency_decision([1.0, 1.01], [2.0, 2.02])  # exact MWU cannot reach 0.05 with 2 + 2 samples
    assert d.verdict == "insufficient" and "cannot detect" in d.note and "smallest p is 0.17" in d.note
    assert d.p_value is None
    assert d.ratio == pytest.approx(2.0)  # the ratio is still reported, just not decided on
    assert min_p_value(3, 3) == pytest.approx(0.05)  # 1/C(6,3): not below α = 0.05
    assert latency_decision([1.0, 1.01, 1.02], [2.0, 2.01, 2.02]).verdict == "insufficient"
    assert latency_decision([1.0, 1.01, 1.02], [2.0, 2.01, 2.02, 2.03]).verdict == "regression"  # 1/35 < 0.05
    d = latency_decision([], [], base_value=1.0, cand_value=2.0)  # old records without raw timings
    assert d.verdict == "insufficient" and "no raw timing samples" in d.note


def _medians(rounds: list[list[float]]) -> list[float]:
    return [statistics.median(r) for r in rounds]


def test_one_disturbed_round_cannot_fire_the_gate() -> None:
    base = [_noise(1.0, 20, s) for s in range(3)]
    cand = [_noise(1.0, 20, 10), _noise(1.6, 20, 11), _noise(1.0, 20, 12)]  # a burst of load in round 1
    pooled_b, pooled_c = [x for r in base for x in r], [x for r in cand for x in r]
    d = latency_decision(pooled_b, pooled_c, base_runs=_medians(base), cand_runs=_medians(cand))
    assert d.verdict == "ok" and "paired t over 3 rounds" in d.test
    slow = [_noise(1.3, 20, 20 + s) for s in range(3)]
    pooled_s = [x for r in slow for x in r]
    assert latency_decision(pooled_b, pooled_s, base_runs=_medians(base), cand_runs=_medians(slow)).verdict == "regression"


@pytest.mark.parametrize("metric, base, cand, verdict", [
    ("fid", 10.0, 12.0, "regression"),  # lower is better, +20% > 10%
    ("fid", 10.0, 10.5, "ok"),
    ("fid", 10.0, 8.0, "improvement"),
    ("diversity", 1.0, 0.9, "regression"),  # higher is better, -10% > 5%
    ("diversity", 1.0, 1.1, "improvement"),
    ("diversity", 1.0, 0.97, "ok"),
    ("nfe", 50, 60, "regression"),
    ("ref_nll", 0.0, 0.1, "regression"),
])
def test_quality_metrics_follow_their_declared_direction(metric, base, cand, verdict) -> None:
    assert metric_decision(metric, base, cand).verdict == verdict


# ---------------------------------------------------------------------------- thresholds

def test_threshold_parsing_and_globs() -> None:
    t = Thresholds.parse(["15%", "gpt*=5%", "gpt-big=0.2"])
    assert t.default == pytest.approx(0.15)
    assert t.for_generator("gpt") == pytest.approx(0.05)
    assert t.for_generator("gpt-big") == pytest.approx(0.2)  # the last matching rule wins
    assert t.for_generator("diffusion") == pytest.approx(0.15)
    assert Thresholds.parse(None).default == pytest.approx(0.10)
    assert parse_fraction("2.5%") == pytest.approx(0.025)


@pytest.mark.parametrize("value, needle", [
    ("fast", "'fast' is not a percentage"),
    ("10", "'10' is ambiguous; write '10%'"),
    ("=5%", "empty generator glob"),
    ("gpt*=lots", "'lots' is not a percentage"),
    ("5000%", "above 1000%"),
])
def test_bad_thresholds_name_the_value_and_the_fix(value, needle) -> None:
    with pytest.raises(CompareError, match=needle.replace("*", r"\*")):
        Thresholds.parse([value])


# ---------------------------------------------------------------------------- run directories

def _record(S: int, samples: list[float], point_id: str | None = None, status: str = "ok", **extra) -> dict:
    return {
        "schema": 1, "point_id": point_id or f"pid-S{S}", "generator": "toy", "sampler": "a", "S": S, "K": 1,
        "seed": 0, "n": 10, "batch_size": 10, "device": "cpu", "dtype": "float32", "status": status,
        "error": None if status == "ok" else "RuntimeError: boom", "ended_at": "2026-01-01T00:00:00+00:00",
        "metrics": extra.pop("metrics", {}),
        "cost": {"latency_s": sorted(samples)[len(samples) // 2] if samples else None, "nfe": S, "flops": 1e6 * S},
        "timing": {"per_sample_s": samples}, **extra,
    }


def _run(path: Path, records: list[dict], calibration: float | None = 0.01) -> Path:
    path.mkdir(parents=True)
    w = RecordWriter(path)
    for r in records:
        w.append(r)
    (path / MANIFEST).write_text(json.dumps({} if calibration is None else {"calibration_s": calibration}))
    return path


@pytest.fixture()
def runs(tmp_path: Path) -> dict[str, Path]:
    base = [_record(1, _noise(1e-3, 30, 0)), _record(2, _noise(2e-3, 30, 1))]
    same = [_record(1, _noise(1e-3, 30, 2)), _record(2, _noise(2e-3, 30, 3))]
    slow = [_record(1, _noise(1.5e-3, 30, 4)), _record(2, _noise(2e-3, 30, 5))]
    return {"base": _run(tmp_path / "base", base), "same": _run(tmp_path / "same", same),
            "slow": _run(tmp_path / "slow", slow), "tmp": tmp_path}


def test_cli_exit_codes(runs) -> None:
    res = runner.invoke(app, ["compare", str(runs["base"]), str(runs["same"])])
    assert res.exit_code == 0, res.output
    assert "OK" in res.output
    res = runner.invoke(app, ["compare", str(runs["base"]), str(runs["slow"])])
    assert res.exit_code == 1 and "regression" in res.output
    res = runner.invoke(app, ["compare", str(runs["base"]), str(runs["slow"]), "--threshold", "toy=60%"])
    assert res.exit_code == 0, res.output  # a per-generator threshold above the 50% slowdown


@pytest.mark.parametrize("args, needle", [
    (["compare", "BASE", "MISSING"], "does not exist"),
    (["compare", "BASE", "SAME", "--threshold", "gpt*=fast"], "'fast' is not a percentage"),
    (["compare", "BASE", "SAME", "--threshold", "10"], "ambiguous"),
    (["compare", "BASE", "SAME", "--alpha", "1.5"], "--alpha 1.5"),
    (["compare", "BASE", "NOCAL", "--normalize"], "no calibration_s"),
])
def test_cli_bad_input_exits_2_with_one_line(runs, args, needle) -> None:
    nocal = _run(runs["tmp"] / "nocal", [_record(1, _noise(1e-3, 30, 9))], calibration=None)
    paths = {"BASE": runs["base"], "SAME": runs["same"], "MISSING": runs["tmp"] / "missing", "NOCAL": nocal}
    res = runner.invoke(app, [str(paths[a]) if a in paths else a for a in args])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) <= 2


def test_json_output_for_machines(runs) -> None:
    res = runner.invoke(app, ["compare", str(runs["base"]), str(runs["slow"]), "--json"])
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert data["verdict"] == "regression" and data["matched"] == 2
    lat = {r["S"]: r for r in data["rows"] if r["metric"] == "latency_s"}
    assert lat[1]["verdict"] == "regression" and lat[2]["verdict"] == "ok"
    assert lat[1]["ratio"] == pytest.approx(1.5, rel=0.05) and lat[1]["p_value"] < 0.05


def test_unmatched_points_are_listed_and_ids_fall_back_to_settings(tmp_path) -> None:
    base = _run(tmp_path / "b", [_record(1, _noise(1e-3, 30, 0), "old-1"), _record(2, _noise(1e-3, 30, 1), "old-2"),
                                 _record(4, _noise(1e-3, 30, 2), "only-base")])
    cand = _run(tmp_path / "c", [_record(1, _noise(1e-3, 30, 3), "new-1"), _record(2, _noise(1e-3, 30, 4), "old-2"),
                                 _record(8, _noise(1e-3, 30, 5), "only-cand")])
    report = compare_runs(base, cand)
    by = {r.S: r.matched_by for r in report.rows if r.metric == "latency_s"}
    assert by == {1: "settings", 2: "point_id"}
    assert {(u.side, u.point_id) for u in report.unmatched} == {("baseline", "only-base"), ("candidate", "only-cand")}
    res = runner.invoke(app, ["compare", str(base), str(cand)])
    assert res.exit_code == 0 and "only-base" in res.output and "only-cand" in res.output
    assert "unmatched" in res.output
    with pytest.raises(CompareError, match="no point of"):
        compare_runs(_run(tmp_path / "x", [_record(16, [1e-3] * 5, "x")]), cand)


def test_a_point_failing_only_in_the_candidate_is_a_regression(tmp_path) -> None:
    base = _run(tmp_path / "b", [_record(1, _noise(1e-3, 30, 0))])
    cand = _run(tmp_path / "c", [_record(1, [], status="failed")])
    report = compare_runs(base, cand)
    assert report.regressed and report.rows[0].verdict == "failed" and "boom" in report.rows[0].note
    assert not compare_runs(cand, base).regressed  # fixed in the candidate: an improvement


def test_rounds_are_pooled_and_normalized_per_run(tmp_path) -> None:
    # Candidate ran on a machine twice as slow (calibration 0.02 vs 0.01): raw ratio 2, normalized 1.
    for i in range(3):
        _run(tmp_path / "base" / f"round-{i}", [_record(1, _noise(1e-3, 20, i))], calibration=0.01)
        _run(tmp_path / "cand" / f"round-{i}", [_record(1, _noise(2e-3, 20, 10 + i))], calibration=0.02)
    raw = compare_runs(tmp_path / "base", tmp_path / "cand")
    assert raw.regressed and "paired t over 3 rounds (df=2)" in raw.rows[0].test and raw.rows[0].samples == (60, 60)
    norm = compare_runs(tmp_path / "base", tmp_path / "cand", normalize=True)
    assert not norm.regressed and norm.rows[0].ratio == pytest.approx(1.0, abs=0.05)


def test_quality_rows_in_a_comparison(tmp_path) -> None:
    base = _run(tmp_path / "b", [_record(1, _noise(1e-3, 30, 0), metrics={"fid": 10.0, "diversity": 1.0})])
    cand = _run(tmp_path / "c", [_record(1, _noise(1e-3, 30, 1), metrics={"fid": 13.0, "diversity": 1.0})])
    report = compare_runs(base, cand)
    verdicts = {r.metric: r.verdict for r in report.rows}
    assert verdicts["fid"] == "regression" and verdicts["diversity"] == "ok" and report.exit_code == 1


def test_a_second_point_with_the_same_settings_is_listed_not_dropped(tmp_path) -> None:
    base = _run(tmp_path / "b", [_record(1, _noise(1e-3, 30, 0), "same")])
    cand = _run(tmp_path / "c", [_record(1, _noise(1e-3, 30, 1), "same"), _record(1, _noise(1e-3, 30, 2), "other")])
    report = compare_runs(base, cand)
    assert report.matched == 1
    assert [(u.side, u.point_id) for u in report.unmatched] == [("candidate", "other")]
    assert "already compared by point_id" in report.unmatched[0].reason


def test_with_paired_rounds_the_slowdown_must_repeat_across_rounds() -> None:
    base = [_noise(1.0, 20, s) for s in range(6)]
    bursts = [_noise(f, 20, 10 + i) for i, f in enumerate([1.4, 1.5, 1.3, 1.4, 0.8, 0.85])]  # 4 loaded rounds
    flat = [x for r in base for x in r]
    cand = [x for r in bursts for x in r]
    d = latency_decision(flat, cand, base_runs=_medians(base), cand_runs=_medians(bursts))
    assert d.ratio > 1.1 and "paired t over 6 rounds (df=5)" in d.test
    assert d.verdict == "ok" and "not significant" in d.note
    assert latency_decision(flat, cand).verdict == "regression"  # the raw-sample test alone would fire
    slow = [_noise(1.2, 20, 30 + s) for s in range(6)]
    d = latency_decision(flat, [x for r in slow for x in r], base_runs=_medians(base), cand_runs=_medians(slow))
    assert d.verdict == "regression" and d.p_value < 0.05


# ---------------------------------------------------------------------------- device, samples, multiplicity, pooling

def test_device_is_part_of_the_key_a_cpu_point_is_never_gated_against_cuda(tmp_path) -> None:
    base = _run(tmp_path / "b", [_record(1, _noise(1e-3, 30, 0), "cpu-1"), _record(2, _noise(1e-3, 30, 1), "b-2")])
    cand = _run(tmp_path / "c", [_record(1, _noise(5e-3, 30, 2), "cuda-1", device="cuda"),
                                 _record(2, _noise(1e-3, 30, 3), "c-2")])
    report = compare_runs(base, cand)
    assert report.matched == 1 and not report.regressed  # the 5× "slower" CUDA point is not compared
    assert {(u.side, u.point_id) for u in report.unmatched} == {("baseline", "cpu-1"), ("candidate", "cuda-1")}
    assert all(r.device == "cpu" for r in report.rows)
    # the same point_id on two devices (a hand-edited record): listed, not gated
    same = _run(tmp_path / "s", [_record(2, _noise(1e-3, 30, 4), "b-2", device="cuda"),
                                 _record(1, _noise(1e-3, 30, 5), "cpu-1")])
    report = compare_runs(base, same)
    assert [u.point_id for u in report.unmatched] == ["b-2", "b-2"]
    assert "never compared" in report.unmatched[0].reason and report.matched == 1


def test_a_point_that_cannot_reach_alpha_makes_the_gate_say_so_not_pass(tmp_path) -> None:
    base = _run(tmp_path / "b", [_record(1, [1e-3, 1.01e-3]), _record(2, _noise(1e-3, 30, 1))])
    cand = _run(tmp_path / "c", [_record(1, [3e-3, 3.01e-3]), _record(2, _noise(1e-3, 30, 2))])
    report = compare_runs(base, cand)
    lat = {r.S: r for r in report.rows if r.metric == "latency_s"}
    assert lat[1].verdict == "insufficient" and lat[1].ratio == pytest.approx(3.0, rel=0.01)
    assert lat[2].verdict == "ok" and report.family == 2 and not report.regressed
    assert [r.S for r in report.insufficient] == [1] and report.exit_code == 2
    line = ("cannot detect any slowdown with 1 paired round(s), 2 raw samples per side over 2 latency point(s) "
            "(1 cannot reach p < 0.05 after Holm–Bonferroni over 2): use ≥ 3 paired rounds")
    assert report.undetectable.startswith(line) and report.undetectable.endswith("or ≥ 4 raw samples per side")  # 2/C(8,4) < 0.05
    res = runner.invoke(app, ["compare", str(base), str(cand)])
    assert res.exit_code == 2 and "CANNOT DETECT" in res.output and "OK" not in res.output
    assert sum("cannot detect any slowdown" in ln for ln in res.output.splitlines()) == 1
    data = json.loads(runner.invoke(app, ["compare", str(base), str(cand), "--json"]).output)
    assert data["insufficient"] == 1 and data["family"] == 2 and data["exit_code"] == 2
    assert data["verdict"] == "undetectable" and data["undetectable"].startswith("cannot detect any slowdown")
    md = runner.invoke(app, ["compare", str(base), str(cand), "--markdown"])
    assert md.exit_code == 2 and "cannot detect a slowdown" in md.output


def test_a_regression_elsewhere_still_fails_with_exit_1(tmp_path) -> None:
    base = _run(tmp_path / "b", [_record(1, [1e-3, 1.01e-3]), _record(2, _noise(1e-3, 30, 1))])
    cand = _run(tmp_path / "c", [_record(1, [1e-3, 1.01e-3]), _record(2, _noise(2e-3, 30, 2))])
    report = compare_runs(base, cand)
    assert report.undetectable and report.regressed and report.exit_code == 1


def test_two_rounds_of_one_sample_each_cannot_detect_a_1_5x_slowdown(tmp_path) -> None:
    """A quick run (2 runs, one latency each) against a copy 1.5× slower: exit 2, never a silent pass."""
    for i in range(2):
        _run(tmp_path / "b" / f"run-{i}", [_record(S, [1e-3 * S]) for S in (1, 2, 4)])
        _run(tmp_path / "c" / f"run-{i}", [_record(S, [1.5e-3 * S]) for S in (1, 2, 4)])
    res = runner.invoke(app, ["compare", str(tmp_path / "b"), str(tmp_path / "c")])
    assert res.exit_code == 2, res.output
    assert "cannot detect any slowdown with 2 paired round(s), 2 raw samples per side over 3" in res.output
    for i in (2, 3):  # a third pair of runs enables the paired t-test: now it fires
        _run(tmp_path / "b" / f"run-{i}", [_record(S, [1e-3 * S * (1 + 0.01 * i)]) for S in (1, 2, 4)])
        _run(tmp_path / "c" / f"run-{i}", [_record(S, [1.5e-3 * S * (1 - 0.01 * i)]) for S in (1, 2, 4)])
    res = runner.invoke(app, ["compare", str(tmp_path / "b"), str(tmp_path / "c")])
    assert res.exit_code == 1, res.output


def test_quality_only_comparisons_have_no_latency_family(tmp_path) -> None:
    def rec(fid: float) -> dict:
        r = _record(1, [], metrics={"fid": fid})
        r["cost"] = {"nfe": 1}
        return r

    report = compare_runs(_run(tmp_path / "b", [rec(10.0)]), _run(tmp_path / "c", [rec(10.1)]))
    assert report.family == 0 and not report.undetectable and report.exit_code == 0
    report = compare_runs(_run(tmp_path / "b2", [rec(10.0)]), _run(tmp_path / "c2", [rec(13.0)]))
    assert report.exit_code == 1


def test_holm_and_bh_adjusted_p_values() -> None:
    ps = [0.01, 0.04, 0.03, 0.005]
    assert adjust_p_values(ps, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_p_values(ps, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p_values(ps, "none") == ps
    from scipy.stats import false_discovery_control

    rng = random.Random(0)
    many = [rng.random() ** 3 for _ in range(30)]
    assert adjust_p_values(many, "bh") == pytest.approx(list(false_discovery_control(many, method="bh")))
    holm = adjust_p_values(many, "holm")
    assert all(h >= p for h, p in zip(holm, many, strict=True)) and max(holm) <= 1
    with pytest.raises(CompareError, match="--correction"):
        adjust_p_values(ps, "sidak")


BORDERLINE = ([1.00, 1.01, 1.02, 1.03, 1.04, 1.05, 1.06, 1.07],  # a 13 % slowdown with raw p ≈ 0.007
              [1.02, 1.05, 1.12, 1.16, 1.18, 1.2, 1.22, 1.3])


def _ten_points(tmp_path: Path) -> tuple[Path, Path]:
    base_recs = [_record(1, [x * 1e-3 for x in BORDERLINE[0]])]
    cand_recs = [_record(1, [x * 1e-3 for x in BORDERLINE[1]])]
    for S in range(2, 11):  # nine unchanged points
        base_recs.append(_record(S, _noise(1e-3, 8, 100 + S)))
        cand_recs.append(_record(S, _noise(1e-3, 8, 200 + S)))
    return _run(tmp_path / "b", base_recs), _run(tmp_path / "c", cand_recs)


def test_the_correction_controls_false_alarms_across_points(tmp_path) -> None:
    base, cand = _ten_points(tmp_path)
    alone = compare_runs(base, cand, correction="none")
    row = next(r for r in alone.rows if r.metric == "latency_s" and r.S == 1)
    assert row.verdict == "regression" and row.p_value == pytest.approx(row.p_raw) and row.p_value < 0.01
    for method, name in (("holm", "Holm–Bonferroni over 10"), ("bh", "Benjamini–Hochberg over 10")):
        report = compare_runs(base, cand, correction=method)  # holm is the default
        row = next(r for r in report.rows if r.metric == "latency_s" and r.S == 1)
        assert report.family == 10 and name in row.test
        assert row.verdict == "ok" and "not significant after the correction (raw p=0.0067)" in row.note
        assert row.p_raw < 0.05 < row.p_value
    assert compare_runs(base, cand).correction == "holm"
    res = runner.invoke(app, ["compare", str(base), str(cand), "--correction", "none"])
    assert res.exit_code == 1
    res = runner.invoke(app, ["compare", str(base), str(cand), "--markdown"])
    assert res.exit_code == 0 and "Holm–Bonferroni over 10 latency points (family-wise error ≤ 0.05)" in res.output
    res = runner.invoke(app, ["compare", str(base), str(cand), "--correction", "sidak"])
    assert res.exit_code == 2 and "--correction" in res.output


def test_several_stored_runs_per_side_are_pooled(tmp_path) -> None:
    b = [_run(tmp_path / f"b{i}", [_record(1, _noise(1e-3, 10, i))]) for i in range(3)]
    c = [_run(tmp_path / f"c{i}", [_record(1, _noise(1.3e-3, 10, 10 + i))]) for i in range(2)]
    report = compare_runs(b, c)
    row = report.rows[0]
    assert "n=30/20" in row.test and row.verdict == "regression"
    res = runner.invoke(app, ["compare", "-b", str(b[0]), "-b", str(b[1]), "-b", str(b[2]), "-c", str(c[0]),
                              "-c", str(c[1]), "--json"])
    assert res.exit_code == 1, res.output
    data = json.loads(res.output)
    assert data["baseline"] == [str(p) for p in b] and "n=30/20" in data["rows"][0]["test"]
    one = runner.invoke(app, ["compare", "-b", str(b[0]), "-c", str(c[0]), "--json"])
    assert "n=10/10" in json.loads(one.output)["rows"][0]["test"]  # pooling really adds the samples


@pytest.mark.parametrize("args, needle", [
    (["B0", "C0", "-b", "B0"], "not both"),
    (["B0"], "expected BASELINE CANDIDATE, got 1"),
    (["-b", "B0"], "missing the candidate"),
])
def test_cli_sides_are_given_one_way(tmp_path, args, needle) -> None:
    paths = {"B0": _run(tmp_path / "b0", [_record(1, _noise(1e-3, 10, 0))]),
             "C0": _run(tmp_path / "c0", [_record(1, _noise(1e-3, 10, 1))])}
    res = runner.invoke(app, ["compare", *[str(paths.get(a, a)) for a in args]])
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output


def test_data_floors_are_shown_not_gated(tmp_path) -> None:
    base = _run(tmp_path / "b", [_record(1, _noise(1e-3, 30, 0), metrics={"fid": 10.0, "fid_floor": 0.87})])
    cand = _run(tmp_path / "c", [_record(1, _noise(1e-3, 30, 1), metrics={"fid": 10.0, "fid_floor": 1.5})])
    report = compare_runs(base, cand)
    floor = next(r for r in report.rows if r.metric == "fid_floor")
    assert floor.verdict == "info" and "not gated" in floor.note and not report.regressed


# ---------------------------------------------------------------------------- the paired t statistic

def test_paired_t_matches_scipy_one_sample_t() -> None:
    from scipy.stats import ttest_1samp

    logs = [0.12, 0.2, 0.15, 0.08, 0.18, 0.1]
    p_slow, p_fast, (lo, hi) = paired_t(logs)
    assert p_slow == pytest.approx(ttest_1samp(logs, 0, alternative="greater").pvalue)
    assert p_fast == pytest.approx(ttest_1samp(logs, 0, alternative="less").pvalue)
    assert p_slow + p_fast == pytest.approx(1.0)
    mean = statistics.fmean(logs)
    assert lo < math.exp(mean) < hi and math.log(hi) - mean == pytest.approx(mean - math.log(lo))
    assert paired_t([-x for x in logs])[1] == pytest.approx(p_slow)  # the mirror image
    assert paired_t([0.1, 0.1, 0.1])[:2] == (0.0, 1.0)  # no spread at all: decided by the sign
    assert paired_t([0.0, 0.0, 0.0])[:2] == (1.0, 1.0)


def test_latency_test_uses_rounds_from_three_on_and_raw_samples_below() -> None:
    raw_b, raw_c = _noise(1.0, 24, 0), _noise(1.3, 24, 1)
    t = latency_test(raw_b, raw_c, base_rounds=[1.0, 1.02, 0.99], cand_rounds=[1.3, 1.28, 1.33])
    assert "paired t over 3 rounds (df=2)" in t.test and t.p_min == 0 and t.rounds == 3
    assert t.ratio == pytest.approx(math.exp(statistics.fmean(
        [math.log(1.3), math.log(1.28 / 1.02), math.log(1.33 / 0.99)])))
    assert t.ci is not None and t.ci[0] < t.ratio < t.ci[1]
    t = latency_test(raw_b, raw_c, base_rounds=[1.0, 1.02], cand_rounds=[1.3, 1.28])
    assert t.test == "Mann-Whitney n=24/24" and t.p_min == pytest.approx(min_p_value(24, 24)) and t.rounds == 2
    t = latency_test(raw_b, raw_c, base_rounds=[1.0, 1.02, 1.0], cand_rounds=[1.3, 1.28])  # unequal: not paired
    assert t.test.startswith("Mann-Whitney") and t.rounds == 0


def test_paired_t_false_alarm_rate_on_null_rounds_is_at_most_alpha() -> None:
    """6 rounds whose per-round log ratios are pure noise: a one-sided 5 % test fires ≈ 5 % of the time."""
    rng = random.Random(1)
    fired = sum(paired_t([rng.gauss(0, 0.05) for _ in range(6)])[0] < 0.05 for _ in range(4000))
    assert 0.035 < fired / 4000 < 0.065


# ---------------------------------------------------------------------------- the defaults fire on a planted slowdown

def _ab_like(tmp_path: Path, slow: float, rounds: int = 6, seed: int = 0) -> tuple[Path, Path]:
    """The layout `scalebench ab` writes: <side>/round-<i>, four points (as scalebench/specs/ci-speed.toml),
    each round's load shared by both sides of the round (a factor drawn per round), ≥ 12 samples."""
    rng = random.Random(seed)
    for i in range(rounds):
        load = 1 + abs(rng.gauss(0, 0.1))  # a moment's load hits both sides of one round
        for side, f in (("baseline", 1.0), ("candidate", slow)):
            recs = [_record(S, _noise(1e-3 * S * load * f, 12, rng.randrange(10**6), spread=0.05)) for S in (1, 2, 4, 8)]
            _run(tmp_path / side / f"round-{i}", recs)
    return tmp_path / "baseline", tmp_path / "candidate"


def test_a_planted_2x_slowdown_fails_at_the_defaults(tmp_path) -> None:
    base, cand = _ab_like(tmp_path, 2.0)
    res = runner.invoke(app, ["compare", str(base), str(cand), "--json"])
    assert res.exit_code == 1, res.output
    lat = [r for r in json.loads(res.output)["rows"] if r["metric"] == "latency_s"]
    assert len(lat) == 4 and all(r["verdict"] == "regression" for r in lat)
    assert all("paired t over 6 rounds" in r["test"] and "Holm–Bonferroni over 4" in r["test"] for r in lat)
    assert all(1.8 < r["ratio"] < 2.2 and r["ratio_ci"][0] > 1.5 for r in lat)


def test_no_change_passes_at_the_defaults(tmp_path) -> None:
    base, cand = _ab_like(tmp_path, 1.0)
    res = runner.invoke(app, ["compare", str(base), str(cand)])
    assert res.exit_code == 0, res.output
    assert "OK" in res.output


def test_default_view_shows_latency_and_failures_all_shows_the_rest(tmp_path) -> None:
    metrics_b = {"fid": 10.0, "fid_floor": 0.9, "diversity": 1.0}
    metrics_c = {"fid": 13.0, "fid_floor": 0.9, "diversity": 1.0}
    base = _run(tmp_path / "b", [_record(1, _noise(1e-3, 30, 0), metrics=metrics_b)])
    cand = _run(tmp_path / "c", [_record(1, _noise(1e-3, 30, 1), metrics=metrics_c)])
    from scalebench.gate.render import visible_rows

    report = compare_runs(base, cand)
    shown = {r.metric for r in visible_rows(report)}
    assert shown == {"latency_s", "fid"}  # fid regressed; the floor, diversity, NFE, FLOPs are quiet
    assert {r.metric for r in visible_rows(report, show_all=True)} >= {"fid_floor", "diversity", "nfe", "flops"}
    res = runner.invoke(app, ["compare", str(base), str(cand)])
    assert res.exit_code == 1 and "fid_floor" not in res.output and "--all shows them" in res.output
    res = runner.invoke(app, ["compare", str(base), str(cand), "--all"])
    assert "fid_floor" in res.output and "diversity" in res.output
    md = runner.invoke(app, ["compare", str(base), str(cand), "--markdown"]).output
    assert "fid_floor" not in md and "| fid |" in md.replace("fid | 10", "fid |")
    data = json.loads(runner.invoke(app, ["compare", str(base), str(cand), "--json"]).output)
    assert {r["metric"] for r in data["rows"]} >= {"fid_floor", "diversity"}  # JSON keeps every row
