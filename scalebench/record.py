"""The typed result record of one grid point, its JSON form and its schema migrations.

Every reader of `points.jsonl` gets `Record`s (`results.iter_records` / `latest_records`), one per
point whatever the file holds (a point's quality pass and then its timing are two lines; the last
one wins). Fields the schema does not name survive a round trip in `extra`, so a record written by
a newer minor version is never truncated by an older reader. Like asv's results class: one
`SCHEMA_VERSION`, and `migrate()` upgrades older JSON step by step on load.

Schema 2 (this one) moved data floors out of `metrics` (`"<m>_floor"`, `"<m>_floor_sd"` keys in
schema 1) into `floors: {metric: {mean, sd, n}}`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from scalebench.errors import ResultsError

SCHEMA_VERSION = 2
FLOOR_SUFFIX, FLOOR_SD_SUFFIX = "_floor", "_floor_sd"


@dataclass(frozen=True)
class Floor:
    """What real data scores on a metric at the point's sample count (`metrics/floor.py`)."""

    mean: float
    sd: float
    n: int | None = None


@dataclass
class Cost:
    """What one sample cost: calls, FLOPs, memory and (once timed) latency per sample (None = not recorded)."""

    nfe: int | float | None = None
    nfe_declared: int | None = None
    nfe_measured: int | float | None = None
    flops: float | None = None
    peak_mem_bytes: int | None = None
    peak_mem_kind: str | None = None
    latency_s: float | None = None
    latency_p10_s: float | None = None
    latency_p90_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timing:
    """How latency was measured: the raw seconds per batch call and per sample, and the rounds."""

    mode: str | None = None  # "contiguous" (also when unset: older records) | "interleaved" | "pending"
    batch: int | None = None
    warmup: int | None = None
    samples_s: list[float] | None = None  # seconds per timed batch call
    per_sample_s: list[float] | None = None
    repeats: int | None = None
    calls: list[int] | None = None  # network calls counted in each timed batch
    rounds: int | None = None
    order_seed: int | None = None
    positions: list[int] | None = None  # this point's place in each round's shuffled order
    spread: float | None = None
    noisy: bool | None = None
    draw_s: list[float] | None = None  # the quality pass's batch times (before interleaved rounds)
    draw_calls: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Record:
    """One grid point's measurement (status "ok") or its failure (status "failed", with `error`)."""

    point_id: str
    status: str = "failed"
    error: str | None = None
    # what was measured
    generator: str | None = None  # the rows' name: the spec entry's label, else the registered name
    generator_name: str | None = None  # the registered name, when a label or args renamed the rows
    args: dict[str, Any] | None = None
    sampler: str = "default"
    S: int | None = None
    K: int | None = None
    seed: int | None = None
    n: int | None = None
    batch_size: int | None = None
    device: str | None = None
    dtype: str | None = None
    compile: bool = False
    threads: int | None = None
    replicate: str | None = None
    # the card
    family: str | None = None
    category: str | None = None
    outer: str | None = None
    likelihood: str | None = None
    dataset: str | None = None
    # identity
    spec_hash: str | None = None
    fingerprint: str | None = None
    identity: dict[str, str] = field(default_factory=dict)
    timing_key: str | None = None  # threads + timing settings the latency was measured with (`Point.timing_key`)
    sampled_threads: int | None = None  # threads of the quality pass (`threads` is the timing's)
    run: str | None = None
    # results
    metrics: dict[str, float] = field(default_factory=dict)
    floors: dict[str, Floor] = field(default_factory=dict)
    cost: Cost = field(default_factory=Cost)
    timing: Timing = field(default_factory=Timing)
    nll_kind: str | None = None
    diagnostics: dict[str, float] | None = None  # a generator's own report; never judged
    preview: dict[str, Any] | None = None  # 16 quantised samples (`results.encode_preview`)
    warnings: list[str] = field(default_factory=list)
    # provenance
    provenance: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    ended_at: str | None = None
    wall_s: float | None = None
    warmup_s: list[float] | None = None
    calibration_s: float | None = None
    allocator: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def pending(self) -> bool:
        """Quality measured, interleaved timing rounds not yet run."""
        return self.ok and self.timing.mode == "pending"

    @property
    def timing_mode(self) -> str:
        return self.timing.mode or "contiguous"

    @property
    def name(self) -> str:
        """The registered generator name (a label or args may have renamed `generator`)."""
        return str(self.generator_name or self.generator)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to points.jsonl (schema `SCHEMA_VERSION`)."""
        out: dict[str, Any] = {"schema": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                continue
            if f.name in ("cost", "timing"):
                value = _flat(value)
            elif f.name == "floors":
                value = {m: dataclasses.asdict(floor) for m, floor in value.items()}
            elif value is None and f.name in _OPTIONAL:
                continue
            out[f.name] = value
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        """A record from its JSON object (any schema: older ones are migrated first)."""
        data = migrate(data)
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["cost"] = _nested(Cost, data.get("cost") or {})
        kwargs["timing"] = _nested(Timing, data.get("timing") or {})
        kwargs["floors"] = {m: Floor(**f) for m, f in (data.get("floors") or {}).items()}
        extra = {k: v for k, v in data.items() if k not in names and k != "schema"}
        return cls(**kwargs, extra=extra)


_OPTIONAL = {"timing_key", "sampled_threads", "generator_name", "args", "diagnostics", "nll_kind", "run", "preview", "warmup_s", "calibration_s",
             "allocator", "replicate", "family", "category", "outer", "likelihood", "dataset", "ended_at", "wall_s"}
"""Fields left out of the JSON when unset (a failed point has no card; older records had no replicate)."""


def _flat(obj: Cost | Timing) -> dict[str, Any]:
    """A nested part as JSON: its recorded fields (None = not recorded), then its unknown keys."""
    out = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
           if f.name != "extra" and getattr(obj, f.name) is not None}
    return {**out, **obj.extra}


def _nested(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    return cls(**{k: v for k, v in data.items() if k in names}, extra={k: v for k, v in data.items() if k not in names})


def migrate(record: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a record's JSON to SCHEMA_VERSION (records without `schema` are pre-release v0)."""
    version = record.get("schema", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultsError(f"record schema {version!r} is newer than this scalebench ({SCHEMA_VERSION}); "
                           "upgrade scalebench")
    if version == 0:
        record = {**record, "schema": 1}
        record.setdefault("sampler", "default")
        record.setdefault("cost", {})
        record.setdefault("metrics", {})
    if record["schema"] == 1:
        metrics = dict(record.get("metrics") or {})
        floors = {}
        for name in list(metrics):
            base = name[: -len(FLOOR_SUFFIX)] if name.endswith(FLOOR_SUFFIX) else None
            if base is not None and base in metrics:
                sd = metrics.pop(base + FLOOR_SD_SUFFIX, None)
                floors[base] = {"mean": metrics.pop(name), "sd": sd, "n": record.get("n")}
        record = {"compile": False, **record, "schema": 2, "metrics": metrics, "floors": floors}  # before the
        # `compile` setting existed every point ran eager
    return record
