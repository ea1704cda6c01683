"""The history store: finished runs filed by machine, commit and spec, so points can be followed over commits.

Layout (one run directory per machine × commit × spec; docs/history.md)::

    <store>/<machine>/machine.json                     hardware the machine was named for
    <store>/<machine>/<commit sha>/<spec>/entry.json   commit, date, subject, calibration_s, hardware
    <store>/<machine>/<commit sha>/<spec>/manifest.json, points.jsonl   (the run, copied as written)

A machine is a line of its own: runs of different machines are never drawn or judged together.
Its name is the user's (`--machine`) or derived from the hardware (CPU model, cores, GPU, torch),
and every entry keeps the run's calibration figure so a machine's runs can be normalised.
Each entry is itself a run directory, so `scalebench report <entry>` works on it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalebench.atomic import atomic_write_text
from scalebench.errors import ResultsError, UsageError
from scalebench.results import MANIFEST, POINTS, latest_records, read_manifest

log = logging.getLogger(__name__)

ENTRY = "entry.json"
MACHINE = "machine.json"
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}")  # = the spec's safe run name rule
SHA = re.compile(r"[0-9a-f]{40}")
SHORT_SHA = re.compile(r"[0-9a-fA-F]{4,40}")


@dataclass(frozen=True)
class Entry:
    """One filed run: where it lives and which commit, machine and spec it measured."""

    machine: str
    commit: str
    spec: str
    date: str
    subject: str
    path: Path
    calibration_s: float | None = None
    hardware: dict[str, Any] = field(default_factory=dict)
    depth: int | None = None  # first-parent commit count: orders commits whose dates tie

    @property
    def short(self) -> str:
        return self.commit[:10]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def hardware(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a machine is, for its derived name: this host's CPU and cores, the run's GPU and torch."""
    device = str(manifest.get("device") or "cpu")
    prov = manifest.get("provenance") or {}
    gpu = str(prov.get("device_name") or "") if device.startswith("cuda") else ""
    torch = str((manifest.get("versions") or {}).get("torch") or "")
    return {"cpu": _cpu_model(), "cores": os.cpu_count() or 1, "gpu": gpu, "torch": torch}


def slug(text: str) -> str:
    s = re.sub(r"\((r|tm)\)|\b(cpu|processor|core)\b|@.*$", " ", text.lower())
    return re.sub(r"[^a-z0-9.]+", "-", s).strip("-.")


def machine_name(hw: dict[str, Any]) -> str:
    """e.g. `amd-epyc-7b13-2c-torch2.14.1`, `nvidia-h200-torch2.14.1` (a safe directory name)."""
    head = slug(hw["gpu"]) if hw.get("gpu") else f"{slug(hw.get('cpu', 'cpu')) or 'cpu'}-{hw.get('cores', 1)}c"
    name = f"{head}-torch{slug(str(hw.get('torch') or 'unknown'))}"
    return name[:80].strip("-.") or "machine"


def _check_name(what: str, name: str, fix: str) -> str:
    if not NAME.fullmatch(name):
        raise UsageError(f"{what} {name!r} is not a safe directory name; use 1–80 characters from "
                         f"A-Z a-z 0-9 . _ - not starting with '.' ({fix})")
    return name


