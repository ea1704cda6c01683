"""The `scalebench` command line (typer).

Every command goes through `cli_errors`: an expected failure (`scalebench.errors.is_expected`:
our own `ScalebenchError`s, a registry miss, an OSError with a listed errno) prints one line
`error: ...` on stderr and exits 2; anything else is a bug and keeps its traceback. `--debug`
(or SCALEBENCH_DEBUG=1) prints the traceback of expected failures too. User text is never
read as Rich markup: errors are printed as `rich.text.Text`, paths in markup are escaped.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from scalebench.console import console, err_console
from scalebench.errors import UsageError, is_expected, one_line
from scalebench.gate.cli import ab_cmd, compare_cmd
from scalebench.report.commands import report_cmd, table_cmd

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure inference-time scaling curves of generative models along S and K.")


DEFAULT_SPEC = "quick"  # scalebench/specs/quick.toml, package data: `scalebench run` works in any directory
_DEBUG = {"on": False}

@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="print the traceback of every error, expected or not",
                                        envvar="SCALEBENCH_DEBUG")] = False,
) -> None:
    """Measure inference-time scaling curves of generative models along S and K."""
    _DEBUG["on"] = debug


def print_error(e: BaseException) -> None:
    """`error: <one line>` on stderr, printed literally (no markup, no highlighting, no wrapping)."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", one_line(e)), soft_wrap=True, highlight=False)


