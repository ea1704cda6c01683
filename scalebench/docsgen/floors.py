"""The data floors table of docs/metrics.md: every floor the committed records carry.

A floor travels in each record (`Record.floors`: mean, sd and n of real unseen images scored like
the samples, `metrics/floor.py`). Records of one n and one measuring code carry the same floor, so
the table has one row per distinct (metric, n, value) with the records that carry it; a change of
the floor's code shows up as a second row at the same n, never as an average of the two.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from scalebench.docsgen.numbers import MISSING, pm_of
from scalebench.docsgen.runs import Run
from scalebench.metrics import METRICS

NAMES = {"fid": "FID", "kid": "KID", "ref_nll": "ref-NLL (bits/dim)", "precision": "precision", "recall": "recall",
         "memorisation": "memorisation (pixel)", "memorisation_feat": "memorisation (feature)",
         "diversity": "diversity"}


def table(runs: list[Run]) -> str:
    rows: dict[tuple, Counter[str]] = defaultdict(Counter)
    for run in runs:
        for r in run.records:
            if not r.ok:
                continue
            for m, f in r.floors.items():
                key = (m, f.n if f.n is not None else r.n, f.mean, f.sd, getattr(f, "pool", None),
                       getattr(f, "draws", None))
                rows[key][run.name] += 1
    if not rows:
        return "No committed record carries a data floor."
    order = {m: i for i, m in enumerate(METRICS)}

    def sort_key(item: tuple[tuple, Counter[str]]) -> tuple:
        (m, n, mean, sd, *_), runs_of = item
        return (order.get(m, len(order)), m, n if n is not None else -1, min(runs_of), mean, sd)

    lines = ["| metric | n | floor (mean ± sd) | pool | draws | records (run: points) |", "|---|---:|---|---|---:|---|"]
    for (m, n, mean, sd, pool, draws), runs_of in sorted(rows.items(), key=sort_key):
        where = ", ".join(f"`{name}`: {count}" for name, count in sorted(runs_of.items()))
        lines.append(f"| {NAMES.get(m, m)} | {n if n is not None else MISSING} | {pm_of(mean, sd)} | "
                     f"{pool or MISSING} | {draws if draws is not None else MISSING} | {where} |")
    note = ("From every committed run under `results/` (`Record.floors`). Pool and draws are shown where a record "
            "carries them; records made before they were kept carry only mean, sd and n (—). Two rows at one n "
            "are two versions of the floor's code, never averaged.")
    return "\n".join(lines) + "\n\n" + note
