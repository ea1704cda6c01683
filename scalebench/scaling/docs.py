"""Write the generated part of docs/scaling-laws.md from committed records.

    python -m scalebench.scaling.docs           # rewrite the block between the markers
    python -m scalebench.scaling.docs --check   # exit 1 if the file differs from what the records give

The block holds, per committed run in `SOURCES`, the exponents of every varied axis (NFE, FLOPs,
latency), the compute-optimal allocations of the rows that vary S and K, the frontier across
families per FLOP and per second, and the calibration table of `results/scaling-calibration/`
(benchmarks/scaling_calibration.py). Everything in it is computed by `scalebench.scaling` from
those files, so a test can regenerate it and compare.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from scalebench.scaling.allocation import UNTESTED, allocate, summary, surface_of
from scalebench.scaling.curves import metric_points, row_keys
from scalebench.scaling.frontier import frontier_points, leaders

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "scaling-laws.md"
BEGIN, END = "<!-- generated:scaling -->", "<!-- /generated:scaling -->"
CALIBRATION = "results/scaling-calibration"
# (run directory, what it is): the exponents come from each; allocations from those with both-axes rows
SOURCES = [
    ("results/baseline-full-cuda", "the full spec on one H200: 3 sampling seeds, n = 1000; diffusion (ddim, ddpm, "
                                   "heun), gpt, maskgit, mtp, pixelcnn, var"),
    ("results/baseline-full-cpu", "the full spec on the 2-core CPU: 3 seeds, n = 1000; diffusion (ddim, ddpm, heun), "
                                  "gpt, mtp, pixelcnn"),
    ("results/baseline-full-cpu-zoo", "the full spec on the 2-core CPU, one family at a time (`scalebench run full "
                                      "--only FAMILY`, and `--only diffusion/dpmpp2m`): 3 seeds, n = 1000 (mar "
                                      "200); the families and the sampler baseline-full-cpu lacks"),
    ("results/baseline-quick-cpu", "the quick spec on the 2-core CPU (a fresh clone's `make run`): 3 seeds wherever "
                                   "an axis varies, n = 250–1000; every family, the both-axes rows on small grids"),
]
ALLOCATION_SOURCES = ["results/baseline-full-cpu-zoo", "results/baseline-quick-cpu"]
"""Runs whose both-axes rows get allocation tables (each row from the first run that holds it)."""
FRONTIER_SOURCES = ["results/baseline-quick-cpu", "results/baseline-full-cuda"]
METRIC = "fid"


def _g(v: float, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if v == math.inf:
        return "never"
    return f"{v:.{digits}g}"


def _alpha(row: pd.Series, axis: str, m: str) -> str:
    a = row[f"{axis}_alpha_{m}"]
    law = row[f"{axis}_law_{m}"]
    if not (isinstance(a, float) and math.isfinite(a)):
        return {"no power law": "no law", "not fitted": "not fitted", "untested": "untested"}.get(law, "—")
    lo, hi = row[f"{axis}_alpha_{m}_lo"], row[f"{axis}_alpha_{m}_hi"]
    return f"{a:.2f} [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else f"{a:.2f} (1 rep.)"


def exponents_table(table: pd.DataFrame) -> str:
    lines = ["| row | axis (slice) | replicates | α per NFE [95 %] | α per FLOP | α per second | outcome (NFE) | "
             "asymptote | NFE into the floor band |", "|---|---|---:|---|---|---|---|---:|---:|"]
    for _, r in table.iterrows():
        label = r["generator"] + (f"/{r['sampler']}" if isinstance(r["sampler"], str) and r["sampler"] != "default"
                                  else "")
        for axis in ("S", "K"):
            if not isinstance(r[f"{axis}_law_nfe"], str) or not r[f"{axis}_law_nfe"]:
                continue
            at = f" ({r[f'{axis}_at']})" if isinstance(r[f"{axis}_at"], str) and r[f"{axis}_at"] else ""
            n = r[f"{axis}_n"]
            entry = r[f"{axis}_floor_nfe"]
            elo, ehi = r[f"{axis}_floor_nfe_lo"], r[f"{axis}_floor_nfe_hi"]
            entry_text = _g(entry) + (f" [{_g(elo)}, {_g(ehi)}]" if isinstance(elo, float) and math.isfinite(elo)
                                      else "") + (" (beyond the NFE measured)" if r[f"{axis}_floor_nfe_beyond"] else "")
            reason = str(r[f"{axis}_law_reason"]).replace("|", "\\|")
            lines.append(f"| {label} | {axis}{at} | {int(n) if pd.notna(n) else '—'} | {_alpha(r, axis, 'nfe')} | "
                         f"{_alpha(r, axis, 'flops')} | {_alpha(r, axis, 'latency')} | {r[f'{axis}_law_nfe']}: "
                         f"{reason} | {_g(r[f'{axis}_asymptote'])} | {entry_text} |")
    return "\n".join(lines)


def allocation_tables(df: pd.DataFrame, skip: set[str] = frozenset()) -> tuple[str, set[str]]:
    """The allocation table of every both-axes row of `df` not in `skip`, and the rows' labels."""
    pts = metric_points(df, METRIC)
    out: list[str] = []
    labels: set[str] = set()
    for key in row_keys(pts):
        mine = pts[key.mask(pts)]
        if mine["S"].nunique() < 2 or mine["K"].nunique() < 2 or key.label in skip:
            continue
        labels.add(key.label)
        surface = surface_of(mine, "nfe", "lower")
        if surface is None:
            continue
        choices = allocate(surface)
        out += [f"**{key.label}** ({surface.q.shape[0]} replicate{'s' if surface.q.shape[0] != 1 else ''}; "
                f"S ∈ {{{', '.join(str(int(v)) for v in np.unique(surface.S))}}}, K ∈ "
                f"{{{', '.join(str(int(v)) for v in np.unique(surface.K))}}}). Measured: {summary(choices)}. "
                f"Smooth fit: {summary(choices, fit=True)}.", "",
                "| NFE budget | best measured S×K (NFE) | FID [95 %] | tied with it | all on S (K min) | "
                "all on K (S min) | spend (p) | smooth fit S × K [95 %] | smooth spend |",
                "|---:|---|---|---|---|---|---|---|---|"]
        for c in choices:
            spend = f"{c.spend} (lean {c.lean})" if c.spend == UNTESTED else f"{c.spend} (p {_g(c.p, 2)})"
            ci = f" [{_g(c.q_lo)}, {_g(c.q_hi)}]" if math.isfinite(c.q_lo) else ""
            sm = "—"
            if math.isfinite(c.S_fit):
                s_ci = f" [{_g(c.S_fit_lo, 2)}, {_g(c.S_fit_hi, 2)}]" if math.isfinite(c.S_fit_lo) else ""
                k_ci = f" [{_g(c.K_fit_lo, 2)}, {_g(c.K_fit_hi, 2)}]" if math.isfinite(c.K_fit_lo) else ""
                sm = f"{_g(c.S_fit, 2)}{s_ci} × {_g(c.K_fit, 2)}{k_ci}"
            sm_spend = f"{c.spend_fit} (lean {c.lean_fit})" if c.spend_fit == UNTESTED else c.spend_fit
            out.append(f"| {_g(c.budget)} | {c.S}×{c.K} ({_g(c.compute)}) | {_g(c.q)}{ci} | {c.tied or '—'} | "
                       f"{c.s_edge or '—'} ({_g(c.q_s_edge)}) | {c.k_edge or '—'} ({_g(c.q_k_edge)}) | {spend} | "
                       f"{sm} | {sm_spend} |")
        out.append("")
    return "\n".join(out), labels


