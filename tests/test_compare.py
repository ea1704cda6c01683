"""The speed gate's decision rule, thresholds, matching and the `compare` command's exit codes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalebench.cli import app
from scalebench.compare import (
    CompareError,
    Thresholds,
    adjust_p_values,
    compare_runs,
    latency_decision,
    metric_decision,
    min_p_value,
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


def test_too_few_samples_say_not_enough_samples() -> None:
    d = latency_decision([1.0, 1.01], [2.0, 2.02])  # exact MWU cannot reach 0.05 with 2 + 2 samples
    assert d.verdict == "insufficient" and "not enough samples" in d.note and d.p_value is None
    assert d.ratio == pytest.approx(2.0)  # the ratio is still reported, just not decided on
    assert min_p_value(3, 3) == pytest.approx(0.05)  # 1/C(6,3): not below α = 0.05
    assert latency_decision([1.0, 1.01, 1.02], [2.0, 2.01, 2.02]).verdict == "insufficient"
    assert latency_decision([1.0, 1.01, 1.02], [2.0, 2.01, 2.02, 2.03]).verdict == "regression"  # 1/35 < 0.05
    d = latency_decision([], [], base_value=1.0, cand_value=2.0)  # old records without raw timings
    assert d.verdict == "insufficient" and "no raw timing samples" in d.note


def test_one_disturbed_round_cannot_fire_the_gate() -> None:
    base = [_noise(1.0, 20, s) for s in range(3)]
    cand = [_noise(1.0, 20, 10), _noise(1.6, 20, 11), _noise(1.0, 20, 12)]  # a burst of load in round 1
    pooled_b, pooled_c = [x for r in base for x in r], [x for r in cand for x in r]
    assert latency_decision(pooled_b, pooled_c, base_runs=base, cand_runs=cand).verdict == "ok"
    slow = [_noise(1.3, 20, 20 + s) for s in range(3)]
    pooled_s = [x for r in slow for x in r]
    assert latency_decision(pooled_b, pooled_s, base_runs=base, cand_runs=slow).verdict == "regression"


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
    assert raw.regressed and "3 rounds" in raw.rows[0].test and "n=60/60" in raw.rows[0].test
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


def test_with_five_or_more_rounds_the_slowdown_must_repeat_across_rounds() -> None:
    base = [_noise(1.0, 20, s) for s in range(6)]
    bursts = [_noise(f, 20, 10 + i) for i, f in enumerate([1.4, 1.5, 1.3, 1.4, 0.8, 0.85])]  # 4 loaded rounds
    flat = [x for r in base for x in r]
    d = latency_decision(flat, [x for r in bursts for x in r], base_runs=base, cand_runs=bursts)
    assert d.ratio > 1.1 and "Wilcoxon over 6 rounds" in d.test
    assert d.verdict == "ok" and "not significant" in d.note  # the raw-sample test alone would fire
    slow = [_noise(1.2, 20, 30 + s) for s in range(6)]
    d = latency_decision(flat, [x for r in slow for x in r], base_runs=base, cand_runs=slow)
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


def test_not_enough_samples_is_reported_not_decided(tmp_path) -> None:
    base = _run(tmp_path / "b", [_record(1, [1e-3, 1.01e-3]), _record(2, _noise(1e-3, 30, 1))])
    cand = _run(tmp_path / "c", [_record(1, [3e-3, 3.01e-3]), _record(2, _noise(1e-3, 30, 2))])
    report = compare_runs(base, cand)
    lat = {r.S: r for r in report.rows if r.metric == "latency_s"}
    assert lat[1].verdict == "insufficient" and lat[1].ratio == pytest.approx(3.0, rel=0.01)
    assert lat[2].verdict == "ok" and report.family == 1 and not report.regressed
    assert [r.S for r in report.insufficient] == [1]
    res = runner.invoke(app, ["compare", str(base), str(cand)])
    assert res.exit_code == 0 and "not enough samples" in res.output
    data = json.loads(runner.invoke(app, ["compare", str(base), str(cand), "--json"]).output)
    assert data["insufficient"] == 1 and data["family"] == 1


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
