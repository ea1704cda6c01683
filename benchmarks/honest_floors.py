"""The numbers behind docs/metrics.md's data floor and flags (issue 22): run under the CPU lock.

    flock /tmp/scalebench-cpu.lock .venv/bin/python benchmarks/honest_floors.py [--n 250 500 1000] [--threads 2]

Prints (1) the reference model's split and held-out bits/dim, (2) each metric on reference sets
(real splits, noised training images, noise, one image repeated, the verbatim copier), (3) the data
floor at each n and the wall time of computing it from a cold cache (`DRAWS` resamples), and
(4) the copier and a collapsed generator against the floor at each n, with their flags.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

METRICS = ("fid", "kid", "precision", "recall", "diversity", "ref_nll", "memorisation", "memorisation_feat")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[250, 500, 1000])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["SCALEBENCH_CACHE"] = tempfile.mkdtemp(prefix="sb-floors-")  # cold cache: the real cost

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.degenerate: the copier and collapser
    from scalebench.data import get_dataset
    from scalebench.flags import flags_of
    from scalebench.metrics.floor import DRAWS, data_floor
    from scalebench.metrics.quality import compute_quality
    from scalebench.metrics.refnll import REFERENCE
    from scalebench.zoo import load_checkpoint
    from tests.degenerate import CollapseGenerator, CopyGenerator

    ds = get_dataset("digits")
    meta = load_checkpoint(REFERENCE)[1]
    print(f"refnet: trained on {meta['split']!r}, held-out bits/dim {meta['held_out_nll_bits_per_dim']}, "
          f"own split {meta['own_split_nll_bits_per_dim']}, {meta['train_seconds']:.0f} s")

    g = torch.Generator().manual_seed(0)
    train = ds.canonical("train")
    sets = {
        "reference (400)": ds.canonical("reference"),
        "train (1000, the generators' data)": train,
        "features (397)": ds.canonical("features"),
        "train + N(0, 0.1²)": train + 0.1 * torch.randn(train.shape, generator=g),
        "train + N(0, 0.2²)": train + 0.2 * torch.randn(train.shape, generator=g),
        "uniform noise (1000)": torch.rand(1000, 1, 8, 8, generator=g),
        "one training image × 1000": train[:1].expand(1000, -1, -1, -1).clone(),
    }
    print("\n| samples | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS))
    for name, x in sets.items():
        got = compute_quality(x, ds, metrics=METRICS)
        print(f"| {name} | " + " | ".join(f"{got[m]:.3g}" for m in METRICS) + " |")

    print(f"\ndata floor, {DRAWS} draws without replacement, cold cache, {args.threads} threads")
    for n in args.n:
        t0 = time.perf_counter()
        floor = data_floor(ds, METRICS, n)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        data_floor(ds, METRICS, n)
        warm = time.perf_counter() - t0
        print(f"\nn = {n}: {cold:.1f} s to compute, {warm * 1e3:.1f} ms from the cache")
        print("| metric | floor mean ± sd | pool | drawn without replacement |\n|---|---|---|---|")
        for m in METRICS:
            f = floor[m]
            print(f"| {m} | {f['mean']:.4g} ± {f['sd']:.2g} | {f['pool']} ({f['pool_size']}) | {not f['replace']} |")
        for gen in (CopyGenerator(), CollapseGenerator()):
            x = gen.sample(n, None, torch.Generator().manual_seed(1))  # type: ignore[arg-type]
            got = compute_quality(x, ds, metrics=METRICS, floors=True)
            flags, reasons = flags_of(got)
            print(f"{gen.card.name} at n = {n}: " + ", ".join(
                f"{m} {got[m]:.4g} (floor {got[m + '_floor']:.4g} ± {got[m + '_floor_sd']:.2g})"
                for m in ("fid", "ref_nll", "recall", "diversity", "memorisation", "memorisation_feat"))
                + f"; flags {flags or 'none'} {reasons}")


if __name__ == "__main__":
    main()
