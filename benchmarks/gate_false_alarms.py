"""False alarms of the stored-baseline speed gate: one stored run per side vs three pooled (issue 8, item 7).

Runs `scalebench/specs/ci-speed.toml` R times with the *same* code (no change at all, so every
"regression" is a false alarm), then gates every ordered pair of single runs against each
other (the old practice: one stored baseline run vs one candidate run), and every split of
the runs into two disjoint groups of three, pooled per side (`compare -b … -c …`). Prints
the fraction of comparisons that flag at least one regression (family-wise, with Holm over
the spec's points) and the fraction of points flagged, side by side, from one set of runs.

    python benchmarks/gate_false_alarms.py [--runs 8] [--out /tmp/gate-fa] [--spec ci-speed]

Run it on a quiet machine: a busy one makes both rates measure the neighbours.
"""

from __future__ import annotations

import argparse
import itertools
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8, help="ci-speed runs of the same code (≥ 6)")
    ap.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temp dir)")
    ap.add_argument("--splits", type=int, default=20, help="random 3-vs-3 splits to score")
    ap.add_argument("--spec", default="ci-speed", help="the speed spec to gate")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="gate-fa-"))
    runs = []
    for i in range(args.runs):
        d = out / f"run-{i}"
        if not (d / "points.jsonl").exists():
            subprocess.run([sys.executable, "-m", "scalebench.cli", "run", str(args.spec),
                            "--out", str(d), "--no-progress"], check=True, capture_output=True)
        runs.append(d)

    from scalebench.gate import compare_runs

    def score(b: list[Path], c: list[Path]) -> tuple[bool, int, int]:
        rep = compare_runs(b, c)
        lat = [r for r in rep.rows if r.metric == "latency_s"]
        return bool(rep.regressions), len(rep.regressions), len(lat)

    single = [score([a], [b]) for a, b in itertools.permutations(runs, 2)]
    rng = random.Random(0)
    splits = set()
    while len(splits) < min(args.splits, 280):
        pick = rng.sample(range(len(runs)), 6)
        splits.add((tuple(sorted(pick[:3])), tuple(sorted(pick[3:]))))
    pooled = [score([runs[i] for i in b], [runs[i] for i in c]) for b, c in sorted(splits)]
    for name, res in (("one stored run vs one run", single), ("3 pooled vs 3 pooled", pooled)):
        fam = sum(r[0] for r in res) / len(res)
        pts = sum(r[1] for r in res) / max(1, sum(r[2] for r in res))
        print(f"{name:>26}: {len(res):3d} comparisons, family-wise false alarms {fam:6.1%}, "
              f"points flagged {pts:6.1%}")
    print(f"runs in {out}")


if __name__ == "__main__":
    main()
