"""Local executor vs Ray on this machine, interleaved A/B repetitions (issue 14, item 4).

    python benchmarks/executor_speedup.py [--reps 3] [--workers 2] [--json OUT]

A quality-heavy spec (every quality metric, 1000 samples, diffusion DDIM and GPT at a few budgets,
2 seeds) runs as `scalebench run` in a fresh process: locally with threads = cores (one process
using every core), and on a private local Ray with `--workers` workers × 1 thread. Repetitions
alternate in a seeded shuffled order. Reports the wall time of each command (Ray's start-up
included), the speed-up local/Ray (goal ≥ 1.6× on 2 cores), and Ray's per-point overhead: a
third mode runs Ray with ONE worker using every core (the local run's compute, through Ray), and
(its wall − the local wall) / points is what Ray adds per point, its start-up amortised.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scalebench.results import latest_records

GENERATORS = [{"name": "diffusion", "samplers": ["ddim"], "K": [5, 10, 20]}, {"name": "gpt", "S": [16, 64]}]


def spec_text(threads: int) -> str:
    lines = ['name = "speedup"', "seeds = [0, 1]", "samples = 1000", "batch_size = 500", f"threads = {threads}",
             'metrics = ["fid", "kid", "ref_nll", "diversity", "precision", "recall", "memorisation", '
             '"memorisation_feat", "test_nll"]', "[timing]", "rounds = 3"]
    for g in GENERATORS:
        lines += ["[[generators]]", *(f"{k} = {json.dumps(v)}" for k, v in g.items())]
    return "\n".join(lines) + "\n"


def one(mode: str, workers: int, tmp: Path) -> dict:
    cores = len(os.sched_getaffinity(0))
    spec = tmp / f"{mode}.toml"
    spec.write_text(spec_text(1 if mode == "ray" else cores))
    out = tmp / f"{mode}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "scalebench.cli", "run", str(spec), "--out", str(out), "--no-progress"]
    if mode != "local":
        cmd += ["--executor", "ray", "--workers", str(workers if mode == "ray" else 1)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    recs = [r for r in latest_records(out).values() if r.ok]
    return {"mode": mode, "wall_s": wall, "points": len(recs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rng, runs = random.Random(0), []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.reps):
            order = ["local", "ray", "ray1"]
            rng.shuffle(order)
            for mode in order:
                runs.append(one(mode, args.workers, Path(d)))
                print(f"{mode:>5}: {runs[-1]['wall_s']:.1f} s for {runs[-1]['points']} points", flush=True)
    local = statistics.median(r["wall_s"] for r in runs if r["mode"] == "local")
    ray = statistics.median(r["wall_s"] for r in runs if r["mode"] == "ray")
    ray1 = statistics.median(r["wall_s"] for r in runs if r["mode"] == "ray1")
    points = runs[0]["points"]
    overhead = (ray1 - local) / points
    print(f"median wall: local {local:.1f} s, ray ({args.workers} workers × 1 thread) {ray:.1f} s; "
          f"speed-up local/ray {local / ray:.2f}×")
    print(f"ray with 1 worker × all cores: {ray1:.1f} s → overhead per point (ray1 − local) / {points}: "
          f"{overhead:.2f} s")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "local_s": local, "ray_s": ray, "ray1_s": ray1, "speedup": local / ray,
                                         "overhead_s_per_point": overhead}, indent=1))


if __name__ == "__main__":
    main()
