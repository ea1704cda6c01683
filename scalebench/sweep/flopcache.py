"""FLOPs per sample, counted once per budget and kept: in the user's cache, and shipped for the shipped specs.

Counting runs a few samples under torch's FlopCounterMode (≈ 0.5 s a budget on 2 cores, and ≈ 2 s
to import torch._dynamo the first time), which a fresh machine's quick sweep would spend on every
one of its ~70 budgets. A count depends only on the generator (its identity without the measuring
code and metric nets: target, sampling code, weights, args, dataset), the counter
(`metrics/cost.py`), the sampler, budget, device type, dtype and probe size: that is its key.
Counts live in `$SCALEBENCH_CACHE/flops/<generator>-<hash of key>.json` and, for every built-in
point of the shipped specs, in the package's `zoo/flops.json` (`make floors` runs `flopship.py`); an entry
is used only when the key stored in it equals today's, so a changed sampler is counted again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).resolve().parents[1] / "zoo" / "flops.json"
FORMAT = 1
NOT_COUNT_RELEVANT = ("measuring_code", "metric_nets", "version")
"""Identity parts a FLOP count does not depend on (they change with code that only measures)."""


def flops_key(point: Any, n: int) -> dict[str, Any]:
    """Everything a point's FLOPs per sample depend on (see the module docstring)."""
    from scalebench.codehash import module_hash

    return {"format": FORMAT, "generator": point.generator,
            "identity": {k: v for k, v in point.identity if k not in NOT_COUNT_RELEVANT},
            "counter": module_hash("scalebench.metrics.cost"), "sampler": point.sampler, "S": point.S,
            "K": point.K, "device": point.device.split(":")[0], "dtype": point.dtype, "probe_n": n}


def _canonical(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(key).encode()).hexdigest()[:20]


def _user_path(key: dict[str, Any]) -> Path:
    from scalebench.paths import cache_dir

    return cache_dir() / "flops" / f"{key['generator']}-{digest(key)}.json"


@functools.cache
def _shipped() -> dict[str, Any]:
    try:
        return json.loads(SHIPPED.read_text(encoding="utf-8"))["counts"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def lookup(key: dict[str, Any]) -> float | None:
    """The stored count for `key` (user cache, then the shipped table), if its stored key matches."""
    entries = []
    try:
        entries.append(json.loads(_user_path(key).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    entries.append(_shipped().get(digest(key)))
    for e in entries:
        if isinstance(e, dict) and _canonical(e.get("key") or {}) == _canonical(key):
            return float(e["flops_per_sample"])
    return None


def remember(key: dict[str, Any], flops_per_sample: float) -> None:
    """Keep a fresh count in the user's cache."""
    from scalebench.atomic import atomic_write_text

    path = _user_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"key": key, "flops_per_sample": flops_per_sample}))
