"""The Ray executor with a real Ray (a private local instance, 2 CPUs, no dashboard; a two-node cluster)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalebench.cli import app
from scalebench.results import iter_records, latest_records
from scalebench.sweep.ray_executor import RAY_MISSING, RayExecutor, _balance, loaded_key
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import ExecutorSettings, SpecError, parse_spec
from tests.specfiles import toml_of

ray = pytest.importorskip("ray", reason="Ray is part of the dev install (make test installs it)")

SPEC = {"name": "r", "seeds": [0, 1], "samples": 64, "batch_size": 32, "threads": 1, "metrics": ["fid"],
        "timing": {"rounds": 2},
        "generators": [{"name": "diffusion", "samplers": ["ddim"], "K": [1, 2, 5]}, {"name": "gpt", "S": [4]}]}


def _same_measurements(a: dict, b: dict) -> None:
    """Two runs' records of the same points carry the same metrics, samples and counted calls."""
    assert sorted(a) == sorted(b)
    for pid in a:
        assert a[pid].metrics == b[pid].metrics and a[pid].preview == b[pid].preview
        assert a[pid].cost.nfe_measured == b[pid].cost.nfe_measured


def _ok(run_dir) -> dict[str, dict]:
    recs = latest_records(run_dir)
    assert all(r.status == "ok" and r.timing.mode == "interleaved" for r in recs.values()), \
        [r.error for r in recs.values()]
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
    _same_measurements(a, b)
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


@pytest.mark.slow  # ≥ 15 s on 2 cores: run by `make test-slow` (CI runs both)
def test_a_killed_worker_loses_no_point(tmp_path) -> None:
    """kill -9 of a busy worker: its point is retried on a replacement and every point ends ok."""
    spec = parse_spec(SPEC)
    ex = KillAfter(settings=ExecutorSettings(kind="ray", workers=2))
    res = run_sweep(spec, tmp_path / "run", executor=ex, progress=False)
    assert len(ex.killed) == 1 and not res.interrupted and res.failed == 0
    assert len(_ok(tmp_path / "run")) == 8
    assert run_sweep(spec, tmp_path / "run", executor=RayExecutor(), progress=False).ran == 0


@pytest.mark.slow  # ≥ 15 s on 2 cores: run by `make test-slow` (CI runs both)
def test_a_point_whose_worker_keeps_dying_is_recorded_failed_with_the_reason(tmp_path) -> None:
    spec = parse_spec({**SPEC, "generators": [{"name": "diffusion", "samplers": ["ddim"], "K": [10]}]})
    ex = KillAfter(settings=ExecutorSettings(kind="ray", workers=1, retries=0))
    res = run_sweep(spec, tmp_path / "run", executor=ex, progress=False)
    died = [r for r in iter_records(tmp_path / "run") if r.status == "failed"]
    assert res.failed == len(died) == 1  # seed 0 finished, seed 1 was in flight when its worker died
    assert "WorkerDied: the worker measuring this point died 1 times" in died[0].error
    res = run_sweep(spec, tmp_path / "run", executor=RayExecutor(), progress=False)
    assert res.ran == 1 and res.failed == 0  # the rerun retries it


@pytest.mark.slow  # a real Ray start and interrupt (~23 s)
def test_ctrl_c_keeps_finished_records_and_shuts_ray_down(tmp_path) -> None:
    spec = parse_spec(SPEC)

    def interrupt(rec: dict) -> None:
        raise KeyboardInterrupt

    res = run_sweep(spec, tmp_path / "run", executor=RayExecutor(), progress=False, on_record=interrupt)
    assert res.interrupted and not ray.is_initialized()
    assert len(list(iter_records(tmp_path / "run"))) >= 1
    assert run_sweep(spec, tmp_path / "run", executor=RayExecutor(), progress=False).interrupted is False
    assert len(_ok(tmp_path / "run")) == 8



# ----------------------------------------------------------------------------- scheduling (no Ray needed)

def _point(name: str, K: int, seed: int = 0):
    spec = parse_spec({**SPEC, "generators": [{"name": name, **({"samplers": ["ddim"]} if name == "diffusion" else {}),
                                                **({"K": [K]} if name == "diffusion" else {"S": [K]})}]})
    from scalebench.sweep.plan import expand

    return replace(expand(spec)[0], seed=seed)


