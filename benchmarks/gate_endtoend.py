"""The speed gate measured end to end: `scalebench ab HEAD` at its defaults, with and without a
planted slowdown in the working tree of a scratch checkout.

The planted slowdown makes every forward of the shared U-Net (`diffusion`) and causal
transformer (`gpt`) busy-wait `s` × that forward's own measured time, so the networks of all
four points of `scalebench/specs/ci-speed.toml` take (1 + s)× as long while FLOPs and NFE stay the
same (only timing can see it). The patch is appended to the scratch tree's
`scalebench/methods/nets/{unet,transformer}.py` before an `ab` run and removed after it; with
s = 0 the working tree is clean (a no-change run: any regression is a false alarm). Levels are
interleaved so a drift in the machine's load hits all
alike (each level's runs are spread evenly over the whole measurement). The runs hold the shared
CPU lock `/tmp/scalebench-cpu.lock` (`--per-lock` ab runs per hold, then it is released so other
heavy jobs interleave). Re-running with the same --out resumes after the runs already recorded.

    git worktree add --detach /tmp/gate-scratch HEAD
    .venv/bin/python benchmarks/gate_endtoend.py --scratch /tmp/gate-scratch \\
        --levels 0:20,0.2:10,1.0:3 --out results/gate-endtoend-cpu/runs.jsonl --keep /tmp/gate-e2e
    .venv/bin/python benchmarks/gate_endtoend.py --summarize results/gate-endtoend-cpu/runs.jsonl

One JSON line per `ab` run: the level, exit code, wall time, load average and, per latency
point, ratio, 95 % interval, raw and adjusted p and verdict.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = "/tmp/scalebench-cpu.lock"
TARGETS = {"scalebench/methods/nets/unet.py": "UNet",
           "scalebench/methods/nets/transformer.py": "CausalTransformer"}
MARK = "# --- planted by benchmarks/gate_endtoend.py"
PATCH = '''

{mark}: every forward busy-waits {s!r} x its own time (FLOPs and NFE unchanged)
def _planted_slowdown(cls, frac):
    import time as _time

    orig = cls.forward

    def forward(self, *args, **kwargs):
        t0 = _time.perf_counter()
        out = orig(self, *args, **kwargs)
        end = _time.perf_counter() + frac * (_time.perf_counter() - t0)
        while _time.perf_counter() < end:
            pass
        return out

    cls.forward = forward


_planted_slowdown({cls}, {s!r})
'''


def plant(tree: Path, s: float) -> dict[Path, str]:
    """Append the busy-wait to each target; returns the original texts to restore."""
    originals = {}
    for rel, cls in TARGETS.items():
        path = tree / rel
        text = path.read_text(encoding="utf-8")
        if MARK in text:
            raise SystemExit(f"{path} already carries a planted slowdown; restore it first")
        originals[path] = text
        if s > 0:
            path.write_text(text + PATCH.format(mark=MARK, s=s, cls=cls), encoding="utf-8")
    return originals


def restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text, encoding="utf-8")


@contextmanager
def cpu_lock() -> Iterator[float]:
    """Hold the shared CPU lock (as `flock /tmp/scalebench-cpu.lock`); yields the seconds waited."""
    t0 = time.time()
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield time.time() - t0
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ab_once(tree: Path, out: Path, extra: list[str]) -> tuple[int, dict | None, float, str]:
    """One `scalebench ab HEAD --json` in `tree` (the caller holds the CPU lock): (exit code, report, wall s,
    stderr tail)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "200"}
    cmd = [sys.executable, "-P", "-m", "scalebench.cli", "ab", "HEAD", "--out", str(out), "--json", *extra]
    t0 = time.time()
    res = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    try:
        report = json.loads(res.stdout)
    except json.JSONDecodeError:
        report = None
    return res.returncode, report, wall, res.stderr[-2000:]


def summary_row(level: float, rc: int, report: dict | None, wall: float, load: tuple[float, float], sha: str) -> dict:
    lat = [r for r in (report or {}).get("rows", []) if r["metric"] == "latency_s"]
    return {
        "level": level, "exit_code": rc, "fired": rc == 1, "wall_s": round(wall, 1), "sha": sha,
        "load_before": round(load[0], 2), "load_after": round(load[1], 2),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "other_regressions": sorted({r["metric"] for r in (report or {}).get("rows", [])
                                     if r["metric"] != "latency_s" and r["verdict"] in ("regression", "failed")}),
        "points": [{"point": r["point"], "ratio": r["ratio"], "ratio_ci": r.get("ratio_ci"), "p_raw": r["p_raw"],
                    "p": r["p_value"], "verdict": r["verdict"], "test": r["test"]} for r in lat],
    }


