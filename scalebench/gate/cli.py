"""`scalebench compare` and `scalebench ab`: the speed gate's command line.

Exit 0 no regression, 1 regression, 2 bad input or a gate that cannot detect a slowdown at
these settings (too few rounds or samples). Registered in `scalebench.cli`; imports stay
light here (the work happens in the other gate modules).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from scalebench.console import console, err_console

if TYPE_CHECKING:  # pragma: no cover
    from scalebench.gate.report import CompareReport

ThresholdOpt = Annotated[list[str] | None, typer.Option(
    "--threshold", "-t", help="latency ratio threshold: '15%' sets the default (10%), "
    "'gpt*=5%' one for generators matching the glob; repeatable, the last matching rule wins")]
AlphaOpt = Annotated[float, typer.Option(help="significance level of the one-sided latency test, after the correction")]
CorrectionOpt = Annotated[str, typer.Option(
    help="multiplicity correction across the latency points: holm (family-wise error ≤ α, the default), "
         "bh (Benjamini-Hochberg: false discovery rate ≤ α) or none")]
NormalizeOpt = Annotated[bool, typer.Option(
    "--normalize", help="divide latencies by each run's manifest calibration_s (compare across machines)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the comparison as JSON, every row (for machines)")]
MarkdownOpt = Annotated[bool, typer.Option("--markdown", help="print a Markdown summary (e.g. a CI step summary)")]
AllOpt = Annotated[bool, typer.Option(
    "--all", help="also show quality, data-floor, NFE/FLOPs and memory rows without a regression")]


def _print_report(report: CompareReport, as_json: bool, show_all: bool, markdown: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    from scalebench.gate.render import hidden_note, report_table, to_markdown

    if markdown:
        typer.echo(to_markdown(report, show_all), nl=False)
        return
    console.print(report_table(report, show_all))
    if hidden := hidden_note(report, show_all):
        console.print(f"[dim]{hidden}[/]")
    if report.unmatched:
        from rich.table import Table

        t = Table(title="unmatched points (not compared)")
        for c in ("side", "point", "point_id", "reason"):
            t.add_column(c)
        for u in report.unmatched:
            t.add_row(escape(u.side), escape(u.point), escape(u.point_id), escape(u.reason))
        console.print(t)
    if not report.regressed and report.undetectable:  # exit 2: neither a pass nor a fail
        console.print(f"[bold yellow]CANNOT DETECT[/]: {escape(report.undetectable)}", highlight=False)
        return
    n_reg, n_imp = len(report.regressions), len(report.improvements)
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
    """Compare two result sets point by point; exit 1 on a significant regression, 2 when a slowdown
    could not be detected at these settings (too few rounds or samples), 0 otherwise.

    `compare BASELINE CANDIDATE`, or `compare -b RUN -b RUN … -c RUN …` to pool several runs per side.
    """
    from scalebench.gate.compare import compare_runs
    from scalebench.gate.thresholds import CompareError, Thresholds

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
    spec: Annotated[str, typer.Option(help="sweep spec both sides run, a shipped name or a TOML path "
                                      "(metrics = [] for speed only)")] = "ci-speed",
    rounds: Annotated[int, typer.Option(help="interleaved rounds: both sides run back to back in each; ≥ 3 for the paired t-test")] = 6,
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

    from scalebench.errors import UsageError
    from scalebench.gate.ab import run_ab
    from scalebench.gate.thresholds import Thresholds

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