def test_a_ctrl_c_swallowed_inside_ray_init_is_sent_again(monkeypatch) -> None:
    """ray.init runs for seconds without polling our flag; a KeyboardInterrupt raised inside a finalizer
    there is swallowed ("Exception ignored in …"). Stand-in init: swallows the first interrupt, then
    keeps starting for 30 s. The executor must still leave within 2 s of the Ctrl-C, starting no worker."""
    import threading
    import types

    from scalebench.sweep import ray_executor

    entered, swallowed, calls = threading.Event(), [], []

    def init(**kwargs) -> None:
        entered.set()
        try:
            time.sleep(30)
        except KeyboardInterrupt:
            swallowed.append(time.monotonic())  # as if inside a finalizer: lost
        end = time.monotonic() + 30
        while time.monotonic() < end:
            time.sleep(0.02)

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=init, shutdown=lambda: calls.append("shutdown"),
                                 remote=lambda **kw: calls.append("remote"), kill=lambda *a, **k: None)
    monkeypatch.setattr(ray_executor, "import_ray", lambda: fake)
    main = threading.main_thread().ident

    def press_ctrl_c() -> None:
        entered.wait(10)
        time.sleep(0.2)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    ex = RayExecutor(ExecutorSettings(kind="ray", workers=1))
    with pytest.raises(KeyboardInterrupt):
        list(ex.run([_point("diffusion", 1)]))
    took = time.monotonic() - swallowed[0]
    assert took < 2.0, f"left ray.init {took:.1f} s after the swallowed Ctrl-C"
    assert calls == ["shutdown"]  # no worker class was made; the half-started Ray is shut down


def test_a_free_worker_keeps_to_its_generator_when_that_costs_little() -> None:
    ex, a, b = RayExecutor(), object(), object()
    big, gpt16, gpt4, dif = _point("diffusion", 50), _point("gpt", 16), _point("gpt", 4), _point("diffusion", 20)
    costs = {id(big): 100.0, id(gpt16): 60.0, id(dif): 55.0, id(gpt4): 40.0}
    ex.cost = lambda p: costs[id(p)]
    ex.loaded = {a: {loaded_key(gpt16)}, b: set()}
    queue = [big, gpt16, dif, gpt4]  # longest first
    assert ex._next(a, queue) is gpt16  # its own generator and ≥ half the longest: no reload
    assert ex._next(a, queue) is big  # its generator's next point (40) is < half the longest (100)
    assert ex._next(b, [gpt16, dif, gpt4]) is dif  # b has nothing loaded: a generator no worker holds
    assert ex._next(b, [gpt16, gpt4]) is gpt16  # every generator is held elsewhere: the longest


def test_timing_shares_stay_balanced_and_go_where_the_generator_is_loaded() -> None:
    a, b = object(), object()
    gpt = [_point("gpt", 4, seed) for seed in range(4)]
    dif = [_point("diffusion", 5, seed) for seed in range(4)]
    pairs = [(p, None) for p in gpt + dif]
    shares = _balance(pairs, [a, b], lambda p: 1.0, {a: {loaded_key(dif[0])}, b: {loaded_key(gpt[0])}})
    assert [{p.generator for p, _ in share} for share in shares] == [{"diffusion"}, {"gpt"}]
    shares = _balance(pairs, [a, b], lambda p: 1.0, {a: {loaded_key(dif[0]), loaded_key(gpt[0])}, b: set()})
    assert [len(share) for share in shares] == [4, 4]  # affinity never unbalances the shares


# ----------------------------------------------------------------------------- a real Ctrl-C, in every phase

