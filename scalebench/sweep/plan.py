"""Grid expansion: a spec becomes grid points (generator × replicate × sampler × S × K × seed).

A point's identity (`point_id`) is a hash of everything that changes its samples and quality
numbers: the settings (sampler, budget, seed, sample count, batch size, device, dtype, metrics,
compile) and the
generator's `identity` (`generator_identity`): its target, the content hashes of its
checkpoints **and their parents** (zoo index), or for a plugin the hash it declares or of
the files it names; the hash of its sampling code and of the measuring/metric code; the
metric nets' checkpoints; the dataset fingerprint; the scalebench version. So the same spec
resumes, and a changed setting, a retrained parent or a sampler fix re-runs.

Threads and the timing settings change only the latency, so they are not part of `point_id`
but of `timing_key`: results measured with any executor or thread count are reused on resume,
and a point whose record has another `timing_key` is re-timed (interleaved rounds) without being
re-sampled. (Thread count can change float reductions in the last bits; the record keeps the
threads it was sampled with in `identity`'s neighbour `sampled_threads`.)

A point on a replicate checkpoint (`replicates` in the spec) has `replicate` set to its name and
that checkpoint's lineage in place of the shipped one's; a point on the shipped checkpoint keeps
`replicate` empty, so its id and fingerprint are those it had before replicates existed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scalebench import __version__
from scalebench.api import Budget, MethodCard
from scalebench.generators import GENERATORS
from scalebench.params import args_identity, canonical_json, declared, validate_args
from scalebench.plugins import generator_class
from scalebench.registry import RegistryError
from scalebench.sweep.spec import GeneratorEntry, SpecError, SweepSpec
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
    entry_label: str = ""  # the rows' name when not `generator` (two entries of one generator with other args)
    args: str = ""  # the generator's validated args (canonical JSON; "" = none)
    dataset: str = ""  # the dataset the spec chose ("" = the card's)
    dataset_args: str = ""  # its validated args (canonical JSON)
    replicate: str = ""  # the zoo checkpoint loaded instead of the shipped one ("" = the shipped one)

    @property
    def name(self) -> str:
        """How this point's rows are named: the entry's label, else the generator's name."""
        return self.entry_label or self.generator

    @property
    def gen_args(self) -> dict[str, Any]:
        return json.loads(self.args) if self.args else {}

    @property
    def budget(self) -> Budget:
        return Budget(S=self.S, K=self.K)

    @property
    def point_id(self) -> str:
        """The quality identity: what the samples and metrics depend on (not threads or timing)."""
        d = asdict(self)
        for k in ("spec_hash", "identity", "threads", "timing"):  # identity: summarised by `fingerprint`
            d.pop(k)
        for k in ("compile", "entry_label", "args", "dataset", "dataset_args", "replicate"):
            if not d[k]:
                d.pop(k)  # points without these settings keep the ids they had before the settings existed
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def timing_key(self) -> str:
        """What the latency depends on beyond the point: its threads and the timing settings."""
        d = {"threads": self.threads, "timing": asdict(self.timing)}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def label(self) -> str:
        rep = f" replicate={self.replicate}" if self.replicate else ""
        return f"{self.name}/{self.sampler} S={self.S} K={self.K} seed={self.seed}{rep}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checkpoint_identity(cls: Any, card: MethodCard, target: str, replicate: str = "") -> dict[str, str]:
    """Content hashes of the weights behind a generator (never a constant placeholder); with a
    `replicate`, its lineage replaces that of the checkpoint it replicates."""
    from scalebench.zoo import file_hash, lineage_hash, replicate_base

    if replicate:
        base = replicate_base(replicate)
        return lineage_hash([replicate if c == base else c for c in getattr(cls, "checkpoints", ())])

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


