"""gpt's decode loop at its limit: latency slope over S and the share of the matmul roof, in one process.

    .venv/bin/python benchmarks/decode_loop.py [--batch 250] [--rounds 7] [--threads 2]

Interleaved rounds (each round times one batch at every S, in a shuffled order) so drift lands on all
S alike; medians. The slope is the least-squares slope of log(latency per sample) on log(S) over
S = 4, 16, 64 (1.0 = linear in the tokens decoded). The roof is a float32 matmul (the size of gpt's
largest: batch × d by d × 4d), measured in the same process with the same threads, interleaved with
the decode rounds; % of roof = counted FLOPs per sample (attention included) / latency / roof.

The bound: one more pass per S times every attention call in place (a timer around
`F.scaled_dot_product_attention`) and adds up the bytes of K and V it reads; with the machine's read
bandwidth (a sum over a 256 MiB tensor, same threads, same process) it prints the latency and the slope
gpt would have if attention ran at that bandwidth and nothing else changed, i.e. the best any
attention kernel can do for a float32 cache on this machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

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


def read_bytes_per_s(reps: int = 5) -> float:
    x = torch.ones(64 * 2**20)  # 256 MiB, far past any cache
    x.sum()
    t0 = time.perf_counter()
    for _ in range(reps):
        x.sum()
    return x.numel() * x.element_size() * reps / (time.perf_counter() - t0)


def attention_share(gen, S: int, batch: int, rounds: int) -> tuple[float, float]:
    """(fraction of decode time spent in attention, K+V bytes attention reads per sample), timed in place."""
    real = F.scaled_dot_product_attention
    spent, read = [0.0], [0]

    def timed(q, k, v, *a, **kw):
        t0 = time.perf_counter()
        out = real(q, k, v, *a, **kw)
        spent[0] += time.perf_counter() - t0
        read[0] += (k.numel() + v.numel()) * k.element_size()
        return out

    fractions = []
    F.scaled_dot_product_attention = timed
    try:
        for r in range(rounds):
            spent[0], read[0] = 0.0, 0
            t0 = time.perf_counter()
            gen.sample(batch, Budget(S=S, K=1), torch.Generator().manual_seed(200 + r))
            fractions.append(spent[0] / (time.perf_counter() - t0))
    finally:
        F.scaled_dot_product_attention = real
    return statistics.median(fractions), read[0] / batch


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
    with torch.inference_mode():
        shares = {S: attention_share(gen, S, args.batch, args.rounds) for S in S_VALUES}
    bw = statistics.median(read_bytes_per_s() for _ in range(args.rounds))
    best = {S: lat[S] * (1 - shares[S][0]) + shares[S][1] / bw for S in S_VALUES}
    best_slope = float(np.polyfit(np.log(S_VALUES), np.log([best[S] for S in S_VALUES]), 1)[0])
    print(f"\nbound: read bandwidth {bw / 1e9:.1f} GB/s (sum over 256 MiB, median of {args.rounds})")
    print("| S | attention share of decode time | K+V read per sample | attention GB/s | "
          "latency with attention at bandwidth ms/sample |\n|---|---|---|---|---|")
    for S in S_VALUES:
        share, nbytes = shares[S]
        print(f"| {S} | {100 * share:.1f} % | {nbytes / 1e3:,.1f} kB | {nbytes / (share * lat[S]) / 1e9:.1f} | "
              f"{best[S] * 1e3:.4f} |")
    print(f"slope with attention at the read bandwidth: {best_slope:.3f}; with no attention cost at all: "
          f"{float(np.polyfit(np.log(S_VALUES), np.log([lat[S] * (1 - shares[S][0]) for S in S_VALUES]), 1)[0]):.3f}")


if __name__ == "__main__":
    main()
