"""Result records: the versioned schema, the append-only writer, and `load_results()`.

A run directory holds `manifest.json` (spec, versions, git commit, device, start time) and
`points.jsonl`, one self-describing JSON record per grid point, appended, flushed and
fsync'ed, so an interrupted sweep loses at most the point in flight. Reading validates:
a line that is torn, not JSON, or JSON but not a record (no `point_id`/`status`) is skipped
with a warning naming file:line, and the next writer (or `scalebench run --repair`)
compacts the file atomically without it. A manifest that is not a JSON object is treated
as missing. Every reader gets typed `scalebench.record.Record`s (older schemas migrated on
load); the tidy frame (`load_results`) is derived from them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from scalebench.atomic import atomic_write, atomic_write_text
from scalebench.errors import ResultsError, UsageError
from scalebench.record import FLOOR_SD_SUFFIX, FLOOR_SUFFIX, Record

log = logging.getLogger(__name__)

POINTS = "points.jsonl"
MANIFEST = "manifest.json"

# Columns identifying a point in the tidy table, in display order.
POINT_COLUMNS = [
    "run", "point_id", "generator", "sampler", "family", "category", "outer", "dataset",
    "S", "K", "seed", "n", "batch_size", "device", "dtype", "compile", "threads", "status", "error",
    "generator_name", "args", "replicate",
]
COST_COLUMNS = ["nfe", "nfe_measured", "flops", "latency_s", "latency_p10_s", "latency_p90_s", "peak_mem_bytes"]
PROVENANCE_COLUMNS = ["git_commit", "started_at", "wall_s", "nll_kind", "spec_hash", "timing_mode", "timing_noisy"]


def clean_temp_files(run_dir: Path) -> list[Path]:
    """Delete `.*.tmp` files left in a run directory by killed atomic writes (call under the lock)."""
    removed = []
    for tmp in Path(run_dir).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    if removed:
        log.info("%s: removed %d temporary file(s) left by an interrupted write", run_dir, len(removed))
    return removed


def _check_line(raw: bytes) -> dict[str, Any] | str:
    """The record on a points.jsonl line, or why the line is not one."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "is torn or not JSON"
    if not isinstance(obj, dict):
        kind = "null" if obj is None else type(obj).__name__
        return f"is JSON but not a record ({kind})"
    missing = [k for k in ("point_id", "status") if not isinstance(obj.get(k), str) or not obj.get(k)]
    if missing:
        return f"is JSON but not a record (no {missing[0]})"
    return obj


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        yield from enumerate(f, 1)


def compact_points(run_dir: Path) -> int:
    """Rewrite points.jsonl atomically without torn or invalid lines; returns how many were dropped.

    Valid lines are kept byte for byte, in order. Nothing is written when there is nothing to
    drop and the file ends with a newline. Call it only while holding the run's lock.
    """
    path = Path(run_dir) / POINTS
    if not path.exists():
        return 0
    keep: list[bytes] = []
    dropped = 0
    for _, raw in _lines(path):
        if not raw.strip():
            continue
        if isinstance(_check_line(raw), dict):
            keep.append(raw.rstrip(b"\r\n") + b"\n")
        else:
            dropped += 1
    size = path.stat().st_size
    if dropped == 0 and (size == 0 or sum(map(len, keep)) == size):
        return 0
    atomic_write_text(path, b"".join(keep).decode("utf-8"))
    _fsync_dir(path.parent)
    (log.warning if dropped else log.info)("%s: compacted, dropped %d torn or invalid line(s), kept %d record(s)",
                                           path, dropped, len(keep))
    return dropped


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsync'ed
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _append_line(path: Path, line: str) -> None:
    """Append one line and fsync it (the one place a record reaches the disk)."""
    with open(path, "ab") as f:
        f.write(line.encode("utf-8") + b"\n")
        f.flush()
        os.fsync(f.fileno())