BOOT = """
import os, signal, sys, time
# as a command typed at a terminal: a job started in the background of a non-interactive shell (CI run
# with & or nohup) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
signal.signal(signal.SIGINT, signal.default_int_handler)
def trip(owner, attr, nth):
    real, calls = getattr(owner, attr), [0]
    def tripped(*a, **k):
        calls[0] += 1
        if calls[0] == nth:  # a Ctrl-C from the terminal: SIGINT to the whole process group
            with open(os.environ["SCALEBENCH_TEST_TRIPPED"], "w") as f:
                f.write(repr(time.time()))
            os.killpg(0, signal.SIGINT)
        return real(*a, **k)
    setattr(owner, attr, tripped)
import scalebench.results, scalebench.sweep.runner
{trips}
from scalebench.cli import main
sys.argv = ["scalebench", *sys.argv[1:]]
main()
"""
TAG = "SCALEBENCH_RAY_TEST_TAG"
STOP_S = 5.0


def _tagged(tag: str) -> list[int]:
    """Live processes whose environment carries the tag: the CLI and everything it started (Ray's
    node processes and workers inherit the driver's environment)."""
    needle, out = f"{TAG}={tag}".encode(), []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            env = Path(f"/proc/{d}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state not in ("Z", "X"):
            out.append(int(d))
    return out


class Sweep:
    """`scalebench run --executor ray -v` in its own process group (so a SIGINT to the group is a
    terminal's Ctrl-C), output in a file whose lines and the run's records say which phase it is in."""

    def __init__(self, tmp_path: Path, spec: dict, trips: str = "") -> None:
        (tmp_path / "s.toml").write_text(toml_of(spec))
        self.out, self.log, self.tag = tmp_path / "run", tmp_path / "cli.log", uuid.uuid4().hex
        self.tripped = tmp_path / "tripped"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), TAG: self.tag,
               "SCALEBENCH_TEST_TRIPPED": str(self.tripped)}
        self.argv = ["run", str(tmp_path / "s.toml"), "--out", str(self.out), "--executor", "ray",
                     "--workers", "2", "--no-progress", "-v"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", BOOT.format(trips=trips), *self.argv], env=env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def records(self) -> list:
        return list(iter_records(self.out)) if (self.out / "points.jsonl").exists() else []

    def wait_for(self, reached: Callable[[], bool], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not reached():
            assert self.proc.poll() is None, f"the sweep ended before the phase was reached:\n{self.output()}"
            assert time.monotonic() < deadline, f"phase not reached in {timeout} s:\n{self.output()}"
            time.sleep(0.05)

    def stopped_within(self, interrupt: bool = True, twice: bool = False) -> float:
        """Seconds from Ctrl-C (sent here, or by the CLI's trip) until the CLI exits; then asserts that
        nothing it started lives on."""
        t0 = time.time()
        if interrupt:
            os.killpg(self.proc.pid, signal.SIGINT)
            if twice:  # an impatient user: the second Ctrl-C must not cut the clean-up short
                time.sleep(0.3)
                os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"the sweep did not stop within 60 s of Ctrl-C:\n{self.output()}") from None
        took = time.time() - (t0 if interrupt else float(self.tripped.read_text()))
        deadline = time.monotonic() + 2.0  # a process killed with its parent may take a moment to go
        while _tagged(self.tag) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = _tagged(self.tag)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes outlived the sweep: {left}"
        return took


SLOW_POINTS = {**SPEC, "seeds": [0, 1, 2], "samples": 256, "batch_size": 256, "timing": {"warmup": 0, "rounds": 1},
               "generators": [{"name": "diffusion", "samplers": ["ddim"], "K": [100]}]}
"""Three points of ~8 s each (1 thread here): two workers take two; the third starts when one is done."""


@pytest.mark.slow  # a terminal's Ctrl-C in every phase of a real Ray sweep (~32 s)
def test_a_real_ctrl_c_stops_a_ray_sweep_promptly(tmp_path) -> None:
    """Ctrl-C (SIGINT to the process group, twice) once a point is recorded, i.e. while both workers are
    inside a point of seconds: the CLI exits within 5 s, not after the points in flight, keeps the
    finished record and leaves no Ray process (the rounds case below also resumes). Deterministic:
    the signal goes when the record shows the phase is reached, however busy the machine is."""
    sweep = Sweep(tmp_path, SLOW_POINTS)
    sweep.wait_for(lambda: len(sweep.records()) >= 1)
    took = sweep.stopped_within(twice=True)
    print(f"quality passes: stopped {took:.2f} s after Ctrl-C")
    assert took < STOP_S, f"{took:.1f} s\n{sweep.output()}"
    assert sweep.proc.returncode == 130, sweep.output()
    done = latest_records(sweep.out)
    assert 1 <= len(done) < 3 and all(r.ok for r in done.values()), sweep.output()  # it stopped: points were left
    assert "interrupted: finished points are saved" in sweep.output()


PHASES = {
    # phase: (spec, trips in the CLI process, what shows the phase is reached, records kept)
    "planning": (SLOW_POINTS, "trip(scalebench.sweep.runner, 'expand', 1)", None, 0),
    "starting Ray": (SLOW_POINTS, "", "ray: starting a private local Ray", 0),
    "writing": (SLOW_POINTS, "trip(scalebench.results.RecordWriter, 'append', 2)", None, 1),
    "timing rounds": ({**SLOW_POINTS, "seeds": [0, 1], "timing": {"warmup": 0, "rounds": 10},
                       "generators": [{"name": "diffusion", "samplers": ["ddim"], "K": [50]}]},
                      "", "ray: timing rounds over 2 points", 2),
}


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(PHASES))
def test_ctrl_c_stops_a_ray_sweep_in_every_phase(tmp_path, phase) -> None:
    """Ctrl-C while planning, while Ray starts, while the driver writes a record, during the timing
    rounds: the CLI exits within 5 s, keeps every finished record (rounds: the pending quality records,
    re-timed by a rerun), and leaves no Ray process."""
    spec, trips, marker, kept = PHASES[phase]
    sweep = Sweep(tmp_path, spec, trips)
    if marker:
        sweep.wait_for(lambda: marker in sweep.output())
    took = sweep.stopped_within(interrupt=bool(marker))  # without a marker the CLI's trip sends it
    records = sweep.records()
    print(f"{phase}: stopped {took:.2f} s after Ctrl-C")
    assert took < STOP_S, f"{phase}: {took:.1f} s\n{sweep.output()}"
    assert sweep.proc.returncode != 0 and sweep.tripped.exists() != bool(marker), sweep.output()
    assert len(records) == kept and all(r.ok for r in records), sweep.output()
    assert "error:" not in sweep.output()  # an interrupt, not a failure (none recorded: no summary either)
    if phase == "timing rounds":
        assert all(r.pending for r in records)
        res = run_sweep(parse_spec(spec), sweep.out, executor=RayExecutor(), progress=False)
        assert res.ran == 0 and all(r.timing.mode == "interleaved" for r in latest_records(sweep.out).values())


