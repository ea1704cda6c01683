"""Error rates of the table's verdicts on synthetic surfaces of known truth, through the real table code.

Each synthetic table has two rows of each truth below (a refinement family judged along K =
1, 2, 4, 8, 16 with S fixed), its FID values drawn with the noise of the committed quick run:
a multiplicative log-normal noise per point (sd `log_sd`·√(500/n)), a replicate effect shared by
the points of one replicate (half of that variance: the sampling seed is shared along the axis)
and, near the data floor, the floor's own additive spread (sd 0.5·√(500/n), as the records'
`fid_floor_sd` at n = 500). Every table goes through `scalability_table`, so the whole family of
its tests is adjusted together (Benjamini–Hochberg, as in a real table). Rows:

- flat:        FID 20 at every K                  (truth: no effect; ▲/▼ are false alarms)
- at floor:    FID = the floor (1.5) at every K   (truth: no effect, at the floor)
- better:      FID 40 → 10                         (−75 %: ▲ expected)
- modest:      FID 20 → 15                         (−25 %: ▲ expected, 2.5× the 10 % minimum effect)
- worse:       FID 10 → 20                         (+100 %: ▼ expected)
- to floor:    FID 30 → the floor                  (▲ expected)

    python benchmarks/verdict_calibration.py                # 200 tables per setting, prints the Markdown table
    python benchmarks/verdict_calibration.py --tables 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter, defaultdict

import numpy as np
import pandas as pd

from scalebench.report.table import scalability_table
from scalebench.verdict.decide import AT_FLOOR, FLAT, IMPROVES, INCONCLUSIVE, WORSE

K_VALUES = (1, 2, 4, 8, 16)
FLOOR, FLOOR_SD_500, LOG_SD_500 = 1.5, 0.5, 0.06
TRUTHS = {  # name → FID at K (index 0 … 4), before noise
    "flat": lambda i: 20.0,
    "at floor": lambda i: FLOOR,
    "better": lambda i: 40.0 * (10 / 40) ** (i / 4),
    "modest": lambda i: 20.0 * (15 / 20) ** (i / 4),
    "worse": lambda i: 10.0 * 2 ** (i / 4),
    "to floor": lambda i: FLOOR + (30 - FLOOR) * (0.0 if i == 4 else 0.25 ** i),
}
EXPECTED = {"flat": (FLAT, INCONCLUSIVE), "at floor": (AT_FLOOR, FLAT, INCONCLUSIVE), "better": (IMPROVES,),
            "modest": (IMPROVES,), "worse": (WORSE,), "to floor": (IMPROVES,)}
SHOWN = (IMPROVES, WORSE, FLAT, AT_FLOOR, INCONCLUSIVE)


def synthetic_table(rng: np.random.Generator, replicates: int, n: int, copies: int = 2) -> pd.DataFrame:
    """A tidy results frame (the columns scalability_table reads) of one synthetic run."""
    scale = math.sqrt(500 / n)
    log_sd, floor_sd = LOG_SD_500 * scale, FLOOR_SD_500 * scale
    rows = []
    for name, truth in TRUTHS.items():
        for c in range(copies):
            gen = f"{name.replace(' ', '_')}_{c}"
            for r in range(replicates):
                shared = rng.normal(0, log_sd / math.sqrt(2))
                for i, k in enumerate(K_VALUES):
                    v = truth(i) * math.exp(shared + rng.normal(0, log_sd / math.sqrt(2)))
                    v = max(1e-3, v + rng.normal(0, floor_sd) * min(1.0, FLOOR / max(truth(i), FLOOR)))
                    base = dict(run="synthetic", point_id=f"{gen}:K{k}:s{r}", generator=gen, sampler="default", family=gen,
                                category="refinement", outer=None, dataset="digits", S=1, K=k, seed=r, n=n,
                                dtype="float32", device="cpu", compile=False, status="ok")
                    rows += [dict(base, metric="fid", value=v), dict(base, metric="fid_floor", value=FLOOR),
                             dict(base, metric="fid_floor_sd", value=floor_sd)]
    return pd.DataFrame(rows)


def calibrate(tables: int, replicate_counts: tuple[int, ...], ns: tuple[int, ...], seed: int = 0
              ) -> dict[tuple[int, int], dict[str, Counter]]:
    rng = np.random.default_rng(seed)
    out: dict[tuple[int, int], dict[str, Counter]] = {}
    for reps in replicate_counts:
        for n in ns:
            counts: dict[str, Counter] = defaultdict(Counter)
            for _ in range(tables):
                t = scalability_table(synthetic_table(rng, reps, n), cards={})
                for _, row in t.iterrows():
                    counts[str(row["generator"]).rsplit("_", 1)[0].replace("_", " ")][row["K"]] += 1
            out[(reps, n)] = counts
    return out


def markdown(results: dict[tuple[int, int], dict[str, Counter]]) -> str:
    lines = ["| replicates | n | truth | " + " | ".join(SHOWN) + " | false ▲/▼ | correct |",
             "|---:|---:|---|" + "---:|" * (len(SHOWN) + 2)]
    for (reps, n), counts in results.items():
        for truth in TRUTHS:
            c = counts[truth]
            total = sum(c.values()) or 1
            false_dir = (c[IMPROVES] + c[WORSE]) / total if truth in ("flat", "at floor") else math.nan
            correct = sum(c[v] for v in EXPECTED[truth]) / total
            cells = " | ".join(f"{c[v] / total:.0%}" for v in SHOWN)
            fd = "—" if math.isnan(false_dir) else f"{false_dir:.1%}"
            lines.append(f"| {reps} | {n} | {truth} | {cells} | {fd} | {correct:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", type=int, default=200, help="synthetic tables per setting (2 rows per truth each)")
    ap.add_argument("--replicates", type=int, nargs="+", default=[1, 2, 3, 5])
    ap.add_argument("--n", type=int, nargs="+", default=[250, 1000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the counts as JSON")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = calibrate(args.tables, tuple(args.replicates), tuple(args.n), args.seed)
    print(f"{args.tables} synthetic tables per setting × {len(TRUTHS)} truths × 2 rows; "
          f"{time.perf_counter() - t0:.0f} s\n")
    print(markdown(res))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({f"{r}x{n}": {t: dict(c) for t, c in cs.items()} for (r, n), cs in res.items()}, f, indent=1)
    worst = max(((c[IMPROVES] + c[WORSE]) / max(1, sum(c.values()))
                 for cs in res.values() for t, c in cs.items() if t in ("flat", "at floor")), default=0.0)
    print(f"\nworst false ▲/▼ rate on flat surfaces: {worst:.1%} (must be ≤ 5 %)")
    return 0 if worst <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
