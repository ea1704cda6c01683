"""gpt's decode loop at its limit: latency slope over S and the share of the matmul roof, in one process.

    .venv/bin/python benchmarks/decode_loop.py [--batch 250] [--rounds 7] [--threads 2]

Interleaved rounds (each round times one batch at every S, in a shuffled order) so drift lands on all
S alike; medians. The slope is the least-squares slope of log(latency per sample) on log(S) over
S = 4, 16, 64 (1.0 = linear in the tokens decoded). The roof is a float32 matmul (the size of gpt's
largest: batch × d by d × 4d), measured in the same process with the same threads, interleaved with
the decode rounds; % of roof = counted FLOPs per sample (attention included) / latency / roof.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
import torch

from scalebench.api import Budget
from scalebench.generators import load_generator
from scalebench.metrics.cost import count_flops

S_VALUES = (4, 16, 64)


def roof_flops_per_s(batch: int, d: int, reps: int = 20) -> float:
    a, b = torch.randn(batch, d), torch.randn(d, 4 * d)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * batch * d * 4 * d * reps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = load_generator("gpt")
    d = gen.model.cfg.d_model
    flops = {S: count_flops(lambda S=S: gen.sample(8, Budget(S=S, K=1), torch.Generator().manual_seed(0)), 8)
             for S in S_VALUES}
    times: dict[int, list[float]] = {S: [] for S in S_VALUES}
    roofs: list[float] = []
    order = random.Random(0)
    with torch.inference_mode():
        for S in S_VALUES:  # warm-up
            gen.sample(args.batch, Budget(S=S, K=1), torch.Generator().manual_seed(1))
        for r in range(args.rounds):
            todo = list(S_VALUES)
            order.shuffle(todo)
            for S in todo:
                t0 = time.perf_counter()
                gen.sample(args.batch, Budget(S=S, K=1), torch.Generator().manual_seed(100 + r))
                times[S].append((time.perf_counter() - t0) / args.batch)
            roofs.append(roof_flops_per_s(args.batch, d))
    lat = {S: statistics.median(v) for S, v in times.items()}
    slope = float(np.polyfit(np.log(S_VALUES), np.log([lat[S] for S in S_VALUES]), 1)[0])
    roof = statistics.median(roofs)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {args.rounds} interleaved rounds; "
          f"matmul roof {roof / 1e9:.1f} GFLOP/s ({args.batch}×{d} @ {d}×{4 * d}, median)")
    print("| S | latency ms/sample (median) | p10–p90 | FLOPs/sample | GFLOP/s | % of roof |\n|---|---|---|---|---|---|")
    for S in S_VALUES:
        q = np.percentile(times[S], [10, 90]) * 1e3
        rate = flops[S] / lat[S]
        print(f"| {S} | {lat[S] * 1e3:.4f} | {q[0]:.4f}–{q[1]:.4f} | {flops[S]:,.0f} | {rate / 1e9:.2f} | "
              f"{100 * rate / roof:.1f} % |")
    print(f"slope of log latency on log S over {S_VALUES}: {slope:.3f} (goal ≤ 1.05)")
    print(f"slope 16→64: {np.log(lat[64] / lat[16]) / np.log(4):.3f}")


if __name__ == "__main__":
    main()
