"""Interleaved A/B timing of the working tree against a git revision, in one job.

The revision is checked out into a temporary `git worktree`; each side runs `scalebench run`
in its own process with its own code (PYTHONPATH = that side's tree, `python -P` so the
current directory cannot shadow it, and the zoo checkpoints are that tree's package data).
Rounds are interleaved (asv's `continuous` idea): both sides of round i run back to back, in
a seeded random order, and write `<out>/{baseline,candidate}/round-<i>`;
`compare_runs` pairs the rounds (a paired t-test on their log ratios) and decides;
`compare.json` and `compare.md` (a CI step summary) land next to the rounds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalebench.atomic import atomic_write_text
from scalebench.gate.compare import compare_runs
from scalebench.gate.decide import DEFAULT_ALPHA
from scalebench.gate.render import to_markdown
from scalebench.gate.report import CompareReport
from scalebench.gate.thresholds import CompareError, Thresholds
from scalebench.results import latest_records

DEFAULT_SPEC = "ci-speed"  # a shipped spec (scalebench/specs/ci-speed.toml)
DEFAULT_ROUNDS = 6  # paired t over 6 rounds (df = 5): measured power in docs/speed-gate.md
MARKER = "ab.json"

# Run `scalebench run` with the side's own package: refuse if another copy was imported.
_BOOTSTRAP = """\
import importlib, os, sys
mods, tree = sys.argv[1], os.path.realpath(sys.argv[2])
import scalebench
where = os.path.realpath(scalebench.__file__)
if not where.startswith(tree + os.sep):
    sys.exit(f"error: scalebench was imported from {where}, not from {tree}")
for m in filter(None, mods.split(",")):
    importlib.import_module(m)
from scalebench.cli import app
sys.argv = ["scalebench", *sys.argv[3:]]
app()
"""


class AbError(CompareError):
    """An A/B run that cannot proceed; one line naming the problem and the fix."""


@dataclass(frozen=True)
class Side:
    name: str  # "baseline" (the revision) or "candidate" (the working tree)
    tree: Path
    label: str


@dataclass
class AbResult:
    report: CompareReport
    out: Path
    rev: str
    sha: str
    wall_s: float
    runs: list[dict[str, Any]] = field(default_factory=list)


def _git(args: Sequence[str], cwd: Path) -> str:
    try:
        res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise AbError("git is not installed; scalebench ab needs git to check out the revision") from None
    if res.returncode != 0:
        raise AbError(f"git {' '.join(args)} failed: {(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    return res.stdout.strip()


def repo_root(path: Path | None = None) -> Path:
    """The top of the git checkout holding `path` (default: the current directory)."""
    cwd = Path(path or Path.cwd())
    res = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise AbError(f"{cwd} is not inside a git checkout; run scalebench ab from your scalebench clone")
    return Path(res.stdout.strip())


def resolve_rev(root: Path, rev: str) -> str:
    res = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=root,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise AbError(f"revision {rev!r} is not a commit of {root}; fetch it first "
                      "(in CI: actions/checkout with fetch-depth: 0) or pass a branch, tag or sha")
    return res.stdout.strip()


@contextmanager
def worktree(root: Path, sha: str) -> Iterator[Path]:
    """Check `sha` out into a temporary detached worktree; remove it afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="scalebench-ab-"))
    tree = tmp / "tree"
    _git(["worktree", "add", "--detach", "--force", str(tree), sha], root)
    try:
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=root, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True)


def check_tree(tree: Path, rev: str, generators: Sequence[str], root: Path) -> None:
    """Refuse early, with the fix, a revision that cannot run the spec."""
    if not (tree / "scalebench" / "cli.py").is_file():
        raise AbError(f"revision {rev} has no scalebench/cli.py (it predates scalebench's CLI); "
                      "compare against a later revision")
    for name in generators:
        ckpt = Path("scalebench") / "zoo" / f"{name}.safetensors"
        if (root / ckpt).is_file() and not (tree / ckpt).is_file():
            raise AbError(f"revision {rev} lacks {ckpt} (the {name} weights); commit the checkpoint "
                          "before that revision or compare against a later one")


def interleaved(rounds: int, seed: int | None = None) -> list[tuple[int, str]]:
    """(round, side): both sides of a round run back to back, so round i of A and B are a pair.

    With `seed` None the order is ABBA (A B, B A, A B, …: a linear drift favours neither
    side); with a seed, each round's order is a coin flip, which a periodic load on the
    machine cannot alias with (an ABBA schedule puts B in the same phase of a period of
    four runs every time).
    """
    import random

    rng = random.Random(seed)
    order = []
    for r in range(rounds):
        first_a = (r % 2 == 0) if seed is None else rng.random() < 0.5
        pair = ("baseline", "candidate") if first_a else ("candidate", "baseline")
        order += [(r, s) for s in pair]
    return order


def side_command(side: Side, spec: Path, out: Path, imports: Sequence[str] = (), device: str | None = None
                 ) -> list[str]:
    cmd = [sys.executable, "-P", "-c", _BOOTSTRAP, ",".join(imports), str(side.tree),
           "run", str(spec), "--out", str(out), "--no-progress"]
    return cmd + (["--device", device] if device else [])


