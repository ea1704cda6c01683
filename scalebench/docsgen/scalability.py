"""The measured scalability tables of docs/scalability-table.md: each committed run through the real
table code (`report/table.py` → `report/tablefmt.markdown_table`), as `scalebench table RUN --markdown`
prints it, with the run's provenance underneath."""

from __future__ import annotations

from scalebench.docsgen.measured import provenance
from scalebench.docsgen.runs import Run


def section(run: Run) -> str:
    from scalebench.report.tablefmt import markdown_table

    head = f"**`{run.label}`** (`scalebench table {run.label} --markdown`)"
    t = run.table
    body = f"No scalability table: {t}" if isinstance(t, str) else markdown_table(t).rstrip("\n")
    return "\n".join([head, "", body, "", provenance(run, [r for r in run.records if r.ok])])


def _round(v: float) -> float:
    return float(f"{v:.4g}")


def floor_example(runs: list[Run]) -> str:
    """How a record carries its floors: `metrics` and `floors` of FID and KID of one committed record
    (the first ok point of the first full-spec run, else of the first run), as JSON."""
    import json

    for run in sorted(runs, key=lambda r: (not r.is_full, r.name)):
        for r in run.records:
            if r.ok and "fid" in r.floors and "fid" in r.metrics:
                names = [m for m in ("fid", "kid") if m in r.metrics and m in r.floors]
                metrics = {m: _round(r.metrics[m]) for m in names}
                floors = {m: {"mean": _round(r.floors[m].mean), "sd": _round(r.floors[m].sd), "n": r.floors[m].n}
                          for m in names}
                where = (f"`{run.label}`, point `{r.point_id}` ({r.name}/{r.sampler}, S = {r.S}, K = {r.K}, "
                         f"seed {r.seed}), FID and KID only:")
                return "\n".join([where, "", "```json", f'"metrics": {json.dumps(metrics)},',
                                  f'"floors": {json.dumps(floors)}', "```"])
    return "No committed record carries a floor."
