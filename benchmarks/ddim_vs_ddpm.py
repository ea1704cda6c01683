"""DDIM vs DDPM at each K, paired by seed, against the data floor (issue 8, item 4).

Usage: scalebench run benchmarks/ddim-vs-ddpm.toml && python benchmarks/ddim_vs_ddpm.py [results/ddim-vs-ddpm]
(the committed run: results/baseline-ddim-vs-ddpm-cpu)

Both samplers draw x_T from the same seed, so seed s of DDIM and seed s of DDPM share their
starting noise: the per-seed difference is a paired comparison. Printed per K and metric:
means ± sd over seeds, the mean paired difference DDIM − DDPM, the paired t-test over seeds
(two-sided, α = 0.05: the verdict) and the exact two-sided sign test (which cannot go below
0.0625 with 5 seeds, so it is shown as a robustness check, not used to decide), and whether |difference| exceeds 2 × the data floor's sd
(the spread real data itself shows at this n); a difference inside that is "at the floor".
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from scalebench.results import latest_records


def sign_test(d: np.ndarray) -> float:
    """Exact two-sided sign test p-value (zeros dropped)."""
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    k = int((d > 0).sum())
    return float(min(1.0, 2 * min(stats.binom.cdf(k, len(d), 0.5), stats.binom.sf(k - 1, len(d), 0.5))))


def main(run: str = "results/ddim-vs-ddpm", metrics: tuple[str, ...] = ("fid", "kid", "precision", "recall")) -> None:
    recs = [r for r in latest_records(Path(run)).values() if r.ok]
    by = {(r.sampler, r.K, r.seed): r for r in recs}
    Ks = sorted({r.K for r in recs})
    seeds = sorted({r.seed for r in recs})
    print(f"{run}: {len(recs)} points, seeds {seeds}, n = {sorted({r.n for r in recs})}")
    for m in metrics:
        print(f"\n{m}  (floor = real data at this n: mean ± sd)")
        print(f"{'K':>4} {'DDIM':>18} {'DDPM':>18} {'DDIM−DDPM':>11} {'sign p':>7} {'t p':>7}  verdict")
        for K in Ks:
            a = np.array([by[("ddim", K, s)].metrics[m] for s in seeds if ("ddim", K, s) in by and ("ddpm", K, s) in by])
            b = np.array([by[("ddpm", K, s)].metrics[m] for s in seeds if ("ddim", K, s) in by and ("ddpm", K, s) in by])
            if len(a) < 2:
                continue
            fl = by[("ddim", K, seeds[0])].floors.get(m)
            floor, fsd = (fl.mean, fl.sd) if fl else (math.nan, math.nan)
            d = a - b
            p_sign = sign_test(d)
            p_t = float(stats.ttest_rel(a, b).pvalue) if np.std(d) > 0 else (1.0 if not d.any() else 0.0)
            better = "lower" if m in ("fid", "kid", "memorisation") else "higher"
            winner = ("DDIM" if (d.mean() < 0) == (better == "lower") else "DDPM")
            inside = abs(d.mean()) <= 2 * fsd
            both_floor = all(abs(v - floor) <= 2 * fsd for v in (a.mean(), b.mean()))
            if not d.any():
                verdict = "identical samples"
            elif p_t >= 0.05:
                verdict = "no significant difference (paired t, α = 0.05)"
            else:
                verdict = f"{winner} better (paired t, α = 0.05)"
            if inside:
                verdict += "; difference inside the floor's ±2 sd"
            if both_floor:
                verdict += "; both at the data floor"
            print(f"{K:>4} {a.mean():>9.4g} ± {a.std(ddof=1):<6.2g} {b.mean():>9.4g} ± {b.std(ddof=1):<6.2g} "
                  f"{d.mean():>+11.4g} {p_sign:>7.3f} {p_t:>7.3f}  {verdict}")
        print(f"     floor {floor:.4g} ± {fsd:.2g}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
