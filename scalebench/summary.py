"""The per-point summary a user reads after a run: metrics and cost, averaged over seeds."""

from __future__ import annotations

import pandas as pd

KEYS = ["generator", "sampler", "S", "K"]
SHOWN = ["fid", "kid", "ref_nll", "diversity", "test_nll", "nfe", "flops", "latency_s", "peak_mem_bytes"]


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per generator × sampler × S × K: mean over seeds of each metric, plus seeds and failures."""
    ok = df[(df["status"] == "ok") & df["metric"].notna()]
    wide = ok.pivot_table(index=KEYS, columns="metric", values="value", aggfunc="mean")
    seeds = ok.groupby(KEYS)["seed"].nunique().rename("seeds")
    failed = df[df["status"] != "ok"].groupby(KEYS)["point_id"].nunique().rename("failed")
    out = wide.join(seeds, how="outer").join(failed, how="outer").reset_index()
    out["failed"] = out["failed"].fillna(0).astype(int)
    cols = KEYS + [c for c in SHOWN if c in out.columns] + ["seeds", "failed"]
    return out[cols].sort_values(KEYS).reset_index(drop=True)


def _fmt(col: str, v: object) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "—"
    if col == "latency_s":
        return f"{float(v) * 1e3:.3f} ms"
    if col == "flops":
        return f"{float(v) / 1e6:.2f} M"
    if col == "peak_mem_bytes":
        return f"{float(v) / 2**20:.1f} MiB"
    if col in ("nfe", "seeds", "failed", "S", "K"):
        return str(int(v))
    if col == "kid":
        return f"{float(v):.4f}"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def rich_summary(df: pd.DataFrame, title: str = "scalebench summary"):
    """A rich Table of `summary_frame(df)` for the terminal."""
    from rich.table import Table

    s = summary_frame(df)
    table = Table(title=title, show_lines=False)
    for c in s.columns:
        table.add_column({"latency_s": "latency/sample", "flops": "FLOPs/sample",
                          "peak_mem_bytes": "peak mem/batch"}.get(c, c),
                         justify="left" if c in ("generator", "sampler") else "right")
    for _, row in s.iterrows():
        table.add_row(*[_fmt(c, row[c]) for c in s.columns])
    return table
