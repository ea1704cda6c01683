"""Contracts, registry, spec validation, records and the runner (on the toy generator)."""

from __future__ import annotations

import json

import pytest

from scalebench.api import Axis, Budget, MethodCard
from scalebench.generators import GENERATORS
from scalebench.record import Record
from scalebench.registry import Registry, RegistryError
from scalebench.results import POINTS, RecordWriter, decode_preview, iter_records, latest_records, load_results
from scalebench.sweep.plan import expand
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import SpecError, parse_spec
from tests.conftest import INTERLEAVED, toy_spec


def test_budget_and_axis_validation() -> None:
    with pytest.raises(ValueError, match="Budget.K=0"):
        Budget(S=1, K=0)
    card = MethodCard(name="m", family="f", category="sequence", S=Axis("s", 4, values=(1, 4)), K=Axis.fixed(1))
    card.check_budget(Budget(4, 1))
    with pytest.raises(ValueError, match=r"S=3 is not valid; valid S: \{1,4\}"):
        card.check_budget(Budget(3, 1))
    assert card.K.is_fixed and card.K.describe().startswith("—")


def test_registry_aliases_lazy_targets_and_suggestions() -> None:
    reg: Registry = Registry("thing")
    reg.register("alpha", "json:dumps", aliases=("a",))
    assert reg.get("a") is json.dumps
    with pytest.raises(RegistryError, match="did you mean 'alpha'"):
        reg.canonical("alpah")
    assert GENERATORS.canonical("ddim") == "diffusion"


def test_spec_errors_name_key_and_value() -> None:
    with pytest.raises(SpecError, match="unknown key 'sample'; did you mean 'samples'"):
        parse_spec({**toy_spec(), "sample": 3})
    with pytest.raises(SpecError, match=r"K = \[0\] has 0"):
        parse_spec(toy_spec(generators=[{"name": "toy", "K": [0]}]))
    with pytest.raises(SpecError, match="batch_size = 'big'"):
        parse_spec(toy_spec(batch_size="big"))
    with pytest.raises(SpecError, match="unknown quality metric 'fidd'"):
        parse_spec(toy_spec(metrics=["fidd"]))
    with pytest.raises(SpecError, match="K=1000 is not valid"):
        expand(parse_spec(toy_spec(generators=[{"name": "toy", "K": [1000]}])))
    with pytest.raises(SpecError, match="unknown sampler 'c'"):
        expand(parse_spec(toy_spec(generators=[{"name": "toy", "samplers": ["c"]}])))
    with pytest.raises(SpecError, match="unknown generator 'toi'.*did you mean 'toy'"):
        expand(parse_spec(toy_spec(generators=[{"name": "toi"}])))


def test_point_identity_changes_with_settings() -> None:
    a = expand(parse_spec(toy_spec()))
    b = expand(parse_spec(toy_spec()))
    c = expand(parse_spec(toy_spec(samples=30)))
    assert [p.point_id for p in a] == [p.point_id for p in b]
    assert not {p.point_id for p in a} & {p.point_id for p in c}
    assert len({p.point_id for p in a}) == 2


def test_only_one_sampler_plans_that_sampler_with_the_same_point_ids() -> None:
    spec = parse_spec(toy_spec(generators=[{"name": "toy", "samplers": ["a", "b"], "K": [1, 2]}]))
    every = expand(spec)
    just_b = expand(spec, only=("toy/b",))
    assert {p.sampler for p in just_b} == {"b"} and len(just_b) == 2
    assert {p.point_id for p in just_b} == {p.point_id for p in every if p.sampler == "b"}
    assert len(expand(spec, only=("toy/a", "toy/b"))) == len(every) == len(expand(spec, only=("toy",)))
    with pytest.raises(SpecError, match="unknown sampler 'c'"):
        expand(spec, only=("toy/c",))
    narrow = parse_spec(toy_spec(generators=[{"name": "toy", "samplers": ["a"], "K": [1]}]))
    with pytest.raises(SpecError, match=r"runs toy with samplers \['a'\], not \['b'\]"):
        expand(narrow, only=("toy/b",))