def side_env(side: Side, threads: int | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(side.tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


def run_side(side: Side, spec: Path, out: Path, log_path: Path, imports: Sequence[str] = (),
             device: str | None = None, threads: int | None = None, env: dict[str, str] | None = None) -> float:
    """One `scalebench run` of one side into `out`; returns its wall seconds."""
    t0 = time.perf_counter()
    res = subprocess.run(side_command(side, spec, out, imports, device), cwd=side.tree,
                         env=side_env(side, threads, env), capture_output=True, text=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"$ {' '.join(side_command(side, spec, out, imports, device)[3:])}\n"
                        f"--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}", encoding="utf-8")
    if res.returncode != 0:
        lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else "")
        raise AbError(f"the {side.name} side ({side.label}) exited {res.returncode}: {last.strip()} "
                      f"(full log: {log_path})")
    return time.perf_counter() - t0


def _prepare_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise AbError(f"--out {out} exists and is not an A/B output; pass a new directory")
        for sub in ("baseline", "candidate", "logs"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _spec_generators(spec: Path) -> list[str]:
    from scalebench.generators import GENERATORS
    from scalebench.registry import RegistryError
    from scalebench.sweep.spec import load_spec

    names = []
    for entry in load_spec(spec).generators:
        try:
            names.append(GENERATORS.canonical(entry.name))
        except RegistryError:
            names.append(entry.name)
    return names


def default_out(rev: str) -> Path:
    return Path("results") / ("ab-" + re.sub(r"[^A-Za-z0-9._-]+", "-", rev).strip("-"))


def run_ab(rev: str, spec: str | Path = DEFAULT_SPEC, rounds: int = DEFAULT_ROUNDS, out: Path | None = None,
           thresholds: Thresholds | None = None, alpha: float = DEFAULT_ALPHA, normalize: bool = False,
           imports: Sequence[str] = (), device: str | None = None, threads: int | None = None,
           root: Path | None = None, on_run: Callable[[dict[str, Any]], None] | None = None,
           seed: int | None = None) -> AbResult:
    """Measure the working tree (candidate) against `rev` (baseline), interleaved, and compare.

    `seed` fixes the side order within rounds (default: a fresh one, recorded in ab.json).
    """
    if rounds < 1:
        raise AbError(f"--rounds {rounds} must be at least 1 (3 or more for a useful test)")
    t0 = time.perf_counter()
    root = repo_root(root)
    from scalebench.specs import resolve_spec

    spec = resolve_spec(spec, root).resolve()  # both sides run this tree's file, by its absolute path
    if not spec.is_file():
        raise AbError(f"spec file {str(spec)!r} does not exist; pass a TOML file or a shipped spec such as "
                      f"{DEFAULT_SPEC}")
    generators = _spec_generators(spec)
    sha = resolve_rev(root, rev)
    out = (Path(out) if out else root / default_out(rev)).resolve()
    _prepare_out(out)
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    order = interleaved(rounds, seed)
    meta: dict[str, Any] = {"rev": rev, "sha": sha, "spec": str(spec), "rounds": rounds, "root": str(root),
                            "candidate": "working tree", "seed": seed, "order": order, "runs": []}
    atomic_write_text(out / MARKER, json.dumps(meta, indent=2))
    with worktree(root, sha) as tree:
        check_tree(tree, rev, generators, root)
        sides = {"baseline": Side("baseline", tree, f"{rev} @ {sha[:10]}"),
                 "candidate": Side("candidate", root, "working tree")}
        for r, name in order:
            run_dir = out / name / f"round-{r}"
            wall = run_side(sides[name], spec, run_dir, out / "logs" / f"{name}-round-{r}.log",
                            imports, device, threads)
            info = {"round": r, "side": name, "label": sides[name].label, "dir": str(run_dir), "wall_s": round(wall, 2)}
            meta["runs"].append(info)
            if on_run:
                on_run(info)
    for d in sorted((out / "baseline").glob("round-*")):
        bad = [rec for rec in latest_records(d).values() if not rec.ok]
        if bad:
            raise AbError(f"the baseline {rev} cannot run {bad[0].generator}/{bad[0].sampler} "
                          f"S={bad[0].S} K={bad[0].K}: {bad[0].error}; "
                          "compare against a revision that can")
    report = compare_runs([out / "baseline"], [out / "candidate"], thresholds, alpha, normalize)
    meta["wall_s"] = round(time.perf_counter() - t0, 2)
    meta["verdict"] = "regression" if report.regressed else "undetectable" if report.undetectable else "ok"
    atomic_write_text(out / MARKER, json.dumps(meta, indent=2))
    atomic_write_text(out / "compare.json", json.dumps(report.to_dict(), indent=2))
    atomic_write_text(out / "compare.md", to_markdown(report))
    return AbResult(report, out, rev, sha, meta["wall_s"], meta["runs"])
