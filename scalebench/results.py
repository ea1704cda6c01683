"""Result records: the versioned schema, the append-only writer, and `load_results()`.

A run directory holds `manifest.json` (spec, versions, git commit, device, start time) and
`points.jsonl`, one self-describing JSON record per grid point, appended, flushed and
fsync'ed, so an interrupted sweep loses at most the point in flight; a torn last line is
skipped on reading. Records carry `schema`; `migrate()` upgrades old ones on load.

Record (schema 1)::

    schema, point_id, spec_hash, run, generator, sampler, family, category, outer,
    likelihood, dataset, S, K, seed, n, batch_size, device, dtype, status ("ok"|"failed"),
    error, metrics {name: value}, cost {nfe, flops, latency_s, latency_p10_s,
    latency_p90_s, peak_mem_bytes}, timing {samples_s: [seconds per batch call], batch,
    warmup, repeats, per_sample_s: [seconds per sample]}, nll_kind, checkpoint,
    provenance {versions, git_commit, host, platform}, started_at, ended_at, wall_s
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from scalebench.atomic import atomic_write

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
POINTS = "points.jsonl"
MANIFEST = "manifest.json"

# Columns identifying a point in the tidy table, in display order.
POINT_COLUMNS = [
    "run", "point_id", "generator", "sampler", "family", "category", "outer", "dataset",
    "S", "K", "seed", "n", "batch_size", "device", "dtype", "threads", "status", "error",
]
COST_COLUMNS = ["nfe", "nfe_measured", "flops", "latency_s", "latency_p10_s", "latency_p90_s", "peak_mem_bytes"]
PROVENANCE_COLUMNS = ["git_commit", "started_at", "wall_s", "nll_kind", "spec_hash"]


def migrate(record: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a record to SCHEMA_VERSION (records without `schema` are pre-release v0)."""
    version = record.get("schema", 0)
    if version > SCHEMA_VERSION:
        raise ValueError(f"record schema {version} is newer than this scalebench ({SCHEMA_VERSION}); upgrade scalebench")
    if version == 0:
        record = {**record, "schema": 1}
        record.setdefault("sampler", "default")
        record.setdefault("cost", {})
        record.setdefault("metrics", {})
    return record


class RecordWriter:
    """The single writer of a run's points.jsonl (executors hand records to it)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / POINTS
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()

    def _repair_torn_tail(self) -> None:
        """Terminate a torn last line so the next append starts on a fresh line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, allow_nan=True, default=str)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


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


def iter_records(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Records of one run directory; torn or corrupt lines are skipped with a warning."""
    path = Path(run_dir) / POINTS
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield migrate(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s:%d is torn or corrupt; skipped", path, i)


def latest_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """point_id → the last record written for it (a re-run failed point supersedes the old)."""
    out: dict[str, dict[str, Any]] = {}
    for r in iter_records(run_dir):
        out[r["point_id"]] = r
    return out


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand paths: a run dir (has points.jsonl), or a folder of run dirs."""
    dirs: list[Path] = []
    for p in map(Path, paths):
        if (p / POINTS).exists():
            dirs.append(p)
        elif p.is_dir():
            found = sorted(d.parent for d in p.glob(f"*/{POINTS}"))
            if not found:
                raise FileNotFoundError(f"{p} holds no {POINTS}; pass a run directory written by `scalebench run`")
            dirs.extend(found)
        else:
            raise FileNotFoundError(f"results path {p} does not exist; pass a run directory written by `scalebench run`")
    return dirs


def record_rows(record: dict[str, Any], run: str) -> list[dict[str, Any]]:
    """The tidy rows of one record: one per metric (quality and cost), with all columns."""
    from scalebench.metrics import METRICS

    base = {c: record.get(c) for c in POINT_COLUMNS}
    base["run"] = record.get("run") or run
    cost = record.get("cost") or {}
    base.update({c: cost.get(c) for c in COST_COLUMNS})
    base.update({
        "git_commit": (record.get("provenance") or {}).get("git_commit"),
        "started_at": record.get("started_at"),
        "wall_s": record.get("wall_s"),
        "nll_kind": record.get("nll_kind"),
        "spec_hash": record.get("spec_hash"),
    })
    values = {**(record.get("metrics") or {}), **{k: cost.get(k) for k in ("latency_s", "nfe", "flops", "peak_mem_bytes")}}
    rows = []
    for name, value in values.items():
        spec = METRICS.get(name)
        rows.append({**base, "metric": name, "value": value if value is not None else float("nan"),
                     "better": spec.better if spec else "lower", "kind": spec.kind if spec else "quality"})
    if not rows:  # a failed point still appears once, so failures are visible in the table
        rows.append({**base, "metric": None, "value": float("nan"), "better": None, "kind": None})
    return rows


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
            if include_failed or rec.get("status") == "ok":
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
    written = []
    for fmt in formats:
        path = out.with_suffix(f".{fmt}")
        if fmt == "parquet":
            atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
        elif fmt == "csv":
            atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
        else:
            raise ValueError(f"unknown export format {fmt!r}; use parquet or csv")
        written.append(path)
    return written