def generator_identity(name: str, args: dict[str, Any] | None = None, dataset: str = "",
                       dataset_args: str = "", metrics: tuple[str, ...] | None = None,
                       replicate: str = "") -> dict[str, str]:
    """The parts of a generator's identity (see the module docstring); hashed into `fingerprint`.
    `args` are validated; `dataset` "" means the card's. The feature net the dataset chooses enters
    "metric_nets" (`featurenets.metric_nets`: digits' part is unchanged; Inception weights that are
    missing while `metrics` need them stop planning, MissingInception)."""
    from scalebench.codehash import generator_code_hash, measuring_code_hash
    from scalebench.data import get_dataset
    from scalebench.metrics.featurenets import metric_nets

    cls = GENERATORS.get(name)
    card: MethodCard = cls.card
    target = GENERATORS.target(name)
    ds = get_dataset(dataset or card.dataset, dataset_args)
    parts = {"target": target, "version": __version__,
             "code": generator_code_hash(getattr(cls, "__module__", target.split(":")[0])),
             "measuring_code": measuring_code_hash(),
             "metric_nets": metric_nets(ds, metrics),
             "dataset": json.dumps(ds.fingerprint(), sort_keys=True, default=str)}
    parts.update({f"checkpoint:{k}": v for k, v in _checkpoint_identity(cls, card, target, replicate).items()})
    parts.update(args_identity(declared(cls), args or {}))
    if replicate:
        parts["replicate"] = replicate
    return parts


