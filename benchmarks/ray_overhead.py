"""What Ray costs per point next to the local executor: fresh `scalebench run` processes, interleaved, medians.

    flock /tmp/scalebench-cpu.lock python benchmarks/ray_overhead.py [--reps 5] [--before DIR] [--json OUT]
                                     [--workers 2 --threads 1]

The same compute both ways: local is one process with `--threads` threads; Ray is ONE worker with
that many threads (so the difference is Ray, not parallelism; `executor_speedup.py` measures the
speed-up of more workers). Each is run on a small and a large spec of the same cheap points (the
large one has more seeds), every (mode, size) once per repetition in a seeded shuffled order, each
a fresh `scalebench run` into a fresh directory (Ray's start-up, imports and the summary included).
Per mode, from the medians: the wall time of one more point, (wall(large) − wall(small)) /
(points(large) − points(small)), start-up excluded; and the start-up, wall(small) − that × points(small).
Ray's overhead per point is its per-point time minus local's. `--before DIR` adds Ray from another
source tree (e.g. `git archive <rev> | tar -x -C DIR`), run from DIR with PYTHONPATH=DIR.
`--workers N` runs Ray with N workers of `--threads` each (local keeps one process of `--threads`):
no longer the same compute, but Ray before and after a change compare (parallel start-up, affinity).
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

ROOT = Path(__file__).resolve().parents[1]
GENERATORS = [{"name": "gpt", "S": [1, 4]}, {"name": "diffusion", "samplers": ["ddim"], "K": [1, 2]}]
SEEDS = {"small": 2, "large": 20}  # × 4 budgets = 8 and 80 points


def spec_text(seeds: int, threads: int) -> str:
    lines = ['name = "overhead"', f"seeds = {list(range(seeds))}", "samples = 128", "batch_size = 64",
             f"threads = {threads}", 'metrics = ["fid"]', "[timing]", "rounds = 3"]
    for g in GENERATORS:
        lines += ["[[generators]]", *(f"{k} = {json.dumps(v)}" for k, v in g.items())]
    return "\n".join(lines) + "\n"


def one(mode: str, size: str, workers: int, tmp: Path, before: Path | None) -> dict:
    tree = before if mode == "ray-before" else ROOT
    spec = tmp / f"{size}.toml"
    out = tmp / f"{mode}-{size}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "scalebench.cli", "run", str(spec), "--out", str(out), "--no-progress"]
    if mode != "local":
        cmd += ["--executor", "ray", "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{mode} {size} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    points = sum(1 for line in (out / "points.jsonl").read_text().splitlines()
                 if json.loads(line).get("timing", {}).get("mode") == "interleaved")
    return {"mode": mode, "size": size, "wall_s": wall, "points": points}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--workers", type=int, default=1, help="Ray workers (default 1: the local run's compute)")
    ap.add_argument("--before", type=Path, default=None, help="another source tree, for Ray before a change")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    before = args.before.resolve() if args.before else None
    modes = ["local", "ray"] + (["ray-before"] if before else [])
    rng, runs = random.Random(0), []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for size, seeds in SEEDS.items():
            (tmp / f"{size}.toml").write_text(spec_text(seeds, args.threads))
        one("local", "small", args.workers, tmp, before)  # untimed: fills the FLOP and FID caches every mode reads
        for rep in range(args.reps):
            order = [(m, s) for m in modes for s in SEEDS]
            rng.shuffle(order)
            for mode, size in order:
                runs.append(one(mode, size, args.workers, tmp, before))
                r = runs[-1]
                print(f"rep {rep + 1}: {mode:>10} {size:>5}: {r['wall_s']:6.1f} s for {r['points']} points", flush=True)
    summary = {}
    for mode in modes:
        wall = {s: statistics.median(r["wall_s"] for r in runs if r["mode"] == mode and r["size"] == s) for s in SEEDS}
        pts = {s: next(r["points"] for r in runs if r["mode"] == mode and r["size"] == s) for s in SEEDS}
        per_point = (wall["large"] - wall["small"]) / (pts["large"] - pts["small"])
        summary[mode] = {"wall_s": wall, "points": pts, "per_point_s": per_point,
                         "startup_s": wall["small"] - per_point * pts["small"]}
    print(f"\n{'mode':>10} | {'points':>7} | {'median wall':>15} | {'per point':>9} | {'start-up':>8}")
    for mode, s in summary.items():
        label = {"local": "local", "ray": "ray", "ray-before": "ray before"}[mode]
        print(f"{label:>10} | {s['points']['small']:>3}/{s['points']['large']:<3} | {s['wall_s']['small']:6.1f} / "
              f"{s['wall_s']['large']:5.1f} s | {s['per_point_s']:7.3f} s | {s['startup_s']:6.1f} s")
    for mode in modes[1:]:
        print(f"{mode}: overhead per point {summary[mode]['per_point_s'] - summary['local']['per_point_s']:+.3f} s, "
              f"start-up {summary[mode]['startup_s'] - summary['local']['startup_s']:+.1f} s "
              f"({args.workers} worker(s) × {args.threads} threads vs 1 local process × {args.threads} threads, "
              f"medians of {args.reps})")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary, "threads": args.threads,
                                         "workers": args.workers}, indent=1))


if __name__ == "__main__":
    main()
