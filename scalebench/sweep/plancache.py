"""A finished sweep's rerun without planning: the plan of a built-in spec, remembered by what it reads.

Planning imports every family (torch and the networks, ≈ 2 s here) to hash the generators'
identities, yet a rerun of a finished sweep only needs each point's `point_id` and `timing_key`
to see that nothing is left to do. Those are stored under the cache directory
(`$SCALEBENCH_CACHE/plans/`), keyed by a hash of everything planning reads for built-in
generators: the parsed spec (overrides included) and `--only`, every file of the installed
scalebench package (sources, checkpoints, card index, floors), the versions of the libraries
that a dataset or a metric net comes from, and the SCALEBENCH_* environment. A spec that names a
plugin, a dataset or generator args (which may point outside the package) gets no key: its plan
is made afresh every time. A cached plan only ever answers "all finished"; when anything is left
to run, the runner plans for real.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from scalebench.paths import cache_dir
from scalebench.sweep.spec import SweepSpec

PACKAGE_DIR = Path(__file__).resolve().parents[1]
LIBRARIES = ("torch", "numpy", "scikit-learn", "torchmetrics", "safetensors", "scipy")
"""Libraries whose version can change a plan's identities (the digits data, metric nets, loaders)."""


def _cache_root() -> Path:
    return cache_dir() / "plans"


@functools.cache
def package_digest() -> str:
    """sha256 of every file of the scalebench package (path and bytes; caches excluded): ≈ 20 MB, tens of ms."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(PACKAGE_DIR)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def built_in(names: Iterable[str]) -> bool:
    """Every name is a generator of the scalebench package itself (none a plugin, none unknown)."""
    from scalebench.generators import GENERATORS
    from scalebench.plugins import plugin_targets
    from scalebench.registry import RegistryError

    plugins = plugin_targets()
    for name in names:
        try:
            name = GENERATORS.canonical(name)
        except RegistryError:
            return False
        if name in plugins or not GENERATORS.target(name).startswith("scalebench."):
            return False
    return True


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    return {lib: _version(lib) for lib in names}


def plan_key(spec: SweepSpec, only: tuple[str, ...]) -> str | None:
    """The key of `spec`'s plan, or None when the plan may read something outside the package."""
    if not built_in(e.name for e in spec.generators):
        return None  # a plugin, or an unknown name (planning reports it)
    if any(e.args or e.dataset is not None or e.dataset_args for e in spec.generators):
        return None
    parts = {
        "spec": spec.to_dict(), "only": list(only), "package": package_digest(),
        "python": sys.version, "libraries": library_versions(LIBRARIES),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("SCALEBENCH_")},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cached_plan(key: str) -> list[tuple[str, str]] | None:
    """[(point_id, timing_key)] remembered for `key`, or None (never remembered, or unreadable)."""
    try:
        data = json.loads((_cache_root() / f"{key}.json").read_text(encoding="utf-8"))
        return [(str(p), str(t)) for p, t in data["points"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember_plan(key: str, points: list) -> None:
    """Store the plan's (point_id, timing_key) pairs; a cache that cannot be written is skipped."""
    from scalebench.atomic import atomic_write_text

    try:
        root = _cache_root()
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(root / f"{key}.json",
                          json.dumps({"points": [[p.point_id, p.timing_key] for p in points]}))
    except OSError:
        pass
