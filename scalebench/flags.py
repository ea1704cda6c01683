"""Flags on points whose good numbers would mislead: near-copies of training data, and collapse.

A generator that returns training images verbatim wins FID (it *is* real data), and one that
repeats a few good digits wins reference NLL and precision. Neither shows as bad on the metric
a reader sorts by, so every place that ranks points (the scalability table, the run summary,
the HTML report and its Pareto frontiers) shows these flags. The rule lives here, once:

- **copies**: `memorisation` or `memorisation_feat` above its data-floor band, i.e.
  value > floor + `Z`·sd **and** value ≥ `COPIES_RATIO` × floor (at least twice as many
  near-copies as real unseen images show: a point a hair above a tiny floor is not a copier);
- **collapse**: `recall` or `diversity` far below its floor, i.e. value < floor − `Z`·sd
  **and** value < `COLLAPSE_FRACTION` × floor, while its samples still pass for data on a
  fidelity metric (`precision` ≥ `FIDELITY_FRACTION` × its floor, or `ref_nll` ≤ its floor
  + `Z` sd; either, when recorded). Without that condition every sampler run at one step —
  noise, with precision ≈ 0, ref-NLL far above real data and terrible FID, which misleads no
  one — would be called collapsed.

`Z` = 3 floor sds: one-sided, a real-data draw crosses it with probability ≈ 0.1 %, so over a
150-point sweep false flags stay rare. Floors come in the tidy frame's form, `<metric>_floor` / `<metric>_floor_sd`
(`metrics/floor.py`); a metric without a recorded floor is never flagged.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from scalebench.record import FLOOR_SD_SUFFIX, FLOOR_SUFFIX

Z = 3.0
COPIES_RATIO = 2.0
COLLAPSE_FRACTION = 0.5
FIDELITY_FRACTION = 0.5
COPIES, COLLAPSE = "copies", "collapse"
COPY_METRICS = ("memorisation", "memorisation_feat")
SPREAD_METRICS = ("recall", "diversity")
POINT_KEYS = ("run", "point_id")
FLAG_COLUMNS = ["run", "point_id", "dataset", "generator", "sampler", "S", "K", "seed", "n", "flags", "reason"]


def _num(values: dict[str, Any], key: str) -> float:
    v = values.get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


def rule_text() -> str:
    """The rule in one sentence (table captions, the report, the summary)."""
    return (f"flags: copies = memorisation (pixel or feature) > floor + {Z:g} sd and ≥ {COPIES_RATIO:g}× floor; "
            f"collapse = recall or diversity < floor − {Z:g} sd and < {COLLAPSE_FRACTION:g}× floor while precision "
            f"≥ {FIDELITY_FRACTION:g}× its floor or ref_nll ≤ floor + {Z:g} sd (scalebench/flags.py)")


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else str(v)


def _realistic(metrics: dict[str, Any]) -> tuple[bool, str]:
    """Do the samples still look like data (so low spread is collapse, not noise)? With the evidence.

    Yes when precision is at least `FIDELITY_FRACTION` of its floor, or the reference NLL is no worse
    than the top of its floor band (a repeated odd digit can sit outside the k-NN manifold, precision 0,
    and still win ref-NLL); yes when neither is recorded; no otherwise."""
    p, pf = _num(metrics, "precision"), _num(metrics, "precision" + FLOOR_SUFFIX)
    r, rf, rsd = (_num(metrics, "ref_nll"), _num(metrics, "ref_nll" + FLOOR_SUFFIX),
                  _num(metrics, "ref_nll" + FLOOR_SD_SUFFIX))
    has_p, has_r = math.isfinite(p) and math.isfinite(pf), all(map(math.isfinite, (r, rf, rsd)))
    if has_p and p >= FIDELITY_FRACTION * pf:
        return True, f"precision {p:.2g}"
    if has_r and r <= rf + Z * rsd:
        return True, f"ref_nll {r:.3g}"
    return not (has_p or has_r), ""


def flags_of(metrics: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(flag names, one short reason per flag) of one point's metrics dict (values + floors)."""
    flags, reasons = [], []
    for m in COPY_METRICS:
        v, f, sd = _num(metrics, m), _num(metrics, m + FLOOR_SUFFIX), _num(metrics, m + FLOOR_SD_SUFFIX)
        if all(map(math.isfinite, (v, f, sd))) and v > f + Z * sd and v >= COPIES_RATIO * f:
            if COPIES not in flags:
                flags.append(COPIES)
                reasons.append(f"{m} {v:.3g} > floor {f:.3g} + {Z:g} sd ({sd:.2g})")
    realistic, seen = _realistic(metrics)
    for m in SPREAD_METRICS:
        v, f, sd = _num(metrics, m), _num(metrics, m + FLOOR_SUFFIX), _num(metrics, m + FLOOR_SD_SUFFIX)
        if realistic and all(map(math.isfinite, (v, f, sd))) and v < f - Z * sd and v < COLLAPSE_FRACTION * f:
            if COLLAPSE not in flags:
                flags.append(COLLAPSE)
                reasons.append(f"{m} {v:.3g} < {COLLAPSE_FRACTION:g} × floor {f:.3g}" + (f" at {seen}" if seen else ""))
    return flags, reasons