def cli_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures → `error: <one line>` and exit 2; unexpected ones propagate (traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not is_expected(e):
                raise
            if _DEBUG["on"]:
                traceback.print_exc()
            print_error(e)
            raise typer.Exit(2) from None

    return wrapper


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def _check_out(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} is a file, not a directory; pass --out DIR")


@app.command()
@cli_errors
def run(
    spec: Annotated[str, typer.Argument(help="sweep spec: a shipped name (quick, full, ci-speed, likelihoods) "
                                        "or the path of a TOML file (a file wins over a name)")] = DEFAULT_SPEC,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory (default results/<spec name>)")] = None,
    device: Annotated[str | None, typer.Option(help="override the spec's device, e.g. cpu, cuda")] = None,
    compile: Annotated[bool | None, typer.Option("--compile/--eager", help="override the spec's compile "
                                                 "setting (torch.compile of the networks)")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="only these generators, or NAME/SAMPLER for one sampler (repeat or comma-separate)")] = None,
    threads: Annotated[int | None, typer.Option(help="override the spec's torch threads per measuring process "
                                                "(part of each point's identity)")] = None,
    executor: Annotated[str | None, typer.Option(help="where points run: local (this process) or ray "
                                                 "(worker actors; pip install 'scalebench[ray]')")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray workers (a local Ray starts this many)")] = None,
    address: Annotated[str | None, typer.Option(help="join a running Ray cluster: auto or HOST:PORT "
                                                "(default: start a private local Ray)")] = None,
    gpus_per_worker: Annotated[float | None, typer.Option(help="GPUs each Ray worker reserves on cuda "
                                                          "(0.5: two workers share a GPU)")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="if another process is writing the run directory, "
                                       "wait for it instead of exiting 2")] = False,
    repair: Annotated[bool, typer.Option("--repair", help="first rewrite points.jsonl without torn or "
                                         "invalid lines")] = False,
    progress: Annotated[bool, typer.Option(help="show the progress bar")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Sweep the spec's grid; resumes into an existing run directory, skipping finished points."""
    _setup_logging(verbose)
    from scalebench.devices import check_device
    from scalebench.results import load_results
    from scalebench.sweep.outputcache import printed
    from scalebench.sweep.runner import run_sweep
    from scalebench.sweep.spec import load_spec

    s = load_spec(spec, device=device, compile=compile, threads=threads,
                  executor={"executor": executor, "workers": workers, "address": address,
                            "gpus_per_worker": gpus_per_worker})
    check_device(s.device)
    names = tuple(n for o in (only or []) for n in o.split(",") if n)
    run_dir = out or Path("results") / s.name
    _check_out(run_dir)

    def waiting(holder: Any) -> None:
        who = holder.describe() if holder else "another process"
        err_console.print(f"waiting: {run_dir} is being written by {who}", markup=False, highlight=False,
                          soft_wrap=True)

    result = run_sweep(s, run_dir, only=names, progress=progress, wait=wait, on_wait=waiting, repair=repair)

    def derive() -> str:  # the summary and the table (pandas, ≈ 2 s); a rerun replays them
        from scalebench.summary import rich_summary

        df = load_results(run_dir)
        with console.capture() as captured:
            console.print(rich_summary(df, title=title))
            _print_scalability_table(df)
        return captured.get()

    title = escape(f"{s.name} — {run_dir}")
    # after Ctrl-C, stop rather than derive the table (the rerun shows it)
    text = printed(run_dir, title, console, None if result.interrupted else derive)
    console.file.write(text)
    console.print(f"{result.planned} points: {result.skipped} already done, {result.ran} run, "
                  f"{result.failed} failed; {result.wall_s:.1f}s. Results in [bold]{escape(str(run_dir))}[/]")
    if result.interrupted:
        err_console.print("interrupted: finished points are saved; run the same command again to resume")
        raise typer.Exit(130)


def _print_scalability_table(df: Any) -> None:
    """The measured 2-axis table (skipped for a speed-only sweep, which has no quality metric)."""
    from scalebench.report.table import known_cards, quality_metrics, scalability_table
    from scalebench.report.tablefmt import render_terminal_table

    if quality_metrics(df):
        t = scalability_table(df, cards=known_cards(df))
        console.print(render_terminal_table(t))


@app.command()
@cli_errors
def init(
    directory: Annotated[Path, typer.Argument(help="where to write (created if missing)")] = Path("."),
) -> None:
    """Write a commented starter spec (my-spec.toml) and a plugin skeleton for your model (my-model/)."""
    from scalebench.starter import write_starter

    written = write_starter(directory)
    for p in written:
        console.print(f"wrote {p}", markup=False, highlight=False, soft_wrap=True)
    d = "" if directory == Path(".") else f"{directory}/"
    console.print(f"next: pip install -e {d}my-model && scalebench check my-model && scalebench run {d}my-spec.toml",
                  markup=False, highlight=False, soft_wrap=True)


@app.command("list")
@cli_errors
def list_generators() -> None:
    """List registered generators and their axes (no weights are loaded).

    Built-in generators come from the card index (`scalebench/cardindex.py`: no torch, no family
    imported); a plugin, or a built-in whose sources changed since the index was made, is imported."""
    from rich.table import Table

    from scalebench.cardindex import card_and_params, read_index
    from scalebench.generators import GENERATORS
    from scalebench.plugins import describe_failure

    table = Table(title="generators")
    for c in ("name", "family", "seed category", "S", "K", "outer", "samplers", "likelihood", "aliases", "args"):
        table.add_column(c)
    broken: list[str] = []
    index = read_index()
    for name in GENERATORS.names():
        try:
            card, params = card_and_params(name, index)
        except (Exception, SystemExit) as e:  # noqa: BLE001 — a broken plugin (even sys.exit) must not hide the others
            table.add_row(Text(name), Text(f"cannot import: {describe_failure(e)}", style="red"), *[""] * 8)
            broken.append(f"{name}: cannot import: {describe_failure(e)}")  # unwrapped, below the table
            continue
        table.add_row(name, card.family, card.category, card.S.describe(), card.K.describe(),
                      card.outer or "—", ",".join(card.samplers), card.likelihood,
                      ",".join(GENERATORS.aliases_of(name)),
                      Text("; ".join(p.describe() for p in params)))
    console.print(table)
    for line in broken:
        console.print(Text(line, style="red"), soft_wrap=True)


@app.command()
@cli_errors
def train(
    name: Annotated[str | None, typer.Argument(help="what to train: a generator name, 'features' or 'refnet'")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="write the checkpoint here instead of the zoo")] = None,
    replicate: Annotated[int, typer.Option("--replicate", help="N ≥ 1: train replicate N (training seed + N) "
                                           "as NAME-rN, for a spec's replicates")] = 0,
    all_: Annotated[bool, typer.Option("--all", help="retrain every trainer's checkpoint and every replicate in the "
                                       "zoo index, parents first (what `make train` runs)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the train commands in order; train nothing")] = False,
) -> None:
    """Train a reference model from the recipe kept in code and save its safetensors checkpoint."""
    from scalebench.generators import TRAINERS, trainer
    from scalebench.training import train_replicate
    from scalebench.zoo import read_index
    from scalebench.zoo.order import TrainJob, training_order

    if all_ and (name is not None or replicate or out_dir is not None):
        raise UsageError("--all retrains the whole zoo in place (children load their new parents); "
                         "drop NAME, --replicate and --out-dir, or train one NAME without --all")
    if not all_ and name is None:
        raise UsageError("name what to train (see `scalebench list`), or pass --all to retrain the whole zoo")
    if replicate < 0:
        raise UsageError(f"--replicate {replicate}: replicate numbers start at 1 (0 is the shipped checkpoint)")
    if all_:
        jobs = training_order(read_index(), TRAINERS.names())
    else:
        trainer(name)  # an unknown name or a family without weights of its own fails before anything runs
        jobs = [TrainJob(TRAINERS.canonical(name), replicate)]
    if dry_run:
        for job in jobs:
            console.print(job.command(), markup=False, highlight=False, soft_wrap=True)
        return
    _setup_logging(True)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        fn = trainer(job.name)
        path = train_replicate(job.name, fn, job.replicate, out_dir) if job.replicate else fn(out_dir=out_dir)
        console.print(f"wrote {path} ({Path(path).stat().st_size / 1e6:.2f} MB)", markup=False, highlight=False)


@app.command()
@cli_errors
def check(
    names: Annotated[list[str] | None, typer.Argument(help="generators to check (default: every registered one)")] = None,
    device: Annotated[str, typer.Option(help="device to run the checks on")] = "cpu",
    arg: Annotated[list[str] | None, typer.Option("--arg", help="a generator argument KEY=VALUE (repeat), "
                                                  "e.g. --arg path=models/unet")] = None,
    dataset: Annotated[str | None, typer.Option(help="the dataset to check against (default: the card's)")] = None,
    dataset_arg: Annotated[list[str] | None, typer.Option("--dataset-arg", help="a dataset argument KEY=VALUE")] = None,
) -> None:
    """Run the generator contract suite; one line per check, exit 1 if any check fails."""
    from scalebench.contract import run_checks
    from scalebench.data import DATASETS
    from scalebench.devices import check_device
    from scalebench.generators import GENERATORS
    from scalebench.params import canonical_json, declared, parse_cli_args
    from scalebench.plugins import generator_class

    check_device(device)
    targets = [GENERATORS.canonical(n) for n in names] if names else GENERATORS.names()
    if (arg or dataset) and len(targets) != 1:
        raise UsageError("--arg and --dataset apply to one generator; name exactly one")
    ds = DATASETS.canonical(dataset) if dataset else ""
    ds_args = parse_cli_args(f"dataset {ds}", declared(DATASETS.get(ds)), dataset_arg or []) if ds else {}
    failed = 0
    for name in targets:
        params = declared(generator_class(name))
        if not names and any(p.required for p in params):
            console.print(f"[yellow]SKIP[/] {name}: needs args ({', '.join(p.name for p in params if p.required)}); "
                          f"check it with `scalebench check {name} --arg KEY=VALUE`", highlight=False)
            continue
        args = parse_cli_args(name, params, arg or [])
        for r in run_checks(name, device, args=args, dataset=ds, dataset_args=canonical_json(ds_args) if ds_args else ""):
            failed += not r.ok
            mark = "[green]PASS[/]" if r.ok else "[bold red]FAIL[/]"
            console.print(f"{mark} {name}: {r.name}: ", end="", highlight=False)
            console.print(r.detail, markup=False, highlight=False)
    if failed:
        err_console.print(f"{failed} check(s) failed", markup=False)
        raise typer.Exit(1)


@app.command()
@cli_errors
def info() -> None:
    """Versions, devices, cache and checkpoint locations."""
    import torch

    from scalebench.provenance import git_commit, versions
    from scalebench.zoo import ZOO_DIR, checkpoint_hash

    for k, v in versions().items():
        console.print(f"{k:>14}: {v}")
    console.print(f"{'git commit':>14}: {git_commit()}")
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"
    console.print(f"{'cuda':>14}: {cuda}")
    console.print(f"{'cpu threads':>14}: {torch.get_num_threads()}")
    from scalebench.paths import cache_dir

    console.print(f"{'cache':>14}: {cache_dir()}", markup=False)
    console.print(f"{'zoo':>14}: {ZOO_DIR}", markup=False)
    for f in sorted(ZOO_DIR.glob("*.safetensors")):
        console.print(f"{'':>14}  {f.name} {f.stat().st_size / 1e6:.2f} MB sha256:{checkpoint_hash(f.stem)}",
                      markup=False)


@app.command()
@cli_errors
def export(
    results: Annotated[list[Path], typer.Argument(help="run directories (or folders of them)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output path without extension")] = Path("scalebench"),
    fmt: Annotated[str, typer.Option("--format", help="comma-separated: parquet,csv")] = "parquet,csv",
) -> None:
    """Write the tidy results table (one row per point × metric) as parquet and CSV."""
    from scalebench.results import export as export_df
    from scalebench.results import load_results

    formats = tuple(f.strip() for f in fmt.split(",") if f.strip())
    df = load_results(results)
    for p in export_df(df, out, formats):
        console.print(f"wrote {p} ({len(df)} rows)", markup=False, highlight=False)


@app.command()
def docs(
    root: Annotated[Path, typer.Option("--root", help="the repository root (holds docs/ and results/)")] = Path("."),
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 if a generated block differs")] = False,
) -> None:
    """Rewrite the docs' measured tables (blocks between <!-- generated:NAME --> markers) from the committed runs."""
    from scalebench.docsgen import run as docs_run

    code = docs_run(root, check=check)
    if code:
        raise typer.Exit(code)


@app.command("export-hf")
@cli_errors
def export_hf(
    name: Annotated[str, typer.Argument(help="the generator to export (gpt)")],
    out_dir: Annotated[Path, typer.Argument(help="directory to write (config.json, model.safetensors, scalebench.json)")],
) -> None:
    """Write a zoo model as a standard transformers directory (gpt → GPT2LMHeadModel); needs scalebench[hf]."""
    from scalebench.adapters.hf_export import export as export_model

    path = export_model(name, out_dir)
    console.print(f"wrote {path} (config.json, model.safetensors, scalebench.json); sweep it with "
                  f'name = "transformers", args = {{ path = "{path}" }}', markup=False, highlight=False)


# Commands whose bodies live beside the code they drive (their modules import only typer at load).
app.command("table")(cli_errors(table_cmd))
app.command("report")(cli_errors(report_cmd))
app.command("compare")(cli_errors(compare_cmd))
app.command("ab")(cli_errors(ab_cmd))


def _register_history() -> None:
    """`scalebench history add|build|backfill` (scalebench/history/commands.py; `history STORE` = build)."""
    from scalebench.history.commands import register

    register(app, cli_errors)


_register_history()


def main() -> None:  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
