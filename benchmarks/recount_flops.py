"""Recount the FLOPs of committed records with today's counter (attention included), in place.

FLOPs are a cost field that depends only on the networks' shapes and the budget, not on the
samples, so records measured before the counter learnt attention (issue 26) are corrected without
re-sampling: each (generator, args, replicate, sampler, S, K) is counted once on CPU with the same
probe as `sweep/measure.flops` (8 samples), every record line of the run gets the new
`cost.flops`, and `cost.flops_recount` keeps the old figure and the commit that recounted it.
The file is rewritten atomically; nothing else in a record changes.

    .venv/bin/python benchmarks/recount_flops.py results/baseline-full-cpu [more run dirs or folders]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import torch

from scalebench.api import Budget
from scalebench.atomic import atomic_write_text
from scalebench.generators import default_checkpoint
from scalebench.metrics.cost import count_flops
from scalebench.record import Record
from scalebench.results import POINTS, run_dirs
from scalebench.sweep.measure import PROBE_SEED, get_loaded

PROBE_N = 8


def _key(rec: Record) -> tuple[Any, ...]:
    replicate = rec.replicate if rec.replicate and rec.replicate != default_checkpoint(rec.name) else ""
    args = json.dumps(rec.args, sort_keys=True, separators=(",", ":")) if rec.args else ""
    return rec.name, args, replicate, rec.sampler, rec.S, rec.K


def count(key: tuple[Any, ...]) -> float:
    name, args, replicate, sampler, S, K = key
    gen = get_loaded(name, "cpu", args=args, replicate=replicate)
    rng = torch.Generator().manual_seed(PROBE_SEED)
    return count_flops(lambda: gen.sample(PROBE_N, Budget(S=S, K=K), rng, sampler), PROBE_N)


def recount(run_dir: Path, commit: str) -> list[tuple[tuple[Any, ...], float | None, float]]:
    path = run_dir / POINTS
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [Record.from_json(json.loads(line)) for line in lines]
    counted: dict[tuple[Any, ...], float] = {}
    changes = []
    for rec in records:
        if not rec.ok or rec.S is None:
            continue
        key = _key(rec)
        if key not in counted:
            counted[key] = count(key)
            changes.append((key, rec.cost.flops, counted[key]))
        old = rec.cost.extra.get("flops_recount", {}).get("was", rec.cost.flops)
        rec.cost.extra["flops_recount"] = {"was": old, "by": commit, "probe_n": PROBE_N}
        rec.cost.flops = counted[key]
    out = "".join(json.dumps(r.to_json(), sort_keys=True, allow_nan=True, default=str) + "\n" for r in records)
    atomic_write_text(path, out)
    return changes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True).stdout.strip()
    print("| run | generator/sampler | S | K | FLOPs/sample before | after | after/before |\n|---|---|---|---|---|---|---|")
    for d in run_dirs(args.paths):
        for (name, _, rep, sampler, S, K), before, after in recount(d, commit):
            ratio = f"{after / before:.3f}" if before else "—"
            label = f"{name}/{sampler}" + (f" ({rep})" if rep else "")
            print(f"| {d.name} | {label} | {S} | {K} | {before or float('nan'):.4g} | {after:.4g} | {ratio} |")


if __name__ == "__main__":
    main()
