"""One frontier across families: the best quality reachable per FLOP, per second or per NFE.

An allocation is one (dataset, generator, sampler, S, K) — a family at one budget — with its quality
averaged over replicates and a 95 % t-interval, and its compute the median over them. Allocations
with a point flagged by `scalebench.flags` (near-copies of training data, or collapse) are left out:
their good numbers may not be generation. The frontier is the allocations no cheaper one matches
(Pareto, by compute, strictly better quality).

FID and its relatives are biased by the number of samples n, and the zoo measures families at
different n; so by default the quality compared is the **gap to the data floor** at each point's n
(metric − `<metric>_floor`, oriented so that lower is better: how far from real held-out data),
which the floor's own bias cancels. Latency is a property of one machine: a frame that mixes devices
is refused for it.

`leaders(points, budgets)` answers "at budget B, which family is best, and which cannot be told from
it": the best allocation within budget, and the families whose best one is not significantly worse
(Welch t-test, p ≥ 0.05; untested with one replicate).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scalebench.errors import ResultsError
from scalebench.scaling.allocation import budgets
from scalebench.scaling.curves import MEASURES, metric_points
from scalebench.verdict.stats import t_quantile, t_sf

LEVEL = 0.95
TEST_ALPHA = 0.05
ALLOCATION = ["dataset", "generator", "sampler", "S", "K"]
POINT_COLUMNS = ["dataset", "generator", "sampler", "method", "S", "K", "n", "device", "compute", "value", "lo", "hi",
                 "replicates", "flagged", "on_frontier"]


def _method(generator: str, sampler: object) -> str:
    return generator + (f"/{sampler}" if isinstance(sampler, str) and sampler not in ("", "default") else "")


def frontier_points(df: pd.DataFrame, metric: str, better: str, measure: str = "flops",
                    gap: bool = True, exclude_flagged: bool = True) -> pd.DataFrame:
    """Every allocation with its compute, quality (gap to the floor when `gap` and floors exist) and
    interval, `flagged` and `on_frontier` (per dataset). Columns: POINT_COLUMNS."""
    col = MEASURES[measure]
    pts = metric_points(df, metric)
    pts = pts[np.isfinite(pts[col].astype(float))] if col in pts.columns else pts.iloc[:0]
    if measure == "latency" and "device" in pts.columns and pts["device"].nunique() > 1:
        raise ResultsError(f"latency frontier over devices {sorted(pts['device'].astype(str).unique())}: latency "
                           "is one machine's; pass the runs of one device")
    sign = 1.0 if better == "lower" else -1.0
    if gap:
        fl = df[(df["status"] == "ok") & (df["metric"] == f"{metric}_floor")][["run", "point_id", "value"]]
        fl = fl.rename(columns={"value": "floor"}).drop_duplicates(["run", "point_id"])
        pts = pts.merge(fl, on=["run", "point_id"], how="left")
        if pts["floor"].notna().all() and len(pts):
            pts = pts.assign(value=sign * (pts["value"] - pts["floor"]))
        else:
            gap = False
    if not gap:
        pts = pts.assign(value=sign * pts["value"])
    flagged: set[str] = set()
    if exclude_flagged:
        from scalebench.flags import flagged_ids

        flagged = flagged_ids(df)
    pts = pts.assign(sampler=pts["sampler"].fillna("default"), dataset=pts["dataset"].fillna(""),
                     bad=pts["point_id"].isin(flagged))
    rows = []
    for key, g in pts.groupby(ALLOCATION, sort=True):
        v = g["value"].astype(float).to_numpy()
        r = len(v)
        mean = float(v.mean())
        lo = hi = math.nan
        if r >= 2 and float(v.std(ddof=1)) > 0:
            half = t_quantile(0.5 + LEVEL / 2, r - 1) * float(v.std(ddof=1)) / math.sqrt(r)
            lo, hi = mean - half, mean + half
        rows.append(dict(zip(ALLOCATION, key, strict=True), method=_method(key[1], key[2]),
                         n=g["n"].iloc[0] if "n" in g else np.nan,
                         device=str(g["device"].iloc[0]) if "device" in g else "",
                         compute=float(g[col].astype(float).median()), value=mean, lo=lo, hi=hi, replicates=r,
                         flagged=bool(g["bad"].any()), sd=float(v.std(ddof=1)) if r >= 2 else math.nan))
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=POINT_COLUMNS)
    out["on_frontier"] = False
    for _, g in out[~out["flagged"]].groupby("dataset"):
        best = math.inf
        for i in g.sort_values(["compute", "value"]).index:
            if out.at[i, "value"] < best:
                out.at[i, "on_frontier"] = True
                best = out.at[i, "value"]
    # back to the metric's orientation for display (a gap stays a gap: lower = closer to the data)
    if not gap and sign < 0:
        out["value"], out["lo"], out["hi"] = -out["value"], -out["hi"], -out["lo"]
    out.attrs.update(gap=gap, measure=measure, metric=metric, better="lower" if gap else better)
    return out[POINT_COLUMNS + ["sd"]]


def _welch_p(a_mean: float, a_sd: float, a_n: int, b_mean: float, b_sd: float, b_n: int) -> float:
    """One-sided p that b is worse (larger) than a, Welch's t; NaN when either has one replicate."""
    if a_n < 2 or b_n < 2 or not (math.isfinite(a_sd) and math.isfinite(b_sd)):
        return math.nan
    va, vb = a_sd**2 / a_n, b_sd**2 / b_n
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0 if b_mean > a_mean else 1.0
    df = (va + vb) ** 2 / (va**2 / (a_n - 1) + vb**2 / (b_n - 1))
    return t_sf((b_mean - a_mean) / se, max(1, int(round(df))))


def leaders(points: pd.DataFrame, budget_grid: np.ndarray | None = None) -> pd.DataFrame:
    """Per dataset and budget: the best unflagged allocation within budget, its interval, and the
    other families whose best within budget cannot be told from it (`tied`; `untested` lists those
    with one replicate). Quality in the points' orientation (lower is better for a gap)."""
    lower = points.attrs.get("better", "lower") == "lower"
    rows = []
    for dataset, g in points[~points["flagged"]].groupby("dataset"):
        grid = budgets(g["compute"].to_numpy(float)) if budget_grid is None else np.asarray(budget_grid, float)
        for b in grid:
            within = g[g["compute"] <= b * (1 + 1e-9)]
            if within.empty:
                continue
            best_per = within.sort_values("value", ascending=lower).groupby("method", sort=False).head(1)
            lead = best_per.iloc[0]
            tied, untested = [], []
            for _, o in best_per.iloc[1:].iterrows():
                a, bb = (lead, o) if lower else (o, lead)
                p = _welch_p(float(a["value"]), float(a["sd"]), int(a["replicates"]), float(bb["value"]),
                             float(bb["sd"]), int(bb["replicates"]))
                if not math.isfinite(p):
                    untested.append(o["method"])
                elif p >= TEST_ALPHA:
                    tied.append(o["method"])
            rows.append(dict(dataset=dataset, budget=float(b), method=lead["method"], S=int(lead["S"]),
                             K=int(lead["K"]), compute=float(lead["compute"]), value=float(lead["value"]),
                             lo=float(lead["lo"]), hi=float(lead["hi"]), replicates=int(lead["replicates"]),
                             tied=", ".join(tied), untested=", ".join(untested)))
    return pd.DataFrame(rows, columns=["dataset", "budget", "method", "S", "K", "compute", "value", "lo", "hi",
                                       "replicates", "tied", "untested"])
