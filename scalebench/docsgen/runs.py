"""The committed runs the docs are generated from, each read once.

A run is a directory `results/<name>/` (or one level deeper, `results/<group>/<name>/`) holding
`points.jsonl` and `manifest.json`. "Committed" means git tracks it or would (`git ls-files --cached
--others --exclude-standard`): a run that `.gitignore` keeps out of the repository (`results/quick`,
what `make run` writes) never reaches the docs. Outside a git checkout every run directory counts.
Only runs with a quality metric on some ok point count (a speed-only run has no curve to show).
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from scalebench.metrics import METRICS
from scalebench.record import Record
from scalebench.results import MANIFEST, POINTS, latest_records, read_manifest

RESULTS = "results"


@dataclass
class Run:
    """One committed run: its manifest and the latest record of each point (file order)."""

    name: str  # the path under results/, e.g. "baseline-full-cpu"
    path: Path
    manifest: dict[str, Any]
    records: list[Record] = field(repr=False)

    @property
    def label(self) -> str:
        return f"{RESULTS}/{self.name}"

    @property
    def spec_source(self) -> str:
        return str(self.manifest.get("spec_source") or (self.manifest.get("spec") or {}).get("source") or "")

    @property
    def spec_name(self) -> str:
        return str((self.manifest.get("spec") or {}).get("name") or "")

    @property
    def is_full(self) -> bool:
        """A run of the full spec (the shipped `full` spec, or a spec named full…, e.g. a trimmed copy)."""
        return Path(self.spec_source).stem.startswith("full") or self.spec_name.startswith("full")

    def family_records(self, family: str, ok: bool = True) -> list[Record]:
        """This run's records of one registered generator (all replicates), ok ones unless `ok=False`."""
        return [r for r in self.records if r.generator is not None and r.name == family and (r.ok or not ok)]

    @cached_property
    def families(self) -> set[str]:
        return {r.name for r in self.records if r.ok and r.generator is not None and has_quality(r)}

    def commands(self) -> list[str]:
        """The commands the manifest records (`command`, top level or per invocation), in order, unique."""
        found: list[str] = []
        for source in [self.manifest, *(self.manifest.get("invocations") or [])]:
            cmd = source.get("command") if isinstance(source, dict) else None
            if cmd:
                text = shlex.join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)
                if text not in found:
                    found.append(text)
        return found

    @cached_property
    def frame(self) -> Any:
        from scalebench.results import load_results

        return load_results(self.path)

    @cached_property
    def table(self) -> Any:
        """The run's measured scalability table (report/table.py), or the one-line reason there is none."""
        from scalebench.errors import ScalebenchError
        from scalebench.report.table import known_cards, scalability_table

        try:
            return scalability_table(self.frame, cards=known_cards(self.frame))
        except ScalebenchError as e:
            return str(e)


def has_quality(record: Record) -> bool:
    return any(m in METRICS and METRICS[m].kind == "quality" for m in record.metrics)


def _committable(root: Path) -> set[str] | None:
    """Paths under results/ that git tracks or would track; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", RESULTS],
                             cwd=root, capture_output=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {p for p in out.decode("utf-8", "surrogateescape").split("\0") if p}


def discover(root: Path) -> list[Run]:
    """Every committed run under `root/results` with quality values, sorted by name."""
    base = Path(root) / RESULTS
    if not base.is_dir():
        return []
    committable = _committable(Path(root))
    runs = []
    for points in sorted([*base.glob(f"*/{POINTS}"), *base.glob(f"*/*/{POINTS}")]):
        run_dir = points.parent
        rel = run_dir.relative_to(base).as_posix()
        if committable is not None and not {f"{RESULTS}/{rel}/{POINTS}", f"{RESULTS}/{rel}/{MANIFEST}"} <= committable:
            continue
        records = list(latest_records(run_dir).values())
        run = Run(rel, run_dir, read_manifest(run_dir), records)
        if run.families:
            runs.append(run)
    return sorted(runs, key=lambda r: r.name)