def test_resume_skips_finished_and_reruns_changed(tmp_path) -> None:
    spec = parse_spec(toy_spec())
    r1 = run_sweep(spec, tmp_path / "run", progress=False)
    assert (r1.planned, r1.ran, r1.failed) == (2, 2, 0)
    r2 = run_sweep(spec, tmp_path / "run", progress=False)
    assert (r2.skipped, r2.ran) == (2, 0)
    r3 = run_sweep(parse_spec(toy_spec(generators=[{"name": "toy", "samplers": ["a"], "K": [1, 2, 3]}])),
                   tmp_path / "run", progress=False)
    assert (r3.skipped, r3.ran) == (2, 1)
    assert len(list(iter_records(tmp_path / "run"))) == 3
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    # r2 had nothing to run and wrote nothing (a finished run stays byte for byte as it was)
    assert len(manifest["invocations"]) == 2 and manifest["calibration_s"] > 0


def test_failing_points_are_recorded_and_sweep_goes_on(tmp_path) -> None:
    spec = parse_spec(toy_spec(generators=[{"name": "toy", "samplers": ["a"], "K": [13, 7, 3]}]))
    res = run_sweep(spec, tmp_path / "run", progress=False)
    assert (res.ran, res.failed) == (3, 2)
    recs = {r.K: r for r in iter_records(tmp_path / "run")}
    assert recs[13].status == "failed" and "unlucky K" in recs[13].error
    assert recs[7].status == "failed" and "NaN" in recs[7].error
    assert recs[3].status == "ok" and recs[3].cost.nfe == 3
    # failed points are retried on resume; the ok one is not
    again = run_sweep(spec, tmp_path / "run", progress=False)
    assert (again.skipped, again.ran) == (1, 2)


def test_record_contents_timing_and_cost(tmp_path) -> None:
    run_sweep(parse_spec(toy_spec(timing=INTERLEAVED)), tmp_path / "run", progress=False)
    rec = next(iter(latest_records(tmp_path / "run").values()))
    t = rec.timing
    assert t.mode == "interleaved" and t.rounds == len(t.samples_s) == 7 and isinstance(t.order_seed, int)
    assert len(t.positions) == 7 and t.noisy is False
    written = rec.to_json()
    for key in ("point_id", "spec_hash", "generator", "sampler", "S", "K", "seed", "n", "batch_size", "device",
                "dtype", "provenance", "started_at", "ended_at", "status", "timing", "cost", "floors", "schema"):
        assert key in written
    assert rec.timing.repeats >= 2 and len(rec.timing.per_sample_s) == rec.timing.repeats
    cost = rec.cost
    assert cost.latency_p10_s <= cost.latency_s <= cost.latency_p90_s
    assert cost.flops == pytest.approx(2 * 64 * 64 * rec.K, rel=0.01)  # one Linear(64,64) per step
    assert decode_preview(rec.preview).shape == (16, 1, 8, 8)
    assert rec.provenance["versions"]["torch"]


def test_torn_last_line_is_tolerated(tmp_path) -> None:
    run_dir = tmp_path / "run"
    run_sweep(parse_spec(toy_spec()), run_dir, progress=False)
    with open(run_dir / POINTS, "a") as f:
        f.write('{"point_id": "torn", "stat')
    assert len(list(iter_records(run_dir))) == 2
    RecordWriter(run_dir).append(Record(point_id="x", status="ok"))
    assert [r.point_id for r in iter_records(run_dir)][-1] == "x"


def test_determinism_same_seed_same_samples(tmp_path) -> None:
    spec = parse_spec(toy_spec())
    run_sweep(spec, tmp_path / "a", progress=False)
    run_sweep(spec, tmp_path / "b", progress=False)
    a = {r.point_id: r.preview["data"] for r in iter_records(tmp_path / "a")}
    b = {r.point_id: r.preview["data"] for r in iter_records(tmp_path / "b")}
    assert a == b
    other = parse_spec(toy_spec(seeds=[1]))
    run_sweep(other, tmp_path / "c", progress=False)
    c = [r.preview["data"] for r in iter_records(tmp_path / "c")]
    assert set(c).isdisjoint(a.values())


def test_load_results_tidy_and_export(tmp_path) -> None:
    from scalebench.results import export

    run_sweep(parse_spec(toy_spec(seeds=[0, 1])), tmp_path / "run", progress=False)
    df = load_results(tmp_path / "run")
    assert set(df["metric"]) == {"latency_s", "nfe", "flops", "peak_mem_bytes"}
    assert len(df) == 4 * 4  # 2 K × 2 seeds × 4 cost metrics
    assert {"generator", "S", "K", "seed", "value", "better", "nfe", "latency_s", "git_commit"} <= set(df.columns)
    paths = export(df, tmp_path / "out")
    import pandas as pd

    back = pd.read_parquet(paths[0])
    assert len(back) == len(df) and paths[1].read_text().startswith("run,")
