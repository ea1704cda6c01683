"""The data floor: what real data scores on each sample metric at the run's sample count.

A generator cannot be told apart from real data once its metric sits inside the spread that
real images themselves show at the same n. The floor's real images are never ones the metric's
own judge was trained on, and each of the `DRAWS` (200) resamples draws them **without
replacement** (duplicates would shrink k-NN radii and pairwise distances, and bias FID):

- feature-net metrics (FID, KID, precision, recall, diversity): the pool is the generators'
  `train` split ∪ the `reference` split, which the feature net never saw (it trained on
  `features`). Each draw re-splits the pool at random into a reference-sized set and n
  samples, so the spread includes the reference set's own variance (for a difference of two
  disjoint simple random samples that spread is the i.i.d. one, with no finite-pool shrinkage);
- `ref_nll`: the pool is `train` ∪ `reference`, which the reference model never saw (it
  trained on `features`); each draw is n of those images. The metric is a mean of per-image
  bits/dim, computed once, so the subsample spread is scaled by the finite-pool correction
  √((N−1)/(N−n)) to the spread of n fresh images; there is no reference set to redraw;
- memorisation (pixel and feature): the pool is the `reference` split, which neither the
  generators nor the feature net saw. Each draw holds out m = min(n, ⌊R/2⌋) reference images
  and sets the copy threshold from the other R − m (cross-fitting), so the threshold's own
  variance is in the spread. For n > R/2 the spread is that at m (larger than at n:
  conservative for `scalebench.flags`).

When a pool is smaller than the draw needs, images are drawn with replacement and the entry
says `replace: true`. The floor's mean and sd are the mean and sd over the draws.

Floors are cached on disk (JSON, atomic) keyed by everything that changes them, so a sweep
pays for each (n, metric set) once per cache directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

DRAWS = 200
FORMAT = 4  # 4: the code part hashes the metric and dataset code only (codehash.metric_code_hash)


def floor_key(dataset: Any, metrics: tuple[str, ...], n: int) -> dict[str, Any]:
    from scalebench.codehash import metric_code_hash
    from scalebench.metrics import METRICS, featurenets
    from scalebench.metrics.refnll import REFERENCE
    from scalebench.zoo import checkpoint_hash

    uses = [METRICS[m] for m in metrics if m in METRICS]
    if featurenets.net_of(dataset) == featurenets.DIGITS_CNN:
        features = featurenets.identity(dataset)  # the digit CNN's hash even when unused: caches keep their keys
    else:  # another net (Inception): its weights, when a metric uses it
        features = featurenets.identity(dataset) if any(m.feature_net for m in uses) else "unused"
    return {"format": FORMAT, "dataset": dataset.fingerprint(), "metrics": sorted(metrics), "n": n,
            "draws": DRAWS, "features": features,
            "ref": checkpoint_hash(REFERENCE) if any(m.reference_model for m in uses) else "unused",
            "code": metric_code_hash()}


def _indices(size: int, n: int, g: torch.Generator) -> torch.Tensor:
    """n distinct indices of range(size) (with replacement only when n > size)."""
    if n > size:
        return torch.randint(size, (n,), generator=g)
    return torch.randperm(size, generator=g)[:n]


def entry(values: list[float], n: int, pool: str, pool_size: int, replace: bool, scale: float = 1.0,
           **extra: Any) -> dict[str, Any]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) * scale, "n": n, "draws": len(values),
            "pool": pool, "pool_size": pool_size, "replace": replace, "without_replacement": not replace, **extra}


def feature_floor(dataset: Any, metrics: list[str], n: int, device: str) -> dict[str, dict[str, Any]]:
    """Feature-net metrics of n real images vs a redrawn reference, over `DRAWS` re-splits.

    Each metric's `on_features` function (`scalebench.metrics.METRICS`) scores every draw."""
    from scalebench.metrics import function, grouped
    from scalebench.metrics.fid import extractor_for, reference_features

    ref = reference_features(dataset, None, device).float().cpu()
    gen_split = dataset.canonical(dataset.generator_split)
    take = _indices(len(gen_split), min(len(gen_split), n + len(ref)), torch.Generator().manual_seed(0))
    with torch.no_grad():
        gen_feats = extractor_for(dataset, device)(dataset.quantise(gen_split[take]).to(device)).float().cpu()
    pool = torch.cat([gen_feats, ref])
    r, rest = len(ref), len(pool) - len(ref)
    replace = n > rest
    scorers = [(function(path), names) for path, names in grouped(metrics, "on_features").items()]
    values: dict[str, list[float]] = {m: [] for m in metrics}
    for i in range(DRAWS):
        g = torch.Generator().manual_seed(i)
        perm = torch.randperm(len(pool), generator=g)
        ref_i, samples = pool[perm[:r]], pool[perm[r:][_indices(rest, n, g)]]
        got: dict[str, float] = {}
        for score, names in scorers:
            got.update(score(samples, ref_i, dataset, device, names))
        for m in metrics:
            values[m].append(got[m])
    name = f"{dataset.generator_split}+{dataset.reference_split}, reference redrawn"
    return {m: entry(values[m], n, name, len(pool), replace, reference_size=r) for m in metrics}


