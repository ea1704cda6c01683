"""Synthetic run directories for the report tests: records written with the real RecordWriter.

`make_record` builds one schema-1 record; `write_run` writes a run dir (manifest + points);
`synthetic_zoo` writes a small zoo with a known answer for every cell of the table.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from scalebench.record import SCHEMA_VERSION
from scalebench.results import MANIFEST, RecordWriter

XSS = "<script>alert(1)</script>"
# emoji blocks (✅ U+2705, ❌ U+274C, ✓…, 🟢 …): the report must not need an emoji font
EMOJI = re.compile("[\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff\ufe0f]")
FLOOR = (0.87, 0.05)  # the zoo's FID data floor: mean, sd


def preview(seed: int, quality: float = 1.0, n: int = 16) -> dict[str, Any]:
    """16 fake 8×8 samples in the runner's preview format (uint8 at scale 16, base64)."""
    rng = np.random.default_rng(seed)
    base = np.zeros((n, 1, 8, 8))
    base[:, :, 2:6, 3:5] = 1.0
    noise = rng.random((n, 1, 8, 8))
    w = min(max(quality, 0.0), 1.0)
    x = np.round((w * base + (1 - w) * noise) * 16).astype(np.uint8)
    return {"shape": list(x.shape), "scale": 16, "data": base64.b64encode(x.tobytes()).decode("ascii")}


def make_record(generator: str, S: int, K: int, seed: int, metrics: dict[str, float], *,
                sampler: str = "default", category: str = "refinement", outer: str | None = None,
                family: str | None = None, run: str = "synthetic", status: str = "ok",
                latency_s: float | None = None, with_preview: bool = True) -> dict[str, Any]:
    """One record as the runner writes it (cost scales with S·K so the cost charts have shape)."""
    steps = S * K
    lat = latency_s if latency_s is not None else 1e-4 * steps * (1 + 0.02 * seed)
    rec: dict[str, Any] = {
        "schema": 1, "point_id": f"{run}:{generator}:{sampler}:S{S}:K{K}:s{seed}",
        "spec_hash": "deadbeef", "run": run, "generator": generator, "sampler": sampler,
        "family": family or generator, "category": category, "outer": outer, "likelihood": "none",
        "dataset": "digits", "S": S, "K": K, "seed": seed, "n": 64, "batch_size": 32, "device": "cpu",
        "dtype": "float32", "status": status, "error": None if status == "ok" else "RuntimeError: boom",
        "metrics": metrics if status == "ok" else {},
        "cost": {"nfe": steps, "flops": 1e6 * steps, "latency_s": lat, "latency_p10_s": lat * 0.9,
                 "latency_p90_s": lat * 1.2, "peak_mem_bytes": 1e6} if status == "ok" else {},
        "timing": {"samples_s": [lat * 32] * 3, "per_sample_s": [lat] * 3, "batch": 32, "warmup": 1, "repeats": 3},
        "nll_kind": None, "checkpoint": None,
        "provenance": {"versions": {"python": "3.11"}, "git_commit": "abc1234", "host": "test", "platform": "linux"},
        "started_at": "2025-01-01T00:00:00+00:00", "ended_at": "2025-01-01T00:00:01+00:00", "wall_s": 1.0,
    }
    if with_preview and status == "ok":
        q = metrics.get("fid", 50.0)
        rec["preview"] = preview(seed * 1000 + steps, quality=1.0 - min(q, 100.0) / 100.0)
    return rec


