"""Measure past commits into a history store: each commit runs the spec with its own code.

Reuses `scalebench ab`'s machinery: the commit is checked out into a temporary `git worktree`,
`scalebench run` starts in a fresh process whose package is that tree's (`python -P`, PYTHONPATH),
and the finished run is filed under the commit. The spec is this tree's file, so every commit
measures the same grid (a commit too old to run it fails with its own error, named).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from scalebench.errors import ResultsError
from scalebench.gate.ab import Side, check_tree, repo_root, resolve_rev, run_side, worktree
from scalebench.history.store import Entry, file_run, hardware, machine_name


def backfill(revs: Sequence[str], store: Path, spec: str | Path, machine: str | None = None, threads: int | None = None,
             replace: bool = False, root: Path | None = None, imports: Sequence[str] = ()) -> Iterator[Entry]:
    """Run `spec` at each revision and file it in `store`; yields each entry as it is filed
    (a commit already filed is skipped unless `replace`, so an interrupted backfill resumes).
    `imports`: modules each run imports first (a plugin's generators, as `ab --import`)."""
    root = repo_root(root)
    from scalebench.specs import resolve_spec

    spec = resolve_spec(spec, root)
    if not spec.is_file():
        raise ResultsError(f"spec file {str(spec)!r} does not exist; pass a TOML file or a shipped spec such as ci-speed")
    spec = spec.resolve()
    from scalebench.sweep.spec import load_spec

    s = load_spec(spec)
    generators = [g.name for g in s.generators]
    store = Path(store).resolve()
    for rev in revs:
        sha = resolve_rev(root, rev)
        name = machine or machine_name(hardware({"device": s.device, "versions": _torch_version()}))
        if (store / name / sha / s.name).exists() and not replace:
            continue
        with tempfile.TemporaryDirectory(prefix="scalebench-history-") as tmp, worktree(root, sha) as tree:
            check_tree(tree, rev, generators, root)
            side = Side("history", tree, f"{rev} @ {sha[:10]}")
            out = Path(tmp) / s.name
            log = Path(tempfile.gettempdir()) / "scalebench-history-logs" / f"{sha[:12]}-{s.name}.log"
            run_side(side, spec, out, log, imports, threads=threads)  # kept after a failure: the error names it
            entry = file_run(out, store, machine=machine, commit=sha, replace=replace, repo=root)
        yield entry


def _torch_version() -> dict[str, str]:
    from scalebench.provenance import versions

    return {"torch": versions().get("torch", "")}
