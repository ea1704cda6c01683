"""Synthetic latency histories with machine-like noise, for the step detector's tests and benchmark.

The noise is measured, not guessed: `measured_noise` takes run directories of the *same* code
(e.g. results/baseline-ci-speed/run-*) and returns the run-to-run scale of log median latency
(pooled over points) and the pool of per-run spreads. `simulate` then draws a series:

    log latency = log base + step (from `step_at` on) + σ · t₄ (scaled to sd σ)
                  + a disturbed run (probability 0.1): +|N(0, 2σ)| and 3× its spread

(heavy tails and slow, noisy runs are what a shared machine does). `write_store` files such
series as real run directories under a history store.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalebench.results import latest_records, read_manifest

DISTURBED_P = 0.1
T_DF = 4


@dataclass(frozen=True)
class Noise:
    sigma: float  # run-to-run sd of log median latency
    spreads: tuple[float, ...] = field(default=(0.05,))  # per-run (p90 − p10) / median, resampled
    source: str = "assumed"


def measured_noise(run_dirs: Iterable[Path]) -> Noise:
    """Pooled run-to-run sd of log latency per point over runs of the same code, and their spreads."""
    by_point: dict[tuple, list[float]] = {}
    spreads: list[float] = []
    dirs = list(run_dirs)
    for d in dirs:
        for r in latest_records(Path(d)).values():
            lat, p10, p90 = r.cost.latency_s, r.cost.latency_p10_s, r.cost.latency_p90_s
            if not r.ok or not lat:
                continue
            by_point.setdefault((r.generator, r.sampler, r.S, r.K), []).append(math.log(lat))
            if p10 and p90:
                spreads.append((p90 - p10) / lat)
    groups = [np.asarray(v) for v in by_point.values() if len(v) >= 2]
    if not groups:
        raise ValueError("need ≥ 2 runs of the same points to measure run-to-run noise")
    ss = sum(float(np.sum((g - g.mean()) ** 2)) for g in groups)
    dof = sum(len(g) - 1 for g in groups)
    commits = {read_manifest(Path(d)).get("git_commit", "?") for d in dirs}
    return Noise(math.sqrt(ss / dof), tuple(spreads),
                 f"{len(dirs)} runs × {len(groups)} points ({', '.join(sorted(c[:10] for c in commits))})")


@dataclass(frozen=True)
class Series:
    median: np.ndarray
    p10: np.ndarray
    p90: np.ndarray

    @property
    def spread(self) -> np.ndarray:
        return (self.p90 - self.p10) / self.median


def simulate(rng: np.random.Generator, n: int, noise: Noise, step_at: int | None = None, step: float = 0.0,
             base: float = 1e-3) -> Series:
    """One point's history of `n` runs; from run `step_at` on, latency is (1 + step)× higher."""
    t = rng.standard_t(T_DF, n) * math.sqrt((T_DF - 2) / T_DF)
    x = math.log(base) + noise.sigma * t
    spread = rng.choice(np.asarray(noise.spreads), n)
    disturbed = rng.random(n) < DISTURBED_P
    x = x + disturbed * np.abs(rng.normal(0.0, 2 * noise.sigma, n))
    spread = spread * np.where(disturbed, 3.0, 1.0)
    if step_at is not None:
        x[step_at:] += math.log1p(step)
    med = np.exp(x)
    # p10/p90 around the median, skewed right like timing samples
    return Series(med, med * (1 - 0.4 * spread), med * (1 + 0.6 * spread))


def fake_sha(i: int, salt: str = "") -> str:
    import hashlib

    return hashlib.sha1(f"{salt}commit-{i}".encode()).hexdigest()


def write_store(store: Path, n_commits: int, noise: Noise, seed: int = 0, step_at: int | None = None,
                step: float = 0.0, points: Sequence[tuple[str, int, int]] = (("gpt", 4, 1), ("diffusion", 1, 8)),
                machine: str = "synthetic-cpu", spec: str = "ci-speed", stepped: str | None = None,
                quality: bool = True, salt: str = "") -> list[str]:
    """A store of `n_commits` commits (one hour apart); returns the shas in order.

    The step applies to the point whose generator is `stepped` (default: the first), the others
    stay flat. With `quality`, each point also carries an `fid` that stays put.
    """
    rng = np.random.default_rng(seed)
    stepped = stepped or points[0][0]
    series = {p: simulate(rng, n_commits, noise, step_at if p[0] == stepped else None, step) for p in points}
    shas = [fake_sha(i, salt) for i in range(n_commits)]
    for i, sha in enumerate(shas):
        with tempfile.TemporaryDirectory(prefix="scalebench-synthetic-") as tmp:
            run = _write_run(Path(tmp) / spec, i, sha, series, float(np.exp(rng.normal(0, 0.02))), spec, quality)
            _file(run, store, machine, sha, i)
    return shas


def _date(i: int) -> str:
    return f"2026-01-{1 + i // 24:02d}T{i % 24:02d}:00:00+00:00"


def _write_run(run: Path, i: int, sha: str, series: dict[tuple[str, int, int], Series], cal: float, spec: str,
               quality: bool) -> Path:
    from scalebench.record import SCHEMA_VERSION, Record
    from scalebench.results import MANIFEST, RecordWriter

    run.mkdir(parents=True, exist_ok=True)
    (run / MANIFEST).write_text(json.dumps({
        "schema": SCHEMA_VERSION, "run": spec, "spec": {"name": spec}, "git_commit": sha, "device": "cpu",
        "versions": {"torch": "2.x"}, "provenance": {"device_name": "synthetic cpu"}, "started_at": _date(i),
        "calibration_s": 0.002 * cal}), encoding="utf-8")
    w = RecordWriter(run)
    for (gen, S, K), s in series.items():
        lat = float(s.median[i])
        w.append(Record.from_json({
            "schema": SCHEMA_VERSION, "point_id": f"{gen}-{S}-{K}", "spec_hash": "synthetic", "run": spec,
            "generator": gen, "sampler": "default", "S": S, "K": K, "seed": 0, "n": 32, "batch_size": 32,
            "device": "cpu", "dtype": "float32", "threads": 1, "status": "ok", "error": None,
            "metrics": {"fid": 20.0 + S + K} if quality else {},
            "cost": {"latency_s": lat, "latency_p10_s": float(s.p10[i]), "latency_p90_s": float(s.p90[i]),
                     "nfe": S * K},
            "timing": {"per_sample_s": [lat] * 12}, "provenance": {"git_commit": sha}, "started_at": _date(i)}))
    return run


def _file(run: Path, store: Path, machine: str, sha: str, i: int) -> None:
    from scalebench.history.store import file_run

    file_run(run, store, machine=machine, commit=sha, date=_date(i), subject=f"synthetic commit {i}")
