"""Sweep specs in TOML: parsing and validation that names the bad key and value.

Example::

    name = "quick"
    seeds = [0]
    samples = 1000          # samples per grid point for the quality metrics
    batch_size = 500
    device = "cpu"
    dtype = "float32"
    metrics = ["fid", "kid", "ref_nll", "diversity", "test_nll"]
    threads = 2             # torch threads of the measuring process (default: this machine's cores)
    compile = false         # torch.compile each network's forward (eager when false)
    executor = "local"      # or "ray" (with workers = 2, address = "auto" | "HOST:PORT", gpus_per_worker = 1)

    [timing]
    warmup = 1
    min_repeats = 3
    min_duration_s = 0.5

    [[generators]]
    name = "diffusion"
    samplers = ["ddim", "ddpm"]
    K = [1, 2, 5, 10, 20, 50]

    [[generators]]          # training variance: one row's points on each trained checkpoint
    name = "gpt"
    replicates = ["gpt", "gpt-r1", "gpt-r2"]   # zoo checkpoints: `scalebench train gpt --replicate N`

    [[generators]]          # a user's own model: args are the generator's declared params
    name = "diffusers"
    label = "my-unet"       # how its rows are named (default: the name, made unique per args)
    args = { path = "models/unet" }
    dataset = "imagefolder" # per entry or top level; default: the dataset the card names
    dataset_args = { path = "data/faces" }

Every generator entry may override `seeds`, `samples`, `batch_size` and `metrics`. `replicates`
(default: the generator's own checkpoint) lists zoo checkpoints trained with the same recipe and
other training seeds; every (sampler, S, K, seed) runs on each, so a verdict can include training
variance, not only the sampling seeds' variance.
Defaults live in `DEFAULTS` and `TimingSettings`, nowhere else.

`name` becomes the run directory `results/<name>` by default, so it must be one safe path
component (`RUN_NAME`): a name like `../x`, `/tmp/x` or `a/b` is rejected, not rewritten,
because a silently changed name would write somewhere the user did not ask for.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scalebench.errors import ScalebenchError
from scalebench.metrics import METRICS
from scalebench.timing import TIMING_MODES, TimingSettings


class SpecError(ScalebenchError, ValueError):
    """A spec problem, phrased as one line naming the key, the value and the fix."""


RUN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}")
"""A run name: one path component of 1–80 characters from A-Z a-z 0-9 . _ -, not starting with '.'."""
DEVICE = re.compile(r"cpu|mps|cuda(:[0-9]+)?")


DEFAULTS: dict[str, Any] = {
    "name": "sweep",
    "seeds": [0],
    "samples": 1000,
    "batch_size": 500,
    "device": "cpu",
    "dtype": "float32",
    "metrics": ["fid", "kid", "ref_nll", "diversity", "precision", "recall", "memorisation", "memorisation_feat",
                "test_nll"],
    "threads": None,  # None = the cores this process may use (`machine_threads()`)
    "compile": False,  # torch.compile the generator's networks (part of the point identity)
}
DTYPES = ("float32", "bfloat16", "float16")
EXECUTORS = ("local", "ray")
EXECUTOR_KEYS = {"executor", "workers", "address", "gpus_per_worker"}
GEN_KEYS = {"name", "samplers", "S", "K", "seeds", "samples", "batch_size", "metrics", "args", "label", "dataset",
            "dataset_args", "replicates"}
DATASET_KEYS = {"dataset", "dataset_args"}  # top level (every generator) or per generator entry
TOP_KEYS = set(DEFAULTS) | {"timing", "generators", "description"} | EXECUTOR_KEYS | DATASET_KEYS
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,79}")
"""A generator entry's label: how its rows are named in tables and the report."""
Args = tuple[tuple[str, Any], ...]
"""A spec's `args` table, frozen (sorted key/value pairs) so entries stay hashable."""


@dataclass(frozen=True)
class ExecutorSettings:
    """Where the points run. Not part of the spec's hash or any point's identity: a sweep started
    with one executor resumes with the other."""

    kind: str = "local"  # "local": this process; "ray": worker actors (sweep/ray_executor.py)
    workers: int = 2  # Ray workers (a local Ray starts this many)
    address: str | None = None  # None: a private local Ray; "auto" or "HOST:PORT": join that cluster
    gpus_per_worker: float = 1.0  # GPUs each Ray worker reserves when the device is cuda (0.5: two share one)
    retries: int = 1  # a point whose worker died is retried this many times on another worker