def _mean_floor(per_image: torch.Tensor, n: int, pool: str) -> dict[str, Any]:
    """Floor of a per-image mean: `DRAWS` subsamples of n, spread scaled to n fresh images."""
    size = len(per_image)
    replace = n >= size
    values = []
    for i in range(DRAWS):
        g = torch.Generator().manual_seed(i)
        idx = torch.randint(size, (n,), generator=g) if replace else _indices(size, n, g)
        values.append(float(per_image[idx].double().mean()))
    scale = 1.0 if replace else math.sqrt((size - 1) / (size - n))  # finite-pool correction
    return entry(values, n, pool, size, replace, scale)


def ref_nll_floor(dataset: Any, metrics: list[str], n: int, device: str) -> dict[str, dict[str, Any]]:
    """`ref_nll` of n held-out real images (the reference model never saw them)."""
    from scalebench.metrics.refnll import HELD_OUT, reference_nll

    pool = torch.cat([dataset.quantise(dataset.canonical(s)) for s in HELD_OUT])
    return {"ref_nll": _mean_floor(reference_nll(pool, device).cpu(), n, "+".join(HELD_OUT))}


SHIPPED = Path(__file__).resolve().parents[1] / "zoo" / "floors"
"""Floors of the built-in datasets at the shipped specs' sample counts, as package data (`--ship`)."""


def _canonical(key: Any) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def floor_file(key: dict[str, Any]) -> str:
    """The file name of a floor: a hash of everything that changes it."""
    return hashlib.sha256(_canonical(key).encode()).hexdigest()[:20] + ".json"


def _read(path: Path, key: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The floor stored at `path` if its key is exactly `key` (verified, not trusted from the name)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data["floor"] if isinstance(data, dict) and _canonical(data.get("key")) == _canonical(key) else None


def data_floor(dataset: Any, metrics: Iterable[str], n: int, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """{metric: {"mean", "sd", "n", "draws", "pool", ...}} of real data at sample count n.

    Looked up in the user's cache, then in the floors shipped with the package (a fresh install
    does not spend ~15 s per sample count on them); each is used only if its stored key equals
    today's, else the floor is recomputed and cached.
    """
    from scalebench.atomic import atomic_write_text
    from scalebench.paths import cache_dir

    wanted = tuple(sorted(set(metrics)))
    if not wanted:
        return {}
    key = floor_key(dataset, wanted, n)
    path = cache_dir() / "floors" / floor_file(key)
    for where in (path, SHIPPED / path.name):
        found = _read(where, key)
        if found is not None:
            return found
    from scalebench.metrics import METRICS, function, grouped

    unknown = [m for m in wanted if m not in METRICS or not METRICS[m].floor]
    if unknown:
        raise ValueError(f"no data floor is defined for {unknown}; floors exist for "
                         f"{sorted(m for m, spec in METRICS.items() if spec.floor)}")
    floor: dict[str, dict[str, Any]] = {}
    with torch.no_grad():
        for path_, names in grouped(wanted, "floor").items():
            floor.update(function(path_)(dataset, names, n, device))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"key": key, "floor": floor}, indent=2, default=str))
    log.info("data floor at n=%d for %s cached at %s", n, ",".join(wanted), path)
    return floor


def shipped_needs() -> list[tuple[str, tuple[str, ...], int]]:
    """(dataset, metrics, n) of every floor a shipped spec's points ask for (built-in datasets only)."""
    from scalebench.specs import shipped
    from scalebench.sweep.plan import expand
    from scalebench.sweep.spec import load_spec

    need = set()
    for name in shipped():
        for p in expand(load_spec(name)):
            metrics = tuple(sorted(m for m in p.metrics if m != "test_nll"))
            if metrics and not p.dataset_args:
                need.add((p.dataset or "digits", metrics, p.n))
    return sorted(need)


def ship(device: str = "cpu") -> list[Path]:
    """Compute (or read from the cache) every floor `shipped_needs` lists into SHIPPED; drop stale files."""
    from scalebench.atomic import atomic_write_text
    from scalebench.data import get_dataset

    SHIPPED.mkdir(parents=True, exist_ok=True)
    written = []
    for name, metrics, n in shipped_needs():
        dataset = get_dataset(name)
        wanted = tuple(m for m in metrics if m in tuple(dataset.metrics))
        if not wanted:
            continue
        key = floor_key(dataset, tuple(sorted(wanted)), n)
        floor = data_floor(dataset, wanted, n, device)
        out = SHIPPED / floor_file(key)
        atomic_write_text(out, json.dumps({"key": key, "floor": floor}, indent=2, default=str) + "\n")
        written.append(out)
    for stale in set(SHIPPED.glob("*.json")) - set(written):
        stale.unlink()
    return written


if __name__ == "__main__":  # python -m scalebench.metrics.floor --ship
    import argparse

    ap = argparse.ArgumentParser(description="write the shipped data floors (scalebench/zoo/floors/)")
    ap.add_argument("--ship", action="store_true", required=True)
    ap.parse_args()
    for f in ship():
        print(f"wrote {f}")
