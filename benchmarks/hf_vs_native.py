"""GPT native vs the same weights through transformers' `generate()`: latency per sample (issue 15, item 3).

    python benchmarks/hf_vs_native.py [--device cpu] [--threads 2] [--rounds 7] [--batches 1,256] [--S 64]

Exports the shipped GPT with `scalebench export-hf`'s code to a temp dir, loads it with the
`transformers` adapter, and times `sample()` of both at S tokens, interleaved A/B (the order
alternates each round, so drift lands on both alike) after one warm-up each. Every round also
checks that both drew the same samples from the same seed. Prints medians, the HF/native ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batches", default="1,256", help="comma-separated batch sizes")
    ap.add_argument("--S", type=int, default=64)
    args = ap.parse_args()

    import torch
    import transformers

    from scalebench.adapters.hf_export import export_gpt
    from scalebench.adapters.transformers import TransformersGenerator
    from scalebench.api import Budget
    from scalebench.methods.gpt import GPTGenerator

    torch.set_num_threads(args.threads)
    budget = Budget(S=args.S)
    with tempfile.TemporaryDirectory() as d:
        export_gpt(d)
        gens = {"native": GPTGenerator(args.device), "transformers": TransformersGenerator(args.device, path=d)}
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
        print(f"device {args.device}, threads {args.threads}, torch {torch.__version__}, "
              f"transformers {transformers.__version__}, S = {args.S}, {args.rounds} rounds")
        for batch in (int(b) for b in args.batches.split(",")):
            times: dict[str, list[float]] = {k: [] for k in gens}
            with torch.inference_mode():
                for g in gens.values():  # warm-up
                    g.sample(batch, budget, torch.Generator(args.device).manual_seed(0))
                for r in range(args.rounds):
                    order = list(gens) if r % 2 == 0 else list(reversed(gens))
                    out = {}
                    for k in order:
                        sync()
                        t0 = time.perf_counter()
                        out[k] = gens[k].sample(batch, budget, torch.Generator(args.device).manual_seed(r))
                        sync()
                        times[k].append((time.perf_counter() - t0) / batch)
                    assert torch.equal(out["native"], out["transformers"]), f"round {r}: samples differ"
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"batch {batch:>5}: native {med['native'] * 1e3:9.3f} ms/sample, transformers "
                  f"{med['transformers'] * 1e3:9.3f} ms/sample, ratio {med['transformers'] / med['native']:.2f}× "
                  f"(samples identical in all {args.rounds} rounds)")


if __name__ == "__main__":
    main()
