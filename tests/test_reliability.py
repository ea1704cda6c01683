"""The run directory's lock, records validated on read, compaction, temp-file cleanup, resume."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalebench.cli import app
from scalebench.record import Record
from scalebench.results import MANIFEST, POINTS, RecordWriter, iter_records, load_results, read_manifest
from scalebench.sweep.lock import LOCK_NAME, Holder, RunLock, RunLocked
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import parse_spec
from tests.conftest import toy_spec
from tests.specfiles import snapshot, toml_of

runner = CliRunner(env={"COLUMNS": "200", "SCALEBENCH_DEBUG": None})  # a user's debug setting must not leak in


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    res = run_sweep(parse_spec(toy_spec()), run_dir, progress=False)
    assert res.ran == 2 and res.failed == 0
    return run_dir


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ----------------------------------------------------------------------------- the lock

def test_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    with RunLock(tmp_path) as held:
        assert held.held and held.took_over is None
        holder = Holder.parse((tmp_path / LOCK_NAME).read_bytes())
        assert holder is not None and holder.pid == os.getpid() and holder.host and holder.started_at
        msg = f"is being written by pid {os.getpid()} on host {holder.host} since {holder.started_at}"
        with pytest.raises(RunLocked, match=re.escape(msg)):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path):  # free again
        pass


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": "h", "started_at": "then"}))
    with caplog.at_level(logging.WARNING), RunLock(tmp_path) as lock:
        assert lock.took_over is not None and lock.took_over.pid == dead
        assert Holder.parse((tmp_path / LOCK_NAME).read_bytes()).pid == os.getpid()
    assert f"took over the lock left by pid {dead} on host h" in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()


def test_killed_writer_leaves_a_stale_lock_that_the_next_run_takes(tmp_path: Path) -> None:
    """kill -9 of a holder: the kernel drops its flock, the file stays, the next writer takes over."""
    code = ("import sys, time; from scalebench.sweep.lock import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert p.stdout.readline().strip() == "held"
    with pytest.raises(RunLocked, match=f"pid {p.pid}"):
        RunLock(tmp_path).acquire()
    p.kill()
    p.wait()
    assert (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path) as lock:
        assert lock.took_over is not None and lock.took_over.pid == p.pid


def test_wait_waits_for_the_holder(tmp_path: Path) -> None:
    first = RunLock(tmp_path).acquire()
    seen: list[Holder | None] = []
    threading.Timer(0.3, first.release).start()
    t0 = time.monotonic()
    with RunLock(tmp_path, wait=True, poll_s=0.02, on_wait=seen.append):
        assert time.monotonic() - t0 >= 0.25
    assert len(seen) == 1 and seen[0] is not None and seen[0].pid == os.getpid()


def test_readers_never_take_the_lock(finished: Path) -> None:
    with RunLock(finished):
        held = (finished / LOCK_NAME).read_bytes()
        assert len(load_results(finished)) > 0
        # exit 2: one short run's few timings cannot detect a slowdown (the speed gate says so); never 1 or a crash
        assert runner.invoke(app, ["compare", str(finished), str(finished)]).exit_code in (0, 2)
        assert runner.invoke(app, ["export", str(finished), "--out", str(finished.parent / "t")]).exit_code == 0
        assert (finished / LOCK_NAME).read_bytes() == held


def test_lock_is_released_when_the_sweep_fails(finished: Path) -> None:
    class Boom:
        def run(self, points, on_start=None):
            raise RuntimeError("executor bug")
            yield  # pragma: no cover

    spec = parse_spec(toy_spec(generators=[{"name": "toy", "samplers": ["a"], "K": [1, 2, 3]}]))
    with pytest.raises(RuntimeError, match="executor bug"):
        run_sweep(spec, finished, executor=Boom(), progress=False)
    assert not (finished / LOCK_NAME).exists()
    assert run_sweep(spec, finished, progress=False).ran == 1


# ----------------------------------------------------------------------------- records validated on read

@pytest.mark.parametrize("line, why", [
    ("null", "is JSON but not a record (null)"),
    ("[1, 2]", "is JSON but not a record (list)"),
    ('"text"', "is JSON but not a record (str)"),
    ('{"status": "ok"}', "is JSON but not a record (no point_id)"),
    ('{"point_id": "p"}', "is JSON but not a record (no status)"),
    ('{"point_id": 3, "status": "ok"}', "is JSON but not a record (no point_id)"),
    ('{"point_id": "torn", "stat', "is torn or not JSON"),
    (b'{"point_id": "\xff", "status": "ok"}', "is torn or not JSON"),
])
def test_lines_that_are_not_records_are_skipped_with_file_and_line(finished: Path, line: str | bytes, why: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    with open(finished / POINTS, "ab") as f:
        f.write((line.encode() if isinstance(line, str) else line) + b"\n")
    with caplog.at_level(logging.WARNING):
        recs = list(iter_records(finished))
        df = load_results(finished)
    assert len(recs) == 2 and set(df["point_id"]) == {r.point_id for r in recs}
    assert f"{finished / POINTS}:3 {why}; skipped" in caplog.text


@pytest.mark.parametrize("text", ["", "null", "[]", "{}", "3", "{not json", "\xff"])
def test_bad_manifest_is_missing_and_rewritten_on_resume(finished: Path, text: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    (finished / MANIFEST).write_bytes(text.encode("latin-1"))
    points = (finished / POINTS).read_bytes()
    with caplog.at_level(logging.WARNING):
        assert read_manifest(finished) == {}
    assert f"{finished / MANIFEST} is empty or not a JSON object; treated as missing" in caplog.text
    res = run_sweep(parse_spec(toy_spec()), finished, progress=False)
    assert res.ran == 0
    manifest = read_manifest(finished)
    assert manifest["run"] == "run" and len(manifest["invocations"]) == 1
    assert (finished / POINTS).read_bytes() == points


def test_resume_of_a_finished_run_writes_nothing(finished: Path) -> None:
    before = snapshot(finished)
    mtimes = {p: p.stat().st_mtime_ns for p in finished.iterdir()}
    res = run_sweep(parse_spec(toy_spec()), finished, progress=False)
    assert (res.skipped, res.ran) == (2, 0)
    assert snapshot(finished) == before
    assert {p: p.stat().st_mtime_ns for p in finished.iterdir()} == mtimes


def test_leftover_temp_files_are_cleaned_by_the_next_writer(finished: Path) -> None:
    for name in (".manifest.json.4242.tmp", ".points.jsonl.7.tmp"):
        (finished / name).write_text("half")
    assert len(list(iter_records(finished))) == 2  # readers leave them alone
    assert (finished / ".manifest.json.4242.tmp").exists()
    run_sweep(parse_spec(toy_spec()), finished, progress=False)
    assert sorted(p.name for p in finished.iterdir()) == [MANIFEST, POINTS]


def test_failed_atomic_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scalebench import results

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", full)
    with pytest.raises(OSError):
        results.atomic_write_text(tmp_path / "x.json", "{}")
    assert list(tmp_path.iterdir()) == []


def _garble(run_dir: Path) -> list[bytes]:
    good = (run_dir / POINTS).read_bytes().splitlines(keepends=True)
    with open(run_dir / POINTS, "ab") as f:
        f.write(b"null\n[1]\n{\"point_id\": \"torn\", \"sta")
    return good


def test_repair_compacts_without_torn_or_invalid_lines(finished: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = _garble(finished)
    spec = finished.parent / "spec.toml"
    spec.write_text(toml_of(toy_spec()))
    res = runner.invoke(app, ["run", str(spec), "--out", str(finished), "--no-progress", "--repair"])
    assert res.exit_code == 0, res.output
    assert (finished / POINTS).read_bytes().splitlines(keepends=True) == good
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert len(list(iter_records(finished))) == 2
    assert caplog.text == ""


def test_next_append_compacts(finished: Path) -> None:
    good = _garble(finished)
    spec = parse_spec(toy_spec(generators=[{"name": "toy", "samplers": ["a"], "K": [1, 2, 3]}]))
    assert run_sweep(spec, finished, progress=False).ran == 1
    lines = (finished / POINTS).read_bytes().splitlines(keepends=True)
    assert lines[:2] == good and len(lines) == 3
    assert [json.loads(line)["K"] for line in lines] == [1, 2, 3]


def test_writer_terminates_a_valid_last_line_without_newline(tmp_path: Path) -> None:
    (tmp_path / POINTS).write_text('{"point_id": "a", "status": "ok"}')
    RecordWriter(tmp_path).append(Record(point_id="b", status="ok"))
    assert [r.point_id for r in iter_records(tmp_path)] == ["a", "b"]
