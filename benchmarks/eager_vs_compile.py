"""Eager vs `torch.compile` sampling speed, side by side in one process (issue 14, item 5).

    python benchmarks/eager_vs_compile.py [--spec quick] [--device cpu|cuda]
                                          [--rounds 7] [--only gpt,diffusion] [--json OUT]

Every grid point of the spec (first seed, one batch, no quality metrics) is measured twice,
eager and with each network's forward compiled (`compile_networks`), and both sets are timed in
the same interleaved rounds (`measure.time_rounds`), so drift lands on eager and compiled alike.
Prints ms/sample for each, the ratio compiled/eager (< 1: compile is faster), the compiled
point's first warm-up batch (which holds the compilation), and the median ratio per generator.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="quick")
    ap.add_argument("--device", default=None)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default="")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from scalebench.sweep.measure import measure_points
    from scalebench.sweep.plan import expand
    from scalebench.sweep.spec import load_spec

    spec = load_spec(args.spec, device=args.device)
    timing = dataclasses.replace(spec.timing, mode="interleaved", rounds=args.rounds, warmup=1)
    only = tuple(o for o in args.only.split(",") if o)
    first = {}
    for p in expand(spec, only=only):
        first.setdefault((p.generator, p.sampler, p.S, p.K), p)
    eager = [dataclasses.replace(p, metrics=(), n=p.batch_size, timing=timing) for p in first.values()]
    points = eager + [dataclasses.replace(p, compile=True) for p in eager]
    recs = measure_points(points, order_seed=0)
    by = {(r.generator, r.sampler, r.S, r.K, r.compile): r for r in recs}
    rows = []
    print(f"device {spec.device}, {spec.threads} threads, {args.rounds} interleaved rounds, batch per point as in the spec")
    print(f"{'point':<34} {'eager ms/s':>10} {'compiled':>10} {'ratio':>6} {'compile s':>9}")
    for g, s, S, K in first:
        e, c = by[(g, s, S, K, False)], by[(g, s, S, K, True)]
        if not e.ok or not c.ok:
            print(f"{g}/{s} S={S} K={K}: failed ({e.error or c.error})")
            continue
        te, tc = e.cost.latency_s * 1e3, c.cost.latency_s * 1e3
        rows.append({"generator": g, "sampler": s, "S": S, "K": K, "eager_ms_per_sample": te,
                     "compiled_ms_per_sample": tc, "ratio": tc / te, "compile_warmup_s": c.warmup_s[0],
                     "eager_warmup_s": e.warmup_s[0], "batch": e.batch_size})
        print(f"{g + '/' + s + f' S={S} K={K}':<34} {te:10.4f} {tc:10.4f} {tc / te:6.2f} {c.warmup_s[0]:9.1f}")
    per_gen = {}
    for r in rows:
        per_gen.setdefault(f"{r['generator']}/{r['sampler']}", []).append(r["ratio"])
    print("median compiled/eager per generator: " +
          ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in per_gen.items()))
    if args.json:
        from scalebench.provenance import provenance

        args.json.write_text(json.dumps({"device": spec.device, "threads": spec.threads, "rounds": args.rounds,
                                         "provenance": provenance(spec.device), "rows": rows,
                                         "median_ratio": {k: statistics.median(v) for k, v in per_gen.items()}},
                                        indent=1))


if __name__ == "__main__":
    main()
