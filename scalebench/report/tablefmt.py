"""The scalability table as display strings, Markdown and a rich Table.

All three renderings (and the HTML page) go through `table_display`, so the terminal, the
Markdown file, the CSV and the browser show the same cells — which the browser test checks.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from scalebench.report.trend import FIXED, IMPROVES, NO_DATA

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table
    from rich.text import Text

DISPLAY_COLUMNS = ["category", "generator", "sampler", "S", "K", "outer", "seed S", "seed K", "seed outer",
                   "agrees", "S evidence", "K evidence"]


def _str(v: Any, empty: str = "") -> str:
    """A cell string: None/NaN (as pandas stores missing strings) become `empty`."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return empty
    return str(v)


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    return f"{float(v):.4g}"


def _pct(v: float) -> str:
    return "nan" if v is None or math.isnan(v) else f"{v:+.0%}"


def evidence_text(row: pd.Series, axis: str) -> str:
    """One line of evidence for a cell: range, metric at both ends, improvement, CI, ρ, seeds."""
    p = f"{axis}_"
    verdict, reason = row[axis], row[p + "reason"]
    if verdict in (FIXED, NO_DATA) or not isinstance(row[p + "lo"], int | float) or pd.isna(row[p + "lo"]):
        return str(reason)
    metric = str(row["metric"])
    lo, hi, end_at = int(row[p + "lo"]), int(row[p + "hi"]), row[p + "end_at"]
    text = f"{axis} {lo}→{hi}: {metric} {_num(row[p + 'q_lo'])}→{_num(row[p + 'q_hi'])}"
    if not pd.isna(end_at) and int(end_at) != hi:
        text += f" (best {_num(row[p + 'q_end'])} @{int(end_at)})"
    text += f", improvement {_pct(row[p + 'rel'])}"
    if int(row[p + "n_seeds"]) >= 2:
        text += f" CI [{_pct(row[p + 'ci_lo'])}, {_pct(row[p + 'ci_hi'])}]"
    text += f", ρ={float(row[p + 'rho']):+.2f}, {int(row[p + 'n_seeds'])} seed{'s' if int(row[p + 'n_seeds']) != 1 else ''}"
    if row[p + "at"]:
        text += f", at {row[p + 'at']}"
    if verdict != IMPROVES:
        text += f" — {reason}"
    return text


def table_display(table_df: pd.DataFrame) -> pd.DataFrame:
    """The table as strings, one column per DISPLAY_COLUMNS (what every rendering shows)."""
    rows = []
    for _, r in table_df.iterrows():
        rows.append([
            _str(r["category"]), _str(r["generator"]), _str(r["sampler"]),
            str(r["S"]), str(r["K"]), _str(r["outer"], "—") or "—", str(r["seed_S"]), str(r["seed_K"]),
            str(r["seed_outer"]), str(r["agrees"]), evidence_text(r, "S"), evidence_text(r, "K"),
        ])
    return pd.DataFrame(rows, columns=DISPLAY_COLUMNS)


def _md_cell(s: str) -> str:
    return html.escape(s, quote=False).replace("|", "\\|").replace("\n", " ")


def markdown_table(table_df: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown; user strings are HTML-escaped (renderers pass raw HTML through)."""
    d = table_display(table_df)
    metric = str(table_df["metric"].iloc[0]) if len(table_df) else "?"
    better = str(table_df["better"].iloc[0]) if len(table_df) else "?"
    lines = [f"Quality metric: **{_md_cell(metric)}** ({_md_cell(better)} is better). "
             "✅ improves with more steps · ❌ varied, no improvement · — fixed · ? no data", "",
             "| " + " | ".join(DISPLAY_COLUMNS) + " |", "|" + "---|" * len(DISPLAY_COLUMNS)]
    for _, r in d.iterrows():
        lines.append("| " + " | ".join(_md_cell(str(v)) for v in r) + " |")
    return "\n".join(lines) + "\n"


_SHORT = ("category", "S", "K", "outer", "seed S", "seed K", "seed outer", "agrees")
_STYLE = {IMPROVES: "green", "❌": "red", FIXED: "dim", NO_DATA: "yellow"}


def render_terminal_evidence(table_df: pd.DataFrame) -> Text:
    """The evidence as one line per varied axis (readable at any terminal width)."""
    from rich.text import Text

    d = table_display(table_df)
    out = Text()
    for _, r in d.iterrows():
        name = r["generator"] + (f"/{r['sampler']}" if r["sampler"] not in ("", "default") else "")
        for axis in ("S", "K"):
            if r[axis] not in (FIXED,):
                label = f"{r[axis]} {name}" + (f" {axis}: " if r[axis] == NO_DATA else ": ")
                out.append(label, style=_STYLE.get(r[axis], ""))
                out.append(r[f"{axis} evidence"] + "\n")
    return out


def render_terminal_table(table_df: pd.DataFrame, title: str | None = None, evidence: bool = False) -> Table:
    """A rich Table grouped by seed category (sections); user strings never parsed as markup.

    `evidence=True` adds the two evidence columns (wide terminals); otherwise print
    `render_terminal_evidence` below the table.
    """
    from rich.table import Table
    from rich.text import Text

    d = table_display(table_df)
    metric = str(table_df["metric"].iloc[0]) if len(table_df) else "?"
    better = str(table_df["better"].iloc[0]) if len(table_df) else "?"
    t = Table(title=title or f"measured 2-axis scalability ({metric}, {better} is better)", show_lines=False)
    cols = DISPLAY_COLUMNS if evidence else DISPLAY_COLUMNS[:10]
    for c in cols:
        t.add_column(c, overflow="fold", no_wrap=c in _SHORT, min_width=10 if c in ("generator", "sampler") else None,
                     justify="center" if c in ("S", "K", "seed S", "seed K") else "left")
    prev = None
    for _, r in d.iterrows():
        if prev is not None and r["category"] != prev:
            t.add_section()
        prev = r["category"]
        cells = []
        for c in cols:
            v = str(r[c])
            style = _STYLE.get(v, "") if c in ("S", "K", "seed S", "seed K") else (
                "green" if c == "agrees" and v == "yes" else "red" if c == "agrees" and v.startswith("no") else "")
            cells.append(Text(v, style=style))
        t.add_row(*cells)
    return t
