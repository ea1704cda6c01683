"""Helpers shared by the reliability tests: a spec dict as a TOML file, a directory's bytes."""

from __future__ import annotations

import json
from pathlib import Path


def toml_of(spec: dict) -> str:
    """A spec dict as TOML (scalars, lists, [timing], [[generators]])."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in spec.items() if k not in ("timing", "generators")]
    if "timing" in spec:
        lines += ["[timing]", *(f"{k} = {json.dumps(v)}" for k, v in spec["timing"].items())]
    for g in spec.get("generators", []):
        lines += ["[[generators]]", *(f"{k} = {json.dumps(v)}" for k, v in g.items())]
    return "\n".join(lines) + "\n"


def snapshot(d: Path) -> dict[str, bytes | None]:
    """Every entry under `d` (hidden ones too): files → bytes, directories → None."""
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}
