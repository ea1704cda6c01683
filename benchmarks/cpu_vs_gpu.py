"""Per-family CPU vs GPU from two finished runs of the same spec (e.g. the committed full baselines).

    python benchmarks/cpu_vs_gpu.py results/baseline-full-cpu results/baseline-full-cuda

Per generator × sampler and budget: latency per sample on each device (mean over seeds), the
speed-up CPU/GPU, and FID on each (the samples differ: CUDA draws its own random numbers, so
FID agrees only within seed noise). Then per generator: the median speed-up over its grid.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

from scalebench.results import latest_records


def by_budget(run_dir: Path) -> dict[tuple, dict[str, list[float]]]:
    out: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in latest_records(run_dir).values():
        if r.ok and r.cost.latency_s:
            key = (r.generator, r.sampler, r.S, r.K)
            out[key]["latency"].append(r.cost.latency_s)
            if "fid" in r.metrics:
                out[key]["fid"].append(r.metrics["fid"])
    return out


def main() -> None:
    cpu, gpu = (by_budget(Path(d)) for d in sys.argv[1:3])
    speedups: dict[str, list[float]] = defaultdict(list)
    print(f"{'point':<30} {'CPU ms/s':>9} {'GPU ms/s':>9} {'CPU/GPU':>8} {'FID cpu':>8} {'FID gpu':>8}")
    for key in sorted(cpu.keys() & gpu.keys()):
        c, g = cpu[key], gpu[key]
        lc, lg = statistics.mean(c["latency"]) * 1e3, statistics.mean(g["latency"]) * 1e3
        speedups[f"{key[0]}/{key[1]}"].append(lc / lg)
        fc = statistics.mean(c["fid"]) if c["fid"] else float("nan")
        fg = statistics.mean(g["fid"]) if g["fid"] else float("nan")
        print(f"{key[0] + '/' + key[1] + f' S={key[2]} K={key[3]}':<30} {lc:9.4f} {lg:9.4f} {lc / lg:8.1f} "
              f"{fc:8.2f} {fg:8.2f}")
    print("median CPU/GPU speed-up: " + ", ".join(f"{k} {statistics.median(v):.1f}×" for k, v in speedups.items()))


if __name__ == "__main__":
    main()
