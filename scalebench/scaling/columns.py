"""The scaling columns of the scalability table (and so of `table.csv`): one hook, called by
`scalebench.report.table.scalability_table` on its finished rows.

Per varied axis A ∈ {S, K}, on the slice the table judged it (`A_at`), with the row's floor:

- for each compute measure m ∈ {nfe, flops, latency}: `A_alpha_m`, `A_alpha_m_lo`, `A_alpha_m_hi`
  (the exponent and its 95 % interval; NaN unless the outcome is "power law", or "untested" with one
  replicate) and `A_law_m` (the outcome: power law / no power law / untested / not fitted);
- for NFE also `A_law_reason`, `A_law_p` (lack-of-fit p), `A_asymptote` (the fitted limit, metric
  units) and `A_floor_nfe`, `A_floor_nfe_lo`, `A_floor_nfe_hi` (the NFE at which the fit enters the
  floor band; inf = never; `A_floor_nfe_beyond`: it lies beyond the largest NFE measured, an extrapolation).

Rows that vary both axes get `allocation`: the spend per budget of NFE among measured points
(`allocation.summary`), e.g. "NFE ≤ 8: K; NFE ≤ 64: S and K".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scalebench.scaling.allocation import allocate, summary, surface_of
from scalebench.scaling.curves import AXES, RowKey, axis_curves, axis_slice, metric_points
from scalebench.scaling.fit import LawFit, fit_curve

MEASURE_NAMES = ("nfe", "flops", "latency")
SKIP = ("fixed", "no data")  # the table's verdicts for an axis with nothing to fit


TEXT = {f"{a}_law_{m}" for a in AXES for m in MEASURE_NAMES} | {f"{a}_law_reason" for a in AXES} | {"allocation"}
FLAGS = {f"{a}_floor_nfe_beyond" for a in AXES}


def column_names() -> list[str]:
    out = []
    for a in AXES:
        for m in MEASURE_NAMES:
            out += [f"{a}_alpha_{m}", f"{a}_alpha_{m}_lo", f"{a}_alpha_{m}_hi", f"{a}_law_{m}"]
        out += [f"{a}_law_reason", f"{a}_law_p", f"{a}_asymptote", f"{a}_floor_nfe", f"{a}_floor_nfe_lo",
                f"{a}_floor_nfe_hi", f"{a}_floor_nfe_beyond"]
    return out + ["allocation"]


def row_fits(pts: pd.DataFrame, axis: str, at: str | None, better: str, floor: tuple[float, float]
             ) -> dict[str, LawFit]:
    """measure → fit of one row's axis (`pts`: the row's `metric_points`; unrecorded measures left out)."""
    sl = axis_slice(pts, axis, at)
    if sl is None:
        return {}
    return {m: fit_curve(c) for m, c in axis_curves(sl, axis, better, floor).items()}


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def scaling_columns(df: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """`table` (rows of `scalability_table`) with the columns of `column_names()` appended."""
    cols: dict[str, list[Any]] = {c: [] for c in column_names()}
    if table.empty:
        return table.assign(**{c: pd.Series(dtype=object) for c in cols})
    metric, better = str(table["metric"].iloc[0]), str(table["better"].iloc[0])
    pts = metric_points(df, metric)
    for _, row in table.iterrows():
        key = RowKey(None if pd.isna(row["dataset"]) else row["dataset"], row["generator"],
                     None if pd.isna(row["sampler"]) else row["sampler"])
        floor = (_float(row.get("floor")), _float(row.get("floor_sd")))
        floor = (floor[0], floor[1] if math.isfinite(floor[1]) else 0.0)
        mine = pts[key.mask(pts)]
        for a in AXES:
            fits = {} if row[a] in SKIP else row_fits(mine, a, row.get(f"{a}_at"), better, floor)
            for m in MEASURE_NAMES:
                f = fits.get(m)
                cols[f"{a}_alpha_{m}"].append(f.alpha if f else math.nan)
                cols[f"{a}_alpha_{m}_lo"].append(f.alpha_lo if f else math.nan)
                cols[f"{a}_alpha_{m}_hi"].append(f.alpha_hi if f else math.nan)
                cols[f"{a}_law_{m}"].append(f.outcome if f else "")
            f = fits.get("nfe")
            cols[f"{a}_law_reason"].append(f.reason if f else "")
            for name, attr in (("law_p", "p_fit"), ("asymptote", "asymptote"), ("floor_nfe", "compute_at_floor"),
                               ("floor_nfe_lo", "compute_at_floor_lo"), ("floor_nfe_hi", "compute_at_floor_hi")):
                cols[f"{a}_{name}"].append(getattr(f, attr) if f else math.nan)
            beyond = f is not None and f.compute and math.isfinite(f.compute_at_floor) and \
                f.compute_at_floor > max(f.compute)
            cols[f"{a}_floor_nfe_beyond"].append(beyond)
        text = ""
        if all(row[a] not in SKIP for a in AXES) and mine["S"].nunique() > 1 and mine["K"].nunique() > 1:
            surface = surface_of(mine, "nfe", better)  # type: ignore[arg-type]
            if surface is not None:
                text = summary(allocate(surface, smooth=False))
        cols["allocation"].append(text)
    out = table.assign(**{c: np.asarray(v, dtype=object if c in TEXT else bool if c in FLAGS else float)
                          for c, v in cols.items()})
    out.attrs.update(table.attrs)
    return out


def scaling_text(row: pd.Series, axis: str, measure: str = "nfe") -> str:
    """For the table's evidence line of `axis`: 'α(NFE) 2.8 [2.6, 3.0]', 'no power law in NFE: steepens …'
    or ''; on the K line of a row that varies both axes, also the spend per budget ('allocation')."""
    law = row.get(f"{axis}_law_{measure}")
    spend = row.get("allocation") if axis == "K" else ""
    spend = f"spend per budget: {spend}" if isinstance(spend, str) and spend else ""
    if not isinstance(law, str) or not law:
        return spend
    text = _law_text(row, axis, measure, law)
    return f"{text}; {spend}" if spend else text


def _law_text(row: pd.Series, axis: str, measure: str, law: str) -> str:
    a = _float(row.get(f"{axis}_alpha_{measure}"))
    name = {"nfe": "NFE", "flops": "FLOPs", "latency": "latency"}[measure]
    if math.isfinite(a):
        lo, hi = _float(row.get(f"{axis}_alpha_{measure}_lo")), _float(row.get(f"{axis}_alpha_{measure}_hi"))
        ci = f" [{lo:.2g}, {hi:.2g}]" if math.isfinite(lo) else " (1 replicate: no interval)"
        return f"α({name}) {a:.2g}{ci}"
    reason = str(row.get(f"{axis}_law_reason") or "") if measure == "nfe" else ""
    return f"{law} in {name}" + (f": {reason}" if reason else "")
