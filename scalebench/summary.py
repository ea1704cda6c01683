"""The per-point summary a user reads after a run: metrics and cost, averaged over seeds."""

from __future__ import annotations

import pandas as pd

from scalebench.record import FLOOR_SD_SUFFIX, FLOOR_SUFFIX

KEYS = ["generator", "sampler", "S", "K"]
SHOWN = ["fid", "precision", "recall", "memorisation", "ref_nll", "test_nll", "nfe", "flops", "latency_s",
         "peak_mem_bytes"]
"""The terminal summary's columns (KID, diversity and the rest are in the records, `export` and the report)."""
FLOOR_Z = 2.0  # a mean within FLOOR_Z floor-sd of the floor's mean is "at the data floor"


def floors(df: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """{metric: (floor mean, floor sd)} recorded with the points (`<metric>_floor`, `<metric>_floor_sd`)."""
    ok = df[(df["status"] == "ok") & df["metric"].notna()]
    out = {}
    for m in ok["metric"].unique():
        if m.endswith(FLOOR_SUFFIX):
            base = m[: -len(FLOOR_SUFFIX)]
            mean = ok.loc[ok["metric"] == m, "value"].mean()
            sd = ok.loc[ok["metric"] == base + FLOOR_SD_SUFFIX, "value"].mean()
            out[base] = (float(mean), 0.0 if pd.isna(sd) else float(sd))
    return out


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per generator × sampler × S × K: mean over seeds of each metric, plus seeds and failures."""
    ok = df[(df["status"] == "ok") & df["metric"].notna()]
    from scalebench.report.table import check_homogeneous

    check_homogeneous(ok, KEYS, "seeds")
    wide = ok.pivot_table(index=KEYS, columns="metric", values="value", aggfunc="mean")
    seeds = ok.groupby(KEYS)["seed"].nunique().rename("seeds")
    failed = df[df["status"] != "ok"].groupby(KEYS)["point_id"].nunique().rename("failed")
    noisy = ok.groupby(KEYS)["timing_noisy"].any().rename("noisy")
    out = (wide.join(seeds, how="outer").join(failed, how="outer").join(noisy, how="left")
           .join(flag_column(df), how="left").reset_index())
    out["failed"] = out["failed"].fillna(0).astype(int)
    out["noisy"] = out["noisy"].fillna(False).astype(bool)
    out["flags"] = out["flags"].fillna("")
    cols = KEYS + [c for c in SHOWN if c in out.columns] + ["seeds", "failed", "flags", "noisy"]
    return out[cols].sort_values(KEYS).reset_index(drop=True)


def flag_column(df: pd.DataFrame) -> pd.Series:
    """Per generator × sampler × S × K: each flag (`scalebench.flags`) with how many seeds carry it."""
    from scalebench.flags import COLLAPSE, COPIES, point_flags

    pf = point_flags(df)
    if pf.empty:
        return pd.Series(dtype=object, name="flags")

    def words(flags: pd.Series) -> str:
        counts = [(f, int(flags.map(lambda fs, f=f: f in fs.split(", ")).sum())) for f in (COPIES, COLLAPSE)]
        return ", ".join(f if c == len(flags) else f"{f} {c}/{len(flags)}" for f, c in counts if c)

    return pf.groupby(KEYS)["flags"].agg(words).rename("flags")


def _fmt(col: str, v: object) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "—"
    if col == "latency_s":
        return f"{float(v) * 1e3:.3f}"
    if col == "flops":
        return f"{float(v) / 1e6:.2f} M"
    if col == "peak_mem_bytes":
        return f"{float(v) / 2**20:.1f}"
    if col in ("precision", "recall", "memorisation"):
        return f"{float(v):.3f}"
    if col in ("nfe", "seeds", "failed", "S", "K"):
        return str(int(v))
    if col == "kid":
        return f"{float(v):.4f}"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def rich_summary(df: pd.DataFrame, title: str = "scalebench summary"):
    """A rich Table of `summary_frame(df)` for the terminal."""
    from rich.markup import escape
    from rich.table import Table

    s = summary_frame(df)
    floor_of = floors(df)
    shown_floors = [f"{m} {floor_of[m][0]:.4g} ± {floor_of[m][1]:.2g}" for m in SHOWN if m in floor_of and m in s.columns]
    caption = (f"* = at the data floor (within {FLOOR_Z:g} sd of real data at this n): "
               + ", ".join(shown_floors)) if shown_floors else None
    if s["noisy"].any():  # a latency whose timing rounds spread far more than the sweep's usual
        caption = "\n".join(filter(None, [caption, "! = noisy latency (spread across timing rounds ≫ the sweep's)"]))
    if s["flags"].ne("").any():
        from scalebench.flags import rule_text

        caption = "\n".join(filter(None, [caption, rule_text() + "; 'copies 1/2' = 1 of 2 seeds"]))
    else:
        s = s.drop(columns="flags")
    noisy = s.pop("noisy")
    table = Table(title=title, show_lines=False, caption=caption, caption_justify="left")
    for c in s.columns:
        table.add_column({"latency_s": "ms/sample", "flops": "FLOPs/sample",
                          "peak_mem_bytes": "MiB/batch", "memorisation": "memorised"}.get(c, c),
                         justify="left" if c in ("generator", "sampler") else "right")
    for i, row in s.iterrows():
        cells = []
        for c in s.columns:
            text = _fmt(c, row[c])
            if c == "latency_s" and noisy[i]:
                text += "!"
            if c == "flags" and text:
                text = f"[bold red]{escape(text)}[/]"
            if c in floor_of and not pd.isna(row[c]) and abs(float(row[c]) - floor_of[c][0]) <= FLOOR_Z * floor_of[c][1]:
                text += "*"
            cells.append(text)
        table.add_row(*cells)
    return table
