"""Start-up of a short command (`scalebench list`, a finished sweep's rerun): wall time and peak
memory of the real command in fresh processes, interleaved, medians.

    git archive <rev> | tar -x -C /tmp/sb-before        # optional: a tree to compare against
    flock /tmp/scalebench-cpu.lock python benchmarks/startup.py [--reps 7] [--before /tmp/sb-before]
    flock /tmp/scalebench-cpu.lock python benchmarks/startup.py --args "run quick --out /tmp/q --no-progress"

Each repetition runs `scalebench <args>` in a fresh process for this checkout (and for `--before`,
in a seeded shuffled order), from the tree measured (its working directory and PYTHONPATH); wall
seconds from fork to exit and the child's peak RSS come from `os.wait4`. A relative path in
`--args` is relative to that tree, so give the run directory of a rerun as an absolute path.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def once(tree: Path, argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one `scalebench <argv>` importing scalebench from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "200"}
    code = f"import sys; import scalebench; assert scalebench.__file__.startswith({str(tree)!r}), scalebench.__file__; " \
           f"from scalebench.cli import main; sys.argv = {['scalebench', *argv]!r}; main()"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tree, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"scalebench {shlex.join(argv)} from {tree} exited {proc.returncode}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--args", default="list", help="the command's arguments (default: list)")
    ap.add_argument("--before", type=Path, default=None, help="another source tree (e.g. from git archive)")
    args = ap.parse_args()
    trees = {"now": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in trees}
    argv = shlex.split(args.args)
    rng = random.Random(0)
    for _ in range(args.reps):
        order = list(trees)
        rng.shuffle(order)
        for k in order:
            runs[k].append(once(trees[k], argv))
    for k, rs in runs.items():
        walls = sorted(w for w, _ in rs)
        print(f"{k:>6}: scalebench {args.args} median {statistics.median(walls):.2f} s "
              f"(min {walls[0]:.2f}, max {walls[-1]:.2f}, {len(rs)} runs), peak RSS "
              f"{statistics.median(m for _, m in rs):.0f} MiB")


if __name__ == "__main__":
    main()
