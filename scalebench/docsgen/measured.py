"""One family's measured table from one run: per sampler × S × K, mean ± sd over replicates, with
the run's provenance, the data floor and the run's verdicts for the family underneath.

Every figure comes from the run's records (`Record`); nothing is typed in by hand. Columns appear
only where some point of the table has a value (a speed-only metric set shows no quality columns).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from scalebench.docsgen.numbers import MISSING, count_text, mean_text, pm, pm_of
from scalebench.docsgen.runs import Run
from scalebench.record import Record

# (metric, column header, scale): what the method docs show, in this order
QUALITY = [("fid", "FID", 1.0), ("kid", "KID", 1.0), ("precision", "precision", 1.0), ("recall", "recall", 1.0),
           ("diversity", "diversity", 1.0), ("ref_nll", "ref-NLL", 1.0), ("memorisation", "memorised %", 100.0),
           ("test_nll", "test NLL", 1.0)]
FLOOR_NAMES = {"fid": "FID", "kid": "KID", "precision": "precision", "recall": "recall", "diversity": "diversity",
               "ref_nll": "ref-NLL", "memorisation": "memorised", "memorisation_feat": "memorised (features)"}

SPREAD = re.compile(r"_(min|max|p\d+)$")  # a diagnostic's within-batch spread: in the records, not the table
Key = tuple[str, int, int]


def _key(r: Record) -> Key:
    return (r.sampler or "default", r.S if r.S is not None else -1, r.K if r.K is not None else -1)


def _axis(v: int) -> str:
    return str(v) if v >= 0 else MISSING


def replicate_of(r: Record) -> tuple[str, int]:
    """A replicate: (checkpoint, sampling seed); a record without a checkpoint name sampled the shipped one."""
    return (r.replicate or r.name, r.seed if r.seed is not None else -1)


def group(records: Iterable[Record]) -> dict[Key, list[Record]]:
    """Records by (sampler, S, K), sorted; within a key one record per replicate (the last one wins)."""
    by: dict[Key, dict[tuple[str, int], Record]] = defaultdict(dict)
    for r in records:
        by[_key(r)][replicate_of(r)] = r
    return {k: [by[k][rep] for rep in sorted(by[k])] for k in sorted(by)}


def _cell(values: Sequence[float | None], scale: float) -> str:
    return pm([v for v in values if v is not None], scale)


def table(records: list[Record]) -> str:
    """The Markdown table of `records` (ok records of one family in one run)."""
    groups = group(records)
    samplers = {k[0] for k in groups}
    quality = [(m, h, s) for m, h, s in QUALITY if any(m in r.metrics for r in records)]
    diagnostics = sorted({d for r in records for d in (r.diagnostics or {}) if not SPREAD.search(d)})
    has_flops = any(r.cost.flops is not None for r in records)
    has_latency = any(r.cost.latency_s is not None for r in records)
    head = (["sampler"] if len(samplers) > 1 else []) + ["S", "K", "n", "NFE"] + [h for _, h, _ in quality] + [
        f"`{d}`" for d in diagnostics] + (["FLOPs/sample"] if has_flops else []) + (
        ["ms/sample"] if has_latency else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (sampler, s, k), recs in groups.items():
        cells = ([sampler] if len(samplers) > 1 else []) + [_axis(s), _axis(k), str(len(recs)),
                                                            count_text([r.cost.nfe for r in recs])]
        cells += [_cell([r.metrics.get(m) for r in recs], scale) for m, _, scale in quality]
        cells += [_cell([(r.diagnostics or {}).get(d) for r in recs], 1.0) for d in diagnostics]
        if has_flops:
            flops = mean_text([r.cost.flops for r in recs], 1e-6)
            cells.append(flops + " M" if flops != MISSING else flops)
        if has_latency:
            cells.append(mean_text([r.cost.latency_s for r in recs], 1e3))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _short(commit: str) -> str:
    sha, plus, rest = commit.partition("+")
    return (sha[:7] if len(sha) == 40 else sha) + (f" +{rest}" if plus else "")


def _unique(items: Iterable[object]) -> list[str]:
    out: list[str] = []
    for i in items:
        if i is not None and str(i) not in out:
            out.append(str(i))
    return out


def _ints(values: Iterable[int]) -> str:
    return ", ".join(str(v) for v in sorted(set(values)))


def provenance(run: Run, records: list[Record]) -> str:
    """Which run, its spec, the commits its records were made at, and the command (from the manifest)."""
    spec = f"spec `{run.spec_source}`" if run.spec_source else "spec not named in the manifest"
    if run.spec_name:
        spec += f" (name `{run.spec_name}`)"
    devices = _unique(f"{r.device} ({r.provenance.get('device_name')})" if r.provenance.get("device_name")
                      else r.device for r in records)
    torch = _unique((r.provenance.get("versions") or {}).get("torch") for r in records)
    threads = _unique(r.threads for r in records)
    commits = _unique(_short(str(r.provenance.get("git_commit"))) for r in records if r.provenance.get("git_commit"))
    commands = run.commands()
    text = (f"From `{run.label}`: {spec}; {', '.join(devices)}, {', '.join(threads) or '?'} threads"
            + (f", torch {', '.join(torch)}" if torch else "")
            + f"; records made at commit {', '.join(f'`{c}`' for c in commits) or 'unknown'}; ")
    text += ("command: " + "; ".join(f"`{c}`" for c in commands)) if commands else (
        "the manifest records no command (it predates recording one)")
    return text + "."


def replicates_text(records: list[Record]) -> str:
    """What the ± is over: sampling seeds of one checkpoint, or (checkpoint, seed) pairs."""
    checkpoints = _unique(sorted(replicate_of(r)[0] for r in records))
    seeds = {r.seed for r in records if r.seed is not None}
    n = [r.n for r in records if r.n is not None]
    batch = [r.batch_size for r in records if r.batch_size is not None]
    size = f"{_ints(n)} samples per point (batch {_ints(batch)})" if n else "samples per point not recorded"
    if len(checkpoints) <= 1:
        over = f"sampling seed{'s' if len(seeds) > 1 else ''} {_ints(seeds)} of one checkpoint"
    else:
        over = (f"(checkpoint, seed) pairs: checkpoints {', '.join(f'`{c}`' for c in checkpoints)} × seeds "
                f"{_ints(seeds)}")
    return f"{size}. n = replicates; each cell is the mean ± sd (ddof 1) over {over}"


def timing_text(records: list[Record]) -> str:
    timed = [r for r in records if r.cost.latency_s is not None]
    if not timed:
        return "no point was timed"
    parts = []
    for mode in _unique(r.timing_mode for r in timed):
        recs = [r for r in timed if r.timing_mode == mode]
        rounds = _unique(r.timing.rounds for r in recs) if mode == "interleaved" else []
        parts.append(f"{mode}" + (f", {'/'.join(rounds)} rounds" if rounds else ""))
    return f"ms/sample: the median per sample of the timed batches ({'; '.join(parts)}), mean over replicates"


def floor_text(records: list[Record]) -> str:
    """The data floor the records carry, per n: what real unseen images score at the same sample count."""
    by_n: dict[int, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for m, f in r.floors.items():
            by_n[f.n if f.n is not None else (r.n or -1)][m].append((f.mean, f.sd))
    if not by_n:
        return "The records carry no data floor."
    parts = []
    for n, floors in sorted(by_n.items()):
        cells = []
        for m, name in FLOOR_NAMES.items():
            if m not in floors:
                continue
            vals = floors[m]
            scale = 100.0 if m.startswith("memorisation") else 1.0
            mean = sum(v[0] for v in vals) / len(vals) * scale
            sd = sum(v[1] for v in vals) / len(vals) * scale
            cells.append(f"{name} {pm_of(mean, sd)}{' %' if scale == 100.0 else ''}"
                         + (" (varies across records)" if len(set(vals)) > 1 else ""))
        parts.append(f"n = {n}: " + ", ".join(cells))
    return "Data floor (real unseen images at the same n, from the records): " + "; ".join(parts) + "."


def nll_text(records: list[Record]) -> str:
    kinds = _unique(r.nll_kind for r in records if "test_nll" in r.metrics)
    return f"Test NLL: bits/dim on the `test` split ({', '.join(kinds)})" if kinds else ""


def failures_text(run: Run, family: str, samplers: Sequence[str] | None) -> str:
    failed = [r for r in run.family_records(family, ok=False) if not r.ok
              and (samplers is None or (r.sampler or "default") in samplers)]
    if not failed:
        return ""
    where = ", ".join(f"{s}/S={_axis(S)}/K={_axis(K)}" for s, S, K in sorted({_key(r) for r in failed}))
    errors = _unique((r.error or "no error recorded").splitlines()[0][:120] for r in failed)
    return f"{len(failed)} point(s) failed and are not in the table ({where}): {'; '.join(errors)}."


def verdict_lines(run: Run, family: str, samplers: Sequence[str] | None) -> list[str]:
    """The family's rows of the run's scalability table (`report/table.py`, rendered by `report/tablefmt.py`)."""
    t = run.table
    if isinstance(t, str):
        return [f"No scalability table for `{run.label}`: {t}"]
    from scalebench.report.tablefmt import evidence_text, label

    rows = t[t["generator"] == family]
    if samplers is not None:
        rows = rows[rows["sampler"].isin(list(samplers))]
    if rows.empty:
        return []
    out = [f"`scalebench table {run.label}`: {t.attrs.get('header', '')}"]
    for _, row in rows.iterrows():
        cells = []
        for axis in ("S", "K"):
            text = f"{axis} {label(row[axis])}"
            evidence = evidence_text(row, axis)
            cells.append(f"{text} ({evidence})" if evidence and row[axis] not in ("fixed",) else text)
        name = f"{family}/{row['sampler']}" if isinstance(row["sampler"], str) else family
        out.append(f"- `{name}`: {'; '.join(cells)}; agrees with the seed: {row['agrees']}.")
    return out


def section(run: Run, family: str, samplers: Sequence[str] | None = None) -> str:
    """The run's table of one family (optionally some samplers only) with its caption and verdicts."""
    recs = [r for r in run.family_records(family) if samplers is None or (r.sampler or "default") in samplers]
    caption = [provenance(run, recs), *(t + "." for t in (replicates_text(recs),
               timing_text(recs), nll_text(recs)) if t), floor_text(recs), failures_text(run, family, samplers)]
    parts = [f"**`{run.label}`**", "", table(recs), "", " ".join(c for c in caption if c)]
    verdicts = verdict_lines(run, family, samplers)
    if verdicts:
        parts += ["", *verdicts]
    return "\n".join(parts)


def holds(run: Run, family: str, samplers: Sequence[str] | None = None) -> bool:
    """Whether the run has ok quality records of the family (of every named sampler)."""
    if family not in run.families:
        return False
    have = {r.sampler or "default" for r in run.family_records(family)}
    return samplers is None or set(samplers) <= have

