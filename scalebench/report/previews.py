"""Sample previews for the report: each record stores 16 quantised samples (`record["preview"]`).

The report shows, per method, the samples at its cheapest and its most expensive grid point
(smallest seed), so the eye can check what the table's verdicts claim.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from scalebench.results import latest_records, run_dirs


def load_previews(paths: Iterable[str | Path], point_ids: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """point_id → preview samples (N×C×H×W floats in [0, 1]) from the run dirs' records."""
    from scalebench.results import decode_preview

    wanted = None if point_ids is None else set(point_ids)
    out: dict[str, np.ndarray] = {}
    for d in run_dirs(paths):
        for pid, rec in latest_records(d).items():
            if (wanted is None or pid in wanted) and rec.get("preview") and rec.get("status") == "ok":
                out[pid] = decode_preview(rec["preview"]).numpy()
    return out


def preview_points(df: pd.DataFrame) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(generator, sampler) → [(label, point_id)] at its cheapest and most expensive (S, K), smallest seed."""
    ok = df[(df["status"] == "ok")].dropna(subset=["point_id", "S", "K"]).copy()
    ok["sampler"] = ok["sampler"].fillna("default")
    pts = ok.drop_duplicates("point_id")
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for (gen, sampler), g in pts.groupby(["generator", "sampler"], sort=True):
        g = g.assign(_cost=g["S"].astype(int) * g["K"].astype(int)).sort_values(["_cost", "S", "K", "seed"])
        lo, hi = g.iloc[0], g[g["_cost"] == g["_cost"].max()].iloc[0]
        chosen = [lo] if lo["point_id"] == hi["point_id"] or (lo["S"], lo["K"]) == (hi["S"], hi["K"]) else [lo, hi]
        out[(str(gen), str(sampler))] = [(f"S={int(r['S'])} K={int(r['K'])} seed={int(r['seed'])}", str(r["point_id"]))
                                         for r in chosen]
    return out
