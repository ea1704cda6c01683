"""Grid expansion: a spec becomes grid points (generator × sampler × S × K × seed).

A point's identity is a hash of everything that changes its numbers: the settings (sampler,
budget, seed, sample count, batch size, device, dtype, threads, metrics, timing, compile) and the
generator's `identity` (`generator_identity`): its target, the content hashes of its
checkpoints **and their parents** (zoo index), or for a plugin the hash it declares or of
the files it names; the hash of its sampling code and of the measuring/metric code; the
metric nets' checkpoints; the dataset fingerprint; the scalebench version. So the same spec
resumes, and a changed setting, a retrained parent or a sampler fix re-runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
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
    fingerprint: str  # hash of `identity`
    threads: int = 1
    identity: tuple[tuple[str, str], ...] = ()  # the parts behind `fingerprint` (kept in records)
    spec_hash: str = ""
    compile: bool = False  # networks' forward through torch.compile

    @property
    def budget(self) -> Budget:
        return Budget(S=self.S, K=self.K)

    @property
    def point_id(self) -> str:
        d = asdict(self)
        d.pop("spec_hash")
        d.pop("identity")  # already summarised by `fingerprint`
        if not d["compile"]:
            d.pop("compile")  # eager points keep the ids they had before the setting existed
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def label(self) -> str:
        return f"{self.generator}/{self.sampler} S={self.S} K={self.K} seed={self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checkpoint_identity(cls: Any, card: MethodCard, target: str) -> dict[str, str]:
    """Content hashes of the weights behind a generator (never a constant placeholder)."""
    from scalebench.zoo import file_hash, lineage_hash

    declared = getattr(cls, "fingerprint", None)
    if callable(declared):  # a plugin that knows its own identity
        return {"declared": str(declared())}
    files = getattr(cls, "checkpoint_files", None)
    if files:  # a plugin that names its weight files
        out = {}
        for f in (files() if callable(files) else files):
            p = Path(f)
            out[str(p)] = file_hash(p.resolve()) if p.exists() else "missing"
        return out
    if target.startswith("scalebench."):
        return lineage_hash(getattr(cls, "checkpoints", (card.name,)))
    return {}  # a plugin without weights: its code hash identifies it


def generator_identity(name: str) -> dict[str, str]:
    """The parts of a generator's identity (see the module docstring); hashed into `fingerprint`."""
    from scalebench.codehash import generator_code_hash, measuring_code_hash
    from scalebench.data import get_dataset
    from scalebench.metrics.refnll import REFERENCE
    from scalebench.zoo import checkpoint_hash

    cls = GENERATORS.get(name)
    card: MethodCard = cls.card
    target = GENERATORS.target(name)
    parts = {"target": target, "version": __version__,
             "code": generator_code_hash(getattr(cls, "__module__", target.split(":")[0])),
             "measuring_code": measuring_code_hash(),
             "metric_nets": json.dumps({"features": checkpoint_hash("features"),
                                        "ref_nll": checkpoint_hash(REFERENCE)}, sort_keys=True),
             "dataset": json.dumps(get_dataset(card.dataset).fingerprint(), sort_keys=True, default=str)}
    parts.update({f"checkpoint:{k}": v for k, v in _checkpoint_identity(cls, card, target).items()})
    return parts


def fingerprint_of(identity: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


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
        identity = generator_identity(name)
        fp = fingerprint_of(identity)
        for sampler in entry.samplers:
            try:
                s_name = card.check_sampler(sampler)
                s_card = card.for_sampler(s_name)
                S_values = entry.S or (s_card.S.default,)
                K_values = entry.K or (s_card.K.default,)
                for S in S_values:
                    for K in K_values:
                        card.check_budget(Budget(S=S, K=K), s_name)
            except ValueError as e:
                raise SpecError(f"{spec.source}: {e}") from None
            for S in S_values:
                for K in K_values:
                    for seed in entry.seeds:
                        points.append(Point(
                            generator=name, sampler=s_name, S=S, K=K, seed=seed, n=entry.samples,
                            batch_size=min(entry.batch_size, entry.samples), device=spec.device,
                            dtype=spec.dtype, metrics=entry.metrics, timing=spec.timing,
                            fingerprint=fp, threads=spec.threads, identity=tuple(sorted(identity.items())),
                            spec_hash=spec.hash(), compile=spec.compile,
                        ))
    if only and not points:
        raise SpecError(f"--only {' '.join(only)}: none of these generators is in {spec.source}")
    return points
