"""Does interleaved timing survive a slow minute? (issue 16, item 2)

Usage: PYTHONPATH=. python benchmarks/timing_drift.py [--reps 3]

The `sleepy` double (scalebench/testing.py) runs K real network calls per batch, so its latency
grows as K^~1. Each timing mode is run twice per rep: once clean (its fitted log-log slope of
latency vs NFE is the truth) and once with an injected slowdown: while a time window covering
a part of the run (`--window`, default 40–70 % of the clean run's duration) is open, every network call
does double work (the machine got 2× slower for a while, as another job or a frequency drop
would make it). Printed: the slopes and the bend (drifted / clean − 1) per mode.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scalebench import testing
from scalebench.results import latest_records
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import parse_spec

KS = [1, 2, 4, 8, 16, 32]
WINDOW = [math.inf, math.inf]  # perf_counter interval during which every call does double work
_clean_call = testing.SleepyGenerator._call


def _drifting_call(self: testing.SleepyGenerator, x: torch.Tensor) -> torch.Tensor:
    out = _clean_call(self, x)
    if WINDOW[0] <= time.perf_counter() < WINDOW[1]:
        _clean_call(self, x)  # the same work again: this call costs twice as much
    return out


def spec(mode: str, rounds: int) -> dict:
    timing = ({"mode": "interleaved", "rounds": rounds, "warmup": 1} if mode == "interleaved"
              else {"mode": "contiguous", "min_repeats": rounds, "min_duration_s": 0.0, "warmup": 1})
    return {"name": f"drift-{mode}", "samples": 256, "batch_size": 256, "metrics": [], "threads": 1,
            "timing": timing, "generators": [{"name": "sleepy", "S": [1], "K": KS}]}


def slope(run_dir: Path) -> float:
    recs = sorted(latest_records(run_dir).values(), key=lambda r: r.K)
    x = np.log([r.cost.nfe for r in recs])
    y = np.log([r.cost.latency_s for r in recs])
    return float(np.polyfit(x, y, 1)[0])


def one(mode: str, rounds: int, window: tuple[float, float] | None, tmp: Path) -> tuple[float, float]:
    """(slope, wall seconds) of one sweep; `window` is a fraction of the run's duration."""
    run_dir = tmp / f"{mode}-{time.monotonic_ns()}"
    t0 = time.perf_counter()
    if window:
        WINDOW[:] = [t0 + window[0], t0 + window[1]]
    run_sweep(parse_spec(spec(mode, rounds)), run_dir, progress=False)
    WINDOW[:] = [math.inf, math.inf]
    return slope(run_dir), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--window", type=float, nargs=2, default=(0.4, 0.7), help="slow interval, fractions of the run")
    a = ap.parse_args()
    torch.set_num_threads(1)
    testing.SleepyGenerator._call = _drifting_call
    rows: dict[str, list[tuple[float, float]]] = {"contiguous": [], "interleaved": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        one("interleaved", 2, None, tmp)  # load, calibrate, warm the caches once
        for _ in range(a.reps):
            for mode in rows:
                clean, wall = one(mode, a.rounds, None, tmp)
                drifted, _ = one(mode, a.rounds, (a.window[0] * wall, a.window[1] * wall), tmp)
                rows[mode].append((clean, drifted))
    print(f"sleepy, S = 1, K = {KS}, batch 256, 1 thread, {a.rounds} repeats/rounds, {a.reps} reps; "
          f"2x slowdown during {a.window[0]:.0%}-{a.window[1]:.0%} of the run")
    print(f"| {'mode':<11} | clean slope | drifted slope | bend (median) | bend (worst) |")
    print("|-------------|-------------|---------------|---------------|--------------|")
    for mode, rs in rows.items():
        bends = [dr / cl - 1 for cl, dr in rs]
        worst = max(bends, key=abs)
        print(f"| {mode:<11} | {statistics.median(c for c, _ in rs):11.3f} | "
              f"{statistics.median(dr for _, dr in rs):13.3f} | {statistics.median(bends):+13.1%} | {worst:+12.1%} |")


if __name__ == "__main__":
    main()
