"""FLOPs per sample of every family of a spec, before and after attention was counted (issue 26).

    PYTHONPATH=. python benchmarks/flops_table.py [quick] [--threads 2]

Per generator and sampler of the spec (its first sampler, at its largest S and K), on the
harness's FLOP probe (8 samples, the probe seed, CPU float32): the FLOPs torch's counter gave
before issue 26 (no formula for CPU attention), what `count_flops` gives now, and the
independent count from layer shapes (`layer_flops`: 2 × multiply-adds of every linear and
convolution plus attention's QKᵀ and AV); `now/layers` must be within 5 % of 1.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from scalebench.metrics.cost import count_flops, layer_flops
from scalebench.sweep.measure import PROBE_SEED, get_loaded
from scalebench.sweep.plan import Point, expand
from scalebench.sweep.spec import load_spec

PROBE_N = 8


def counted_before(fn, n: int) -> float:  # noqa: ANN001
    """The count as `count_flops` made it before issue 26: torch's registry alone."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn()
    return counter.get_total_flops() / n


def one_budget(points: list[Point]) -> list[Point]:
    """Per generator entry: its first sampler at the largest S and K of the spec, seed of the first point."""
    chosen: dict[str, Point] = {}
    for p in points:
        best = chosen.get(p.name)
        if best is None or (p.sampler == best.sampler and (p.S, p.K) > (best.S, best.K)):
            chosen[p.name] = p
    return list(chosen.values())


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default="quick")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    spec = load_spec(a.spec, device="cpu")
    print(f"spec {a.spec}, probe {PROBE_N} samples, seed {PROBE_SEED}, torch {torch.__version__}, "
          f"{a.threads} threads")
    print("| family | sampler | S | K | before (MFLOP) | now (MFLOP) | layers (MFLOP) | now/layers | now/before |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    t0 = time.perf_counter()
    for p in one_budget(expand(spec)):
        gen = get_loaded(p.generator, "cpu", args=p.args, replicate=p.replicate)
        counts = []
        for count in (counted_before, count_flops, layer_flops):
            rng = torch.Generator().manual_seed(PROBE_SEED)
            counts.append(count(lambda: gen.sample(PROBE_N, p.budget, rng, p.sampler), PROBE_N))  # noqa: B023
        before, now, layers = counts
        worst = max(worst, abs(now / layers - 1))
        print(f"| {p.name} | {p.sampler} | {p.S} | {p.K} | {before / 1e6:.3f} | {now / 1e6:.3f} | "
              f"{layers / 1e6:.3f} | {now / layers:.4f} | {now / before:.3f} |", flush=True)
    print(f"largest |now/layers − 1|: {100 * worst:.2f} %; {time.perf_counter() - t0:.0f} s")
    return 0 if worst <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
