"""The Ray executor with a real Ray (a private local instance, 2 CPUs, no dashboard)."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest
from typer.testing import CliRunner

from scalebench.cli import app
from scalebench.results import iter_records, latest_records
from scalebench.sweep.ray_executor import RAY_MISSING, RayExecutor
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import ExecutorSettings, SpecError, parse_spec
from tests.specfiles import toml_of

ray = pytest.importorskip("ray", reason="Ray is part of the dev install (make test installs it)")

SPEC = {"name": "r", "seeds": [0, 1], "samples": 64, "batch_size": 32, "threads": 1, "metrics": ["fid"],
        "timing": {"rounds": 2},
        "generators": [{"name": "diffusion", "samplers": ["ddim"], "K": [1, 2, 5]}, {"name": "gpt", "S": [4]}]}


def _ok(run_dir) -> dict[str, dict]:
    recs = latest_records(run_dir)
    assert all(r["status"] == "ok" and r["timing"]["mode"] == "interleaved" for r in recs.values()), \
        [r.get("error") for r in recs.values()]
    return recs


def test_a_private_local_ray_shares_the_cores_among_its_workers(monkeypatch) -> None:
    import scalebench.sweep.spec as spec_mod

    monkeypatch.setattr(spec_mod, "machine_threads", lambda: 8)
    unset = {k: v for k, v in SPEC.items() if k != "threads"}
    assert parse_spec(unset).threads == 8
    assert parse_spec(unset, executor={"executor": "ray", "workers": 2}).threads == 4
    assert parse_spec(unset, executor={"executor": "ray", "workers": 16}).threads == 1
    assert parse_spec(unset, executor={"executor": "ray", "workers": 2, "address": "auto"}).threads == 8
    assert parse_spec(SPEC, executor={"executor": "ray", "workers": 2}).threads == 1  # the spec's own value
    assert parse_spec(unset, threads=3, executor={"executor": "ray", "workers": 2}).threads == 3  # --threads


def test_executor_settings_are_checked_and_stay_out_of_the_identity() -> None:
    with pytest.raises(SpecError, match=r"executor = 'dask'; use one of \['local', 'ray'\]"):
        parse_spec({**SPEC, "executor": "dask"})
    with pytest.raises(SpecError, match=r"workers is a Ray setting; add executor = \"ray\""):
        parse_spec({**SPEC, "workers": 4})
    with pytest.raises(SpecError, match=r"gpus_per_worker = 0 must be a number in \(0, 64\]"):
        parse_spec({**SPEC, "executor": "ray", "gpus_per_worker": 0})
    local, remote = parse_spec(SPEC), parse_spec(SPEC, executor={"executor": "ray", "workers": 3})
    assert remote.executor == ExecutorSettings(kind="ray", workers=3)
    assert local.hash() == remote.hash()


def test_missing_ray_is_one_line_and_exit_2(tmp_path, monkeypatch) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(toml_of(SPEC))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    res = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--executor", "ray",
                                   "--no-progress"])
    assert res.exit_code == 2
    assert RAY_MISSING in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "points.jsonl").exists()


def test_ray_cli_sweep_equals_the_local_one_and_resumes(tmp_path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(toml_of(SPEC))
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "ray"), "--executor", "ray",
                              "--workers", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert not ray.is_initialized()  # the private local Ray is shut down with the sweep
    res = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "local"), "--no-progress"])
    assert res.exit_code == 0, res.output
    a, b = _ok(tmp_path / "ray"), _ok(tmp_path / "local")
    assert sorted(a) == sorted(b) and len(a) == 8
    for pid in a:
        assert a[pid]["metrics"] == b[pid]["metrics"] and a[pid]["preview"] == b[pid]["preview"]
        assert a[pid]["cost"]["nfe_measured"] == b[pid]["cost"]["nfe_measured"]
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["invocations"][-1]["executor"]["kind"] == "ray"
    # a local run resumed with Ray (and back) has nothing left to do
    res = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "local"), "--executor", "ray",
                              "--no-progress"])
    assert res.exit_code == 0 and "8 already done, 0 run" in res.output


class KillAfter(RayExecutor):
    """Kills (SIGKILL) a busy worker right after the first `n` quality records have come back: the
    executor hands out the next point before yielding, so the killed worker is mid-point."""

    def __init__(self, n: int = 1, every: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.n, self.every, self.killed = n, every, []

    def _quality(self, *a, **k):
        for i, rec in enumerate(super()._quality(*a, **k), start=1):
            if (i == self.n or (self.every and i > self.n)) and self.busy_pids():
                self.killed.append(self.busy_pids()[0])
                os.kill(self.killed[-1], signal.SIGKILL)
            yield rec


def test_a_killed_worker_loses_no_point(tmp_path) -> None:
    """kill -9 of a busy worker: its point is retried on a replacement and every point ends ok."""
    spec = parse_spec(SPEC)
    ex = KillAfter(settings=ExecutorSettings(kind="ray", workers=2))
    res = run_sweep(spec, tmp_path / "run", executor=ex, progress=False)
    assert len(ex.killed) == 1 and not res.interrupted and res.failed == 0
    assert len(_ok(tmp_path / "run")) == 8
    assert run_sweep(spec, tmp_path / "run", executor=RayExecutor(), progress=False).ran == 0


def test_a_point_whose_worker_keeps_dying_is_recorded_failed_with_the_reason(tmp_path) -> None:
    spec = parse_spec({**SPEC, "generators": [{"name": "diffusion", "samplers": ["ddim"], "K": [10]}]})
    ex = KillAfter(settings=ExecutorSettings(kind="ray", workers=1, retries=0))
    res = run_sweep(spec, tmp_path / "run", executor=ex, progress=False)
    died = [r for r in iter_records(tmp_path / "run") if r["status"] == "failed"]
    assert res.failed == len(died) == 1  # seed 0 finished, seed 1 was in flight when its worker died
    assert "WorkerDied: the worker measuring this point died 1 times" in died[0]["error"]
    res = run_sweep(spec, tmp_path / "run", executor=RayExecutor(), progress=False)
    assert res.ran == 1 and res.failed == 0  # the rerun retries it


def test_ctrl_c_keeps_finished_records_and_shuts_ray_down(tmp_path) -> None:
    spec = parse_spec(SPEC)

    def interrupt(rec: dict) -> None:
        raise KeyboardInterrupt

    res = run_sweep(spec, tmp_path / "run", executor=RayExecutor(), progress=False, on_record=interrupt)
    assert res.interrupted and not ray.is_initialized()
    assert len(list(iter_records(tmp_path / "run"))) >= 1
    assert run_sweep(spec, tmp_path / "run", executor=RayExecutor(), progress=False).interrupted is False
    assert len(_ok(tmp_path / "run")) == 8


def test_a_real_ctrl_c_stops_a_ray_sweep_promptly(tmp_path) -> None:
    """SIGINT to the CLI while workers are mid-point: it exits within seconds (not after the points in
    flight), keeps the finished records and leaves no Ray process behind; the rerun resumes."""
    import subprocess
    import time

    slow = {**SPEC, "samples": 512, "batch_size": 256,
            "generators": [{"name": "diffusion", "samplers": ["ddim"], "K": [50, 100]}]}
    spec = tmp_path / "s.toml"
    spec.write_text(toml_of(slow))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "scalebench.cli", "run", str(spec), "--out", str(out), "--executor", "ray",
           "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120

    def finished_one() -> bool:
        return (out / "points.jsonl").exists() and any(r["status"] == "ok" for r in iter_records(out))

    while not finished_one():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)
    time.sleep(1.0)  # both workers are now inside a point (K=100 on 256 samples takes seconds)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the sweep did not stop within 30 s of Ctrl-C") from None
    assert time.monotonic() - t0 < 30 and proc.returncode != 0, output
    done = [r for r in iter_records(out) if r["status"] == "ok"]
    assert done, output
    assert not [p for p in subprocess.run(["pgrep", "-f", "ray::Worker"], capture_output=True, text=True)
                .stdout.split() if p], "a Ray worker outlived the sweep"
