"""Steady allocator vs glibc's untouched default, A/B in alternating processes (issue 16, item 3).

    python benchmarks/allocator.py [--pairs 6] [--batches 5] [--threads 1]

Each child process loads `diffusion` and `gpt`, either calls `set_allocator(True)` (steady) or
leaves glibc exactly as it starts (its dynamic mmap threshold included), warms up, then times
`--batches` batches of DDIM at K = 10 and of GPT at S = 64 (batch 500) and counts the minor page
faults (`ru_minflt`) of each. Children alternate steady/default, in a seeded shuffled order per
pair; the parent prints medians over all batches and the steady/default time ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time


def child(steady: bool, batches: int, threads: int, batch: int) -> dict:
    import torch

    from scalebench.api import Budget
    from scalebench.generators import load_generator
    from scalebench.timing import set_allocator

    torch.set_num_threads(threads)
    if steady:
        set_allocator(True)
    cases = {"ddim K=10": (load_generator("diffusion"), Budget(K=10), "ddim"),
             "gpt S=64": (load_generator("gpt"), Budget(S=64), "ancestral")}
    out: dict[str, list] = {}
    with torch.inference_mode():
        for name, (g, b, smp) in cases.items():
            g.sample(batch, b, torch.Generator().manual_seed(0), smp)  # warm-up
            times, faults = [], []
            for i in range(batches):
                f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
                g.sample(batch, b, torch.Generator().manual_seed(i), smp)
                times.append(time.perf_counter() - t0)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
            out[name] = [times, faults]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--child", choices=["steady", "default"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "steady", args.batches, args.threads, args.batch)))
        return
    res: dict[tuple[str, str], tuple[list, list]] = {}
    rng = random.Random(0)
    for _ in range(args.pairs):
        modes = ["steady", "default"]
        rng.shuffle(modes)
        for mode in modes:
            run = subprocess.run([sys.executable, __file__, "--child", mode, "--batches", str(args.batches),
                                  "--threads", str(args.threads), "--batch", str(args.batch)],
                                 capture_output=True, text=True, check=True)
            for case, (t, f) in json.loads(run.stdout.strip().splitlines()[-1]).items():
                acc = res.setdefault((case, mode), ([], []))
                acc[0].extend(t)
                acc[1].extend(f)
    print(f"{'case':>10} {'allocator':>9} {'s/batch':>9} {'page faults':>12}   ratio steady/default")
    for case in sorted({c for c, _ in res}):
        base = statistics.median(res[(case, "default")][0])
        for mode in ("default", "steady"):
            t, f = res[(case, mode)]
            ratio = f"   {statistics.median(t) / base:.3f}" if mode == "steady" else ""
            print(f"{case:>10} {mode:>9} {statistics.median(t):9.4f} {statistics.median(f):12.0f}{ratio}")


if __name__ == "__main__":
    main()