# ----------------------------------------------------------------------------- two nodes

@pytest.mark.slow
def test_a_two_node_cluster_spreads_the_points_and_equals_a_local_run(tmp_path) -> None:
    """A real two-node Ray cluster on this machine (ray.cluster_utils.Cluster: a head and a second
    raylet, 1 CPU and a resource of its own each): the two 1-thread workers land one per node, both
    measure points, and the records equal a local run's (threads pinned, so the point ids match)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node_a": 1}})
    try:
        cluster.add_node(num_cpus=1, resources={"node_b": 1})
        cluster.wait_for_nodes()
        spec = parse_spec(SPEC)
        ex = RayExecutor(ExecutorSettings(kind="ray", workers=2, address=cluster.address))
        res = run_sweep(spec, tmp_path / "ray", executor=ex, progress=False)
        assert res.ran == 8 and res.failed == 0
        assert not ray.is_initialized()  # the driver disconnected; the cluster is the test's to stop
        ray.init(address=cluster.address, log_to_driver=False)
        nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
        ray.shutdown()
    finally:
        cluster.shutdown()
    per_node = Counter(ex.placements.values())
    assert len(ex.placements) == 8 and set(per_node) == set(nodes) and len(nodes) == 2, (per_node, nodes)
    assert {r for resources in nodes.values() for r in resources if r.startswith("node_")} == {"node_a", "node_b"}
    assert run_sweep(spec, tmp_path / "local", progress=False).ran == 8
    _same_measurements(_ok(tmp_path / "ray"), _ok(tmp_path / "local"))
