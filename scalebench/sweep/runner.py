"""The sweep runner: plan → skip finished points → execute through an executor → one writer.

`execute_point` is a plain function of a Point (it loads the generator once per process
and caches it), so any executor — in-process now, Ray workers later — can run it and hand
the record back to the single writer in the driver.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scalebench.api import Budget
from scalebench.provenance import git_commit, now, provenance, versions
from scalebench.results import MANIFEST, SCHEMA_VERSION, RecordWriter, atomic_write_text, latest_records, read_manifest
from scalebench.sweep.plan import Point, expand
from scalebench.sweep.spec import SweepSpec
from scalebench.timing import calibration_figure, repeat_until, summarize, time_call

log = logging.getLogger(__name__)

_GENERATORS: dict[tuple[str, str], Any] = {}
_TEST_NLL: dict[tuple, tuple[float | None, str]] = {}
_FLOPS: dict[tuple, float] = {}


PREVIEW = 16  # samples kept in each record for the report's sample grids


def encode_preview(x: torch.Tensor, levels: int | None) -> dict[str, Any]:
    """A few quantised samples as base64 uint8 (levels-1 scale), so reports need no sample files."""
    scale = (levels or 256) - 1
    data = torch.round(x.clamp(0, 1) * scale).to(torch.uint8).numpy().tobytes()
    return {"shape": list(x.shape), "scale": scale, "data": base64.b64encode(data).decode("ascii")}


def decode_preview(preview: dict[str, Any]) -> torch.Tensor:
    """Inverse of `encode_preview`: floats in [0, 1] of the stored shape."""
    import numpy as np

    arr = np.frombuffer(base64.b64decode(preview["data"]), dtype=np.uint8).reshape(preview["shape"])
    return torch.from_numpy(arr.astype("float32") / preview["scale"])


class NonFiniteSamples(RuntimeError):
    """A sampler produced NaN or Inf; the point is recorded as failed."""


def get_loaded(name: str, device: str) -> Any:
    """The generator `name` on `device`, loaded once per process."""
    from scalebench.registry import load_generator

    key = (name, device)
    if key not in _GENERATORS:
        _GENERATORS[key] = load_generator(name, device=device)
    return _GENERATORS[key]


def _autocast(device: str, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=getattr(torch, dtype))


def _rng(device: str, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def count_flops(gen: Any, budget: Budget, sampler: str, device: str, n: int = 8) -> float:
    """FLOPs per sample, counted with torch.utils.flop_counter on a small batch (hardware-free)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        gen.sample(n, budget, _rng(device, 12345), sampler)
    return counter.get_total_flops() / n


def _flops(gen: Any, point: Point) -> float:
    """FLOPs per sample, counted once per budget (they do not depend on the seed)."""
    key = (point.generator, point.fingerprint, point.sampler, point.S, point.K, point.device, point.dtype)
    if key not in _FLOPS:
        _FLOPS[key] = count_flops(gen, point.budget, point.sampler, point.device)
    return _FLOPS[key]


def _peak_memory_start(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device: str) -> int:
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # process peak RSS


def _test_nll(gen: Any, point: Point, dataset: Any) -> tuple[float | None, str]:
    """Mean test-split bits/dim at this budget (memoised: it does not depend on seed/sampler)."""
    if not hasattr(gen, "nll") or gen.card.likelihood == "none":
        return None, "none"
    key = (point.generator, point.fingerprint, point.S, point.K, point.device, point.dtype)
    if key not in _TEST_NLL:
        x = dataset.canonical("test").to(point.device)
        with torch.inference_mode(), _autocast(point.device, point.dtype):
            v = gen.nll(x, point.budget)
        _TEST_NLL[key] = (None, "none") if v is None else (float(v.float().mean()), gen.card.likelihood)
    return _TEST_NLL[key]


