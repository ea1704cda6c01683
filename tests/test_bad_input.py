"""The bad-input catalogue: every expected failure is one line on stderr and exit code 2.

Each case runs the real CLI (in-process through typer's CliRunner, or as a subprocess where it
needs installed plugins) and asserts: exit code 2, exactly one line on stderr starting with
`error:` and naming the problem, no traceback anywhere, and that a finished run directory
made once per module is byte-identical afterwards (nothing recorded is ever lost). Faults the
machine would have to provide (read-only disk, permission denied, full disk) are injected as
the OSError the kernel returns, at the call that would get it. Then: two runs at once into
one directory, and a disk that fills up mid-sweep.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalebench import atomic, results
from scalebench.cli import app
from scalebench.results import POINTS, iter_records
from scalebench.sweep.lock import LOCK_NAME, RunLock
from tests.conftest import toy_spec
from tests.specfiles import snapshot, toml_of

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner(env={"COLUMNS": "200", "SCALEBENCH_DEBUG": None})  # a user's debug setting must not leak in


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes | None]]:
    """A finished toy run (2 points) that no bad input may change."""
    base = tmp_path_factory.mktemp("protected")
    spec = base / "protected.toml"
    spec.write_text(toml_of(toy_spec(name="protected")))
    run_dir = base / "run"
    res = runner.invoke(app, ["run", str(spec), "--out", str(run_dir), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert len(list(iter_records(run_dir))) == 2
    return run_dir, snapshot(run_dir)


class _StderrNow(logging.Handler):
    """Log records to whatever sys.stderr is at the time (CliRunner swaps it), as the CLI would."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


@pytest.fixture(autouse=True)
def _warnings_to_stderr() -> Iterator[None]:
    handler = _StderrNow(level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)


# ----------------------------------------------------------------------------- fake plugins

GATED = """
import os, time

import torch

from scalebench.api import Axis, MethodCard


class Gen:
    \"\"\"Noise, but every sample() first waits (≤ 60 s) for the file named by SCALEBENCH_TEST_GATE.\"\"\"

    card = MethodCard(name="gated", family="test", category="neither", S=Axis.fixed(1),
                      K=Axis(meaning="steps", default=1, low=1, high=100), paper="none")

    def __init__(self, device="cpu"):
        self.device = device

    def sample(self, n, budget, rng, sampler=None):
        gate, deadline = os.environ.get("SCALEBENCH_TEST_GATE"), time.monotonic() + 60
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        return torch.rand(n, 1, 8, 8, generator=rng, device=self.device)

    def nfe(self, budget, sampler=None):
        return budget.K
"""
PLUGIN_MODULES = {
    "broken_import_mod.py": "import scalebench_no_such_module_xyz  # noqa\n",
    "exits_mod.py": "import sys\nsys.exit(3)\n",
    "gated_mod.py": GATED,
}
ENTRY_POINTS = """[scalebench.generators]
broken-import = broken_import_mod:Gen
exits-at-import = exits_mod:Gen
gated = gated_mod:Gen
"""


def plugin_site(root: Path) -> Path:
    """A folder on PYTHONPATH with an installed-looking distribution declaring three plugins."""
    site = root / "site"
    dist = site / "fakeplugins-0.1.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    for name, text in PLUGIN_MODULES.items():
        (site / name).write_text(text)
    return site


