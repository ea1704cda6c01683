"""Log-log slope of latency vs NFE per generator/sampler of one or more run directories.

    python benchmarks/latency_slopes.py results/baseline-full-cpu [results/other ...]

Per generator × sampler: the slope of log(median latency per sample, mean over seeds) against
log(NFE) over the grid (1.0 = latency proportional to network calls), and max/min across the
refinement samplers of one generator. The issue-16 bar: ddim, ddpm and heun within 5 % of each other.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from scalebench.results import latest_records


def slopes(run_dir: Path) -> dict[str, tuple[float, int]]:
    lat: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in latest_records(run_dir).values():
        if r.ok and r.cost.latency_s and r.cost.nfe:
            lat[f"{r.generator}/{r.sampler}"][int(r.cost.nfe)].append(r.cost.latency_s)
    out = {}
    for key, by_nfe in sorted(lat.items()):
        if len(by_nfe) >= 2:
            x = np.log(sorted(by_nfe))
            y = np.log([np.mean(by_nfe[n]) for n in sorted(by_nfe)])
            out[key] = (float(np.polyfit(x, y, 1)[0]), len(by_nfe))
    return out


def main() -> None:
    for d in sys.argv[1:]:
        s = slopes(Path(d))
        print(f"{d}:")
        for key, (b, n) in s.items():
            print(f"  {key:<24} slope {b:.3f} over {n} NFE values")
        diff = [b for k, (b, _) in s.items() if k.split("/")[1] in ("ddim", "ddpm", "heun")]
        if len(diff) > 1:
            print(f"  ddim/ddpm/heun max/min {max(diff) / min(diff):.3f}")


if __name__ == "__main__":
    main()