def summarize(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print("| planted slowdown (network time) | ab runs | fired (exit 1) | exit 2 | points regressed | median measured "
          "ratio (all points) | min–max ratio | largest adjusted p of a regressed point | s per ab run (median) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for level in sorted({r["level"] for r in rows}):
        rs = [r for r in rows if r["level"] == level]
        fired = sum(r["exit_code"] == 1 for r in rs)
        pts = [p for r in rs for p in r["points"] if p["ratio"] is not None]
        ratios = [p["ratio"] for p in pts]
        reg = [p for p in pts if p["verdict"] == "regression"]
        name = "none (no change)" if level == 0 else f"{level:.0%}" if level < 1 else f"{1 + level:g}×"
        worst = f"{max(p['p'] for p in reg):.2g}" if reg else "—"
        wall = statistics.median(r.get("ab_wall_s") or r["wall_s"] for r in rs)  # the first runs also timed the wait
        print(f"| {name} | {len(rs)} | {fired}/{len(rs)} = {fired / len(rs):.0%} | "
              f"{sum(r['exit_code'] == 2 for r in rs)} | {len(reg)}/{len(pts)} | {statistics.median(ratios):.3f} | "
              f"{min(ratios):.3f}–{max(ratios):.3f} | {worst} | {wall:.0f} |")
    others = sorted({m for r in rows for m in r["other_regressions"]})
    print(f"\nnon-latency regressions seen: {others or 'none'}; load average {min(r['load_before'] for r in rows):.1f}–"
          f"{max(r['load_before'] for r in rows):.1f} before each run; commit {sorted({r['sha'][:10] for r in rows})}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scratch", type=Path, help="a clean scratch checkout (git worktree) of the commit to gate")
    ap.add_argument("--levels", default="0:20,0.2:10,1.0:3", help="LEVEL:RUNS,…; LEVEL = planted fraction")
    ap.add_argument("--out", type=Path, default=Path("results/gate-endtoend-cpu/runs.jsonl"))
    ap.add_argument("--keep", type=Path, default=Path("/tmp/gate-e2e"), help="where each ab run's rounds go")
    ap.add_argument("--per-lock", type=int, default=1, help="ab runs per hold of the CPU lock (1: release after each)")
    ap.add_argument("--ab-args", default="", help="extra `scalebench ab` options (default: none, its defaults)")
    ap.add_argument("--summarize", type=Path, default=None, help="print the table of a runs.jsonl and exit")
    args = ap.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return
    if args.scratch is None:
        ap.error("--scratch is required (a clean git worktree of the commit to gate)")
    tree = args.scratch.resolve()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=tree, capture_output=True,
                           text=True, check=True).stdout.strip()
    if dirty:
        raise SystemExit(f"{tree} has uncommitted changes; the no-change runs need a clean tree:\n{dirty}")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True,
                         check=True).stdout.strip()
    levels = [(float(lv), int(n)) for lv, n in (item.split(":") for item in args.levels.split(","))]
    # each level's runs spread evenly over the whole measurement (rep r of n at (r + ½)/n), so a
    # drift in the machine's load, or stopping early, leaves every level equally represented
    plan = sorted(((rep, lv) for lv, n in levels for rep in range(n)),
                  key=lambda t: ((t[0] + 0.5) / dict(levels)[t[1]], t[1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = sum(1 for _ in args.out.open()) if args.out.exists() else 0
    todo = [(i, rep, level) for i, (rep, level) in enumerate(plan) if i >= done]  # resume after recorded runs
    for b in range(0, len(todo), args.per_lock):
        with cpu_lock() as waited:
            for i, rep, level in todo[b:b + args.per_lock]:
                out = args.keep / f"{i:03d}-{level:g}"
                originals = plant(tree, level)
                try:
                    load0 = os.getloadavg()[0]
                    rc, report, wall, err = ab_once(tree, out, args.ab_args.split())
                finally:
                    restore(originals)
                row = summary_row(level, rc, report, wall, (load0, os.getloadavg()[0]), sha)
                row["lock_wait_s"] = round(waited, 1)
                if report is None:
                    row["error"] = err
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                ratios = " ".join(f"{p['ratio']:.3f}" for p in row["points"] if p["ratio"] is not None)
                print(f"[{i + 1}/{len(plan)}] level {level:g} rep {rep}: exit {rc}, ratios {ratios} ({wall:.0f}s, "
                      f"waited {waited:.0f}s for the lock)", flush=True)
                waited = 0.0
        time.sleep(3)  # let a job waiting for the lock take it before this one asks again

if __name__ == "__main__":
    main()