def execute_point(point: Point) -> dict[str, Any]:
    """Measure one grid point; never raises: failures become a record with status 'failed'."""
    started, t0 = now(), time.perf_counter()
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION, "point_id": point.point_id, "spec_hash": point.spec_hash,
        "generator": point.generator, "sampler": point.sampler, "S": point.S, "K": point.K,
        "seed": point.seed, "n": point.n, "batch_size": point.batch_size, "device": point.device,
        "dtype": point.dtype, "fingerprint": point.fingerprint, "metrics": {}, "cost": {},
        "timing": {}, "status": "failed", "error": None, "started_at": started,
    }
    try:
        gen = get_loaded(point.generator, point.device)
        card = gen.card
        record.update(family=card.family, category=card.category, outer=card.outer,
                      likelihood=card.likelihood, dataset=card.dataset)
        from scalebench.data import get_dataset

        dataset = get_dataset(card.dataset)
        budget, dev, b = point.budget, point.device, point.batch_size
        card.check_budget(budget)

        def draw(size: int, rng: torch.Generator) -> Callable[[], torch.Tensor]:
            return lambda: gen.sample(size, budget, rng, point.sampler)

        with torch.inference_mode(), _autocast(dev, point.dtype):
            warm_rng = _rng(dev, 1_000_003 + point.seed)
            for _ in range(point.timing.warmup):
                time_call(draw(b, warm_rng), dev)
            _peak_memory_start(dev)
            rng, chunks, times, left = _rng(dev, point.seed), [], [], point.n
            while left > 0:
                size = min(b, left)
                out, dt = time_call(draw(size, rng), dev)
                chunks.append(out.float().cpu())
                if size == b:
                    times.append(dt)
                left -= size
            samples = torch.cat(chunks)
            if not torch.isfinite(samples).all():
                bad = int((~torch.isfinite(samples)).flatten(1).any(1).sum())
                raise NonFiniteSamples(f"{bad} of {len(samples)} samples contain NaN/Inf")
            if tuple(samples.shape[1:]) != tuple(dataset.form.shape):
                raise ValueError(f"samples have shape {tuple(samples.shape[1:])}, "
                                 f"dataset {dataset.name} expects {dataset.form.shape}")
            times = repeat_until(draw(b, _rng(dev, 2_000_003 + point.seed)), dev, point.timing, times)
        peak = _peak_memory(dev)
        per_sample = [t / b for t in times]
        stats = summarize(per_sample)
        record["timing"] = {"samples_s": times, "per_sample_s": per_sample, "batch": b,
                            "warmup": point.timing.warmup, "repeats": len(times)}
        record["cost"] = {
            "nfe": gen.nfe(budget, point.sampler),
            "flops": _flops(gen, point),
            "latency_s": stats["median"], "latency_p10_s": stats["p10"], "latency_p90_s": stats["p90"],
            "peak_mem_bytes": peak,
        }
        record["preview"] = encode_preview(dataset.quantise(samples[:PREVIEW]), dataset.form.levels)
        wanted = tuple(m for m in point.metrics if m != "test_nll" and m in dataset.metrics)
        if wanted:  # a speed-only spec (metrics = []) never loads the metric nets
            from scalebench.metrics.quality import compute_quality

            record["metrics"] = compute_quality(samples, dataset, device=dev, metrics=wanted)
        if "test_nll" in point.metrics:
            value, kind = _test_nll(gen, point, dataset)
            record["nll_kind"] = kind
            if value is not None:
                record["metrics"]["test_nll"] = value
        bad_metrics = [k for k, v in record["metrics"].items() if v is None or not math.isfinite(v)]
        if bad_metrics:
            raise NonFiniteSamples(f"metric {bad_metrics[0]} is not finite")
        record["status"] = "ok"
    except Exception as e:  # noqa: BLE001 — a point's failure is data, the sweep goes on
        log.warning("%s failed: %s: %s", point.label(), type(e).__name__, e)
        record["error"] = f"{type(e).__name__}: {e}"
    record["ended_at"] = now()
    record["wall_s"] = round(time.perf_counter() - t0, 3)
    record["provenance"] = provenance(point.device)
    return record


@dataclass
class SweepResult:
    run_dir: Path
    planned: int
    skipped: int
    ran: int
    failed: int
    wall_s: float
    interrupted: bool = False


def write_manifest(run_dir: Path, spec: SweepSpec) -> dict[str, Any]:
    """(Re)write manifest.json, keeping the history of earlier invocations into this run."""
    old = read_manifest(run_dir)
    entry = {"started_at": now(), "git_commit": git_commit(), "device": spec.device,
             "spec_hash": spec.hash()}
    manifest = {
        "schema": SCHEMA_VERSION, "run": run_dir.name, "spec": spec.to_dict(), "spec_raw": spec.raw,
        "spec_source": spec.source, "versions": versions(), "git_commit": git_commit(),
        "device": spec.device, "provenance": provenance(spec.device),
        "started_at": old.get("started_at", entry["started_at"]),
        "calibration_s": calibration_figure(spec.device),
        "invocations": [*old.get("invocations", []), entry],
    }
    atomic_write_text(run_dir / MANIFEST, json.dumps(manifest, indent=2, default=str))
    return manifest


def run_sweep(spec: SweepSpec, run_dir: Path, only: tuple[str, ...] = (), executor: Any = None,
              progress: bool = True, on_record: Callable[[dict], None] | None = None,
              wait: bool = False, on_wait: Callable[[Any], None] | None = None, repair: bool = False) -> SweepResult:
    """Run every unfinished point of `spec` into `run_dir` (resumable, append-only).

    Holds the run directory's lock (sweep/lock.py) throughout: a live writer elsewhere raises
    RunLocked, or is waited for with `wait`. `repair` compacts points.jsonl first.
    """
    from scalebench.sweep.lock import RunLock

    t0 = time.perf_counter()
    points = expand(spec, only)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir, wait=wait, on_wait=on_wait):
        return _run_locked(spec, run_dir, points, executor, progress, on_record, repair, t0)


def _run_locked(spec: SweepSpec, run_dir: Path, points: list[Point], executor: Any, progress: bool,
                on_record: Callable[[dict], None] | None, repair: bool, t0: float) -> SweepResult:
    from scalebench.results import clean_temp_files, compact_points
    from scalebench.sweep.executors import LocalExecutor

    clean_temp_files(run_dir)
    if repair:
        compact_points(run_dir)
    done = {pid for pid, r in latest_records(run_dir).items() if r.get("status") == "ok"}
    todo = [p for p in points if p.point_id not in done]
    if todo or not read_manifest(run_dir):  # a finished run is left byte for byte as it was
        write_manifest(run_dir, spec)
    writer = RecordWriter(run_dir)
    executor = executor or LocalExecutor()
    ran = failed = 0
    interrupted = False
    bar = _progress(progress)
    with bar:
        task = bar.add_task("sweep", total=len(todo))
        try:
            for rec in executor.run(todo, on_start=lambda p: bar.update(task, description=p.label())):
                writer.append(rec)
                ran += 1
                failed += rec["status"] != "ok"
                bar.advance(task)
                if on_record:
                    on_record(rec)
        except KeyboardInterrupt:
            interrupted = True
    return SweepResult(run_dir, len(points), len(points) - len(todo), ran, failed,
                       round(time.perf_counter() - t0, 2), interrupted)


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
