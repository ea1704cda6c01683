"""Where scalebench keeps what it can recompute (reference features, floors, FLOP counts, plans,
rendered output): one rule, in a module that imports nothing heavy, so torch-free paths use it too."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$SCALEBENCH_CACHE, else ~/.cache/scalebench."""
    root = os.environ.get("SCALEBENCH_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "scalebench"