def point_flags(df: pd.DataFrame) -> pd.DataFrame:
    """One row per finished point of the tidy table (`results.load_results`): FLAG_COLUMNS.

    `flags` is "" or a comma-separated list ("copies", "collapse"); `reason` says which metric
    crossed which bound. Failed points are not judged."""
    if df.empty or "metric" not in df.columns:
        return pd.DataFrame(columns=FLAG_COLUMNS)
    ok = df[df["status"] == "ok"]
    ok = ok.assign(**{k: ok[k] if k in ok.columns else "" for k in POINT_KEYS})  # frames built without a run column
    keys, info = list(POINT_KEYS), [c for c in FLAG_COLUMNS[2:-2] if c in ok.columns]
    # one pass over the rows (a groupby loop was ~0.6 s on the quick run); NaN keys group together
    group_keys = ok[keys].astype(object).where(ok[keys].notna(), None)
    metrics: dict[tuple, dict[str, Any]] = {}
    first: dict[tuple, tuple] = {}
    for key, row, m, v in zip(group_keys.itertuples(index=False, name=None),
                              ok[keys + info].itertuples(index=False, name=None), ok["metric"], ok["value"],
                              strict=True):
        metrics.setdefault(key, {})[m] = v
        first.setdefault(key, row)
    rows = []
    for key, values in metrics.items():
        flags, reasons = flags_of(values)
        rows.append({**dict(zip(keys + info, first[key], strict=True)),
                     "flags": ", ".join(flags), "reason": "; ".join(reasons)})
    return pd.DataFrame(rows, columns=FLAG_COLUMNS)


def flagged_ids(df: pd.DataFrame) -> set[str]:
    """point_ids of the tidy table's flagged points (what charts keep off the Pareto frontier)."""
    pf = point_flags(df)
    return set(pf.loc[pf["flags"] != "", "point_id"])


def row_flags(df: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """For each row of a per-(dataset, generator, sampler) table: "copies 2/9, collapse 1/9" or ""."""
    pf = point_flags(df)
    out = []
    for _, row in table.iterrows():
        mine = pf[(pf["generator"] == row["generator"])
                  & (pf["sampler"].map(_text) == _text(row.get("sampler")))
                  & (pf["dataset"].map(_text) == _text(row.get("dataset")))]
        counts = [(f, int(mine["flags"].str.split(", ").map(lambda fs, f=f: f in fs).sum()))
                  for f in (COPIES, COLLAPSE)]
        out.append(", ".join(f"{f} {c}/{len(mine)}" for f, c in counts if c))
    return out
