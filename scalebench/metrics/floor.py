"""The data floor: what real data scores on each sample metric at the run's sample count.

A generator cannot be told apart from real data once its metric sits inside the spread that
real images themselves show against the same reference at the same n. Real images for the
floor must be unseen by the judge of that metric, and disjoint from the reference:

- feature-net metrics (FID, KID, precision, recall, diversity): the `train` split (the
  feature net never saw it; it is what a perfect generator would reproduce the law of);
- `ref_nll`: the `test` split (features ∪ reference), which the reference model never saw;
- memorisation: the `features` split, which no generator saw (the `reference` split sets
  the threshold, so it would score 1 % by construction).

The floor's **mean** is the metric of n real images drawn without replacement (averaged over
`DRAWS` draws when the pool is larger than n; drawn with replacement, and flagged, when it is
smaller). Its **sd** is the bootstrap standard error: the spread over `DRAWS` resamples of n
images with replacement (Efron 1979) — the spread a perfect generator's metric would show
from seed to seed at this n.

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
FORMAT = 2
POOLS = {"ref_nll": "test", "memorisation": "features", "memorisation_feat": "features"}
DEFAULT_POOL = "train"


def floor_key(dataset: Any, metrics: tuple[str, ...], n: int) -> dict[str, Any]:
    from scalebench.codehash import measuring_code_hash
    from scalebench.metrics import featurenets
    from scalebench.metrics.features import NAME as FEATURES
    from scalebench.metrics.refnll import REFERENCE
    from scalebench.zoo import checkpoint_hash

    if featurenets.net_of(dataset) == featurenets.DIGITS_CNN:
        features = checkpoint_hash(FEATURES)
    else:  # another net (Inception): its weights, when a metric uses it
        features = (featurenets.identity(dataset) if set(metrics) & set(featurenets.FEATURE_METRICS) else "unused")
    return {"format": FORMAT, "dataset": dataset.fingerprint(), "metrics": sorted(metrics), "n": n,
            "draws": DRAWS, "features": features, "ref": checkpoint_hash(REFERENCE),
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
    floor: dict[str, dict[str, Any]] = {}
    by_pool: dict[str, list[str]] = {}
    for m in wanted:
        by_pool.setdefault(POOLS.get(m, DEFAULT_POOL), []).append(m)
    for split, ms in sorted(by_pool.items()):
        pool = dataset.canonical(split)
        fixed = n <= len(pool)
        n_mean = DRAWS if fixed and n < len(pool) else (1 if fixed else DRAWS)
        means = [compute_quality(_draw(pool, n, i, replace=not fixed), dataset, device, ms, floors=False)
                 for i in range(n_mean)]
        boots = [compute_quality(_draw(pool, n, 10_000 + i, replace=True), dataset, device, ms, floors=False)
                 for i in range(DRAWS)]
        for m in ms:
            floor[m] = {"mean": statistics.fmean(r[m] for r in means), "sd": statistics.stdev(r[m] for r in boots),
                        "n": n, "draws": DRAWS, "pool": split, "pool_size": len(pool), "replace": not fixed}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"key": key, "floor": floor}, indent=2, default=str))
    log.info("data floor at n=%d for %s cached at %s", n, ",".join(wanted), path)
    return floor
