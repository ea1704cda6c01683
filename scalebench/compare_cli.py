"""`scalebench compare` and `scalebench ab`: the speed gate's command line (exit 1 = regression).

Registered in `scalebench.cli`; imports stay light here (the work happens in compare/ab).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from scalebench.console import console, err_console

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from scalebench.compare import CompareReport

# The comparison table is wide; CI logs are not terminals and would get rich's 80 columns.

MARKS = {"regression": "[bold red]✗ regression[/]", "failed": "[bold red]✗ failed[/]",
         "improvement": "[bold green]✓ improvement[/]", "ok": "[green]ok[/]", "info": "[dim]info[/]",
         "insufficient": "[yellow]? cannot test[/]"}
ThresholdOpt = Annotated[list[str] | None, typer.Option(
    "--threshold", "-t", help="latency ratio threshold: '15%' sets the default (10%), "
    "'gpt*=5%' one for generators matching the glob; repeatable, the last matching rule wins")]
AlphaOpt = Annotated[float, typer.Option(help="significance level of the one-sided Mann-Whitney U test")]
CorrectionOpt = Annotated[str, typer.Option(
    help="multiplicity correction across the latency points: holm (family-wise error ≤ α, the default), "
         "bh (Benjamini-Hochberg: false discovery rate ≤ α) or none")]
NormalizeOpt = Annotated[bool, typer.Option(
    "--normalize", help="divide latencies by each run's manifest calibration_s (compare across machines)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the comparison as JSON (for machines)")]
MarkdownOpt = Annotated[bool, typer.Option("--markdown", help="print a Markdown summary (e.g. a CI step summary)")]
AllOpt = Annotated[bool, typer.Option("--all", help="also show unchanged NFE/FLOPs/memory rows")]


def _fmt(metric: str, v: float | None, normalized: bool) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if metric == "latency_s":
        return f"{v:.3f}×cal" if normalized else f"{v * 1e3:.3f} ms"
    if metric in ("nfe",):
        return f"{v:.0f}"
    if metric in ("flops", "peak_mem_bytes"):
        return f"{v / 1e6:.2f} M"
    return f"{v:.4g}"


def report_table(report: CompareReport, show_all: bool = False) -> Table:
    """Rich table of a comparison: one row per point × metric, marked regression/improvement/ok."""
    from rich.table import Table

    from scalebench.compare import describe_correction

    table = Table(title=f"scalebench compare — threshold {report.thresholds.describe()}, "
                        f"{describe_correction(report.correction, report.family, report.alpha)}"
                        + (", normalized by calibration" if report.normalize else ""))
    for c, j in (("point", "left"), ("metric", "left"), ("baseline", "right"), ("candidate", "right"),
                 ("ratio", "right"), ("p (adj.)", "right"), ("verdict", "left"), ("note", "left")):
        table.add_column(c, justify=j)  # type: ignore[arg-type]
    for r in report.rows:
        quiet = r.metric in ("nfe", "flops", "peak_mem_bytes") and r.verdict in ("ok", "info")
        if quiet and not show_all:
            continue
        ratio = "—" if r.ratio is None else f"{r.ratio:.3f}"
        p = "—" if r.p_value is None else f"{r.p_value:.2g}"
        note = "; ".join(filter(None, [r.note, "matched by settings" if r.matched_by == "settings" else ""]))
        table.add_row(r.point, r.metric, _fmt(r.metric, r.baseline, report.normalize),
                      _fmt(r.metric, r.candidate, report.normalize), ratio, p, MARKS[r.verdict], note)
    return table


def _print_report(report: CompareReport, as_json: bool, show_all: bool, markdown: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    if markdown:
        from scalebench.compare import to_markdown

        typer.echo(to_markdown(report), nl=False)
        return
    console.print(report_table(report, show_all))
    if report.unmatched:
        from rich.table import Table

        t = Table(title="unmatched points (not compared)")
        for c in ("side", "point", "point_id", "reason"):
            t.add_column(c)
        for u in report.unmatched:
            t.add_row(u.side, u.point, u.point_id, u.reason)
        console.print(t)
    n_reg, n_imp = len(report.regressions), len(report.improvements)
    if not report.regressed and report.undetectable:  # exit 2: neither a pass nor a fail
        console.print(f"[bold yellow]CANNOT DETECT[/]: {escape(report.undetectable)}", highlight=False)
        return
    verdict = "[bold red]REGRESSION[/]" if report.regressed else "[bold green]OK[/]"
    n_few = len(report.insufficient)
    console.print(f"{verdict}: {report.matched} points compared, {n_reg} regression(s), {n_imp} improvement(s), "
                  + (f"[yellow]{n_few} cannot be tested[/], " if n_few else "")
                  + f"{len(report.unmatched)} unmatched")


def compare_cmd(
    results: Annotated[list[Path] | None, typer.Argument(
        help="BASELINE CANDIDATE: two run directories (or folders of runs, pooled); or none, with -b/-c")] = None,
    baseline: Annotated[list[Path] | None, typer.Option(
        "--baseline", "-b", help="a baseline run directory or folder of runs; repeat to pool several stored runs")] = None,
    candidate: Annotated[list[Path] | None, typer.Option(
        "--candidate", "-c", help="a candidate run directory or folder of runs; repeat to pool several runs")] = None,
    threshold: ThresholdOpt = None,
    alpha: AlphaOpt = 0.05,
    correction: CorrectionOpt = "holm",
    normalize: NormalizeOpt = False,
    as_json: JsonOpt = False,
    markdown: MarkdownOpt = False,
    show_all: AllOpt = False,
) -> None:
    """Compare two result sets point by point; exit 1 on a significant regression, 0 otherwise.

    `compare BASELINE CANDIDATE`, or `compare -b RUN -b RUN … -c RUN …` to pool several runs per side.
    """
    from scalebench.compare import CompareError, Thresholds, compare_runs

    results, baseline, candidate = results or [], baseline or [], candidate or []
    if results and (baseline or candidate):
        raise CompareError("give the two sides either as BASELINE CANDIDATE or with -b/--baseline and "
                           "-c/--candidate, not both")
    if results:
        if len(results) != 2:
            raise CompareError(f"expected BASELINE CANDIDATE, got {len(results)} path(s); to pool several runs per "
                               "side use -b RUN -b RUN … -c RUN …")
        baseline, candidate = [results[0]], [results[1]]
    if not baseline or not candidate:
        raise CompareError("missing the " + ("baseline" if not baseline else "candidate") + ": pass BASELINE "
                           "CANDIDATE, or -b/--baseline and -c/--candidate (repeatable)")
    report = compare_runs(baseline, candidate, Thresholds.parse(threshold), alpha, normalize, correction)
    _print_report(report, as_json, show_all, markdown)
    raise typer.Exit(report.exit_code)


def ab_cmd(
    rev: Annotated[str, typer.Argument(help="git revision to compare the working tree against, e.g. origin/main")],
    spec: Annotated[Path, typer.Option(help="sweep spec both sides run (metrics = [] for speed only)")] = Path(
        "benchmarks/ci-speed.toml"),
    rounds: Annotated[int, typer.Option(help="interleaved rounds: both sides run back to back in each")] = 6,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="output folder (default results/ab-<rev>)")] = None,
    threshold: ThresholdOpt = None,
    alpha: AlphaOpt = 0.05,
    normalize: NormalizeOpt = False,
    device: Annotated[str | None, typer.Option(help="override the spec's device")] = None,
    threads: Annotated[int | None, typer.Option(help="OMP/MKL threads of each side (default: inherit)")] = None,
    imports: Annotated[list[str] | None, typer.Option(
        "--import", help="module each side imports first, e.g. scalebench.testing (registers 'sleepy')")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the side order within rounds (default: random)")] = None,
    as_json: JsonOpt = False,
    show_all: AllOpt = False,
) -> None:
    """Time the working tree against REV in this job (interleaved rounds) and gate on the comparison."""
    import importlib

    from scalebench.ab import run_ab
    from scalebench.compare import Thresholds
    from scalebench.errors import UsageError

    mods = [m for i in (imports or []) for m in i.split(",") if m]
    for m in mods:  # so this process knows the same generators when it reads the spec
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise UsageError(f"--import {m}: {e}; pass an importable module such as scalebench.testing") from None
    thresholds = Thresholds.parse(threshold)

    def progress(info: dict) -> None:
        if not as_json:
            err_console.print(f"round {info['round'] + 1}/{rounds} {info['side']:>9} ({info['label']}): "
                              f"{info['wall_s']:.1f}s", highlight=False)

    result = run_ab(rev, spec, rounds, out, thresholds, alpha, normalize, mods, device, threads, on_run=progress,
                    seed=seed)
    _print_report(result.report, as_json, show_all)
    if not as_json:
        console.print(f"A/B of the working tree against {rev} ({result.sha[:10]}): {rounds} rounds in "
                      f"{result.wall_s:.1f}s; results in [bold]{escape(str(result.out))}[/]")
    raise typer.Exit(result.report.exit_code)
