"""The measured 2-axis scalability table: the seed's table, derived from results instead of asserted.

One row per dataset × generator × sampler, ordered by the seed's five categories. For each
axis (S, K) the cell is a verdict of `scalebench.verdict`: ▲ improves, ▼ worse, ■ no gain,
● at floor, ? inconclusive, — fixed (the card says so, or one value was measured), · no data.
Every test the table makes forms one family, adjusted together (`DecisionRule.correction`,
Benjamini–Hochberg by default); `table.attrs["header"]` says so and what a replicate is.

The primary quality metric is "fid" where present, else the first quality metric of
`METRICS` present in the results; its direction of "better" comes from `METRICS`.

Methods varying both axes: each axis is judged at the *largest* value of the other axis at
which the judged axis was measured at two or more values; the slice is recorded in `S_at`/`K_at`,
and the verdict at every other value of the other axis (raw, unadjusted p) in `S_pattern`/`K_pattern`.
Only points with status "ok" count; a replicate is a (checkpoint `replicate`, sampling `seed`)
pair, duplicates of one are averaged, and a method whose points differ in n, dtype, device or
dataset is refused (naming the column). The minimum effect is the metric's declared
`rel_tolerance`; the data floor comes from the records' `floors` (the frame's rows
`<metric>_floor` and `<metric>_floor_sd`). The seed's classification (from `category` via SEED_CATEGORIES)
sits beside the measured cells, and `agrees` compares only cells that speak to scaling:
"improves" matches "scales"; "no gain", "worse" and "fixed" match "does not scale"; "at floor"
and "inconclusive" make `agrees` "? (…)" unless another cell already disagrees; a card's outer
loop must match the seed's for "both" rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scalebench.api import SEED_CATEGORIES
from scalebench.errors import ResultsError, UsageError
from scalebench.metrics import METRICS
from scalebench.record import FLOOR_SD_SUFFIX, FLOOR_SUFFIX  # a floor's rows in the tidy frame: "<m>_floor", ...
from scalebench.verdict.decide import FIXED, FLAT, IMPROVES, NO_DATA, WORSE, DecisionRule, decide, decide_all
from scalebench.verdict.stats import AxisEffect, Floor, axis_effect
from scalebench.verdict.words import header, reason

if TYPE_CHECKING:  # pragma: no cover
    from scalebench.api import MethodCard

AXES = ("S", "K")
KEYS = ["dataset", "generator", "sampler"]
EVIDENCE_FIELDS = ["at", "values", "lo", "hi", "end_at", "q_lo", "q_hi", "q_end", "n", "scale", "effect",
                   "effect_lo", "effect_hi", "min_effect", "p_up", "p_down", "p_equiv", "p_floor", "floor_margin",
                   "start_at_floor", "test", "p_adj", "rho", "reason"]
# cells that speak to the seed's "scales" / "does not scale"
SCALING, NOT_SCALING = (IMPROVES,), (FLAT, WORSE, FIXED)
CATEGORY_ORDER = [*SEED_CATEGORIES, "unknown"]
TABLE_COLUMNS = ["category", "dataset", "generator", "sampler", "family", "metric", "better", "S", "K", "outer",
                 "outer_measured",
                 "seed_S", "seed_K", "seed_outer", "agrees", "floor", "floor_sd"] + [
                     f"{a}_{f}" for a in AXES for f in EVIDENCE_FIELDS] + [f"{a}_pattern" for a in AXES]
SCALES, NOT_SCALES = "scales", "does not scale"
# Averaging across runs must not mix these (a ValueError names the one that differs).
HOMOGENEOUS = ("n", "dtype", "device", "dataset", "compile")


def check_homogeneous(points: pd.DataFrame, by: list[str], what: str = "points") -> None:
    """Refuse to average `points` (rows of the tidy table) within a `by` group that mixes n, dtype,
    device or dataset: raise a ValueError naming the method, the column, its values and their runs."""
    cols = [c for c in HOMOGENEOUS if c in points.columns]
    if points.empty or not cols:
        return
    as_text = points[cols].astype(str).where(points[cols].notna())  # compared as text, as below
    mixed = as_text.groupby([points[b] for b in by], dropna=False, sort=False).nunique(dropna=True)
    if not (mixed > 1).to_numpy().any():  # the common case, in one vectorised pass
        return
    for key, g in points.groupby(by, dropna=False, sort=True):
        for col in cols:
            vals = g[col].dropna().astype(str).unique()
            if len(vals) > 1:
                runs = {v: sorted(g.loc[g[col].astype(str) == v, "run"].dropna().astype(str).unique())
                        for v in sorted(vals)} if "run" in g.columns else {}
                where = "; ".join(f"{col}={v}" + (f" in run {', '.join(r)}" if r else "") for v, r in runs.items())
                name = "/".join(str(k) for k in (key if isinstance(key, tuple) else (key,)) if k is not None)
                raise ResultsError(f"{name}: refusing to average {what} with different {col} ({where}); report "
                                 f"those runs separately or pass only runs with one {col}")


def method_floor(df: pd.DataFrame, metric: str, mask: pd.Series | None = None) -> Floor | None:
    """The data floor of `metric` from the ok records selected by `mask` (mean over them), or None.

    Convention: the frame carries rows "<metric>_floor" (the metric of real held-out data
    against the reference at the record's n) and optionally "<metric>_floor_sd" (its
    spread; 0 when absent).
    """
    sel = df if mask is None else df[mask]
    sel = sel[(sel["status"] == "ok") & np.isfinite(sel["value"])]
    means = sel.loc[sel["metric"] == metric + FLOOR_SUFFIX, "value"]
    if means.empty:
        return None
    sds = sel.loc[sel["metric"] == metric + FLOOR_SD_SUFFIX, "value"]
    return Floor(float(means.mean()), float(sds.mean()) if len(sds) else 0.0)


def quality_metrics(df: pd.DataFrame) -> list[str]:
    """Quality metrics (per METRICS) with at least one finite ok value, in METRICS order."""
    ok = df[(df["status"] == "ok") & df["value"].notna()]
    present = set(ok["metric"].dropna())
    return [m for m, spec in METRICS.items() if spec.kind == "quality" and m in present]


def primary_metric(df: pd.DataFrame) -> str:
    """ "fid" where present, else the first quality metric present (METRICS order)."""
    found = quality_metrics(df)
    if not found:
        raise ResultsError("the results hold no quality metric values (all points failed, or a speed-only spec); "
                           "run a spec with metrics such as fid")
    return "fid" if "fid" in found else found[0]


def check_metric(df: pd.DataFrame, metric: str | None) -> str:
    """The metric to judge by: validated against METRICS and the results."""
    if metric is None:
        return primary_metric(df)
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}; known: {sorted(METRICS)}")
    if metric not in set(df.loc[df["value"].notna(), "metric"].dropna()):
        raise ResultsError(f"metric {metric!r} has no values in these results; present: {quality_metrics(df)}")
    return metric


def known_cards(names: Iterable[str] | pd.DataFrame) -> dict[str, MethodCard]:
    """Cards of the registered generators among `names` (unknown or broken ones are left out); given
    a results table, its rows' labels map to their registered generators' cards."""
    try:
        from scalebench.cardindex import card_and_params, read_index
        index = read_index()  # built-in cards without importing torch or the families
    except Exception:  # noqa: BLE001 — the table works without cards
        return {}
    if isinstance(names, pd.DataFrame):
        df = names[names["generator"].notna()]
        pairs = dict(zip(df["generator"], df.get("generator_name", df["generator"]).fillna(df["generator"]),
                         strict=True))
    else:
        pairs = {n: n for n in set(names)}
    out = {}
    for n, reg in pairs.items():
        try:
            out[n] = card_and_params(reg, index)[0]
        except (Exception, SystemExit):  # noqa: BLE001 — synthetic or broken third-party names without a card
            continue
    return out


def _first(s: pd.Series) -> Any:
    s = s.dropna()
    return s.iloc[0] if len(s) else None


def replicate_index(points: pd.DataFrame) -> list[str]:
    """The columns that name a replicate: (checkpoint `replicate`, `seed`) where recorded, else `seed`."""
    return ["replicate", "seed"] if "replicate" in points.columns and points["replicate"].notna().any() else ["seed"]


def _effect(sl: pd.DataFrame, axis: str, better: str, rule: DecisionRule, min_effect: float,
            floor: Floor | None) -> AxisEffect:
    wide = sl.pivot_table(index=replicate_index(sl), columns=axis, values="value", aggfunc="mean")
    return axis_effect([int(v) for v in wide.columns], wide.to_numpy(dtype=float), better,  # type: ignore[arg-type]
                       min_effect, floor, top=rule.top, floor_z=rule.floor_z)


def _slice(points: pd.DataFrame, axis: str, other: str) -> tuple[pd.DataFrame | None, str, str]:
    """(the slice the axis is judged on, its label "K=16", or why there is none)."""
    other_vals = sorted(points[other].unique(), reverse=True)
    for b in other_vals:
        cand = points[points[other] == b]
        if cand[axis].nunique() >= 2:
            return cand, (f"{other}={int(b)}" if len(other_vals) > 1 else ""), ""
    if points[axis].nunique() >= 2:  # varied only together with the other axis
        return None, "", f"{axis} never varied at a fixed {other}"
    return points, "", ""


def verdict_pattern(points: pd.DataFrame, axis: str, other: str, better: str, rule: DecisionRule,
                    min_effect: float, floor: Floor | None) -> str:
    """The axis judged at EVERY value of the other axis where it was varied, e.g. "K=1:no gain,K=20:improves"
    ("" unless the other axis was varied too), each on its own raw p-values (descriptive: not part of the
    table's adjusted family). The table's one verdict is taken at one slice; the pattern shows whether the
    axis helps everywhere on the S × K surface or only where the other is large."""
    if points.empty or points[other].nunique() < 2:
        return ""
    out = []
    for b in sorted(points[other].unique()):
        sl = points[points[other] == b]
        if sl[axis].nunique() < 2:
            continue
        verdict, _, _ = decide(_effect(sl, axis, better, rule, min_effect, floor), rule)
        out.append(f"{other}={int(b)}:{verdict}")
    return ",".join(out)


SEQUENTIAL, NESTED = "sequential", "nested"


def measured_outer(nfe: pd.DataFrame) -> str:
    """How S and K compose in the sampler, read from the counted NFE over the row's S × K grid.

    "nested" when the NFE has an S × K interaction on the measured grid (one axis's loop runs inside
    the other's, as in ar_diffusion's K + (S−1)⌈K/2⌉), "sequential" when it is additive there (ards:
    S AR steps, then K − 1 denoising passes, S + K − 1; rolling's pipelined window is also additive
    wherever K ≤ S, where its window holds W = K frames), "" when the row does not vary both axes. NFE is symmetric in the two
    loops, so which one is outer stays the card's claim; a measured nesting supports it, an
    additive count leaves it declared only.
    """
    grid = nfe.groupby(["S", "K"])["value"].mean().unstack("K")
    if grid.shape[0] < 2 or grid.shape[1] < 2:
        return ""
    inter = grid.sub(grid.iloc[:, 0], axis=0).sub(grid.iloc[0, :], axis=1) + grid.iloc[0, 0]
    return NESTED if (inter.abs() > 0.5).to_numpy()[np.isfinite(inter.to_numpy())].any() else SEQUENTIAL


def _agreement(cells: dict[str, str], category: str | None, outer: str | None, outer_measured: str = "") -> str:
    """"yes", "no (axes)", or "? (axis verdict)": only cells that speak to scaling are compared with the seed.

    A declared outer loop whose counted NFE is additive in S and K (`measured_outer` = "sequential")
    agrees with the seed by declaration only, so it makes the row "? (outer declared only …)"."""
    seed = SEED_CATEGORIES.get(category or "")
    if seed is None:
        return "?"
    wrong, unsure = [], []
    for axis, scales in zip(AXES, seed[:2], strict=True):
        if cells[axis] not in SCALING + NOT_SCALING:
            unsure.append(f"{axis} {cells[axis]}")
        elif (cells[axis] in SCALING) != scales:
            wrong.append(axis)
    if seed[2] is not None and outer is not None and outer != seed[2]:
        wrong.append("outer")
    elif seed[2] is not None and outer_measured == SEQUENTIAL:
        unsure.append("outer declared only: NFE additive in S and K")
    if wrong:
        return f"no ({', '.join(wrong)})"
    return f"? ({', '.join(unsure)})" if unsure else "yes"


def scalability_table(df: pd.DataFrame, metric: str | None = None, rule: DecisionRule = DecisionRule(),
                      cards: Mapping[str, MethodCard] | None = None) -> pd.DataFrame:
    """Derive the 2-axis table from the tidy results of `load_results()`.

    `cards` (generator name → MethodCard) marks axes the card declares fixed as "fixed" even if
    the data hold more values; without cards an axis is "fixed" when one value was measured.
    Columns: TABLE_COLUMNS. `attrs`: "header" (error control and replicates), "hypotheses",
    "correction", "checkpoints" (the most of any row), "checkpoints_by_row".
    """
    metric = check_metric(df, metric)
    better = METRICS[metric].better
    min_effect = rule.min_effect if rule.min_effect is not None else METRICS[metric].rel_tolerance
    cards = cards or {}
    # a point that failed before its generator loaded has no dataset: give it its generator's
    df = df.assign(dataset=df["dataset"].fillna(df["generator"].map(
        df.dropna(subset=["dataset"]).groupby("generator")["dataset"].first())))
    ok = df[(df["status"] == "ok")]
    data = ok[(ok["metric"] == metric) & np.isfinite(ok["value"])]
    check_homogeneous(data, KEYS, f"{metric} values")
    rep_cols = replicate_index(data)
    rows, cells = [], []
    per_row: dict[str, int] = {}  # row name → trained checkpoints among its replicates
    for key, g in df[df["generator"].notna()].groupby(KEYS, dropna=False, sort=True):
        dataset, generator, sampler = key
        mask = ((data["generator"] == generator) & (data["sampler"].fillna("") == (sampler or ""))
                & (data["dataset"].fillna("") == (dataset or "")))
        pts = data.loc[mask, ["S", "K", *rep_cols, "value"]].astype({"S": int, "K": int, "seed": int})
        if not pts.empty:
            per_row[f"{generator}/{sampler}" if sampler else str(generator)] = (
                int(pts["replicate"].nunique()) if "replicate" in pts.columns else 1)
        card = cards.get(generator)
        if card is not None and hasattr(card, "for_sampler") and sampler in getattr(card, "samplers", ()):
            card = card.for_sampler(sampler)  # a sampler may override its generator's axes and category
        category = _first(g["category"]) or (card.category if card else None)
        outer = _first(g["outer"]) or (card.outer if card else None)
        row: dict[str, Any] = {
            "category": category if category in SEED_CATEGORIES else "unknown", "dataset": dataset,
            "generator": generator, "sampler": sampler, "family": _first(g["family"]) or (card.family if card else None),
            "metric": metric, "better": better, "outer": outer,
        }
        floor = method_floor(ok, metric, (ok["generator"] == generator) & (ok["sampler"].fillna("") == (sampler or ""))
                             & (ok["dataset"].fillna("") == (dataset or "")))
        row["floor"], row["floor_sd"] = (floor.mean, floor.sd) if floor is not None else (np.nan, np.nan)
        row["outer_measured"] = measured_outer(ok.loc[(ok["metric"] == "nfe") & (ok["generator"] == generator)
                                                      & (ok["sampler"].fillna("") == (sampler or ""))
                                                      & (ok["dataset"].fillna("") == (dataset or ""))])
        for axis, other in (("S", "K"), ("K", "S")):
            fixed = bool(card is not None and getattr(card, axis).is_fixed)
            at, why, sl = "", "", None
            if fixed:
                why = "fixed by the method card"
            elif pts.empty:
                why = "no values for this metric"
            else:
                sl, at, why = _slice(pts, axis, other)
            effect = _effect(sl, axis, better, rule, min_effect, floor) if sl is not None else AxisEffect(
                values=tuple(sorted(int(v) for v in pts[axis].unique())) if fixed else (), min_effect=min_effect)
            row[f"{axis}_at"] = at
            row[f"{axis}_pattern"] = "" if fixed or sl is None else verdict_pattern(
                pts, axis, other, better, rule, min_effect, floor)
            cells.append((len(rows), axis, effect, FIXED if fixed else NO_DATA if sl is None else "", why))
        rows.append(row)
    tested = [c for c in cells if not c[3]]
    decided, hypotheses = decide_all([c[2] for c in tested], rule)
    verdicts = {(i, axis): d for (i, axis, *_), d in zip(tested, decided, strict=True)}
    for i, axis, effect, forced, why in cells:
        row = rows[i]
        verdict, test, p_adj = verdicts.get((i, axis), (forced, "", np.nan))
        row[axis] = verdict
        for f, v in effect.to_dict().items():
            if f not in ("floor", "floor_sd", "gain", "se"):
                row[f"{axis}_{f}"] = v
        row[f"{axis}_test"], row[f"{axis}_p_adj"] = test, p_adj
        row[f"{axis}_reason"] = why or reason(metric, effect, verdict, test, p_adj, rule)
    for row in rows:
        seed = SEED_CATEGORIES.get(row["category"] or "")
        row["seed_S"] = (SCALES if seed[0] else NOT_SCALES) if seed else "?"
        row["seed_K"] = (SCALES if seed[1] else NOT_SCALES) if seed else "?"
        row["seed_outer"] = (seed[2] or "—") if seed else "?"
        row["agrees"] = _agreement({a: row[a] for a in AXES}, row["category"], row["outer"], row["outer_measured"])
    out = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    out["_order"] = out["category"].map(CATEGORY_ORDER.index)
    out = out.sort_values(["_order", "generator", "sampler"]).drop(columns="_order").reset_index(drop=True)
    out.attrs.update(header=header(rule, hypotheses, per_row), hypotheses=hypotheses, correction=rule.correction,
                     checkpoints=max(per_row.values(), default=1), checkpoints_by_row=per_row)
    from scalebench.flags import row_flags  # copies / collapse among the row's points

    out["flags"] = row_flags(df, out)
    from scalebench.scaling.columns import scaling_columns  # α per varied axis and the S × K allocation

    return scaling_columns(df, out)
