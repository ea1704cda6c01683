"""Bodies of `scalebench table` and `scalebench report` (registered in cli.py with `cli_errors`).

Kept import-light: pandas, plotly and torch load only when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalebench.console import console, err_console


def table_cmd(
    results: Annotated[list[Path], typer.Argument(help="run directories (or folders of them)")],
    metric: Annotated[str | None, typer.Option(help="quality metric to judge by (default: fid, else the first present)")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="print Markdown instead of a terminal table")] = False,
    wide: Annotated[bool, typer.Option("--wide", help="evidence as table columns instead of lines below")] = False,
    csv: Annotated[Path | None, typer.Option("--csv", help="also write the full table (all evidence numbers) as CSV")] = None,
) -> None:
    """Print the measured 2-axis scalability table (▲ improves, ▼ worse, ■ no gain, ● at floor, ? inconclusive)."""

    from scalebench.report.table import known_cards, scalability_table
    from scalebench.report.tablefmt import markdown_table, render_terminal_evidence, render_terminal_table
    from scalebench.results import load_results
    from scalebench.verdict.decide import DecisionRule
    from scalebench.verdict.words import describe

    df = load_results(results)
    table = scalability_table(df, metric, cards=known_cards(df))
    if markdown:
        console.print(markdown_table(table), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(render_terminal_table(table, evidence=wide))
        if not wide:
            console.print(render_terminal_evidence(table))
        console.print(describe(DecisionRule()), markup=False, highlight=False, style="dim")
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv, index=False)
        err_console.print(f"wrote {csv}", markup=False, highlight=False)


def report_cmd(
    results: Annotated[list[Path], typer.Argument(help="run directories (or folders of them)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder for index.html, table.md, table.csv")] = Path("report"),
    metric: Annotated[str | None, typer.Option(help="quality metric to judge by (default: fid, else the first present)")] = None,
    png: Annotated[bool, typer.Option("--png", help="also write static PNGs of every chart (needs Chromium)")] = False,
) -> None:
    """Write a self-contained HTML report (works offline): the 2-axis table, charts, samples, provenance."""

    from scalebench.report.html import write_report

    index = write_report(results, out, png=png, metric=metric)
    size = index.stat().st_size / 1e6
    console.print(f"wrote {index} ({size:.1f} MB), {out / 'table.md'}, {out / 'table.csv'}"
                    + (f", {out / 'png'}/*.png" if png else ""), markup=False, highlight=False)