def cli_subprocess(args: list[str], cwd: Path, site: Path, gate: Path | None = None, **kw: object
                   ) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    env.pop("SCALEBENCH_DEBUG", None)
    env.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: keep each process to one thread
    if gate is not None:
        env["SCALEBENCH_TEST_GATE"] = str(gate)
    return subprocess.Popen([sys.executable, "-m", "scalebench.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# ----------------------------------------------------------------------------- the catalogue

@dataclass
class Ctx:
    tmp: Path
    protected: Path
    monkeypatch: pytest.MonkeyPatch
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def spec(self, filename: str, /, **over: object) -> Path:
        p = self.tmp / filename
        p.write_text(toml_of(toy_spec(**{"name": "protected", **over})))
        return p

    def inject(self, module: object, attr: str, code: int, when: Callable[[str], bool]) -> None:
        """Make module.attr(path, ...) fail with OSError(code) for paths where `when` holds."""
        real = getattr(module, attr)

        def fake(path: object, *a: object, **kw: object) -> object:
            if when(os.fsdecode(path)):
                raise OSError(code, os.strerror(code), os.fsdecode(path))
            return real(path, *a, **kw)

        self.monkeypatch.setattr(module, attr, fake)


def _file(ctx: Ctx, name: str = "afile", text: str = "x") -> Path:
    (ctx.tmp / name).write_text(text)
    return ctx.tmp / name


def _copy_protected(ctx: Ctx, name: str) -> Path:
    d = ctx.tmp / name
    d.mkdir()
    for p in ctx.protected.iterdir():
        (d / p.name).write_bytes(p.read_bytes())
    return d


def _newer_schema(ctx: Ctx) -> None:
    d = _copy_protected(ctx, "newer")
    with open(d / POINTS, "a") as f:
        f.write(json.dumps({"schema": 99, "point_id": "x", "status": "ok"}) + "\n")


def _no_calibration(ctx: Ctx) -> None:
    d = _copy_protected(ctx, "nocal")
    (d / "manifest.json").write_text('{"schema": 1}')


def _hold_lock(ctx: Ctx) -> None:
    lock = RunLock(ctx.protected).acquire()
    ctx.cleanups.append(lock.release)


def _no_cuda(ctx: Ctx) -> None:
    import torch

    ctx.monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _one_cuda(ctx: Ctx) -> None:
    """As torch reports a machine with one GPU (so the case reads the same with or without one)."""
    import torch

    ctx.monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ctx.monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    needle: str
    prep: Callable[[Ctx], object] | None = None
    subprocess: bool = False  # needs the fake plugins installed: run the real CLI in a fresh process


LONG = "n" * 300
S = "{T}/spec.toml"  # a valid toy spec whose grid has one point more than the protected run
CASES = [
    # spec files
    Case("spec-missing", ("run", "{T}/nope.toml", "--out", "{P}"), "nope.toml' does not exist"),
    Case("spec-is-directory", ("run", "{T}", "--out", "{P}"), "is a directory"),
    Case("spec-not-utf8", ("run", "{T}/latin1.toml", "--out", "{P}"), "latin1.toml: not UTF-8",
         lambda c: (c.tmp / "latin1.toml").write_bytes(b'name = "caf\xe9"\n')),
    Case("spec-malformed-toml", ("run", "{T}/bad.toml", "--out", "{P}"), "malformed TOML",
         lambda c: _file(c, "bad.toml", "name = [unclosed\n")),
    Case("spec-no-generators", ("run", "{T}/g.toml", "--out", "{P}"), "needs at least one [[generators]] table",
         lambda c: _file(c, "g.toml", 'name = "x"\n')),
    Case("spec-generators-not-tables", ("run", "{T}/g.toml", "--out", "{P}"), "[[generators]]",
         lambda c: _file(c, "g.toml", 'name = "x"\ngenerators = "toy"\n')),
    Case("spec-timing-not-table", ("run", "{T}/t.toml", "--out", "{P}"), "[timing] must be a table",
         lambda c: _file(c, "t.toml", 'timing = 3\n[[generators]]\nname = "toy"\n')),
    Case("spec-unknown-key", ("run", S, "--out", "{P}"), "did you mean 'seeds'", lambda c: c.spec("spec.toml", sedes=[0])),
    Case("spec-unknown-generator", ("run", S, "--out", "{P}"), "did you mean 'toy'",
         lambda c: c.spec("spec.toml", generators=[{"name": "toi"}])),
    Case("spec-K-out-of-range", ("run", S, "--out", "{P}"), "K=1000 is not valid",
         lambda c: c.spec("spec.toml", generators=[{"name": "toy", "K": [1000]}])),
    Case("spec-K-zero", ("run", S, "--out", "{P}"), "values must be ≥ 1",
         lambda c: c.spec("spec.toml", generators=[{"name": "toy", "K": [0]}])),
    Case("spec-samples-zero", ("run", S, "--out", "{P}"), "samples = 0 must be a positive integer",
         lambda c: c.spec("spec.toml", samples=0)),
    Case("spec-seeds-string", ("run", S, "--out", "{P}"), "must be a non-empty list of integers",
         lambda c: c.spec("spec.toml", seeds="zero")),
    Case("spec-unknown-metric", ("run", S, "--out", "{P}"), "unknown quality metric 'fdi'",
         lambda c: c.spec("spec.toml", metrics=["fdi"])),
    Case("spec-bad-dtype", ("run", S, "--out", "{P}"), "dtype = 'int8'", lambda c: c.spec("spec.toml", dtype="int8")),
    Case("spec-unknown-sampler", ("run", S, "--out", "{P}"), "unknown sampler 'zzz'",
         lambda c: c.spec("spec.toml", generators=[{"name": "toy", "samplers": ["zzz"]}])),
    Case("spec-path-with-markup", ("run", "{T}/we[/x]ird [bold]/spec.toml", "--out", "{P}"), "we[/x]ird [bold]/spec.toml"),
    Case("spec-path-too-long", ("run", "{T}/" + LONG + ".toml", "--out", "{P}"), "file name too long (ENAMETOOLONG)"),
    # the run name from a spec
    Case("name-parent", ("run", S), "name = '../escape' is not a safe run directory name",
         lambda c: c.spec("spec.toml", name="../escape")),
    Case("name-dotdot", ("run", S), "name = '..' is not a safe", lambda c: c.spec("spec.toml", name="..")),
    Case("name-absolute", ("run", S), "is not a safe run directory name",
         lambda c: c.spec("spec.toml", name=str(c.tmp / "abs"))),
    Case("name-nested", ("run", S), "name = 'a/b' is not a safe", lambda c: c.spec("spec.toml", name="a/b")),
    Case("name-hidden", ("run", S), "name = '.hidden' is not a safe", lambda c: c.spec("spec.toml", name=".hidden")),
    Case("name-too-long", ("run", S), "is not a safe run directory name", lambda c: c.spec("spec.toml", name="r" * 81)),
    Case("name-markup", ("run", S), "name = '[/x]' is not a safe", lambda c: c.spec("spec.toml", name="[/x]")),
    # devices
    Case("device-unknown", ("run", S, "--out", "{P}", "--device", "tpu"), "device = 'tpu' is not a device",
         lambda c: c.spec("spec.toml")),
    Case("device-malformed-cuda", ("run", S, "--out", "{P}", "--device", "cuda:x"), "device = 'cuda:x'",
         lambda c: c.spec("spec.toml")),
    Case("device-in-spec", ("run", S, "--out", "{P}"), "device = 'gpu'", lambda c: c.spec("spec.toml", device="gpu")),
    Case("device-mps", ("run", S, "--out", "{P}", "--device", "mps"), "device 'mps' is not available",
         lambda c: c.spec("spec.toml")),
    Case("device-cuda-index", ("run", S, "--out", "{P}", "--device", "cuda:99"), "device 'cuda:99' is",
         lambda c: c.spec("spec.toml")),
    Case("device-cuda-out-of-range", ("run", S, "--out", "{P}", "--device", "cuda:3"),
         "device 'cuda:3' is out of range: this machine has 1 CUDA device(s), cuda:0 to cuda:0",
         lambda c: (c.spec("spec.toml"), _one_cuda(c))),
    Case("device-cuda-missing", ("run", S, "--out", "{P}", "--device", "cuda"), "device 'cuda' is not available",
         lambda c: (c.spec("spec.toml"), _no_cuda(c))),
    # --only
    Case("only-typo", ("run", S, "--out", "{P}", "--only", "toi"), "did you mean 'toy'", lambda c: c.spec("spec.toml")),
    Case("only-not-in-spec", ("run", S, "--out", "{P}", "--only", "gpt"), "none of these generators",
         lambda c: c.spec("spec.toml")),
    Case("only-sampler-unknown", ("run", S, "--out", "{P}", "--only", "toy/c"), "unknown sampler 'c'",
         lambda c: c.spec("spec.toml")),
    Case("only-sampler-not-in-spec", ("run", S, "--out", "{P}", "--only", "toy/b"),
         "runs toy with samplers ['a'], not ['b']", lambda c: c.spec("spec.toml")),
    # output locations
    Case("out-is-file", ("run", S, "--out", "{T}/afile"), "afile is a file, not a directory",
         lambda c: (c.spec("spec.toml"), _file(c))),
    Case("out-under-file", ("run", S, "--out", "{T}/afile/run"), "afile/run: not a directory (ENOTDIR)",
         lambda c: (c.spec("spec.toml"), _file(c))),
    Case("out-name-too-long", ("run", S, "--out", "{T}/" + LONG), "file name too long (ENAMETOOLONG)",
         lambda c: c.spec("spec.toml")),
    Case("out-read-only", ("run", S, "--out", "{T}/ro-disk/run"), "read-only file system (EROFS)",
         lambda c: (c.spec("spec.toml"), c.inject(os, "mkdir", errno.EROFS, lambda p: "/ro-disk" in p))),
    Case("out-permission-denied", ("run", S, "--out", "{P}", "--only", "toy"), "permission denied (EACCES)",
         lambda c: (c.spec("spec.toml", generators=[{"name": "toy", "K": [1, 2, 3]}]),
                    c.inject(os, "open", errno.EACCES, lambda p: p.endswith(LOCK_NAME)))),
    Case("out-disk-full-manifest", ("run", S, "--out", "{P}"), "no space left on device (ENOSPC)",
         lambda c: (c.spec("spec.toml", generators=[{"name": "toy", "K": [1, 2, 3]}]),
                    c.monkeypatch.setattr(results, "open", _full_disk_open, raising=False),
                    c.monkeypatch.setattr(atomic, "open", _full_disk_open, raising=False))),
    Case("out-locked", ("run", S, "--out", "{P}"), f"is being written by pid {os.getpid()} on host",
         lambda c: (c.spec("spec.toml", generators=[{"name": "toy", "K": [1, 2, 3]}]), _hold_lock(c))),
    Case("report-out-is-file", ("report", "{P}", "--out", "{T}/afile"), "file exists (EEXIST); it is not a directory", _file),
    Case("export-out-under-file", ("export", "{P}", "--out", "{T}/afile/t"), "file exists (EEXIST); it is not a directory", _file),
    Case("export-bad-format", ("export", "{P}", "--out", "{T}/t", "--format", "xml"), "unknown export format 'xml'"),
    Case("train-out-dir-is-file", ("train", "gpt", "--out-dir", "{T}/afile"), "file exists (EEXIST); it is not a directory", _file),
    # readers
    Case("table-missing", ("table", "{T}/missing"), "does not exist"),
    Case("table-file", ("table", "{T}/afile"), "afile is a file", _file),
    Case("table-empty-dir", ("table", "{T}"), "holds no points.jsonl"),
    Case("table-no-quality", ("table", "{P}"), "no quality metric values"),
    Case("table-unknown-metric", ("table", "{P}", "--metric", "bogus"), "unknown metric 'bogus'"),
    Case("table-newer-schema", ("table", "{T}/newer"), "schema 99 is newer", _newer_schema),
    Case("compare-missing", ("compare", "{P}", "{T}/missing"), "does not exist"),
    Case("compare-bad-threshold", ("compare", "{P}", "{P}", "--threshold", "abc"), "is not a percentage"),
    Case("compare-bad-alpha", ("compare", "{P}", "{P}", "--alpha", "2"), "--alpha 2.0 must lie strictly between"),
    Case("compare-no-calibration", ("compare", "{P}", "{T}/nocal", "--normalize"), "has no calibration_s",
         _no_calibration),
    Case("train-unknown", ("train", "no_such_model"), "unknown trainable model 'no_such_model'"),
    Case("ab-zero-rounds", ("ab", "HEAD", "--rounds", "0"), "--rounds 0 must be at least 1"),
    Case("ab-bad-import", ("ab", "HEAD", "--import", "no_such_module_xyz"), "--import no_such_module_xyz"),
    # plugins that are needed but cannot be imported (real entry points, so a fresh process)
    Case("plugin-import-error", ("run", S, "--out", "{P}"),
         "generator plugin 'broken-import' (broken_import_mod:Gen) cannot be imported: ModuleNotFoundError",
         lambda c: c.spec("spec.toml", generators=[{"name": "broken-import"}]), subprocess=True),
    Case("plugin-sys-exit", ("run", S, "--out", "{P}"),
         "generator plugin 'exits-at-import' (exits_mod:Gen) cannot be imported: it called sys.exit(3)",
         lambda c: c.spec("spec.toml", generators=[{"name": "exits-at-import"}]), subprocess=True),
]


def _full_disk_open(file: object, mode: str = "r", *a: object, **kw: object) -> object:
    """`open` as seen by results.py and atomic.py when the disk is full: writing anything fails with ENOSPC."""
    if any(m in mode for m in "wax"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(file))
    return open(file, mode, *a, **kw)


def test_catalogue_is_big_enough() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, protected: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, before = protected
    monkeypatch.chdir(tmp_path)  # a default results/<name> would land here, never in the repo
    work = tmp_path / "work"
    work.mkdir()
    ctx = Ctx(work, run_dir, monkeypatch)
    if case.prep:
        case.prep(ctx)
    args = [a.replace("{T}", str(work)).replace("{P}", str(run_dir)) for a in case.args]
    try:
        if case.subprocess:
            proc = cli_subprocess(args, tmp_path, plugin_site(tmp_path))
            stdout, stderr = proc.communicate(timeout=120)
            code = proc.returncode
        else:
            res = runner.invoke(app, args)
            stdout, stderr, code = res.stdout, res.stderr, res.exit_code
            assert isinstance(res.exception, SystemExit), res.exception  # not an uncaught bug
    finally:
        for undo in ctx.cleanups:
            undo()
    lines = stderr.splitlines()
    assert code == 2, (stdout, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert case.needle in lines[0], lines[0]
    assert "Traceback" not in stdout + stderr
    assert snapshot(run_dir) == before, "the finished run directory changed"
    assert not (tmp_path / "results").exists() and not (tmp_path / "escape").exists()
    assert not (work / "abs").exists()


# ----------------------------------------------------------------------------- not failures, or not expected ones

def test_user_text_with_markup_prints_literally(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(toml_of(toy_spec(generators=[{"name": "toy", "samplers": ["a"], "K": [1]}])))
    out = tmp_path / "res[/x] [bold]x[/bold]"
    res = runner.invoke(app, ["run", str(spec), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "".join(f"Results in {out}".split()) in "".join(res.stdout.split())


def test_debug_shows_the_traceback_of_an_expected_failure(tmp_path: Path) -> None:
    res = runner.invoke(app, ["--debug", "run", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2
    assert "Traceback" in res.stderr and res.stderr.strip().splitlines()[-1].startswith("error: ")


def test_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ValueError (or any exception) from our own code is not bad input: it is not turned into exit 2."""
    import scalebench.sweep.spec as spec_mod

    def broken(*a: object, **kw: object) -> None:
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(spec_mod, "load_spec", broken)
    res = runner.invoke(app, ["run", str(tmp_path / "x.toml")])
    assert res.exit_code == 1 and isinstance(res.exception, ValueError)
    proc = subprocess.run([sys.executable, "-c", "import sys; import scalebench.sweep.spec as s; "
                           "s.load_spec = lambda *a, **k: 1 / 0; from scalebench.cli import main; "
                           "sys.argv = ['scalebench', 'run', 'x.toml']; main()"],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ZeroDivisionError" in proc.stderr


def test_plugins_that_cannot_import_do_not_stop_others(tmp_path: Path) -> None:
    """`--only` never imports the broken plugins; `list` lists everything, broken ones marked."""
    site = plugin_site(tmp_path)
    spec = tmp_path / "spec.toml"
    spec.write_text(toml_of(toy_spec(generators=[{"name": "broken-import"}, {"name": "exits-at-import"},
                                                 {"name": "gated", "K": [1]}])))
    run = cli_subprocess(["run", str(spec), "--out", str(tmp_path / "run"), "--only", "gated", "--no-progress"],
                         tmp_path, site)
    listing = cli_subprocess(["list"], tmp_path, site)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert [r.generator for r in iter_records(tmp_path / "run")] == ["gated"]
    out, err = listing.communicate(timeout=120)
    assert listing.returncode == 0, err
    assert "cannot import: it called sys.exit(3)" in out and "cannot import: ModuleNotFoundError" in out
    assert all(name in out for name in ("diffusion", "gpt", "gated"))


# ----------------------------------------------------------------------------- concurrency

CONC_SPEC = {"name": "conc", "samples": 8, "batch_size": 8, "metrics": [],
             "timing": {"warmup": 0, "min_repeats": 1, "min_duration_s": 0.0},
             "generators": [{"name": "gated", "K": [1, 2, 3, 4]}]}


def _conc(tmp_path: Path) -> tuple[Path, Path, list[str], Path]:
    spec = tmp_path / "conc.toml"
    spec.write_text(toml_of(CONC_SPEC))
    run_dir = tmp_path / "run"
    return plugin_site(tmp_path), run_dir, ["run", str(spec), "--out", str(run_dir), "--no-progress"], tmp_path / "gate"


def test_two_runs_at_once_one_runs_one_exits_2_and_wait_waits(tmp_path: Path) -> None:
    """Two runs start together; whichever gets the lock blocks in its first point (a gate file),
    so the other must exit 2 naming it; a third with --wait waits, then finds nothing to do.

    (With a broken lock both would block at the gate, neither would exit, and after the gate
    opens every point would be recorded twice.)
    """
    site, run_dir, args, gate = _conc(tmp_path)
    procs = [cli_subprocess(args, tmp_path, site, gate) for _ in range(2)]
    deadline = time.monotonic() + 60
    while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    loser = next((p for p in procs if p.poll() is not None), None)
    assert loser is not None, "neither run stopped: both got past the lock"
    winner = procs[1 - procs.index(loser)]
    holder = json.loads((run_dir / LOCK_NAME).read_text())
    out, err = loser.communicate(timeout=10)
    assert loser.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in out + err, (out, err)
    assert err.startswith(f"error: {run_dir} is being written by pid {winner.pid} on host {holder['host']} "
                          f"since {holder['started_at']}"), err
    waiter = cli_subprocess([*args, "--wait"], tmp_path, site, gate)
    assert waiter.stderr.readline().startswith(f"waiting: {run_dir} is being written by pid {winner.pid}")
    gate.touch()
    (out1, err1), (out3, err3) = winner.communicate(timeout=120), waiter.communicate(timeout=120)
    assert winner.returncode == 0 and "0 already done, 4 run" in " ".join(out1.split()), err1
    assert waiter.returncode == 0 and "4 already done, 0 run" in " ".join(out3.split()), err3
    recs = list(iter_records(run_dir))  # interleaved timing: per point, a pending then a completed record
    assert sorted(r.timing.mode for r in recs) == ["interleaved"] * 4 + ["pending"] * 4
    assert len({r.point_id for r in recs}) == 4
    assert not (run_dir / LOCK_NAME).exists()


# ----------------------------------------------------------------------------- a disk that fills up

def test_disk_full_mid_sweep_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(toml_of(toy_spec(generators=[{"name": "toy", "samplers": ["a"], "K": [1, 2, 3, 4]}])))
    run_dir = tmp_path / "run"
    real = results._append_line
    written: list[str] = []

    def filling_up(path: Path, line: str) -> None:
        if len(written) == 2:  # the third record: half of it reaches the disk, then the disk is full
            with open(path, "ab") as f:
                f.write(line.encode()[: len(line) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, line)
        written.append(line)

    monkeypatch.setattr(results, "_append_line", filling_up)
    res = runner.invoke(app, ["run", str(spec), "--out", str(run_dir), "--no-progress"])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    assert res.stderr.splitlines() == [
        f"error: {run_dir / POINTS}: no space left on device (ENOSPC); free some space and run the same "
        "command again (a sweep resumes, finished points are kept)"]
    assert "Traceback" not in res.output
    raw = (run_dir / POINTS).read_bytes()
    assert raw.startswith(("\n".join(written) + "\n").encode())  # earlier records intact
    assert [r.point_id for r in iter_records(run_dir)] == [json.loads(w)["point_id"] for w in written]
    assert not (run_dir / LOCK_NAME).exists()

    monkeypatch.setattr(results, "_append_line", real)  # space is back
    res = runner.invoke(app, ["run", str(spec), "--out", str(run_dir), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "2 already done, 2 run, 0 failed" in " ".join(res.stdout.split())
    lines = (run_dir / POINTS).read_text().splitlines()
    assert lines[:2] == written and len(lines) == 4  # the torn half line was compacted away
    recs = [json.loads(line) for line in lines]
    assert len({r["point_id"] for r in recs}) == 4 and all(r["status"] == "ok" for r in recs)
