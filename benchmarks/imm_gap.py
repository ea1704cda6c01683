"""IMM's mapping gap: a checkpoint trained with a finer gap k (fewer draws without induction) against the shipped k = 8.

    flock /tmp/scalebench-cpu.lock python benchmarks/imm_gap.py --gap 12 --out results/imm-gap-cpu

Trains `imm` with the shipped recipe (same seed, steps, batch, EMA) except `gap_k`, saves it under
`--out/k<gap>/` (with the zoo's metadata), then samples both checkpoints with the pushforward
sampler at each K and sampling seed (n samples each) and scores FID and KID on the project's
feature net. Writes one JSON line per (gap, K, seed) to `--out/gap.jsonl` and prints the
table of means with the per-K difference and its 95 % t-interval over seeds. One training seed per
gap: the comparison carries the sampling seeds' variance, not training variance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from scalebench.api import Budget
from scalebench.data.digits import Digits
from scalebench.methods import imm
from scalebench.methods.nets.unet import UNet
from scalebench.metrics.quality import compute_quality
from scalebench.training import fit_model, seeded
from scalebench.verdict.stats import t_quantile
from scalebench.zoo import load_module, save_checkpoint


def share_without_induction(k: int, draws: int = 10**6) -> float:
    """Share of training draws whose r(s, t) equals s (the target is x_s itself), as the loss draws t and s."""
    g = torch.Generator().manual_seed(0)
    t = imm.T_MAX * torch.rand(draws, generator=g, dtype=torch.float64)
    s = t * torch.rand(draws, generator=g, dtype=torch.float64)
    return float((imm.mapping_r(s, t, k) == s).double().mean())


def t_interval(d: list[float]) -> tuple[float, float]:
    """95 % t-interval of the mean of `d`."""
    half = t_quantile(0.975, len(d) - 1) * statistics.stdev(d) / len(d) ** 0.5
    return statistics.mean(d) - half, statistics.mean(d) + half


def train_gap(k: int, out: Path) -> Path:
    """The shipped recipe with gap_k = k (skipped when the checkpoint is already there)."""
    directory = out / f"k{k}"
    path = directory / "imm.safetensors"
    if path.exists():
        return directory
    with seeded(imm.RECIPE.seed):
        net = UNet(**imm.NET)
    ema, stats = fit_model(net, Digits().continuous("train"),
                           lambda m, batch, gen: imm.imm_loss(m, batch[0], gen, gap_k=k), imm.RECIPE)
    meta = {**stats, "net": imm.NET, "final_loss": round(stats["final_loss"], 6), "method": "imm", "gap_k": k}
    directory.mkdir(parents=True, exist_ok=True)
    save_checkpoint("imm", ema.state_dict(), meta, directory=directory)
    return directory


def generator(directory: Path | None) -> imm.IMMGenerator:
    gen = imm.IMMGenerator("cpu")
    if directory is not None:
        gen.net, gen.meta = load_module("imm", lambda m: UNet(**m.get("net", imm.NET)), "cpu", directory=directory)
    return gen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gap", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path("results/imm-gap-cpu"))
    ap.add_argument("--K", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    trained = train_gap(args.gap, args.out)
    train_s = time.perf_counter() - t0
    data = Digits()
    rows = []
    for gap, directory in ((imm.GAP_K, None), (args.gap, trained)):
        gen = generator(directory)
        for K in args.K:
            for seed in args.seeds:
                x = gen.sample(args.n, Budget(S=1, K=K), torch.Generator().manual_seed(seed), "pushforward")
                q = compute_quality(x, data, metrics=("fid", "kid"))
                rows.append({"gap_k": gap, "K": K, "seed": seed, "n": args.n,
                             "checkpoint": "shipped" if directory is None else str(directory / "imm.safetensors"),
                             "fid": q["fid"], "kid": q["kid"], "share_r_eq_s": share_without_induction(gap)})
    with (args.out / "gap.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    print(f"imm gap k = {imm.GAP_K} (shipped) vs k = {args.gap}: pushforward, n = {args.n}, seeds {args.seeds}; "
          f"training {train_s:.0f} s (0 if reused)")
    print(f"share of training draws with r = s: k = {imm.GAP_K}: {share_without_induction(imm.GAP_K):.1%}, "
          f"k = {args.gap}: {share_without_induction(args.gap):.1%}")
    print(f"| K | FID k = {imm.GAP_K} | FID k = {args.gap} | difference (k = {args.gap} − {imm.GAP_K}), 95 % t-interval |")
    print("|---|---|---|---|")
    for K in args.K:
        a = [r["fid"] for r in rows if r["gap_k"] == imm.GAP_K and r["K"] == K]
        b = [r["fid"] for r in rows if r["gap_k"] == args.gap and r["K"] == K]
        d = [y - x for x, y in zip(a, b, strict=True)]  # paired by sampling seed
        lo, hi = t_interval(d)
        print(f"| {K} | {statistics.mean(a):.2f} | {statistics.mean(b):.2f} | "
              f"{statistics.mean(d):+.2f} [{lo:+.2f}, {hi:+.2f}] |")


if __name__ == "__main__":
    main()
