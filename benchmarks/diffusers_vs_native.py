"""Time per DDIM step: the project's loop vs diffusers' DDIMScheduler, on one diffusers UNet (issue 15, item 2).

    python benchmarks/diffusers_vs_native.py [--device cpu|cuda] [--K 50] [--batch 64] [--rounds 15]
                                             [--channels 1] [--size 8] [--widths 16,32] [--threads 2]

Both loops drive the same random UNet2DModel from the same noise on the same schedule
(`scalebench/adapters/diffusers_native.py`: the native ᾱ as diffusers' trained_betas, trailing
spacing, η = 0), and their samples are checked equal first (K must divide 1000). Arms, timed in
interleaved rounds (each round runs every arm once, in an order shuffled by a seeded RNG, after
one untimed warm-up each), with synchronised timers (`scalebench.timing.time_call`):

  native    `methods/samplers/diffusion.sample_ddim` over the UNet as a denoiser
  diffusers `DDIMScheduler.set_timesteps` + K × (UNet, `scheduler.step`), as DDIMPipeline does
  unet      the K UNet calls alone (the floor both loops share)

Prints the median and p10/p90 ms per step of each arm, the diffusers/native ratio of medians and
each loop's overhead over the UNet alone.
"""

from __future__ import annotations

import argparse
import random
import statistics

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--K", type=int, default=50, help="DDIM steps (must divide 1000 for equal samples)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--widths", default="16,32", help="UNet block_out_channels (one down/up block each)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0, help="seed of the arms' order")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from diffusers import UNet2DModel

    from scalebench.adapters.diffusers_native import diffusers_ddim, native_ddim, native_ddim_scheduler
    from scalebench.methods.samplers.diffusion import T
    from scalebench.timing import percentile, time_call

    if T % args.K:
        raise SystemExit(f"--K {args.K} does not divide {T}: diffusers' DDIM then walks other timesteps "
                         "(docs/adapters.md); pick a divisor")
    widths = tuple(int(w) for w in args.widths.split(","))
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=args.size, in_channels=args.channels, out_channels=args.channels,
                       block_out_channels=widths, layers_per_block=1, norm_num_groups=8,
                       down_block_types=("DownBlock2D",) * len(widths),
                       up_block_types=("UpBlock2D",) * len(widths)).eval().to(args.device)
    sched = native_ddim_scheduler("epsilon")
    noise = torch.randn(args.batch, args.channels, args.size, args.size,
                        generator=torch.Generator().manual_seed(1)).to(args.device)

    @torch.inference_mode()
    def unet_only() -> torch.Tensor:
        x = noise
        for _ in range(args.K):
            x = unet(noise, torch.tensor(999, device=args.device)).sample
        return x

    arms = {"native": lambda: native_ddim(unet, noise, args.K),
            "diffusers": lambda: diffusers_ddim(unet, sched, noise, args.K),
            "unet": unet_only}
    a, b = arms["native"](), arms["diffusers"]()
    scale = max(float(a.abs().max()), 1.0)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * scale)
    print(f"samples equal: max |diffusers − native| = {float((a - b).abs().max()):.2e} (max |x| {scale:.3g})")

    for fn in arms.values():
        time_call(fn, args.device)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in arms}
    order = random.Random(args.seed)
    for _ in range(args.rounds):
        names = list(arms)
        order.shuffle(names)
        for k in names:
            times[k].append(time_call(arms[k], args.device)[1] / args.K)

    n_params = sum(p.numel() for p in unet.parameters())
    dev = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "cpu"
    print(f"device {args.device} ({dev}), {torch.get_num_threads()} threads, UNet {widths} {n_params / 1e3:.0f}k params, "
          f"batch {args.batch}×{args.channels}×{args.size}×{args.size}, K = {args.K}, {args.rounds} interleaved rounds")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:>10}: {med[k] * 1e3:8.3f} ms/step (p10 {percentile(v, 10) * 1e3:.3f}, p90 {percentile(v, 90) * 1e3:.3f})")
    print(f"diffusers / native = {med['diffusers'] / med['native']:.3f}; overhead over the UNet per step: "
          f"native {(med['native'] - med['unet']) * 1e3:+.3f} ms, diffusers {(med['diffusers'] - med['unet']) * 1e3:+.3f} ms")


if __name__ == "__main__":
    main()
