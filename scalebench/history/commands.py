"""`scalebench history …`: file runs in a history store and publish the store as a static site.

    scalebench history add RUN_DIR --store DIR [--machine NAME] [--commit SHA] [--replace]
    scalebench history STORE --out site/            (= scalebench history build STORE --out site/)
    scalebench history backfill REV… --store DIR    (run a spec at past commits through git worktrees)

Registered by `scalebench.cli` through `register`, which wraps each command in the CLI's
error handler; this module imports only typer at load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from scalebench.console import console


class DefaultBuild(TyperGroup):
    """`scalebench history STORE …` means `scalebench history build STORE …` (the issue's spelling)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


history_app = typer.Typer(cls=DefaultBuild, no_args_is_help=True, add_completion=False,
                          help="Results across commits: file runs in a store (add, backfill), publish it as a static site "
                               "(`scalebench history STORE --out site/`, the same as `build`).")


def add_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory (manifest.json + points.jsonl)")],
    store: Annotated[Path, typer.Option("--store", "-s", help="the history store (created if missing)")],
    machine: Annotated[str | None, typer.Option(help="machine name (default: derived from CPU model, cores, "
                                                "GPU and torch version)")] = None,
    commit: Annotated[str | None, typer.Option(help="file under this commit (default: the run's git_commit)")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="overwrite this commit's run of the spec if filed")] = False,
) -> None:
    """File a finished run under its machine, commit and spec."""
    from scalebench.history.store import file_run

    e = file_run(run_dir, store, machine=machine, commit=commit, replace=replace)
    console.print(f"filed {run_dir} as {e.path} ({e.spec} at {e.short} on {e.machine}, {e.date})",
                  markup=False, highlight=False)


def build_cmd(
    store: Annotated[Path, typer.Argument(help="the history store")],
    out: Annotated[Path, typer.Option("--out", "-o", help="site directory (index.html is written there)")] = Path("site"),
    normalize: Annotated[bool, typer.Option("--normalize", help="divide latencies by each run's calibration "
                                            "figure (a machine's runs on hosts of different speed)")] = False,
    reports: Annotated[int, typer.Option(help="also write the full report of the latest N commits of each "
                                         "machine × spec under out/reports/ (0: none)")] = 0,
    threshold: Annotated[float, typer.Option(help="smallest relative step reported (0.05 = 5 %)")] = 0.05,
) -> None:
    """Build the static site: summary of steps, one row per point, a panel per point."""
    from scalebench.errors import UsageError
    from scalebench.history.site import build_site

    if not 0 < threshold < 10:
        raise UsageError(f"--threshold {threshold} must be a relative change such as 0.05 (5 %)")
    if reports < 0:
        raise UsageError(f"--reports {reports} must be 0 or more")
    index, points = build_site(store, out, normalize=normalize, reports=reports, threshold=threshold)
    n_reg = sum(f.kind == "regression" for p in points for f in p.findings)
    n_imp = sum(f.kind == "improvement" for p in points for f in p.findings)
    console.print(f"wrote {index}: {len(points)} points, {n_reg} regression(s), {n_imp} improvement(s)",
                  markup=False, highlight=False)
    for p in points:
        for f in p.findings:
            console.print(f"  {f.kind}: {p.label} [{p.machine}, {p.spec}] {f.metric} {f.step.change * 100:+.1f} % "
                          f"in {f.range}", markup=False, highlight=False)


def backfill_cmd(
    revs: Annotated[list[str], typer.Argument(help="commits to measure (sha, tag, branch; oldest first or any order)")],
    store: Annotated[Path, typer.Option("--store", "-s", help="the history store")],
    spec: Annotated[str, typer.Option(help="the spec each commit runs: a shipped name or this tree's TOML file")] = "ci-speed",
    machine: Annotated[str | None, typer.Option(help="machine name (default: derived)")] = None,
    threads: Annotated[int | None, typer.Option(help="OMP/MKL threads of each run")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="re-measure commits already filed")] = False,
    imports: Annotated[list[str] | None, typer.Option("--import", help="a module each run imports first "
                                                      "(a plugin that registers generators); repeatable")] = None,
) -> None:
    """Run the spec at each commit with that commit's own code (a git worktree) and file the runs."""
    import importlib

    from scalebench.history.backfill import backfill

    for m in imports or []:
        importlib.import_module(m)
    for e in backfill(revs, store, spec, machine=machine, threads=threads, replace=replace, imports=imports or ()):
        console.print(f"filed {e.spec} at {e.short} on {e.machine} ({e.path})", markup=False, highlight=False)


def register(app: typer.Typer, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Add `history` to the CLI, each command wrapped by `wrap` (the CLI's one-line error handler)."""
    history_app.command("add")(wrap(add_cmd))
    history_app.command("build")(wrap(build_cmd))
    history_app.command("backfill")(wrap(backfill_cmd))
    app.add_typer(history_app, name="history")