@dataclass(frozen=True)
class GeneratorEntry:
    name: str
    samplers: tuple[str | None, ...]
    S: tuple[int, ...] | None
    K: tuple[int, ...] | None
    seeds: tuple[int, ...]
    samples: int
    batch_size: int
    metrics: tuple[str, ...]
    args: Args = ()  # the generator's arguments (validated against its `params` when the grid is planned)
    label: str | None = None  # the rows' name when given (default: the generator's name, made unique)
    dataset: str | None = None  # None: the dataset the generator's card names
    dataset_args: Args = ()
    replicates: tuple[str, ...] = ()  # zoo checkpoints of one recipe, other training seeds (() = the own one)


def machine_threads() -> int:
    """The CPU cores this process may run on (its affinity mask, not the machine's total)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class SweepSpec:
    name: str
    device: str
    dtype: str
    timing: TimingSettings
    generators: tuple[GeneratorEntry, ...]
    threads: int = 1
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    compile: bool = False
    executor: ExecutorSettings = field(default_factory=ExecutorSettings, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("raw")
        d.pop("executor")  # how points run never changes what they measure
        for g in d["generators"]:  # specs without args keep the hash (and timing orders) they had before args
            for k in ("args", "label", "dataset", "dataset_args", "replicates"):
                if not g[k]:
                    g.pop(k)
        if not d["compile"]:
            d.pop("compile")  # eager specs keep the hash (and timing orders) they had before the setting
        return d

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:12]

    def timing_order_seed(self) -> int:
        """Seed of the timing rounds' shuffles: fixed by the spec, so a rerun draws the same orders."""
        return int(self.hash(), 16) % 2**31


def _int_list(where: str, value: Any, minimum: int = 1) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise SpecError(f"{where} = {value!r} must be a non-empty list of integers")
    bad = [v for v in value if v < minimum]
    if bad:
        raise SpecError(f"{where} = {value!r} has {bad[0]}; values must be ≥ {minimum}")
    return tuple(value)


def _positive_int(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"{where} = {value!r} must be a positive integer")
    return value


def _metrics(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where} = {value!r} must be a list of metric names ([] for a speed-only sweep)")
    unknown = [m for m in value if m not in METRICS or METRICS[m].kind != "quality"]
    if unknown:
        known = sorted(m for m, s in METRICS.items() if s.kind == "quality")
        raise SpecError(f"{where} has unknown quality metric {unknown[0]!r}; choose from {known}")
    return tuple(value)


def _args(where: str, value: Any) -> Args:
    """A TOML table of scalar arguments, frozen; what each key means is the generator's to check."""
    if not isinstance(value, dict):
        raise SpecError(f"{where} = {value!r} must be a table, e.g. args = {{ path = \"models/unet\" }}")
    for k, v in value.items():
        if not isinstance(v, str | int | float | bool):
            raise SpecError(f"{where}.{k} = {v!r} must be a string, number or boolean")
    return tuple(sorted(value.items()))


def _replicates(where: str, value: Any) -> tuple[str, ...]:
    """Zoo checkpoints, distinct, all replicates of one shipped checkpoint (whether the generator
    loads that checkpoint is checked when the grid is planned, which imports the generator)."""
    from scalebench.zoo import REPLICATE, checkpoint_path, read_index, replicate_base

    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise SpecError(f"{where}: replicates = {value!r} must be a non-empty list of zoo checkpoint names, "
                        "e.g. [\"diffusion\", \"diffusion-r1\"]")
    dup = sorted({v for v in value if value.count(v) > 1})
    if dup:
        raise SpecError(f"{where}: replicates lists {dup[0]!r} twice; list each checkpoint once")
    index = read_index()
    for v in value:
        if v not in index or not checkpoint_path(v).exists():
            m = REPLICATE.fullmatch(v)
            base = m["base"] if m else v
            fix = f"train it with `scalebench train {m['base']} --replicate {m['n']}`" if m else \
                "name a zoo checkpoint"
            known = sorted(k for k in index if replicate_base(k) == base)
            raise SpecError(f"{where}: replicates has {v!r}, which is not a zoo checkpoint; {fix}"
                            + (f" (zoo has {known})" if known else ""))
    bases = sorted({replicate_base(v) for v in value})
    if len(bases) > 1:
        raise SpecError(f"{where}: replicates = {value!r} mixes replicates of {bases[0]!r} and {bases[1]!r}; "
                        "list retrainings of one checkpoint")
    return tuple(value)


