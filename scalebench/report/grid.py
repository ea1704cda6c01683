"""The one-screen summary at the top of the report: the seed's table as a compact grid.

One row per seed category (the seed's claim beside it), one cell per generator × sampler with the
measured verdict marks and effects ("S ▲ −83 %"), its agreement with the seed as the cell's colour
and a word, and its flags (copies, collapse, noisy timing) as badges. The evidence is one hover
(the cell's tooltip) or one click away (the full table below, which a click opens at the row):
never inline, so the whole zoo fits in one 1400 × 900 screen. Every string is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from scalebench.api import SEED_CATEGORIES
from scalebench.report.identity import Identity, sampler_key
from scalebench.report.tablefmt import table_display
from scalebench.verdict.decide import AT_FLOOR, FIXED, FLAT, IMPROVES, INCONCLUSIVE, NO_DATA, WORSE
from scalebench.verdict.words import MARKS, pct

KIND = {IMPROVES: "yes", WORSE: "worse", FLAT: "no", AT_FLOOR: "floor", INCONCLUSIVE: "unsure", FIXED: "fixed",
        NO_DATA: "nodata"}


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def seed_claim(category: str) -> str:
    """The seed's classification of a category in words ("S scales · K does not")."""
    seed = SEED_CATEGORIES.get(category)
    if seed is None:
        return "not in the seed's table"
    s, k, outer = seed
    text = f"S {'scales' if s else 'does not'} · K {'scales' if k else 'does not'}"
    return text + (f" · outer {outer}" if outer else "")


def cell_verdict(row: pd.Series, axis: str) -> str:
    """'S ▲ −83 %': the axis, its verdict mark and the measured effect (no effect for — and ·)."""
    verdict = str(row[axis])
    effect = row.get(f"{axis}_effect")
    shown = f"{axis} {MARKS.get(verdict, '?')}"
    if verdict not in (FIXED, NO_DATA) and isinstance(effect, int | float) and math.isfinite(effect):
        shown += f" {pct(float(effect))}"
    return shown


def agreement(agrees: str) -> tuple[str, str]:
    """(css class, short words) of the table's `agrees` cell."""
    if agrees == "yes":
        return "agree-yes", "agrees with the seed"
    if agrees.startswith("no"):
        return "agree-no", "disagrees: " + agrees[2:].strip(" ()")
    inner = agrees[1:].strip(" ()")
    return "agree-open", f"open: {inner}" if inner else "no seed row"


def noisy_counts(df: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(generator, sampler) → "noisy timing 2/9" where points' timing rounds spread far beyond the sweep's."""
    if "timing_noisy" not in df.columns or df.empty:
        return {}
    ok = df[(df["status"] == "ok") & df["generator"].notna()].drop_duplicates("point_id")
    out = {}
    for (g, s), pts in ok.groupby([ok["generator"], ok["sampler"].map(sampler_key)], sort=False):
        k = int(pts["timing_noisy"].fillna(False).astype(bool).sum())
        if k:
            out[(str(g), str(s))] = f"noisy timing {k}/{len(pts)}"
    return out


def summary_grid(table_df: pd.DataFrame, ids: dict[tuple[str, str], Identity], df: pd.DataFrame) -> str:
    """The grid's HTML: a count line, then one row per category present in `table_df` (already in the
    seed's order). Cell i carries data-row=i, the index of its row in the full table."""
    shown = table_display(table_df)
    noisy = noisy_counts(df)
    rows, counts = [], {"agree-yes": 0, "agree-no": 0, "agree-open": 0}
    for cat in dict.fromkeys(table_df["category"]):
        idx = table_df.index[table_df["category"] == cat]
        cells = []
        for i in idx:
            r, d = table_df.loc[i], shown.loc[i]
            gen, sampler = str(r["generator"]), sampler_key(r["sampler"])
            name = gen + ("" if sampler == "default" else f"/{sampler}")
            cls, words = agreement(str(r["agrees"]))
            counts[cls] += 1
            badges = [f for f in str(d["flags"]).split(", ") if f] + ([noisy[(gen, sampler)]]
                                                                       if (gen, sampler) in noisy else [])
            tip = "\n".join([f"{name} ({cat}; seed: {seed_claim(str(cat))})", f"S {d['S']}: {d['S evidence']}",
                             f"K {d['K']}: {d['K evidence']}", f"agrees: {d['agrees']}", f"data floor: {d['floor']}",
                             *(f"flag: {b}" for b in badges), "click: the full table row"])
            ident = ids.get((gen, sampler))
            border = f' style="border-left-color:{esc(ident.colour)}"' if ident else ""
            verdicts = "".join(f'<span class="v-{KIND.get(str(r[a]), "nodata")}">{esc(cell_verdict(r, a))}</span>'
                               for a in ("S", "K"))
            badge_html = "".join(f'<span class="badge{" warn" if b.startswith("noisy") else ""}">{esc(b)}</span>'
                                 for b in badges)
            cells.append(f'<div class="cell {cls}" data-row="{int(table_df.index.get_loc(i))}" title="{esc(tip)}"'
                         f'{border}><div class="cname">{esc(name)}</div><div class="cv">{verdicts}</div>'
                         f'<div class="cag">{esc(words)}</div>'
                         + (f'<div class="cb">{badge_html}</div>' if badges else "") + "</div>")
        rows.append(f'<div class="scat"><b>{esc(cat)}</b><span>seed: {esc(seed_claim(str(cat)))}</span></div>'
                    f'<div class="cells">{"".join(cells)}</div>')
    total = sum(counts.values())
    line = (f'<p class="gridnote"><span class="agree-yes">{counts["agree-yes"]} of {total} agree with the seed</span>'
            f' · <span class="agree-no">{counts["agree-no"]} disagree</span> · <span class="agree-open">'
            f'{counts["agree-open"]} open</span> (a cell at the floor or inconclusive). Hover a cell for its evidence; '
            "click it for the full row.</p>")
    return line + f'<div id="summary-grid">{"".join(rows)}</div>'
