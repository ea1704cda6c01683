"""False-alarm and detection rates of the history step detector on synthetic noise like this machine's.

The noise is measured from committed runs of the same code (default: results/baseline-ci-speed/run-*,
three ci-speed runs of one commit): the pooled run-to-run sd of log median latency and the runs'
spreads; `scalebench.history.synthetic.simulate` adds heavy tails (t₄) and 10 % disturbed runs
(slower, 3× the spread). For each history length it simulates flat histories (every reported
step is a false alarm) and histories with one planted step of +10 % or +15 % at a random commit
(found = a regression reported at exactly that commit; "±1" also accepts a neighbour).

    python benchmarks/history_steps.py [--trials 300] [--seed 0] [--penalties 1,1.5,2,2.5] [--runs DIR …]

Pure arithmetic on simulated numbers (no timing), so it needs no quiet machine; a few minutes.
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path

import numpy as np

from scalebench.history.steps import PENALTY, THRESHOLD, detect_steps
from scalebench.history.synthetic import measured_noise, simulate

ROOT = Path(__file__).resolve().parents[1]


def rates(n: int, trials: int, step: float, noise, rng: np.random.Generator, penalties: list[float]
          ) -> dict[float, dict[str, float]]:
    """Per penalty: the false-alarm rate (step 0) or the detection rates, on the same simulated histories."""
    alarms = dict.fromkeys(penalties, 0)
    exact = dict.fromkeys(penalties, 0)
    near = dict.fromkeys(penalties, 0)
    for _ in range(trials):
        at = int(rng.integers(3, n - 2)) if step else None
        s = simulate(rng, n, noise, at, step)
        for p in penalties:
            found = detect_steps(s.median, s.spread, penalty=p)
            if at is None:
                alarms[p] += bool(found)
                continue
            ups = [f.index for f in found if f.change > 0]
            exact[p] += at in ups
            near[p] += any(abs(i - at) <= 1 for i in ups)
    if not step:
        return {p: {"false_alarm": alarms[p] / trials} for p in penalties}
    return {p: {"exact": exact[p] / trials, "near": near[p] / trials} for p in penalties}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=300, help="simulated histories per cell")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lengths", default="10,20,40", help="history lengths (commits)")
    ap.add_argument("--penalties", default=f"1.0,1.5,2.0,{PENALTY}", help="β = penalty · log(n); the default is "
                    f"{PENALTY} (scalebench.history.steps.PENALTY)")
    ap.add_argument("--runs", nargs="*", default=None, help="run dirs of one commit (default: baseline-ci-speed)")
    args = ap.parse_args()
    runs = [Path(p) for p in (args.runs or sorted(glob.glob(str(ROOT / "results/baseline-ci-speed/run-*"))))]
    noise = measured_noise(runs)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    print(f"noise: run-to-run sd of log latency {noise.sigma:.4f} ({noise.sigma * 100:.1f} %), "
          f"{len(noise.spreads)} spreads, median spread {np.median(noise.spreads):.3f}; from {noise.source}")
    penalties = sorted({float(p) for p in args.penalties.split(",")})
    print(f"detector: β = penalty · log(n), min segment 2, threshold {THRESHOLD:.0%}; "
          f"{args.trials} histories per cell, seed {args.seed}")
    print("| commits | penalty | false alarms (flat) | +10 % found at the commit | ±1 | +15 % found at the commit | ±1 |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in map(int, args.lengths.split(",")):
        fa = rates(n, args.trials, 0.0, noise, rng, penalties)
        d10 = rates(n, args.trials, 0.10, noise, rng, penalties)
        d15 = rates(n, args.trials, 0.15, noise, rng, penalties)
        for p in penalties:
            a, b = d10[p], d15[p]
            print(f"| {n} | {p:g} | {fa[p]['false_alarm']:.1%} | {a['exact']:.1%} | {a['near']:.1%} | "
                  f"{b['exact']:.1%} | {b['near']:.1%} |", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
