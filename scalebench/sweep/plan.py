"""Grid expansion: a spec becomes grid points (generator × sampler × S × K × seed).

A point's identity is a hash of everything that changes its numbers (generator, target and
checkpoint hash, sampler, budget, seed, sample count, batch size, device, dtype, metrics,
timing settings, dataset fingerprint, feature-net checkpoint, scalebench version), so the
same spec resumes and a changed setting re-runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from scalebench import __version__
from scalebench.api import Budget, MethodCard
from scalebench.plugins import generator_class
from scalebench.registry import GENERATORS, RegistryError
from scalebench.sweep.spec import SpecError, SweepSpec
from scalebench.timing import TimingSettings


@dataclass(frozen=True)
class Point:
    generator: str
    sampler: str
    S: int
    K: int
    seed: int
    n: int
    batch_size: int
    device: str
    dtype: str
    metrics: tuple[str, ...]
    timing: TimingSettings
    fingerprint: str  # hash of the checkpoint / code identity of the generator and metrics
    spec_hash: str = ""

    @property
    def budget(self) -> Budget:
        return Budget(S=self.S, K=self.K)

    @property
    def point_id(self) -> str:
        d = asdict(self)
        d.pop("spec_hash")
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def label(self) -> str:
        return f"{self.generator}/{self.sampler} S={self.S} K={self.K} seed={self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def generator_fingerprint(name: str, card: MethodCard) -> str:
    """Identity of a generator's weights and of the metric nets it is judged by."""
    from scalebench.data import get_dataset
    from scalebench.zoo import checkpoint_hash

    target = GENERATORS.target(name)
    parts = {
        "target": target,
        "checkpoint": checkpoint_hash(card.name) if target.startswith("scalebench.") else "external",
        "features": checkpoint_hash("features"),
        "ref_gpt": checkpoint_hash("gpt"),
        "dataset": get_dataset(card.dataset).fingerprint(),
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def expand(spec: SweepSpec, only: tuple[str, ...] = ()) -> list[Point]:
    """All grid points of `spec` (optionally only the named generators), validated."""
    points: list[Point] = []
    wanted = set()
    for o in only:
        try:
            wanted.add(GENERATORS.canonical(o))
        except RegistryError as e:
            raise SpecError(f"--only: {e}") from None
    for entry in spec.generators:
        try:
            name = GENERATORS.canonical(entry.name)
        except RegistryError as e:
            raise SpecError(f"{spec.source}: {e}") from None
        if wanted and name not in wanted:
            continue  # not imported at all: a broken plugin left out with --only cannot stop the sweep
        card: MethodCard = generator_class(name).card
        fp = generator_fingerprint(name, card)
        S_values = entry.S or (card.S.default,)
        K_values = entry.K or (card.K.default,)
        for sampler in entry.samplers:
            try:
                s_name = card.check_sampler(sampler)
                for S in S_values:
                    for K in K_values:
                        card.check_budget(Budget(S=S, K=K))
            except ValueError as e:
                raise SpecError(f"{spec.source}: {e}") from None
            for S in S_values:
                for K in K_values:
                    for seed in entry.seeds:
                        points.append(Point(
                            generator=name, sampler=s_name, S=S, K=K, seed=seed, n=entry.samples,
                            batch_size=min(entry.batch_size, entry.samples), device=spec.device,
                            dtype=spec.dtype, metrics=entry.metrics, timing=spec.timing,
                            fingerprint=fp, spec_hash=spec.hash(),
                        ))
    if only and not points:
        raise SpecError(f"--only {' '.join(only)}: none of these generators is in {spec.source}")
    return points
