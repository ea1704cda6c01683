"""Sample previews for the report: each record stores 16 quantised samples (`Record.preview`).

The report shows, per method, the samples at its cheapest and its most expensive grid point
(smallest seed), so the eye can check what the table's verdicts claim. Each grid is one small
PNG (`preview_png`, a few hundred bytes for 16 digits) shown as an <img> scaled up with crisp
pixels: as Plotly heatmaps the same grids were JSON arrays of floats, a fifth of the page.
"""

from __future__ import annotations

import io
import math
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
            if (wanted is None or pid in wanted) and rec.preview and rec.ok:
                out[pid] = decode_preview(rec.preview).numpy()
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


def is_rgb(images: np.ndarray) -> bool:
    return np.asarray(images).ndim == 4 and np.asarray(images).shape[1] == 3


def mosaic(images: np.ndarray, cols: int = 4, pad: int = 1) -> np.ndarray:
    """N×C×H×W floats in [0, 1] → one H'×W' grey image (NaN padding), or H'×W'×3 for RGB (white padding)."""
    x = np.asarray(images, dtype=float)
    if x.ndim == 3:
        x = x[:, None]
    rgb = x.shape[1] == 3
    x = x.transpose(0, 2, 3, 1) if rgb else x.mean(axis=1)
    n, h, w = x.shape[:3]
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *x.shape[3:]), 1.0 if rgb else np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = x[i]
    return out


PAD_GREY = 0.55  # the padding between grey samples: neither a digit's black nor its white


def preview_png(images: np.ndarray, cols: int = 4) -> bytes:
    """The samples as one PNG mosaic (8-bit grey, or RGB for colour samples), at one pixel per pixel."""
    from PIL import Image  # Pillow comes with torchvision

    m = mosaic(images, cols)
    if not is_rgb(images):
        m = np.where(np.isnan(m), PAD_GREY, m)
    img = Image.fromarray(np.round(np.clip(m, 0, 1) * 255).astype(np.uint8))  # 2-D: L, H×W×3: RGB
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
