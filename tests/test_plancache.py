"""A finished sweep's rerun skips planning (no torch) only when the remembered plan still holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalebench.results import POINTS
from scalebench.sweep import plancache
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
GAN = {"name": "tiny", "samples": 64, "batch_size": 64, "metrics": ["fid"],
       "timing": {"warmup": 0, "min_repeats": 1, "min_duration_s": 0.0, "mode": "interleaved", "rounds": 1},
       "generators": [{"name": "gan", "seeds": [0, 1]}]}


def _toml(spec: dict, path: Path) -> Path:
    gen = spec["generators"][0]
    t = spec["timing"]
    path.write_text(
        f'name = "{spec["name"]}"\nsamples = {spec["samples"]}\nbatch_size = {spec["batch_size"]}\n'
        f'metrics = {json.dumps(spec["metrics"])}\n'
        f'[timing]\nwarmup = {t["warmup"]}\nmin_repeats = {t["min_repeats"]}\nmin_duration_s = {t["min_duration_s"]}\n'
        f'mode = "{t["mode"]}"\nrounds = {t["rounds"]}\n'
        f'[[generators]]\nname = "{gen["name"]}"\nseeds = {json.dumps(gen["seeds"])}\n', encoding="utf-8")
    return path


def test_built_in_specs_get_a_key_that_follows_what_the_plan_reads(monkeypatch) -> None:
    spec = parse_spec(GAN)
    key = plancache.plan_key(spec, ())
    assert key and key == plancache.plan_key(parse_spec(GAN), ())
    assert plancache.plan_key(spec, ("gan",)) != key
    assert plancache.plan_key(parse_spec({**GAN, "samples": 32, "batch_size": 32}), ()) != key
    monkeypatch.setenv("SCALEBENCH_INCEPTION", "/elsewhere")
    assert plancache.plan_key(spec, ()) != key
    monkeypatch.delenv("SCALEBENCH_INCEPTION")
    monkeypatch.setattr(plancache, "package_digest", lambda: "another package")
    assert plancache.plan_key(spec, ()) != key


def test_a_plugin_args_or_a_dataset_make_the_plan_uncacheable() -> None:
    toy = {**GAN, "metrics": [], "generators": [{"name": "toy", "K": [1]}]}  # tests.conftest's, not built in
    assert plancache.plan_key(parse_spec(toy), ()) is None
    with_dataset = {**GAN, "generators": [{"name": "gan", "dataset": "digits"}]}
    assert plancache.plan_key(parse_spec(with_dataset), ()) is None


def test_a_remembered_plan_answers_only_all_finished(tmp_path) -> None:
    spec = parse_spec(GAN)
    run = tmp_path / "run"
    first = run_sweep(spec, run, progress=False)
    assert (first.planned, first.ran) == (2, 2)
    assert plancache.cached_plan(plancache.plan_key(spec, ())) is not None
    again = run_sweep(spec, run, progress=False)
    assert (again.planned, again.skipped, again.ran) == (2, 2, 0)
    lines = (run / POINTS).read_text(encoding="utf-8").splitlines()
    last = json.loads(lines[-1])
    (run / POINTS).write_text("\n".join(x for x in lines if json.loads(x)["point_id"] != last["point_id"]) + "\n",
                              encoding="utf-8")
    resumed = run_sweep(spec, run, progress=False)  # the cached plan is not all finished: planned for real
    assert (resumed.planned, resumed.skipped, resumed.ran) == (2, 1, 1)


@pytest.mark.slow  # two fresh processes, a sweep and its rerun (~11 s)
def test_the_rerun_of_a_finished_sweep_imports_no_torch(tmp_path) -> None:
    spec_path = _toml(GAN, tmp_path / "tiny.toml")
    run = tmp_path / "run"
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT), "SCALEBENCH_CACHE": str(tmp_path / "cache")}
    argv = ["run", str(spec_path), "--out", str(run), "--no-progress"]
    subprocess.run([sys.executable, "-m", "scalebench.cli", *argv], env=env, check=True, capture_output=True)
    code = (f"import sys; from scalebench.cli import app; app({argv!r}, standalone_mode=False); "
            "print('IMPORTED', sorted(m for m in sys.modules if m == 'torch' or m.startswith('scalebench.methods.')))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "2 points: 2 already done, 0 run" in out and "IMPORTED []" in out


def _invoke(args: list[str]) -> str:
    from typer.testing import CliRunner

    from scalebench.cli import app

    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.output


def _body(output: str) -> str:
    """The printed summary and table, without the closing line (it carries the wall time)."""
    return output[:output.rindex("points:")]


def test_a_rerun_replays_the_printed_output_until_a_record_changes(tmp_path, monkeypatch) -> None:
    from scalebench import results

    spec_path = _toml(GAN, tmp_path / "tiny.toml")
    run = tmp_path / "run"
    argv = ["run", str(spec_path), "--out", str(run), "--no-progress"]
    first = _invoke(argv)
    assert "2 run" in first and "fid" in first

    def no_pandas(*a, **k):
        raise AssertionError("a finished run's rerun derived its output again")

    with monkeypatch.context() as m:
        m.setattr(results, "load_results", no_pandas)
        again = _invoke(argv)
    assert "2 already done, 0 run" in again and _body(again) == _body(first)

    # the same points, one record's FID changed by hand: the output is derived afresh and shows it
    lines = (run / POINTS).read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[-1])
    rec["metrics"]["fid"] = 987.654
    (run / POINTS).write_text("\n".join([*lines[:-1], json.dumps(rec)]) + "\n", encoding="utf-8")
    changed = _invoke(argv)
    assert "2 already done, 0 run" in changed and _body(changed) != _body(first)
    from scalebench.paths import cache_dir

    shutil.rmtree(cache_dir() / "outputs")
    assert _body(_invoke(argv)) == _body(changed)  # what was derived then is what a cold cache derives


def test_records_of_a_plugin_generator_make_the_output_uncacheable(tmp_path) -> None:
    from rich.console import Console

    from scalebench.sweep.outputcache import output_key

    toy = {**GAN, "metrics": [], "generators": [{"name": "toy", "K": [1]}]}  # tests.conftest's, not built in
    run_sweep(parse_spec(toy), tmp_path / "toy", progress=False)
    run_sweep(parse_spec(GAN), tmp_path / "gan", progress=False)
    console = Console(width=120)
    assert output_key(tmp_path / "toy", "t", console) is None
    key = output_key(tmp_path / "gan", "t", console)
    assert key and key != output_key(tmp_path / "gan", "t", Console(width=100))
    assert key != output_key(tmp_path / "gan", "another title", console)
