"""A finished sweep's rerun without pandas: the summary and table it printed, remembered by what they read.

`scalebench run` ends by printing the run's summary and its scalability table. Both are a
function of the run directory's records, the scalebench package (cards, metrics, verdict rules,
formatting), the libraries that compute and render them, and the console they are drawn for;
deriving them takes pandas, scipy and ≈ 2 s here, which is most of a finished sweep's rerun.
The rendered text (escape codes included) is kept per run directory under
`$SCALEBENCH_CACHE/outputs/`, keyed by a hash of all of those: the bytes of points.jsonl, the
run directory's name (the rows' `run`), the title, the package digest (`plancache.package_digest`),
the Python and library versions, the SCALEBENCH_* environment and the console's width, colour
system and encoding. Records of a generator that is not built in make the output uncacheable
(a plugin's card lives outside the package). A miss renders afresh and stores the result; the
cache is only ever an exact replay.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalebench.paths import cache_dir
from scalebench.results import POINTS, latest_records
from scalebench.sweep.plancache import built_in, library_versions, package_digest

LIBRARIES = ("pandas", "numpy", "scipy", "pyarrow", "rich")
"""Libraries whose version can change the summary or the table (computation or rendering)."""


def _path(run_dir: Path) -> Path:
    where = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:24]
    return cache_dir() / "outputs" / f"{where}.json"


def _points_digest(run_dir: Path) -> str | None:
    try:
        return hashlib.sha256((Path(run_dir) / POINTS).read_bytes()).hexdigest()
    except OSError:
        return None


def _key(run_dir: Path, points_digest: str, title: str, console: Any) -> str | None:
    if not built_in({r.name for r in latest_records(run_dir).values()}):
        return None
    parts = {
        "points": points_digest, "run": Path(run_dir).name, "title": title,
        "package": package_digest(), "python": sys.version, "libraries": library_versions(LIBRARIES),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("SCALEBENCH_")},
        "console": [console.width, console.color_system, console.encoding, console.is_terminal,
                    console.no_color, console.legacy_windows],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def output_key(run_dir: Path, title: str, console: Any) -> str | None:
    """The key of what `run` prints for `run_dir` on `console`, or None when it may depend on a plugin."""
    digest = _points_digest(run_dir)
    return _key(run_dir, digest, title, console) if digest else None


def printed(run_dir: Path, title: str, console: Any, derive: Callable[[], str] | None) -> str:
    """What `run` prints for `run_dir`: the remembered text when its key still holds, else `derive()`
    (remembered unless points.jsonl changed while it ran); "" when nothing is recorded, or on a
    miss with no `derive` (after Ctrl-C the command stops rather than derive)."""
    digest = _points_digest(run_dir)
    if digest is None:
        return ""
    key = _key(run_dir, digest, title, console)
    text = cached_output(run_dir, key) if key else None
    if text is not None or derive is None:
        return text or ""
    text = derive()
    if key and _points_digest(run_dir) == digest:  # not if another run wrote meanwhile
        remember_output(run_dir, key, text)
    return text


def cached_output(run_dir: Path, key: str) -> str | None:
    """The text remembered for `run_dir` under `key`, or None (another key, none, or unreadable)."""
    try:
        data = json.loads(_path(run_dir).read_text(encoding="utf-8"))
        return str(data["text"]) if data.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remember_output(run_dir: Path, key: str, text: str) -> None:
    """Keep `text` as `run_dir`'s output under `key` (one entry per run directory); skipped if unwritable."""
    from scalebench.atomic import atomic_write_text

    try:
        path = _path(run_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"key": key, "run_dir": str(Path(run_dir).resolve()), "text": text}))
    except OSError:
        pass