def _dataset(where: str, data: dict[str, Any], default: tuple[str | None, Args]) -> tuple[str | None, Args]:
    name, args = default
    if "dataset" in data:
        name = data["dataset"]
        if not isinstance(name, str) or not name:
            raise SpecError(f"{where}: dataset = {name!r} must be a dataset name such as \"digits\" or "
                            "\"imagefolder\" (see `scalebench list`)")
        args = ()  # a new dataset does not inherit the top-level dataset's args
    if "dataset_args" in data:
        if name is None:
            raise SpecError(f"{where}: dataset_args needs dataset = \"<name>\" beside it")
        args = _args(f"{where}: dataset_args", data["dataset_args"])
    return name, args


def _unknown_keys(where: str, got: dict, allowed: set[str]) -> None:
    extra = sorted(set(got) - allowed)
    if extra:
        import difflib

        close = difflib.get_close_matches(extra[0], sorted(allowed), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; allowed keys: {sorted(allowed)}"
        raise SpecError(f"{where}: unknown key {extra[0]!r}{hint}")


def _executor(source: str, data: dict[str, Any], over: dict[str, Any]) -> ExecutorSettings:
    """The spec's executor keys, overridden by the CLI's options (`over`, None = not given)."""
    got = {**{k: data[k] for k in EXECUTOR_KEYS if k in data}, **{k: v for k, v in over.items() if v is not None}}
    kind = got.get("executor", "local")
    if kind not in EXECUTORS:
        raise SpecError(f"{source}: executor = {kind!r}; use one of {list(EXECUTORS)}")
    workers = _positive_int(f"{source}: workers", got.get("workers", ExecutorSettings.workers))
    address = got.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise SpecError(f"{source}: address = {address!r}; use \"auto\" or \"HOST:PORT\" of a Ray head node")
    gpus = got.get("gpus_per_worker", ExecutorSettings.gpus_per_worker)
    if not isinstance(gpus, int | float) or isinstance(gpus, bool) or not 0 < gpus <= 64:
        raise SpecError(f"{source}: gpus_per_worker = {gpus!r} must be a number in (0, 64], e.g. 1 or 0.5")
    if kind == "local" and (address is not None or "workers" in got):
        key = "address" if address is not None else "workers"
        raise SpecError(f"{source}: {key} is a Ray setting; add executor = \"ray\" (or --executor ray)")
    return ExecutorSettings(kind=kind, workers=workers, address=address, gpus_per_worker=float(gpus))


def parse_spec(data: dict[str, Any], source: str = "<dict>", device: str | None = None,
               compile: bool | None = None, executor: dict[str, Any] | None = None,
               threads: int | None = None) -> SweepSpec:
    """Validate a spec dict. `device`, `compile`, `threads` and `executor` (CLI options: executor,
    workers, address, gpus_per_worker) override the spec's.

    Unset threads default to this process's cores, shared among the workers of a private local Ray
    (2 workers on 2 cores: 1 thread each; oversubscribed torch thread pools run ~10× slower here).
    Threads are part of every point's identity, so the local run equal to `--executor ray
    --workers 2` on 2 cores is `--threads 1`."""
    _unknown_keys(source, data, TOP_KEYS)
    top = {**DEFAULTS, **{k: v for k, v in data.items() if k in DEFAULTS}}
    if not isinstance(top["name"], str) or not top["name"]:
        raise SpecError(f"{source}: name = {top['name']!r} must be a non-empty string")
    if not RUN_NAME.fullmatch(top["name"]):
        shown = top["name"] if len(top["name"]) <= 100 else top["name"][:100] + "…"
        raise SpecError(f"{source}: name = {shown!r} is not a safe run directory name; use 1–80 characters "
                        "from A-Z a-z 0-9 . _ - not starting with '.', and --out DIR to write elsewhere")
    dev = device or top["device"]
    if not isinstance(dev, str) or not DEVICE.fullmatch(dev):
        raise SpecError(f"{source}: device = {dev!r} is not a device; use 'cpu' or 'cuda' (or 'cuda:N')")
    ex = _executor(source, data, executor or {})
    asked = threads if threads is not None else top["threads"]
    if asked is None:
        cores = machine_threads()
        threads = max(1, cores // ex.workers) if ex.kind == "ray" and ex.address is None else cores
    else:
        threads = _positive_int(f"{source}: threads" if threads is None else "--threads", asked)
    if not isinstance(top["compile"], bool):
        raise SpecError(f"{source}: compile = {top['compile']!r} must be true or false")
    if top["dtype"] not in DTYPES:
        raise SpecError(f"{source}: dtype = {top['dtype']!r} is not supported; use one of {list(DTYPES)}")
    timing_raw = data.get("timing", {})
    if not isinstance(timing_raw, dict):
        raise SpecError(f"{source}: [timing] must be a table, got {timing_raw!r}")
    allowed_t = set(TimingSettings.__dataclass_fields__)
    _unknown_keys(f"{source} [timing]", timing_raw, allowed_t)
    for k, v in timing_raw.items():
        if k == "mode":
            if v not in TIMING_MODES:
                raise SpecError(f"{source} [timing]: mode = {v!r}; use one of {list(TIMING_MODES)}")
        elif k == "steady_allocator":
            if not isinstance(v, bool):
                raise SpecError(f"{source} [timing]: steady_allocator = {v!r} must be true or false")
        elif not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
            raise SpecError(f"{source} [timing]: {k} = {v!r} must be a non-negative number")
    timing = TimingSettings(**{k: (v if k in ("mode", "steady_allocator") else float(v) if k == "min_duration_s"
                                   else int(v)) for k, v in timing_raw.items()})
    gens_raw = data.get("generators")
    if not isinstance(gens_raw, list) or not gens_raw:
        raise SpecError(f"{source}: needs at least one [[generators]] table with a name")
    top_dataset = _dataset(source, data, (None, ()))
    entries = []
    for i, g in enumerate(gens_raw):
        where = f"{source} generators[{i}]"
        if not isinstance(g, dict) or not isinstance(g.get("name"), str):
            raise SpecError(f"{where} needs name = \"<generator>\" (see `scalebench list`)")
        where = f"{source} generators[{i}] ({g['name']})"
        _unknown_keys(where, g, GEN_KEYS)
        samplers = g.get("samplers", [None])
        if not isinstance(samplers, list) or not samplers or not all(s is None or isinstance(s, str) for s in samplers):
            raise SpecError(f"{where}: samplers = {samplers!r} must be a list of sampler names")
        label = g.get("label")
        if label is not None and (not isinstance(label, str) or not LABEL.fullmatch(label)):
            raise SpecError(f"{where}: label = {label!r} must be 1–80 characters from A-Z a-z 0-9 . _ @ + - "
                            "starting with a letter or digit")
        dataset, dataset_args = _dataset(where, g, top_dataset)
        entries.append(GeneratorEntry(
            name=g["name"],
            samplers=tuple(samplers),
            S=_int_list(f"{where}: S", g["S"]) if "S" in g else None,
            K=_int_list(f"{where}: K", g["K"]) if "K" in g else None,
            seeds=_int_list(f"{where}: seeds", g.get("seeds", top["seeds"]), minimum=0),
            samples=_positive_int(f"{where}: samples", g.get("samples", top["samples"])),
            batch_size=_positive_int(f"{where}: batch_size", g.get("batch_size", top["batch_size"])),
            metrics=_metrics(f"{where}: metrics", g.get("metrics", top["metrics"])),
            args=_args(f"{where}: args", g["args"]) if "args" in g else (),
            label=label, dataset=dataset, dataset_args=dataset_args,
            replicates=_replicates(where, g["replicates"]) if "replicates" in g else (),
        ))
    return SweepSpec(name=top["name"], device=dev, dtype=top["dtype"], timing=timing,
                     generators=tuple(entries), threads=threads, source=source, raw=data,
                     compile=top["compile"] if compile is None else compile, executor=ex)


def load_spec(path: str | Path, device: str | None = None, compile: bool | None = None,
              executor: dict[str, Any] | None = None, threads: int | None = None) -> SweepSpec:
    """Read and validate a TOML spec (a path, or a shipped spec's name: `scalebench.specs.resolve_spec`);
    errors are SpecError with one line naming the problem."""
    from scalebench.specs import label, resolve_spec, shipped

    p = resolve_spec(path)
    if p.is_dir():
        raise SpecError(f"spec {str(p)!r} is a directory; pass a TOML file or a shipped spec ({', '.join(shipped())})")
    if not p.is_file():
        raise SpecError(f"spec file {str(p)!r} does not exist; pass a TOML file or a shipped spec "
                        f"({', '.join(shipped())})")
    try:
        data = tomllib.loads(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise SpecError(f"{p}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                        "save the spec as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{p}: malformed TOML ({e}); fix the syntax at that line") from None
    return parse_spec(data, source=label(p), device=device, compile=compile, executor=executor, threads=threads)
