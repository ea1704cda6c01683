"""How a comparison is shown: which rows (latency and anything that failed by default, all with
`--all`), the correction phrase, the Markdown summary and the terminal table."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from scalebench.gate.pooling import INFO_COSTS, TOLERANCE_COSTS
from scalebench.gate.report import CompareReport, Row
from scalebench.gate.stats import CORRECTION_NAMES

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table


QUIET = (*TOLERANCE_COSTS, *INFO_COSTS)
GATE_VERDICTS = ("regression", "failed", "insufficient")
_MD_MARKS = {"regression": "❌ regression", "failed": "❌ failed", "improvement": "✅ improvement", "ok": "ok",
             "info": "info", "insufficient": "⚠️ cannot test"}


def visible_rows(report: CompareReport, show_all: bool = False) -> list[Row]:
    """What a person sees: the latency and status rows, and every row that failed or regressed;
    quality, floor, NFE/FLOPs and memory rows otherwise only with `show_all` (JSON keeps all)."""
    if show_all:
        return list(report.rows)
    return [r for r in report.rows if r.metric in ("latency_s", "status") or r.verdict in GATE_VERDICTS]


def hidden_note(report: CompareReport, show_all: bool) -> str:
    """'' or a phrase saying how many rows the default view left out, and how to see them."""
    n = len(report.rows) - len(visible_rows(report, show_all))
    return f"{n} quality/floor/cost row(s) without a regression not shown (--all shows them)" if n else ""


def describe_correction(correction: str, family: int, alpha: float) -> str:
    """One phrase: which error rate the gate controls across how many latency points."""
    if correction == "none" or family <= 1:
        return f"α = {alpha:g} per point" + (f", {family} latency points tested, no correction" if family > 1 else "")
    rate = "family-wise error" if correction == "holm" else "false discovery rate"
    return f"{CORRECTION_NAMES[correction]} over {family} latency points ({rate} ≤ {alpha:g})"


def fmt_value(metric: str, v: float | None, normalized: bool) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if metric == "latency_s":
        return f"{v:.3f}×cal" if normalized else f"{v * 1e3:.3f} ms"
    if metric == "nfe":
        return f"{v:.0f}"
    if metric in ("flops", "peak_mem_bytes"):
        return f"{v / 1e6:.2f} M"
    return f"{v:.4g}"


def fmt_ratio(r: Row) -> str:
    if r.ratio is None:
        return "—"
    return f"{r.ratio:.3f}" + (f" [{r.ratio_ci[0]:.2f}, {r.ratio_ci[1]:.2f}]" if r.ratio_ci else "")


def headline(report: CompareReport) -> str:
    thr = f"threshold {report.thresholds.describe()}, {describe_correction(report.correction, report.family, report.alpha)}"
    return thr + (", latencies normalized by calibration" if report.normalize else "")


def to_markdown(report: CompareReport, show_all: bool = False) -> str:
    """A Markdown summary (e.g. for $GITHUB_STEP_SUMMARY): verdict, the shown rows, unmatched points."""
    head = ("❌ regression" if report.regressed else "⚠️ cannot detect a slowdown" if report.undetectable
            else "✅ no regression")
    hidden = hidden_note(report, show_all)
    lines = [f"### scalebench speed gate: {head}", "", f"{report.matched} points; {headline(report)}"
             + (f"; {hidden}" if hidden else ""), ""]
    if report.undetectable and not report.regressed:
        lines += [f"**{report.undetectable}**", ""]
    lines += ["| point | metric | baseline | candidate | ratio [95% CI] | p (adj.) | verdict | note |",
              "|---|---|---:|---:|---:|---:|---|---|"]
    for r in visible_rows(report, show_all):
        p = "—" if r.p_value is None else f"{r.p_value:.2g}"
        lines.append(f"| {r.point} | {r.metric} | {fmt_value(r.metric, r.baseline, report.normalize)} | "
                     f"{fmt_value(r.metric, r.candidate, report.normalize)} | {fmt_ratio(r)} | {p} | "
                     f"{_MD_MARKS[r.verdict]} | {r.note} |")
    if report.unmatched:
        lines += ["", "Unmatched points (not compared):", ""]
        lines += [f"- {u.side}: {u.point} (`{u.point_id}`): {u.reason}" for u in report.unmatched]
    return "\n".join(lines) + "\n"


MARKS = {"regression": "[bold red]✗ regression[/]", "failed": "[bold red]✗ failed[/]",
         "improvement": "[bold green]✓ improvement[/]", "ok": "[green]ok[/]", "info": "[dim]info[/]",
         "insufficient": "[yellow]? cannot test[/]"}


def report_table(report: CompareReport, show_all: bool = False) -> Table:
    """Rich table of a comparison: one row per shown point × metric, marked regression/improvement/ok."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"scalebench compare — {headline(report)}")
    for c, j in (("point", "left"), ("metric", "left"), ("baseline", "right"), ("candidate", "right"),
                 ("ratio [95% CI]", "right"), ("p (adj.)", "right"), ("verdict", "left"), ("note", "left")):
        table.add_column(c, justify=j)  # type: ignore[arg-type]
    for r in visible_rows(report, show_all):
        p = "—" if r.p_value is None else f"{r.p_value:.2g}"
        note = "; ".join(filter(None, [r.note, "matched by settings" if r.matched_by == "settings" else ""]))
        table.add_row(escape(r.point), r.metric, fmt_value(r.metric, r.baseline, report.normalize),
                      fmt_value(r.metric, r.candidate, report.normalize), fmt_ratio(r), p, MARKS[r.verdict],
                      escape(note))
    return table