def _git(repo: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def commit_info(sha: str, repo: Path | None) -> tuple[str, str, str, int | None] | None:
    """(full sha, committer date ISO, subject, first-parent depth) from git, or None where git or the
    commit is missing. The depth orders commits whose dates tie (several commits in one second)."""
    out = _git(repo or Path.cwd(), "show", "-s", "--format=%H%x1f%cI%x1f%s", f"{sha}^{{commit}}")
    if not out:
        return None
    full, date, subject = out.split("\x1f", 2)
    depth = _git(repo or Path.cwd(), "rev-list", "--count", "--first-parent", full)
    return full, date, subject, int(depth) if depth and depth.isdigit() else None


def _resolve_commit(run_dir: Path, manifest: dict[str, Any], commit: str | None, repo: Path | None
                    ) -> tuple[str, str, str, str, int | None]:
    """(sha, date, subject, where the date came from, depth) of the commit the run is filed under."""
    given = commit is not None
    sha = (commit or str(manifest.get("git_commit") or "")).strip()
    if not given and sha.endswith("+dirty"):
        raise ResultsError(f"{run_dir} was measured on a tree with uncommitted changes (git_commit {sha}); "
                           "commit them and run again, or pass --commit SHA to file it under a commit anyway")
    if not SHORT_SHA.fullmatch(sha):
        raise ResultsError(f"{run_dir} names no commit (git_commit {sha or 'missing'!r}); "
                           "pass --commit SHA (a full 40-hex sha, or a revision of the repository here)")
    info = commit_info(sha, repo)
    if info:
        return info[0], info[1], info[2], "git", info[3]
    if not SHA.fullmatch(sha.lower()):
        raise ResultsError(f"commit {sha!r} is not a full 40-hex sha and this repository cannot resolve it; "
                           "pass --commit with the full sha")
    return sha.lower(), str(manifest.get("started_at") or ""), "", "run start", None


def utc(date: str) -> str:
    """An ISO date in UTC (so dates from different time zones sort as times); unparsable ones unchanged."""
    from datetime import UTC, datetime

    try:
        d = datetime.fromisoformat(date)
    except ValueError:
        return date
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")


def check_run(run_dir: Path) -> dict[str, Any]:
    """The run's manifest, refusing what is not a finished run (one line naming the fix)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ResultsError(f"run directory {run_dir} does not exist; pass a directory written by `scalebench run`")
    if not run_dir.is_dir():
        raise ResultsError(f"run directory {run_dir} is a file; pass a directory written by `scalebench run`")
    manifest = read_manifest(run_dir)
    if not manifest:
        raise ResultsError(f"{run_dir} has no {MANIFEST}; pass a directory written by `scalebench run`")
    if not any(r.ok for r in latest_records(run_dir).values()):
        raise ResultsError(f"{run_dir} has no finished point in {POINTS}; finish the run "
                           "(`scalebench run` resumes it) before filing it")
    return manifest


def file_run(run_dir: Path, store: Path, machine: str | None = None, commit: str | None = None,
             replace: bool = False, repo: Path | None = None, date: str | None = None,
             subject: str | None = None) -> Entry:
    """Copy a finished run into `store` under its machine, commit and spec; return the entry.

    Refuses an entry that exists unless `replace` (a re-measured commit replaces the old run).
    """
    run_dir, store = Path(run_dir), Path(store)
    manifest = check_run(run_dir)
    if store.exists() and not store.is_dir():
        raise UsageError(f"history store {store} is a file; pass a directory (it is created if missing)")
    spec = str((manifest.get("spec") or {}).get("name") or manifest.get("run") or run_dir.name)
    _check_name("spec name", spec, "rename the spec")
    hw = hardware(manifest)
    name = _check_name("machine name", machine, "pass another --machine") if machine else machine_name(hw)
    sha, cdate, csubject, source, depth = _resolve_commit(run_dir, manifest, commit, repo)
    dest = store / name / sha / spec
    if dest.exists() and not replace:
        raise ResultsError(f"{dest} already holds the {spec} run of commit {sha[:10]} on {name}; "
                           "pass --replace to overwrite it")
    _record_machine(store / name, name, hw, derived=machine is None)
    entry = {"commit": sha, "date": utc(date or cdate), "date_source": "given" if date else source,
             "subject": csubject if subject is None else subject, "depth": depth, "machine": name, "spec": spec,
             "calibration_s": manifest.get("calibration_s"), "hardware": hw, "source": str(run_dir)}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec}-", dir=dest.parent))
    try:
        for f in (MANIFEST, POINTS):
            shutil.copy2(run_dir / f, tmp / f)
        atomic_write_text(tmp / ENTRY, json.dumps(entry, indent=2))
        old = None
        if dest.exists():
            old = dest.with_name(f".{spec}-old-{os.getpid()}")
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _entry(dest)


def _record_machine(mdir: Path, name: str, hw: dict[str, Any], derived: bool) -> None:
    path = mdir / MACHINE
    if path.exists():
        try:
            known = json.loads(path.read_text(encoding="utf-8")).get("hardware") or {}
        except ValueError:
            known = {}
        if known and known != hw:
            log.warning("machine %s was %s; this run's host is %s (kept under the same name: an explicit "
                        "--machine is the user's claim that they are one machine)", name, known, hw)
        return
    mdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"name": name, "derived": derived, "hardware": hw}, indent=2))


def _entry(d: Path) -> Entry:
    e = json.loads((d / ENTRY).read_text(encoding="utf-8"))
    return Entry(machine=d.parent.parent.name, commit=d.parent.name, spec=d.name, date=str(e.get("date") or ""),
                 subject=str(e.get("subject") or ""), path=d, calibration_s=e.get("calibration_s"),
                 hardware=e.get("hardware") or {}, depth=e.get("depth"))


def entries(store: Path) -> list[Entry]:
    """Every filed run of the store, in commit order (`order_key`) per machine and spec."""
    store = Path(store)
    if not store.exists():
        raise ResultsError(f"history store {store} does not exist; pass a directory written by "
                           "`scalebench history add RUN_DIR --store DIR`")
    if not store.is_dir():
        raise ResultsError(f"history store {store} is a file; pass a directory written by `scalebench history add`")
    found = [_entry(p.parent) for p in store.glob(f"*/*/*/{ENTRY}")
             if (p.parent / POINTS).is_file() and not any(part.startswith(".") for part in p.parts[-4:-1])]
    if not found:
        raise ResultsError(f"history store {store} holds no runs; file one with "
                           "`scalebench history add RUN_DIR --store DIR`")
    return sorted(found, key=lambda e: (e.machine, e.spec, *order_key(e)))


def order_key(e: Entry) -> tuple[str, int, str]:
    """Commit order: committer date, then first-parent depth (ties within a second), then sha."""
    return e.date, e.depth if e.depth is not None else -1, e.commit
