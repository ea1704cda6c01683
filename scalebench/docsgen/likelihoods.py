"""The cross-family test-NLL table of docs/methods/likelihoods.md, from the records.

`test_nll` is a property of the model at a budget (exact, or a bound: `nll_kind`), recorded with the
points that measure it. Per family, on its shipped checkpoint, two budgets are shown: the largest one
with a recorded NLL (the full model) and the one with the lowest value (a bound need not be monotone in
K). Samplers and seeds that give the same number are one row; runs that give another number (another
device draws other Monte-Carlo noise for a bound) are another row. Rows are sorted by the value.
"""

from __future__ import annotations

from collections import defaultdict

from scalebench.docsgen.runs import Run
from scalebench.record import Record


def _shipped(r: Record) -> bool:
    return r.replicate is None or r.replicate == r.name


def table(runs: list[Run]) -> str:
    by_family: dict[str, list[tuple[Record, str]]] = defaultdict(list)
    for run in runs:
        for r in run.records:
            if r.ok and r.generator is not None and "test_nll" in r.metrics and _shipped(r):
                by_family[r.name].append((r, run.name))
    if not by_family:
        return "No committed record carries a test NLL."
    rows: dict[tuple, dict[str, set[str]]] = defaultdict(lambda: {"samplers": set(), "runs": set()})
    for family, items in by_family.items():
        budgets = {(r.S or 0, r.K or 0) for r, _ in items}
        largest = max(budgets)
        lowest = min(items, key=lambda it: (it[0].metrics["test_nll"], it[0].S or 0, it[0].K or 0))[0]
        keep = {largest, (lowest.S or 0, lowest.K or 0)}
        for r, run in items:
            if (r.S or 0, r.K or 0) in keep:
                key = (family, r.S, r.K, r.nll_kind or "?", round(float(r.metrics["test_nll"]), 4))
                rows[key]["samplers"].add(r.sampler or "default")
                rows[key]["runs"].add(run)
    lines = ["| family | samplers | S | K | kind | test NLL (bits/dim) | runs |", "|---|---|---:|---:|---|---:|---|"]
    for (family, s, k, kind, value), where in sorted(rows.items(), key=lambda kv: (kv[0][4], kv[0][0], kv[0][1] or 0,
                                                                                   kv[0][2] or 0)):
        lines.append(f"| `{family}` | {', '.join(sorted(where['samplers']))} | {s if s is not None else '—'} | "
                     f"{k if k is not None else '—'} | {kind} | {value:.4f} | "
                     f"{', '.join(f'`{r}`' for r in sorted(where['runs']))} |")
    note = ("From every committed run under `results/` (`test_nll` of the shipped checkpoints; the same for every "
            "seed, so one value per budget): per family the largest budget with a recorded NLL and the budget with "
            "the lowest one. Families without a likelihood record none.")
    return "\n".join(lines) + "\n\n" + note
