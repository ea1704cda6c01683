"""The scalability table as display strings, Markdown and a rich Table.

All three renderings (and the HTML page) go through `table_display`, so the terminal, the
Markdown file, the CSV and the browser show the same cells — which the browser test checks.
Verdict marks come from `scalebench.verdict.words` (▲ ▼ ■ ● ? — ·, WGL4 shapes, never emoji).
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from scalebench.report.table import NOT_SCALES, SCALES
from scalebench.verdict.decide import AT_FLOOR, FIXED, FLAT, IMPROVES, INCONCLUSIVE, NO_DATA, WORSE
from scalebench.verdict.words import LABELS as VERDICT_LABELS
from scalebench.verdict.words import MEANINGS

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table
    from rich.text import Text

DISPLAY_COLUMNS = ["category", "generator", "sampler", "S", "K", "outer", "seed S", "seed K", "seed outer",
                   "agrees", "floor", "flags", "S evidence", "K evidence"]
# verdict → mark shown in every rendering; CSS class / rich style per verdict
LABELS = {**VERDICT_LABELS, SCALES: "▲ scales", NOT_SCALES: "■ does not"}
KINDS = {IMPROVES: "yes", WORSE: "worse", FLAT: "no", AT_FLOOR: "floor", INCONCLUSIVE: "unsure", FIXED: "fixed",
         NO_DATA: "nodata", SCALES: "yes", NOT_SCALES: "no"}
LEGEND = " · ".join(f"{VERDICT_LABELS[v]}: {MEANINGS[v]}" for v in VERDICT_LABELS)


def _str(v: Any, empty: str = "") -> str:
    """A cell string: None/NaN (as pandas stores missing strings) become `empty`."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return empty
    return str(v)


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    return f"{float(v):.4g}"


def label(verdict: Any) -> str:
    """The displayed mark of a verdict (or of the seed's scales / does not scale)."""
    return LABELS.get(_str(verdict), _str(verdict, "?"))


def floor_text(row: pd.Series) -> str:
    """The data floor of the row's metric as 'mean ± sd', or '—' when the records carry none."""
    f, sd = row.get("floor"), row.get("floor_sd")
    if f is None or pd.isna(f):
        return "—"
    return f"{_num(f)} ± {_num(sd)}" if sd is not None and not pd.isna(sd) else _num(f)


def evidence_text(row: pd.Series, axis: str) -> str:
    """One line of evidence: range, metric at both ends, then the rule's reason (effect, interval, replicates,
    why), the slice and the verdict at every value of the other axis."""
    p = f"{axis}_"
    verdict, reason = row[axis], _str(row[p + "reason"])
    if verdict in (FIXED, NO_DATA) or not isinstance(row[p + "lo"], int | float) or pd.isna(row[p + "lo"]):
        return reason
    metric = str(row["metric"])
    lo, hi, end_at = int(row[p + "lo"]), int(row[p + "hi"]), row[p + "end_at"]
    text = f"{axis} {lo}→{hi}: {metric} {_num(row[p + 'q_lo'])}→{_num(row[p + 'q_hi'])}"
    if not pd.isna(end_at) and int(end_at) != hi:
        text += f" (end = mean at {axis}≥{int(end_at)}: {_num(row[p + 'q_end'])})"
    text += f"; {reason}"
    if row[p + "at"]:
        text += f"; at {row[p + 'at']}"
    pattern = _str(row.get(p + "pattern"))
    if pattern:
        marks = [f"{cell.split(':', 1)[0]} {LABELS.get(cell.split(':', 1)[1], '?').split(' ')[0]}"
                 for cell in pattern.split(",")]
        text += f"; at every value (raw p): {', '.join(marks)}"
    from scalebench.scaling.columns import scaling_text  # the fitted exponent along this axis

    law = scaling_text(row, axis)
    return f"{text}; {law}" if law else text


def outer_text(row: pd.Series) -> str:
    """The declared outer loop, marked "declared only" where the counted NFE is additive in S and K
    (`table.measured_outer`): nothing measured shows one loop inside the other."""
    outer = _str(row["outer"], "—") or "—"
    if outer != "—" and row.get("outer_measured") == "sequential":
        return f"{outer} (declared only)"
    return outer