def frontier_tables(df: pd.DataFrame) -> str:
    out = []
    for measure, unit, scale in (("flops", "FLOPs per sample", 1.0), ("latency", "ms per sample", 1e3)):
        pts = frontier_points(df, METRIC, "lower", measure)
        lead = leaders(pts)
        n_flag = int(pts["flagged"].sum())
        what = "FID − data floor" if pts.attrs.get("gap") else "FID"
        out += [f"Per {unit} ({n_flag} of {len(pts)} allocations left out as flagged; quality = {what}, lower is "
                "better):", "", f"| budget ({unit}) | best family | S×K | its cost | {what} [95 %] | "
                "tied with it (Welch p ≥ 0.05) | one replicate: untested |", "|---:|---|---|---:|---|---|---|"]
        for _, r in lead.iterrows():
            ci = f" [{_g(r['lo'])}, {_g(r['hi'])}]" if math.isfinite(r["lo"]) else ""
            out.append(f"| {_g(r['budget'] * scale)} | {r['method']} | {r['S']}×{r['K']} | {_g(r['compute'] * scale)} | "
                       f"{_g(r['value'])}{ci} | {r['tied'] or '—'} | {r['untested'] or '—'} |")
        out.append("")
    return "\n".join(out)


def calibration_block(root: Path = ROOT) -> str:
    table = root / CALIBRATION / "table.md"
    readme = root / CALIBRATION / "README.md"
    if not table.exists():
        return f"(no calibration record: run `python benchmarks/scaling_calibration.py` to write {CALIBRATION}/)"
    head = readme.read_text(encoding="utf-8").strip() + "\n\n" if readme.exists() else ""
    return head + table.read_text(encoding="utf-8").strip()


