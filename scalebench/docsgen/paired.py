"""Two samplers of one family compared point by point, paired by replicate.

Samplers of one checkpoint draw their starting noise from the same seed, so seed s of one and
seed s of the other share it and their difference is a paired comparison (as
`benchmarks/ddim_vs_ddpm.py` prints it). The p-value is the two-sided paired t-test over the
replicates both samplers have at that (S, K), raw: not adjusted for the grid values and metrics
compared (the scalability table's rule is the adjusted one).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from scalebench.docsgen.measured import floor_text, group, provenance, replicate_of
from scalebench.docsgen.numbers import MISSING, p_value, pm
from scalebench.docsgen.runs import Run
from scalebench.record import Record

METRICS = (("fid", "FID"), ("precision", "precision"), ("recall", "recall"))


def paired_p(a: np.ndarray, b: np.ndarray) -> str:
    d = a - b
    if len(d) < 2:
        return MISSING
    if not d.any():
        return "identical"
    if np.std(d) == 0:
        return MISSING
    return p_value(float(stats.ttest_rel(a, b).pvalue))


def _pairs(ra: list[Record], rb: list[Record], metric: str) -> tuple[np.ndarray, np.ndarray]:
    a = {replicate_of(r): r.metrics.get(metric) for r in ra}
    b = {replicate_of(r): r.metrics.get(metric) for r in rb}
    common = sorted(k for k in a.keys() & b.keys() if a[k] is not None and b[k] is not None)
    return np.array([a[k] for k in common], dtype=float), np.array([b[k] for k in common], dtype=float)


def table(records: list[Record], a: str, b: str) -> str:
    groups = group(records)
    grid = sorted({(s, k) for (smp, s, k) in groups if smp in (a, b)})
    metrics = [(m, h) for m, h in METRICS if any(m in r.metrics for r in records)]
    head = ["S", "K", "pairs"]
    for _, h in metrics:
        head += [f"{h} {a}", f"{h} {b}", f"p ({h})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s, k in grid:
        ra, rb = groups.get((a, s, k), []), groups.get((b, s, k), [])
        if not ra or not rb:
            continue
        n = len(_pairs(ra, rb, metrics[0][0])[0]) if metrics else 0
        cells = [str(s) if s >= 0 else MISSING, str(k) if k >= 0 else MISSING, str(n)]
        for m, _ in metrics:
            x, y = _pairs(ra, rb, m)
            cells += [pm(list(x)), pm(list(y)), paired_p(x, y)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(run: Run, family: str, a: str, b: str) -> str:
    recs = [r for r in run.family_records(family) if (r.sampler or "default") in (a, b)]
    note = (f"`{a}` and `{b}` on the same replicates (checkpoint, seed), so each pair shares its starting noise; "
            "cells: mean ± sd over the pairs; p: two-sided paired t-test over them, raw (not adjusted for the grid "
            "values and metrics compared), 'identical' when every pair is equal.")
    return "\n".join([f"**`{run.label}`**: `{a}` vs `{b}`", "", table(recs, a, b), "",
                      " ".join([provenance(run, recs), note, floor_text(recs)])])


def section_across(run_a: Run, run_b: Run, family: str, a: str, b: str) -> str:
    """The same comparison when no single run holds both samplers: `a` from one full run, `b` from
    another, paired by (checkpoint, seed) as within a run (each seed's starting noise is the same
    draw in both, at the same n and batch)."""
    ra = [r for r in run_a.family_records(family) if (r.sampler or "default") == a]
    rb = [r for r in run_b.family_records(family) if (r.sampler or "default") == b]
    note = (f"`{a}` from `{run_a.label}` and `{b}` from `{run_b.label}` on the same replicates (checkpoint, seed, "
            "n and batch), so each pair shares its starting noise; cells: mean ± sd over the pairs; p: two-sided "
            "paired t-test over them, raw (not adjusted for the grid values and metrics compared).")
    return "\n".join([f"**`{run_a.label}` + `{run_b.label}`**: `{a}` vs `{b}`", "", table(ra + rb, a, b), "",
                      " ".join([provenance(run_a, ra), provenance(run_b, rb), note, floor_text(rb)])])
