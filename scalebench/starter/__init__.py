"""`scalebench init`: a commented starter spec and a generator plugin skeleton for a user's own model.

The files are package data (`*.tmpl` beside this module, so they are neither imported nor linted as
part of scalebench) copied as they are; `tests/test_init.py` runs the contract suite and a sweep on
what they produce. Nothing is overwritten: if any target exists, nothing is written.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from scalebench.errors import UsageError

TEMPLATE_SUFFIX = ".tmpl"


def templates() -> dict[str, Path]:
    """Relative path of each file `init` writes → its template."""
    root = Path(str(files(__name__)))
    return {str(p.relative_to(root))[: -len(TEMPLATE_SUFFIX)]: p for p in sorted(root.rglob(f"*{TEMPLATE_SUFFIX}"))}


def write_starter(target: Path) -> list[Path]:
    """Write the starter files under `target` (created if missing); refuse, writing nothing, if any exists."""
    plan = {target / rel: src for rel, src in templates().items()}
    taken = [p for p in plan if p.exists() or p.is_symlink()]
    if taken:
        raise UsageError(f"{taken[0]} already exists; `scalebench init` never overwrites: pass another "
                         "directory (scalebench init DIR) or move it away")
    for dest, src in plan.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes())
    return list(plan)