def generate(root: Path | str = ROOT) -> str:
    """The block between the markers, from the committed records under `root` (`make docs` writes it
    through `scalebench.docsgen`, like every other generated block)."""
    from scalebench.report.table import known_cards, scalability_table
    from scalebench.results import load_results

    parts = ["## Exponents of the zoo", "",
             "Computed by `python -m scalebench.scaling.docs` from the committed records; the same numbers are the "
             "`*_alpha_*` columns of `scalebench table RUN --csv`.", ""]
    frames = {}
    for run, what in SOURCES:
        if not (Path(root) / run / "points.jsonl").is_file():
            continue
        df = load_results(Path(root) / run)
        frames[run] = df
        table = scalability_table(df, METRIC, cards=known_cards(df))
        parts += [f"### `{run}`", "", f"{what[0].upper()}{what[1:]}.", "", exponents_table(table), ""]
    parts += ["## Compute-optimal S × K allocations", ""]
    done: set[str] = set()
    for run in ALLOCATION_SOURCES:
        if run not in frames:
            continue
        text, labels = allocation_tables(frames[run], skip=done)
        if labels:
            parts += [f"### `{run}`", "", text, ""]
            done |= labels
    parts += ["## The frontier across families", ""]
    for run in FRONTIER_SOURCES:
        parts += [f"### `{run}`", "", frontier_tables(frames[run])]
    parts += ["## Calibration on known truth", "", calibration_block(Path(root)), ""]
    return "\n".join(parts).rstrip() + "\n"


def body(text: str) -> str:
    """How the block sits between its markers (as scalebench.docsgen.markers.body): one blank line either side."""
    return "\n" + text.strip("\n") + "\n\n"


def current(text: str) -> str:
    """The doc's text between the line of the opening marker and the closing marker."""
    if f"{BEGIN}\n" not in text or END not in text:
        raise ValueError(f"{DOC} lacks the markers {BEGIN} … {END} (each alone on its line)")
    return text.split(f"{BEGIN}\n", 1)[1].split(END, 1)[0]


def splice(text: str, block: str) -> str:
    head, rest = text.split(f"{BEGIN}\n", 1)
    current(text)
    return f"{head}{BEGIN}\n{body(block)}{END}{rest.split(END, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is not what the records give")
    args = ap.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new = splice(text, generate())
    if args.check:
        if new != text:
            print(f"{DOC} is out of date: run python -m scalebench.scaling.docs", file=sys.stderr)
            return 1
        return 0
    if new != text:
        DOC.write_text(new, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
