"""Scaling curves out of a results table (`scalebench.results.load_results`): one per row, axis and measure.

A row is (dataset, generator, sampler), as in the scalability table. Along an axis, a curve is the
replicates × axis-values matrix of one quality metric on the slice the table judges (the largest value
of the other axis at which the axis was measured at two or more values, `S_at` / `K_at`), against the
compute of each axis value: NFE, FLOPs or latency per sample (the median over the replicates' points;
NFE and FLOPs are equal across them, latency is measured per point). A replicate is a (checkpoint
`replicate`, sampling `seed`) pair. Kept free of `scalebench.report` (which calls into this package).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalebench.scaling.fit import Curve

MEASURES = {"nfe": "nfe", "flops": "flops", "latency": "latency_s"}  # name → column of the tidy table
MEASURE_WORDS = {"nfe": "NFE", "flops": "FLOPs per sample", "latency": "latency per sample (s)"}
KEYS = ["dataset", "generator", "sampler"]
AXES = ("S", "K")


@dataclass(frozen=True)
class RowKey:
    dataset: str | None
    generator: str
    sampler: str | None

    def mask(self, df: pd.DataFrame) -> pd.Series:
        return ((df["generator"] == self.generator) & (df["sampler"].fillna("") == (self.sampler or ""))
                & (df["dataset"].fillna("") == (self.dataset or "")))

    @property
    def label(self) -> str:
        return self.generator + (f"/{self.sampler}" if self.sampler not in (None, "", "default") else "")


def replicate_columns(points: pd.DataFrame) -> list[str]:
    """(checkpoint `replicate`, `seed`) where recorded, else `seed` (as the table's replicate index)."""
    return ["replicate", "seed"] if "replicate" in points.columns and points["replicate"].notna().any() else ["seed"]


def metric_points(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The ok points of `metric` with a finite value, with `rep` (an integer per replicate: a
    (checkpoint, seed) pair); a point without a dataset takes its generator's."""
    df = df.assign(dataset=df["dataset"].fillna(df["generator"].map(
        df.dropna(subset=["dataset"]).groupby("generator")["dataset"].first())))
    sel = df[(df["status"] == "ok") & (df["metric"] == metric) & np.isfinite(df["value"].astype(float))]
    sel = sel.astype({"S": int, "K": int})
    rep = sel.groupby(replicate_columns(sel), dropna=False, sort=True).ngroup() if len(sel) else sel["seed"]
    return sel.assign(rep=np.asarray(rep, dtype=int), value=sel["value"].astype(float))


def row_floor(df: pd.DataFrame, metric: str, key: RowKey) -> tuple[float, float]:
    """(floor mean, floor sd) of `metric` over the row's ok records (NaN, 0 without a recorded floor)."""
    sel = df[(df["status"] == "ok") & key.mask(df)]
    means = sel.loc[sel["metric"] == f"{metric}_floor", "value"].astype(float)
    means = means[np.isfinite(means)]
    if means.empty:
        return math.nan, 0.0
    sds = sel.loc[sel["metric"] == f"{metric}_floor_sd", "value"].astype(float)
    sds = sds[np.isfinite(sds)]
    return float(means.mean()), float(sds.mean()) if len(sds) else 0.0


def parse_at(at: str | float | None) -> tuple[str, int] | None:
    """'K=16' → ('K', 16); '' / None → None."""
    if not isinstance(at, str) or "=" not in at:
        return None
    axis, value = at.split("=", 1)
    return axis.strip(), int(float(value))


def axis_slice(points: pd.DataFrame, axis: str, at: str | None = None) -> pd.DataFrame | None:
    """The row's points the axis is judged on: at `at` ('K=16') if given, else the largest value of the
    other axis with ≥ 2 values of this one; None when the axis never varies at a fixed other value."""
    other = "K" if axis == "S" else "S"
    parsed = parse_at(at)
    if parsed is not None:
        sl = points[points[parsed[0]] == parsed[1]]
        return sl if sl[axis].nunique() >= 2 else None
    for b in sorted(points[other].unique(), reverse=True):
        cand = points[points[other] == b]
        if cand[axis].nunique() >= 2:
            return cand
    return None


def axis_curves(sl: pd.DataFrame, axis: str, better: str, floor: tuple[float, float]) -> dict[str, Curve]:
    """measure → the curve of one slice along `axis` (measures whose compute was not recorded are left out).
    `sl` holds rows of `metric_points` (with `rep`)."""
    wide = sl.groupby(["rep", axis])["value"].mean().unstack(axis)
    out = {}
    for m, col in MEASURES.items():
        if col not in sl.columns:
            continue
        cost = sl.groupby(axis)[col].median().reindex(wide.columns).to_numpy(dtype=float)
        if np.all(np.isfinite(cost)) and np.all(cost > 0):
            out[m] = Curve(cost, wide.to_numpy(dtype=float), better, floor[0], floor[1])  # type: ignore[arg-type]
    return out


def row_keys(points: pd.DataFrame) -> list[RowKey]:
    """Every (dataset, generator, sampler) of the points, sorted."""
    keys = points[KEYS].drop_duplicates().sort_values(KEYS, na_position="first")
    return [RowKey(*(None if pd.isna(v) else v for v in row)) for row in keys.itertuples(index=False)]
