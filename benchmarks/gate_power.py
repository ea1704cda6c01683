"""How often does the speed gate fire? False alarms (same code both sides) and detection of
planted slowdowns, measured on this machine with the real runner and the real decision.

Each gate run is what `scalebench ab` does minus the git worktree and interpreter start-up:
`--rounds` interleaved rounds (random side order within each), each side in a fresh process (forked from this
one, torch already imported) that runs the sweep runner on the `sleepy` test generator into
`<tmp>/{baseline,candidate}/round-<i>`; the sides differ only by SCALEBENCH_SLEEPY_SLOWDOWN.
Then `compare_runs` decides (the paired t-test over the rounds, Holm over the points), once per threshold.

    .venv/bin/python benchmarks/gate_power.py                 # 40 gate runs, ~5 minutes on 2 cores
    .venv/bin/python benchmarks/gate_power.py --null 20 --repeats 10 --json gate_power.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--null", type=int, default=20, help="gate runs with no slowdown (false alarms)")
    ap.add_argument("--repeats", type=int, default=5, help="gate runs per planted slowdown")
    ap.add_argument("--slowdowns", default="0.05,0.1,0.2,0.5", help="planted slowdowns (fractions)")
    ap.add_argument("--thresholds", default="10%,5%", help="gate thresholds to evaluate on the same runs; first = default")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="A/B rounds per gate run (as scalebench ab)")
    ap.add_argument("--order", choices=["random", "abba"], default="random", help="side order within rounds")
    ap.add_argument("--threads", type=int, default=1, help="torch/OMP threads of the measured processes")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    ap.add_argument("--keep", type=Path, default=None, help="keep the run directories here (for re-analysis)")
    return ap.parse_args()


DEFAULT_ROUNDS = 6
ARGS = _args()
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)

import multiprocessing as mp  # noqa: E402

import torch  # noqa: E402  (imported before forking so children start warm)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import scalebench.testing  # noqa: E402,F401  (registers "sleepy")
from scalebench.gate import Thresholds, compare_runs, parse_fraction  # noqa: E402
from scalebench.gate.ab import interleaved  # noqa: E402
from scalebench.sweep.runner import run_sweep  # noqa: E402
from scalebench.sweep.spec import parse_spec  # noqa: E402
from scalebench.testing import SLOWDOWN_ENV  # noqa: E402

SPEC = {
    "name": "gate-power", "samples": 64, "batch_size": 64, "metrics": [],
    "timing": {"warmup": 2, "min_repeats": 20, "min_duration_s": 0.2, "max_repeats": 60},
    "generators": [{"name": "sleepy", "S": [2, 4], "K": [4]}],
}


def _side(run_dir: str, slowdown: float) -> None:
    os.environ[SLOWDOWN_ENV] = repr(slowdown)
    run_sweep(parse_spec(SPEC, source="gate_power"), Path(run_dir), progress=False)


def gate_run(tmp: Path, slowdown: float, rounds: int, thresholds: list[float]) -> dict:
    """One A/B gate run (fresh processes per side and round); decisions for each threshold."""
    ctx = mp.get_context("fork")
    t0 = time.perf_counter()
    seed = None if ARGS.order == "abba" else int.from_bytes(os.urandom(4), "little")
    for r, side in interleaved(rounds, seed):
        p = ctx.Process(target=_side, args=(str(tmp / side / f"round-{r}"), slowdown if side == "candidate" else 0.0))
        p.start()
        p.join()
        if p.exitcode != 0:
            sys.exit(f"side process {side} round {r} exited {p.exitcode}")
    out: dict = {"slowdown": slowdown, "measure_s": time.perf_counter() - t0}
    for thr in thresholds:
        t1 = time.perf_counter()
        report = compare_runs([tmp / "baseline"], [tmp / "candidate"], Thresholds(default=thr), ARGS.alpha)
        out[f"compare_s@{thr}"] = time.perf_counter() - t1
        lat = [r for r in report.rows if r.metric == "latency_s"]
        out[f"fired@{thr}"] = report.regressed
        out["ratios"] = [r.ratio for r in lat]
        out["other_verdicts"] = sorted({r.verdict for r in report.rows if r.metric != "latency_s"})
    return out


def main() -> None:
    console = Console()
    with FlopCounterMode(display=False):  # the runner's FLOP count imports torch._dynamo: do it once, here
        torch.rand(1)
    thresholds = [parse_fraction(t) for t in ARGS.thresholds.split(",")]
    levels = ([0.0] if ARGS.null else []) + ([float(s) for s in ARGS.slowdowns.split(",")] if ARGS.repeats else [])
    plan = [(rep, s) for rep in range(max(ARGS.null, ARGS.repeats)) for s in levels
            if rep < (ARGS.null if s == 0 else ARGS.repeats)]  # levels interleaved: load drift hits all alike
    load0 = os.getloadavg()
    results: list[dict] = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gate-power-") as tmp:
        if ARGS.keep:
            tmp = str(ARGS.keep)
        for i, (rep, s) in enumerate(plan):
            res = gate_run(Path(tmp) / f"{i:03d}-{s}", s, ARGS.rounds, thresholds)
            results.append(res)
            fired = " ".join(f"{t:.0%}:{'FIRE' if res[f'fired@{t}'] else 'pass'}" for t in thresholds)
            console.print(f"[{i + 1}/{len(plan)}] slowdown {s:.0%} rep {rep}: ratios "
                          f"{', '.join(f'{r:.3f}' for r in res['ratios'])} → {fired} ({res['measure_s']:.1f}s)",
                          highlight=False)
    table = Table(title=f"speed gate on sleepy ({ARGS.rounds} rounds, {ARGS.order} order, α={ARGS.alpha}, {ARGS.threads} thread(s), "
                        f"load {load0[0]:.1f}→{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    table.add_column("planted slowdown")
    table.add_column("gate runs", justify="right")
    table.add_column("median measured ratio", justify="right")
    for t in thresholds:
        table.add_column(f"fired @ {t:.0%}" + (" (default)" if t == thresholds[0] else ""), justify="right")
    table.add_column("s / gate run", justify="right")
    for s in levels:
        rs = [r for r in results if r["slowdown"] == s]
        ratio = statistics.median(x for r in rs for x in r["ratios"])
        cells = [f"{sum(r[f'fired@{t}'] for r in rs)}/{len(rs)} = {sum(r[f'fired@{t}'] for r in rs) / len(rs):.0%}"
                 for t in thresholds]
        wall = statistics.mean(r["measure_s"] + r[f"compare_s@{thresholds[0]}"] for r in rs)
        table.add_row("none (A = B)" if s == 0 else f"{s:.0%}", str(len(rs)), f"{ratio:.3f}", *cells, f"{wall:.1f}")
    console.print(table)
    console.print(f"total {time.perf_counter() - t_all:.0f}s; non-latency verdicts seen: "
                  f"{sorted({v for r in results for v in r['other_verdicts']})}")
    if ARGS.json:
        ARGS.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(ARGS).items()}, "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