def fingerprint_of(identity: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


ANY_DATASET = ""
"""A card's `dataset` for adapters that fit any dataset: the spec names it (`dataset = ...`)."""


def resolve_dataset(where: str, card: MethodCard, entry: GeneratorEntry) -> tuple[str, str]:
    """(dataset name, canonical JSON of its validated args) of an entry; "" name = the card's own."""
    from scalebench.data import DATASETS, dataset_args

    if entry.dataset is None:
        if card.dataset == ANY_DATASET:
            raise SpecError(f"{where}: {card.name} fits any dataset; name one with dataset = \"<name>\" "
                            f"(e.g. \"imagefolder\" with dataset_args = {{ path = \"...\" }}; known: {DATASETS.names()})")
        return "", ""
    try:
        ds = DATASETS.canonical(entry.dataset)
    except RegistryError as e:
        raise SpecError(f"{where}: {e}") from None
    if card.dataset not in (ANY_DATASET, ds):
        raise SpecError(f"{where}: {card.name} models {card.dataset!r}, not dataset = {entry.dataset!r}; "
                        f"drop the dataset key or use a generator that fits {entry.dataset!r}")
    args = dataset_args(where, ds, dict(entry.dataset_args))
    return ("", "") if ds == card.dataset and not args else (ds, canonical_json(args) if args else "")


def check_args_fit(cls: Any, where: str, args: dict[str, Any], dataset: str, dataset_args: str) -> None:
    """A generator class's own check of its args against the dataset's form (`api.ChecksArgs`), if any."""
    check = getattr(cls, "check_args", None)
    if callable(check):
        from scalebench.data import get_dataset

        check(where, args, get_dataset(dataset, dataset_args).form)


def resolve_replicates(where: str, cls: Any, entry: GeneratorEntry) -> tuple[str, ...]:
    """The `replicate` of each of an entry's checkpoints: "" for the shipped one the generator loads,
    else the replicate's name. The spec already checked they are zoo replicates of one checkpoint;
    here that checkpoint must be one this generator loads (`checkpoints`)."""
    if not entry.replicates:
        return ("",)
    from scalebench.zoo import replicate_base

    loads = tuple(getattr(cls, "checkpoints", ()) or ())
    base = replicate_base(entry.replicates[0])
    if base not in loads:
        what = f"loads {list(loads)}" if loads else "loads no zoo checkpoint"
        hint = f"; list replicates of {loads[0]!r} (e.g. {loads[0] + '-r1'!r})" if loads else "; remove replicates"
        raise SpecError(f"{where}: replicates = {list(entry.replicates)} are checkpoints of {base!r}, but "
                        f"{entry.name} {what}{hint}")
    return tuple("" if r == base else r for r in entry.replicates)


def _labels(spec: SweepSpec) -> list[str]:
    """One label per entry: its `label`, else its generator's name, made distinct for entries of one
    generator with other args or data (suffix: the basename of its first path argument, else a hash)."""
    keys = [(GENERATORS.canonical(e.name), e.args, e.dataset, e.dataset_args) for e in spec.generators]
    variants: dict[str, set] = {}
    for k in keys:
        variants.setdefault(k[0], set()).add(k)
    labels = []
    for e, k in zip(spec.generators, keys, strict=True):
        if e.label:
            labels.append(e.label)
        elif len(variants[k[0]]) == 1:
            labels.append(k[0])
        else:
            paths = [Path(str(v)).name for _, v in e.args if isinstance(v, str) and ("/" in v or Path(v).exists())]
            suffix = paths[0] if paths else hashlib.sha256(repr(k[1:]).encode()).hexdigest()[:6]
            labels.append(f"{k[0]}@{suffix}")
    seen: dict[str, tuple] = {}
    for lab, k in zip(labels, keys, strict=True):
        if seen.setdefault(lab, k) != k:
            raise SpecError(f"{spec.source}: two generator entries with other args are both named {lab!r}; "
                            "give each a distinct label = \"...\"")
    return labels


def expand(spec: SweepSpec, only: tuple[str, ...] = ()) -> list[Point]:
    """All grid points of `spec` (optionally only the named generators), validated.

    An `only` item is a generator name or label, or `NAME/SAMPLER` for one sampler of it (so one
    sampler can be added to a finished run without re-planning the others).
    """
    points: list[Point] = []
    wanted = set()
    samplers_wanted: dict[str, set[str]] = {}  # generator or label -> the samplers asked for (none: all)
    labelled = {e.label for e in spec.generators if e.label}
    for item in only:
        o, _, sampler = item.partition("/")
        if o in labelled:
            key = o
        else:
            try:
                key = GENERATORS.canonical(o)
            except RegistryError as e:
                raise SpecError(f"--only: {e}") from None
        wanted.add(key)
        if sampler:
            samplers_wanted.setdefault(key, set()).add(sampler)
    only = tuple(item.partition("/")[0] for item in only)
    for entry in spec.generators:
        try:
            GENERATORS.canonical(entry.name)
        except RegistryError as e:
            raise SpecError(f"{spec.source}: {e}") from None
    labels = _labels(spec)
    spec_hash = spec.hash()  # once: hashing the spec walks all of it
    for i, entry in enumerate(spec.generators):
        name = GENERATORS.canonical(entry.name)
        if only and name not in wanted and labels[i] not in only:
            continue  # not imported at all: a broken plugin left out with --only cannot stop the sweep
        cls = generator_class(name)
        card: MethodCard = cls.card
        where = f"{spec.source} generators[{i}] ({entry.name})"
        args = validate_args(where, declared(cls), dict(entry.args))
        dataset, ds_args = resolve_dataset(where, card, entry)
        check_args_fit(cls, where, args, dataset or card.dataset, ds_args)
        identities = {r: generator_identity(name, args, dataset, ds_args, tuple(entry.metrics), r)
                      for r in resolve_replicates(where, cls, entry)}
        label = labels[i] if labels[i] != name else ""
        args_json = canonical_json(args) if args else ""
        asked = samplers_wanted.get(labels[i], samplers_wanted.get(name, set())) if only else set()
        for sampler in asked:
            try:
                card.check_sampler(sampler)
            except ValueError as e:
                raise SpecError(f"--only {name}/{sampler}: {e}") from None
        chosen = [s for s in entry.samplers if not asked or (s or card.samplers[0]) in asked]
        if not chosen:
            raise SpecError(f"--only: {spec.source} runs {name} with samplers {list(entry.samplers)}, "
                            f"not {sorted(asked)}; name one of those or add it to the spec")
        for replicate, sampler in ((r, s) for r in identities for s in chosen):
            identity = identities[replicate]
            fp = fingerprint_of(identity)
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
                            spec_hash=spec_hash, compile=spec.compile, entry_label=label, args=args_json,
                            dataset=dataset, dataset_args=ds_args, replicate=replicate,
                        ))
    if only and not points:
        raise SpecError(f"--only {' '.join(only)}: none of these generators is in {spec.source}")
    return points