class RecordWriter:
    """The single writer of a run's points.jsonl (executors hand records to it).

    Before its first append it compacts the file (drops a torn fragment a killed writer or a
    full disk left), so warnings about it do not repeat forever; a resume with nothing to run
    never appends and so rewrites nothing.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / POINTS
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._compacted = False

    def append(self, record: Record | dict[str, Any]) -> None:
        """Append one record (a `Record`, or its JSON object of any schema: migrated and checked first)."""
        if isinstance(record, dict):
            record = Record.from_json(record)
        if not self._compacted:
            compact_points(self.path.parent)
            self._compacted = True
        _append_line(self.path, json.dumps(record.to_json(), sort_keys=True, allow_nan=True, default=str))


def encode_preview(x: Any, levels: int | None) -> dict[str, Any]:
    """A few quantised samples as base64 uint8 (levels-1 scale), so reports need no sample files."""
    import base64

    import torch

    scale = (levels or 256) - 1
    data = torch.round(x.clamp(0, 1) * scale).to(torch.uint8).numpy().tobytes()
    return {"shape": list(x.shape), "scale": scale, "data": base64.b64encode(data).decode("ascii")}


def decode_preview(preview: dict[str, Any]) -> Any:
    """Inverse of `encode_preview`: a float tensor in [0, 1] of the stored shape."""
    import base64

    import numpy as np
    import torch

    arr = np.frombuffer(base64.b64decode(preview["data"]), dtype=np.uint8).reshape(preview["shape"])
    return torch.from_numpy(arr.astype("float32") / preview["scale"])


def iter_records(run_dir: Path) -> Iterator[Record]:
    """Records of one run directory; lines that are not records are skipped with a warning."""
    path = Path(run_dir) / POINTS
    if not path.exists():
        return
    for i, raw in _lines(path):
        if not raw.strip():
            continue
        rec = _check_line(raw)
        if isinstance(rec, str):
            log.warning("%s:%d %s; skipped (the next `scalebench run` into it, or --repair, removes it)",
                        path, i, rec)
            continue
        try:
            yield Record.from_json(rec)
        except ResultsError:  # a newer schema: the reader must be upgraded, not the line skipped
            raise
        except (TypeError, ValueError, AttributeError) as e:
            log.warning("%s:%d is JSON but not a valid record (%s); skipped", path, i, e)


def latest_records(run_dir: Path) -> dict[str, Record]:
    """point_id → the last record written for it (a re-run failed point supersedes the old;
    a point's quality pass is superseded by its timed record)."""
    return {r.point_id: r for r in iter_records(run_dir)}


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest, or {} when it is missing, empty or not a JSON object (with a warning)."""
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or not data:
        log.warning("%s is empty or not a JSON object; treated as missing (the next run into it rewrites it)", path)
        return {}
    return data


def run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand paths: a run dir (has points.jsonl), or a folder of run dirs."""
    dirs: list[Path] = []
    for p in map(Path, paths):
        if (p / POINTS).is_file():
            dirs.append(p)
        elif p.is_dir():
            found = sorted(d.parent for d in p.glob(f"*/{POINTS}") if d.is_file())
            if not found:
                raise ResultsError(f"{p} holds no {POINTS}; pass a run directory written by `scalebench run`")
            dirs.extend(found)
        elif p.exists():
            raise ResultsError(f"results path {p} is a file; pass a run directory written by `scalebench run`")
        else:
            raise ResultsError(f"results path {p} does not exist; pass a run directory written by `scalebench run`")
    return dirs


def record_rows(record: Record, run: str) -> list[dict[str, Any]]:
    """The tidy rows of one record: one per metric (quality and cost), two per data floor
    (`<m>_floor`, `<m>_floor_sd`: the frame's readers find a metric's floor beside it) and one per
    diagnostic (kind "diagnostic", better None: a generator's own report, e.g. jacobi's convergence)."""
    from scalebench.metrics import METRICS

    base: dict[str, Any] = {c: getattr(record, c, None) for c in POINT_COLUMNS}
    base["run"] = record.run or run
    base["generator_name"] = record.name  # the registered name
    base["args"] = json.dumps(record.args, sort_keys=True) if record.args else ""
    base["replicate"] = record.replicate or _default_replicate(record.name if record.generator else None)
    cost = record.cost
    base.update({c: getattr(cost, c) for c in COST_COLUMNS})
    base.update({
        "git_commit": record.provenance.get("git_commit"),
        "started_at": record.started_at,
        "wall_s": record.wall_s,
        "nll_kind": record.nll_kind,
        "spec_hash": record.spec_hash,
        "timing_mode": record.timing_mode,
        "timing_noisy": bool(record.timing.noisy),
    })
    values = {**record.metrics}
    for m, floor in record.floors.items():
        values[m + FLOOR_SUFFIX], values[m + FLOOR_SD_SUFFIX] = floor.mean, floor.sd
    values.update({k: getattr(cost, k) for k in ("latency_s", "nfe", "flops", "peak_mem_bytes")})
    rows = []
    for name, value in values.items():
        spec = METRICS.get(name)
        rows.append({**base, "metric": name, "value": value if value is not None else float("nan"),
                     "better": spec.better if spec else "lower", "kind": spec.kind if spec else "quality"})
    for name, value in (record.diagnostics or {}).items():
        rows.append({**base, "metric": name, "value": float(value), "better": None, "kind": "diagnostic"})
    if not rows:  # a failed point still appears once, so failures are visible in the table
        rows.append({**base, "metric": None, "value": float("nan"), "better": None, "kind": None})
    return rows


@functools.cache
def _default_replicate(generator: str | None) -> str | None:
    """The checkpoint a record without `replicate` sampled: its generator's own (records from
    before replicates existed were all made on it)."""
    from scalebench.generators import default_checkpoint

    return default_checkpoint(generator) if generator else None


def load_results(paths: str | Path | Iterable[str | Path], include_failed: bool = True):
    """Tidy pandas DataFrame: one row per point × metric, with budget, cost and provenance.

    `paths` are run directories or folders of them. Only the latest record per point counts.
    """
    import pandas as pd

    if isinstance(paths, str | Path):
        paths = [paths]
    rows: list[dict[str, Any]] = []
    for d in run_dirs(paths):
        for rec in latest_records(d).values():
            if include_failed or rec.ok:
                rows.extend(record_rows(rec, d.name))
    columns = POINT_COLUMNS + ["metric", "value", "better", "kind"] + COST_COLUMNS + PROVENANCE_COLUMNS
    df = pd.DataFrame(rows, columns=columns)
    for c in ("S", "K", "seed", "n", "batch_size", "threads"):
        df[c] = df[c].astype("Int64")
    df["value"] = df["value"].astype(float)
    return df


def export(df, out: Path, formats: tuple[str, ...] = ("parquet", "csv")) -> list[Path]:
    """Write the tidy table as parquet and/or CSV next to each other (atomically)."""
    out = Path(out)
    unknown = [f for f in formats if f not in ("parquet", "csv")]
    if unknown or not formats:
        raise UsageError(f"unknown export format {(unknown or [''])[0]!r}; use parquet, csv or both")
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out.with_suffix(f".{fmt}")
        if fmt == "parquet":
            atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
        else:
            atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
        written.append(path)
    return written
