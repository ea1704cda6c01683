"""The sweep runner: plan → skip finished points → execute through an executor → one writer.

The measuring itself lives in `sweep/measure.py` (what any executor's worker imports); the
runner only plans, writes the manifest, hands unfinished points to an executor and appends
the records it gets back, in the driver, as the single writer.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scalebench.atomic import atomic_write_text
from scalebench.provenance import git_commit, now, provenance, versions
from scalebench.record import SCHEMA_VERSION, Record
from scalebench.results import MANIFEST, RecordWriter, latest_records, read_manifest
from scalebench.sweep.plan import Point, expand
from scalebench.sweep.spec import SweepSpec
from scalebench.timing import calibration_figure

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    run_dir: Path
    planned: int
    skipped: int
    ran: int
    failed: int
    wall_s: float
    interrupted: bool = False


def invoking_command() -> str:
    """The command line that made this invocation (`scalebench run quick --out …`), for the docs' provenance."""
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if prog in ("__main__.py", "cli.py"):  # python -m scalebench.cli
        prog = "scalebench"
    return shlex.join([prog, *sys.argv[1:]])


def write_manifest(run_dir: Path, spec: SweepSpec) -> dict[str, Any]:
    """(Re)write manifest.json, keeping the history of earlier invocations into this run."""
    old = read_manifest(run_dir)
    entry = {"started_at": now(), "git_commit": git_commit(), "device": spec.device,
             "spec_hash": spec.hash(), "executor": asdict(spec.executor), "command": invoking_command()}
    manifest = {
        "schema": SCHEMA_VERSION, "run": run_dir.name, "spec": spec.to_dict(), "spec_raw": spec.raw,
        "spec_source": spec.source, "versions": versions(), "git_commit": git_commit(),
        "device": spec.device, "threads": spec.threads, "provenance": provenance(spec.device),
        "started_at": old.get("started_at", entry["started_at"]),
        "calibration_s": calibration_figure(spec.device),
        "invocations": [*old.get("invocations", []), entry],
    }
    atomic_write_text(run_dir / MANIFEST, json.dumps(manifest, indent=2, default=str))
    return manifest


def run_sweep(spec: SweepSpec, run_dir: Path, only: tuple[str, ...] = (), executor: Any = None,
              progress: bool = True, on_record: Callable[[Record], None] | None = None,
              wait: bool = False, on_wait: Callable[[Any], None] | None = None, repair: bool = False) -> SweepResult:
    """Run every unfinished point of `spec` into `run_dir` (resumable, append-only).

    Holds the run directory's lock (sweep/lock.py) throughout: a live writer elsewhere raises
    RunLocked, or is waited for with `wait`. `repair` compacts points.jsonl first.
    """
    from scalebench.sweep.lock import RunLock
    from scalebench.sweep.plancache import cached_plan, plan_key, remember_plan

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    key = None if repair else plan_key(spec, only)
    remembered = cached_plan(key) if key else None
    if remembered is not None and (run_dir / MANIFEST).is_file():
        with RunLock(run_dir, wait=wait, on_wait=on_wait):
            if _all_finished(run_dir, remembered):  # nothing to do: no planning, no torch
                n = len(remembered)
                return SweepResult(run_dir, n, n, 0, 0, round(time.perf_counter() - t0, 2))
    points = expand(spec, only)
    if key and remembered is None:
        remember_plan(key, points)
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir, wait=wait, on_wait=on_wait):
        return _run_locked(spec, run_dir, points, executor, progress, on_record, repair, t0)


def _all_finished(run_dir: Path, plan: list[tuple[str, str]]) -> bool:
    """Every (point_id, timing_key) of a plan has an ok, fully timed record with that timing key."""
    latest = latest_records(run_dir)
    for pid, timing_key in plan:
        r = latest.get(pid)
        if r is None or not r.ok or r.pending or r.timing_key != timing_key:
            return False
    return True


def _run_locked(spec: SweepSpec, run_dir: Path, points: list[Point], executor: Any, progress: bool,
                on_record: Callable[[Record], None] | None, repair: bool, t0: float) -> SweepResult:
    from scalebench.results import clean_temp_files, compact_points
    clean_temp_files(run_dir)
    if repair:
        compact_points(run_dir)
    latest = latest_records(run_dir)
    done = {pid for pid, r in latest.items() if r.ok}
    # quality done, timing interrupted or measured with other threads / timing settings: only the
    # rounds are (re)done, the samples and metrics are kept
    pending = [(p, latest[p.point_id]) for p in points if p.point_id in done
               and (latest[p.point_id].pending or latest[p.point_id].timing_key != p.timing_key)]
    todo = [p for p in points if p.point_id not in done]
    if todo or pending or not read_manifest(run_dir):  # a finished run is left byte for byte as it was
        write_manifest(run_dir, spec)
    writer = RecordWriter(run_dir)
    executor = executor or make_executor(spec, latest)
    ran = failed = 0
    interrupted = False
    bar = _progress(progress)
    with bar:
        task = bar.add_task("sweep", total=len(todo) + len(pending))
        records: Any = ()
        try:
            by_id = {p.point_id: p for p in todo}
            label = lambda p: bar.update(task, description=p.label())  # noqa: E731
            if getattr(executor, "times_rounds", False):  # e.g. Ray: its workers time the rounds
                records = executor.run(todo, on_start=label, pending=pending, order_seed=spec.timing_order_seed())
            else:
                records = _with_rounds(executor.run(todo, on_start=label), by_id, pending,
                                       spec.timing_order_seed(), lambda n: bar.update(
                                           task, description=f"timing rounds over {n} points"))
            for rec in records:
                writer.append(rec)  # a pending record too: the quality work survives a crash in the rounds
                if rec.pending:
                    continue
                ran += rec.point_id in by_id
                failed += not rec.ok
                bar.advance(task)
                if on_record:
                    on_record(rec)
        except KeyboardInterrupt:
            interrupted = True
            close = getattr(records, "close", None)
            if close:  # stops scheduling now (a Ray executor shuts its local Ray down)
                close()
    return SweepResult(run_dir, len(points), len(points) - len(todo), ran, failed,
                       round(time.perf_counter() - t0, 2), interrupted)


def _with_rounds(records: Iterable[Record], by_id: dict[str, Point], pending: list[tuple[Point, Record]],
                 order_seed: int, announce: Callable[[int], None]) -> Iterator[Record]:
    """An in-process executor's records, then the interleaved timing rounds over every pending point
    (those it just measured and those an interrupted earlier run left pending)."""
    for rec in records:
        if rec.pending:
            pending.append((by_id[rec.point_id], rec))
        yield rec
    if pending:
        from scalebench.sweep.measure import time_rounds

        announce(len(pending))
        yield from time_rounds(pending, order_seed=order_seed)


def make_executor(spec: SweepSpec, history: dict[str, Any]) -> Any:
    """The spec's executor (`executor = "local" | "ray"`); Ray is imported only for "ray"."""
    if spec.executor.kind == "ray":
        from scalebench.sweep.ray_executor import RayExecutor, import_ray

        import_ray()  # fails here, with the install hint, before any work
        return RayExecutor(spec.executor, history)
    from scalebench.sweep.executors import LocalExecutor

    return LocalExecutor()


def _progress(enabled: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), disable=not enabled,
                    transient=False)
