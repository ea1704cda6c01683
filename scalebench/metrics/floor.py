"""The data floor: what real data scores on each sample metric at the run's sample count.

A generator cannot be told apart from real data once its metric sits inside the spread that
real images themselves show against the same reference at the same n. For each metric the
floor is the mean and standard deviation over `DRAWS` seeded draws of n real images that
are disjoint from the reference split: without replacement from `floor_pool` (train ∪
features) while n ≤ its size, with replacement above. Memorisation is the exception: its
real draws come from the `features` split only (images no generator saw), with replacement,
since the training images would be "copies" of themselves by definition.

Floors are cached on disk (JSON, atomic) keyed by everything that changes them, so a sweep
pays for each (n, metric set) once per cache directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
from collections.abc import Iterable
from typing import Any

import torch

log = logging.getLogger(__name__)

DRAWS = 10
FORMAT = 1
MEMORISATION = ("memorisation", "memorisation_feat")


def floor_key(dataset: Any, metrics: tuple[str, ...], n: int) -> dict[str, Any]:
    from scalebench.codehash import measuring_code_hash
    from scalebench.metrics.features import NAME as FEATURES
    from scalebench.metrics.refnll import REFERENCE
    from scalebench.zoo import checkpoint_hash

    return {"format": FORMAT, "dataset": dataset.fingerprint(), "metrics": sorted(metrics), "n": n,
            "draws": DRAWS, "features": checkpoint_hash(FEATURES), "ref": checkpoint_hash(REFERENCE),
            "code": measuring_code_hash()}


def _draw(pool: torch.Tensor, n: int, seed: int, replace: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if replace or n > len(pool):
        return pool[torch.randint(len(pool), (n,), generator=g)]
    return pool[torch.randperm(len(pool), generator=g)[:n]]


def data_floor(dataset: Any, metrics: Iterable[str], n: int, device: str = "cpu") -> dict[str, dict[str, float]]:
    """{metric: {"mean", "sd", "n", "draws"}} of real data at sample count n (cached)."""
    from scalebench.atomic import atomic_write_text
    from scalebench.metrics.fid import cache_dir
    from scalebench.metrics.quality import compute_quality

    wanted = tuple(sorted(set(metrics)))
    if not wanted:
        return {}
    key = floor_key(dataset, wanted, n)
    path = cache_dir() / "floors" / (hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
                                     .hexdigest()[:20] + ".json")
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))["floor"]
    pools = {"pool": dataset.canonical(dataset.floor_split), "unseen": dataset.canonical("features")}
    values: dict[str, list[float]] = {m: [] for m in wanted}
    for i in range(DRAWS):
        general = [m for m in wanted if m not in MEMORISATION]
        if general:
            res = compute_quality(_draw(pools["pool"], n, i, False), dataset, device, general, floors=False)
            for m in general:
                values[m].append(res[m])
        memo = [m for m in wanted if m in MEMORISATION]
        if memo:
            res = compute_quality(_draw(pools["unseen"], n, 10_000 + i, True), dataset, device, memo, floors=False)
            for m in memo:
                values[m].append(res[m])
    floor = {m: {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
                 "n": n, "draws": DRAWS} for m, v in values.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"key": key, "floor": floor}, indent=2, default=str))
    log.info("data floor at n=%d for %s cached at %s", n, ",".join(wanted), path)
    return floor