def write_run(run_dir: Path, records: Iterable[dict[str, Any]], manifest: dict[str, Any] | None = None) -> Path:
    """A run directory as `scalebench run` leaves it: manifest.json + points.jsonl."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    man = {"schema": SCHEMA_VERSION, "run": run_dir.name, "spec": {"name": run_dir.name, "seeds": [0, 1, 2]},
           "spec_raw": "name = \"synthetic\"\nseeds = [0, 1, 2]\n", "spec_source": "synthetic.toml",
           "versions": {"python": "3.11", "torch": "2.x", "plotly": "test"}, "git_commit": "abc1234",
           "device": "cpu", "provenance": {"device_name": "test cpu", "host": "test"},
           "started_at": "2025-01-01T00:00:00+00:00", "calibration_s": 0.01}
    man.update(manifest or {})
    (run_dir / MANIFEST).write_text(json.dumps(man, indent=2), encoding="utf-8")
    writer = RecordWriter(run_dir)
    for r in records:
        writer.append(r)
    return run_dir


def curve_records(generator: str, axis: str, values: Iterable[int], fn: Callable[[int, int], float],
                  seeds: Iterable[int] = (0, 1, 2), other: int = 1, metric: str = "fid",
                  floor: tuple[float, float] | None = None, **kw: Any) -> list[dict]:
    """Records along one axis: `fn(value, seed)` gives the metric; `floor` = (mean, sd) of its data
    floor, stored the documented way: metrics["<metric>_floor"], metrics["<metric>_floor_sd"]."""
    out = []
    for seed in seeds:
        for v in values:
            S, K = (v, other) if axis == "S" else (other, v)
            metrics = {metric: float(fn(v, seed))}
            if floor is not None:
                metrics |= {f"{metric}_floor": floor[0], f"{metric}_floor_sd": floor[1]}
            out.append(make_record(generator, S, K, seed, metrics, **kw))
    return out


def noise(v: int, seed: int, scale: float) -> float:
    """Deterministic pseudo-noise in [-scale, scale] for (value, seed)."""
    return scale * math.sin(12.9898 * v + 78.233 * (seed + 1)) % (2 * scale) - scale


def synthetic_zoo(root: Path, seeds: Iterable[int] = (0, 1, 2), xss: bool = True) -> Path:
    """A run dir whose table is known: see the comments for each method's expected cells."""
    seeds = tuple(seeds)
    recs: list[dict] = []
    # neither: one point → S —, K —
    for s in seeds:
        recs.append(make_record("vae", 1, 1, s, {"fid": 40 + s, "diversity": 0.9}, category="neither"))
    # sequence: FID falls with S → S improves, K fixed
    recs += curve_records("gpt", "S", [1, 4, 16, 64], lambda v, s: 80 / math.sqrt(v) + 2 + 0.3 * s, seeds,
                          category="sequence")
    # refinement, improves then saturates → K improves (records carry the data floor, far below)
    recs += curve_records("diffusion", "K", [1, 2, 5, 10, 20, 50], lambda v, s: 10 + 60 * math.exp(-v / 3)
                          + noise(v, s, 0.3), seeds, sampler="ddim", category="refinement", floor=FLOOR)
    # refinement, worse with K (+70 %) → K worse (a finding that disagrees with the seed)
    recs += curve_records("ebm", "K", [1, 2, 5, 10, 20, 50], lambda v, s: 20 + 4 * math.log(v) + noise(v, s, 0.5),
                          seeds, category="refinement")
    # refinement, 0.95 → 0.6, starting inside the floor's margin 0.87 + 2·0.05 → K at floor (no gain credited);
    # its FID of ~0.6 next to gpt's ~80 makes the quality axes logarithmic
    recs += curve_records("cm", "K", [1, 2, 4, 8], lambda v, s: 0.6 + 0.35 / v + 0.01 * s, seeds,
                          category="refinement", floor=FLOOR)
    # both-outer-S: S×K grid, both improve
    for s in seeds:
        for S in (1, 4, 16):
            for K in (1, 4, 16):
                fid = 5 + 40 / math.sqrt(S) + 30 / math.sqrt(K) + 0.2 * s
                recs.append(make_record("mar", S, K, s, {"fid": fid}, category="both-outer-S", outer="S"))
    if xss:
        for s in seeds:
            recs.append(make_record(XSS, 1, 1, s, {"fid": 50.0 + s}, category="neither", sampler=XSS))
    # a failed point stays visible but does not count
    recs.append(make_record("gpt", 64, 1, 99, {}, category="sequence", status="failed"))
    early = make_record("gpt", 16, 1, 98, {}, status="failed")  # failed before the generator loaded
    for k in ("family", "category", "outer", "likelihood", "dataset"):
        early.pop(k)
    recs.append(early)
    return write_run(Path(root) / "synthetic", recs)


EXPECTED = {  # (generator, sampler) → (S cell, K cell)
    ("vae", "default"): ("fixed", "fixed"),
    ("gpt", "default"): ("improves", "fixed"),
    ("diffusion", "ddim"): ("fixed", "improves"),
    ("ebm", "default"): ("fixed", "worse"),
    ("cm", "default"): ("fixed", "at floor"),
    ("mar", "default"): ("improves", "improves"),
    (XSS, XSS): ("fixed", "fixed"),
}