def table_display(table_df: pd.DataFrame) -> pd.DataFrame:
    """The table as strings, one column per DISPLAY_COLUMNS (what every rendering shows)."""
    rows = []
    for _, r in table_df.iterrows():
        rows.append([
            _str(r["category"]), _str(r["generator"]), _str(r["sampler"]),
            label(r["S"]), label(r["K"]), outer_text(r), label(r["seed_S"]), label(r["seed_K"]),
            str(r["seed_outer"]), str(r["agrees"]), floor_text(r), _str(r.get("flags")),
            evidence_text(r, "S"), evidence_text(r, "K"),
        ])
    return pd.DataFrame(rows, columns=DISPLAY_COLUMNS)


def _flagged(table_df: pd.DataFrame) -> bool:
    return "flags" in table_df.columns and bool(table_df["flags"].fillna("").astype(str).ne("").any())


def _flag_note() -> str:
    from scalebench.flags import rule_text

    return rule_text() + "; 'copies 2/9' = 2 of the row's 9 points"


def _md_cell(s: str) -> str:
    return html.escape(s, quote=False).replace("|", "\\|").replace("\n", " ")


def markdown_table(table_df: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown; user strings are HTML-escaped (renderers pass raw HTML through)."""
    d = table_display(table_df)
    metric = str(table_df["metric"].iloc[0]) if len(table_df) else "?"
    better = str(table_df["better"].iloc[0]) if len(table_df) else "?"
    head = _str(table_df.attrs.get("header"))
    lines = [f"Quality metric: **{_md_cell(metric)}** ({_md_cell(better)} is better). {_md_cell(head)}", "",
             _md_cell(LEGEND), "", *([_md_cell(_flag_note()), ""] if _flagged(table_df) else []),
             "| " + " | ".join(DISPLAY_COLUMNS) + " |", "|" + "---|" * len(DISPLAY_COLUMNS)]
    for _, r in d.iterrows():
        lines.append("| " + " | ".join(_md_cell(str(v)) for v in r) + " |")
    return "\n".join(lines) + "\n"


_SHORT = ("category", "S", "K", "outer", "seed S", "seed K", "seed outer", "agrees", "floor")
FLAG_STYLE = "bold white on red"  # a flagged row (copies / collapse: scalebench/flags.py) must not be missed
_STYLE = {LABELS[IMPROVES]: "green", LABELS[WORSE]: "bold red", LABELS[FLAT]: "red", LABELS[AT_FLOOR]: "cyan",
          LABELS[INCONCLUSIVE]: "yellow", LABELS[FIXED]: "dim", LABELS[NO_DATA]: "dim", LABELS[SCALES]: "green",
          LABELS[NOT_SCALES]: "red"}


def render_terminal_evidence(table_df: pd.DataFrame) -> Text:
    """The evidence as one line per varied axis (readable at any terminal width)."""
    from rich.text import Text

    d = table_display(table_df)
    out = Text()
    for _, r in d.iterrows():
        name = r["generator"] + (f"/{r['sampler']}" if r["sampler"] not in ("", "default") else "")
        for axis in ("S", "K"):
            if r[axis] != LABELS[FIXED]:
                out.append(f"{r[axis]} {name} {axis}: ", style=_STYLE.get(r[axis], ""))
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
    caption = "\n".join(filter(None, [_str(table_df.attrs.get("header")), _flag_note() if _flagged(table_df) else ""]))
    t = Table(title=title or f"measured 2-axis scalability ({metric}, {better} is better)", show_lines=False,
              caption=Text(caption) if caption else None)  # the header names rows: literal, never markup
    cols = DISPLAY_COLUMNS if evidence else [c for c in DISPLAY_COLUMNS if not c.endswith("evidence")]
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
                "green" if c == "agrees" and v == "yes" else "red" if c == "agrees" and v.startswith("no")
                else "yellow" if c == "agrees" and v.startswith("?") else FLAG_STYLE if c == "flags" and v else "")
            cells.append(Text(v, style=style))
        t.add_row(*cells)
    return t
