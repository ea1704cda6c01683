"""Measure one grid point: the code every executor runs (in-process, or in a Ray worker).

`execute_point(point) -> record` never raises: a failure becomes a record with status
"failed" and the error. It is a sequence of named steps, each a plain function:

    load → warm up → draw (the quality samples, timed, calls counted; then, untimed, the
    generator's optional per-batch `diagnostics`) → validate (the sample contract) → time
    (contiguous mode only: more repeats until the minimum count and duration) → cost (declared
    vs measured NFE, FLOPs, peak memory per batch) → preview → quality

In interleaved mode (the default) the record comes back with `timing.mode = "pending"` and
`time_rounds(pairs)` completes it: rounds over all the process's points, one batch per visit,
in a seeded shuffled order (`measure_points` does both for one process).

It imports nothing from the runner or the executors (no cycle), keeps loaded generators
and per-budget memos (FLOPs, test NLL) per process, sets torch's thread count once per
process from the point, and stores this process's machine calibration figure in every record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from scalebench.metrics.cost import CallCounter, count_flops, networks_of, peak_memory
from scalebench.provenance import now, provenance
from scalebench.record import SCHEMA_VERSION, Record
from scalebench.results import encode_preview
from scalebench.samples import check_samples
from scalebench.sweep.plan import Point
from scalebench.timing import calibration_figure, percentile, repeat_until, set_allocator, summarize, time_call

log = logging.getLogger(__name__)

PREVIEW = 16  # samples kept in each record for the report's sample grids
WARMUP_SEED, TIMING_SEED, PROBE_SEED = 1_000_003, 2_000_003, 12345
PROBE_N = 8  # samples the FLOP counter runs (FLOPs are per sample)

_GENERATORS: dict[tuple[str, str, bool, str, str], Any] = {}
_TEST_NLL: dict[tuple, tuple[float | None, str]] = {}
_FLOPS: dict[str, float] = {}
_PEAK: dict[tuple, tuple[int | None, str]] = {}
_WARM: set[tuple] = set()
_THREADS: list[int] = []
_NO_NETWORKS: set[str] = set()


class NonFiniteMetric(RuntimeError):
    """A metric came out NaN/Inf; the point is recorded as failed."""


@dataclass
class Loaded:
    gen: Any
    card: Any  # the MethodCard of this point's sampler
    dataset: Any
    counter: CallCounter


@dataclass
class Draw:
    samples: torch.Tensor
    times: list[float] = field(default_factory=list)  # seconds per full batch
    calls: list[int] = field(default_factory=list)  # counted network calls per full batch
    diagnostics: dict[str, float] | None = None  # batch-size-weighted means of gen.diagnostics()


# ---------------------------------------------------------------- steps

def set_threads(n: int, steady_allocator: bool = True) -> dict[str, object]:
    """Process settings, applied once per change: torch's thread count (the spec's `threads`) and
    the C allocator's thresholds (`[timing] steady_allocator`); returns the allocator in effect."""
    if _THREADS != [n]:
        torch.set_num_threads(n)
        _THREADS[:] = [n]
    return set_allocator(steady_allocator)


def get_loaded(name: str, device: str, compile: bool = False, args: str = "", replicate: str = "") -> Any:
    """The generator `name` on `device` built with `args` (canonical JSON of validated args) on the
    `replicate` checkpoint ("" = its own), loaded once per process (eager and compiled apart)."""
    from scalebench.generators import load_generator

    key = (name, device, compile, args, replicate)
    if key not in _GENERATORS:
        gen = load_generator(name, device=device, replicate=replicate, **(json.loads(args) if args else {}))
        if compile:
            compile_networks(gen)
        _GENERATORS[key] = gen
    return _GENERATORS[key]


def compile_networks(gen: Any, backend: str = "inductor") -> None:
    """Route each declared network's `forward` through `torch.compile`, in place.

    The forward, not the module, is compiled so that `__call__` (and with it the NFE counter's
    hooks) stays eager: compiled hooks would be guarded on and recompile whenever the counter
    attaches. A generator without `networks()` has nothing to compile (its points say so).
    """
    nets = networks_of(gen)
    if not nets:
        raise ValueError(f"compile = true needs networks() on {type(gen).__name__}; run it eager (compile = false)")
    for net in nets.values():
        net.forward = torch.compile(net.forward, backend=backend)


def load(point: Point) -> Loaded:
    from scalebench.data import get_dataset

    gen = get_loaded(point.generator, point.device, point.compile, point.args, point.replicate)
    card = gen.card.for_sampler(point.sampler)
    card.check_budget(point.budget)
    dataset = get_dataset(point.dataset or card.dataset, point.dataset_args)
    return Loaded(gen, card, dataset, CallCounter(networks_of(gen)))


def _autocast(device: str, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=getattr(torch, dtype))


def _rng(device: str, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _sampler(loaded: Loaded, point: Point, size: int, rng: torch.Generator):
    return lambda: loaded.gen.sample(size, point.budget, rng, point.sampler)


def _budget_key(loaded: Loaded, point: Point) -> tuple:
    """What a warm-up or a memory probe depends on: the loaded networks and the batch's shape and
    budget, not the seed (the probe draws with its own fixed rng)."""
    return (id(loaded.gen), point.fingerprint, point.sampler, point.S, point.K, point.batch_size, point.device,
            point.dtype, point.compile)


def warm_up(loaded: Loaded, point: Point, once: bool = False) -> list[float]:
    """Untimed-for-latency batches; their seconds are kept (a compiled point's first one holds the compile).

    `once`: skip it when this process already warmed the same networks at the same budget and batch
    (another seed of the point, or its quality pass before the timing rounds). What a warm-up leaves
    behind is process state — lazy initialisation, allocator pools, compiled graphs — so a second one
    at the same shapes buys nothing; in interleaved timing other points run between any warm-up and
    a timed batch anyway. Contiguous timing, which times right after it, always warms up. With
    `once` on eager networks the first warm-up batch is the memory probe (`memory`), whose seconds
    (under the probe's tracking) are what the record keeps for it.
    """
    key = _budget_key(loaded, point)
    if once and key in _WARM:
        return []
    out: list[float] = []
    if once and point.timing.warmup and not point.compile and key not in _PEAK:
        # the memory probe (one untimed batch at this budget and batch, needed anyway) is the first
        # warm-up: it runs the same ops at the same shapes, so a separate warm-up batch buys nothing
        out.append(time_call(lambda: memory(loaded, point), point.device)[1])
    rng = _rng(point.device, WARMUP_SEED + point.seed)
    out += [time_call(_sampler(loaded, point, point.batch_size, rng), point.device)[1]
            for _ in range(point.timing.warmup - len(out))]
    _WARM.add(key)
    return out


def draw(loaded: Loaded, point: Point) -> Draw:
    """The quality samples: n from the seed's generator in batches; full batches are timed and counted.

    A generator with `diagnostics` (api.HasDiagnostics) is asked about every batch after it is
    drawn, outside the timer and the call counter, with an rng restored to the batch's start.
    """
    rng, out, left, b = _rng(point.device, point.seed), Draw(torch.empty(0)), point.n, point.batch_size
    chunks, diags = [], []
    diagnose = getattr(loaded.gen, "diagnostics", None)
    while left > 0:
        size = min(b, left)
        start = rng.get_state() if diagnose is not None else None
        with loaded.counter:
            x, dt = time_call(_sampler(loaded, point, size, rng), point.device)
        check_samples(x, size, loaded.dataset.form, point.name)
        if diagnose is not None:
            again = torch.Generator(device=rng.device)
            again.set_state(start)
            diags.append((size, diagnose(x, point.budget, again, point.sampler)))
        chunks.append(x.float().cpu())
        if size == b:
            out.times.append(dt)
            out.calls.append(loaded.counter.count)
        left -= size
    out.samples = torch.cat(chunks)
    if diags:
        out.diagnostics = mean_diagnostics(diags)
    return out


def mean_diagnostics(batches: list[tuple[int, Any]]) -> dict[str, float]:
    """Batch-size-weighted mean of each diagnostic over the batches (same names in every batch, finite)."""
    names = sorted(batches[0][1])
    total = sum(size for size, _ in batches)
    out = {}
    for name in names:
        values = []
        for size, batch in batches:
            if sorted(batch) != names:
                raise ValueError(f"diagnostics() returned names {sorted(batch)} in one batch and {names} in another")
            value = float(batch[name])
            if not math.isfinite(value):
                raise NonFiniteMetric(f"diagnostic {name} is not finite")
            values.append(size * value)
        out[name] = math.fsum(values) / total
    return out


def validate(loaded: Loaded, point: Point, drawn: Draw) -> None:
    """The whole draw against the sample contract (each batch was checked as it came)."""
    check_samples(drawn.samples, point.n, loaded.dataset.form, point.name)


def time_more(loaded: Loaded, point: Point, drawn: Draw) -> None:
    """Extra timed repeats (own rng) until the minimum count and duration are met."""
    rng = _rng(point.device, TIMING_SEED + point.seed)
    before = len(drawn.times)

    def call() -> object:
        with loaded.counter:
            x = loaded.gen.sample(point.batch_size, point.budget, rng, point.sampler)
        drawn.calls.append(loaded.counter.count)
        return x

    drawn.times[:] = repeat_until(call, point.device, point.timing, drawn.times)
    del drawn.calls[len(drawn.times):]
    log.debug("%s: %drawn extra timing repeats", point.label(), len(drawn.times) - before)


def nfe_cost(loaded: Loaded, point: Point, drawn: Draw) -> tuple[dict[str, Any], list[str]]:
    """Declared NFE, NFE counted by hooks on every timed batch, and a warning when they differ."""
    declared = loaded.gen.nfe(point.budget, point.sampler)
    declared = None if declared is None else int(declared)
    warnings: list[str] = []
    if not loaded.counter.available:  # a limitation, not a fault: `scalebench check` is where it fails
        if point.generator not in _NO_NETWORKS:
            _NO_NETWORKS.add(point.generator)
            log.info("%s exposes no networks(); its NFE is declared only, not measured", point.generator)
        return {"nfe": declared, "nfe_declared": declared, "nfe_measured": None}, []
    measured = statistics.median(drawn.calls) if drawn.calls else None
    if measured is not None and float(measured).is_integer():
        measured = int(measured)
    if declared is not None and drawn.calls and any(c != declared for c in drawn.calls):
        warnings.append(f"nfe: declared {declared} but counted {sorted(set(drawn.calls))} network calls per batch")
    cost = {"nfe": declared if declared is not None else measured, "nfe_declared": declared,
            "nfe_measured": measured}
    if len(set(drawn.calls)) > 1:
        cost["nfe_measured_range"] = [min(drawn.calls), max(drawn.calls)]
    return cost, warnings


def flops(loaded: Loaded, point: Point, n: int = PROBE_N) -> float:
    """FLOPs per sample, counted once per budget (they do not depend on the seed) and kept on disk
    (`sweep/flopcache.py`: the user's cache, then the counts shipped for the shipped specs)."""
    from scalebench.sweep import flopcache

    key = flopcache.flops_key(point, n)
    memo = flopcache.digest(key)
    if memo not in _FLOPS:
        stored = flopcache.lookup(key)
        if stored is not None:
            _FLOPS[memo] = stored
        else:  # counted on the eager networks: the FLOP counter does not see inside compiled graphs
            gen = get_loaded(point.generator, point.device, args=point.args, replicate=point.replicate) \
                if point.compile else loaded.gen
            rng = _rng(point.device, PROBE_SEED)
            _FLOPS[memo] = count_flops(lambda: gen.sample(n, point.budget, rng, point.sampler), n)
            flopcache.remember(key, _FLOPS[memo])
    return _FLOPS[memo]


def memory(loaded: Loaded, point: Point) -> tuple[int | None, str]:
    """Peak bytes of one untimed batch (own fixed rng, so the same for every seed: probed once per
    budget and batch in a process), above the level before it."""
    key = _budget_key(loaded, point)
    if key not in _PEAK:
        _PEAK[key] = peak_memory(_sampler(loaded, point, point.batch_size, _rng(point.device, PROBE_SEED)),
                                 point.device)
    return _PEAK[key]


def test_nll(loaded: Loaded, point: Point) -> tuple[float | None, str]:
    """Mean test-split bits/dim at this budget (memoised: it does not depend on seed or sampler)."""
    if not hasattr(loaded.gen, "nll") or loaded.card.likelihood == "none":
        return None, "none"
    key = (point.generator, point.fingerprint, point.S, point.K, point.device, point.dtype)
    if key not in _TEST_NLL:
        x = loaded.dataset.canonical("test").to(point.device)
        with torch.inference_mode(), _autocast(point.device, point.dtype):
            v = loaded.gen.nll(x, point.budget)
        _TEST_NLL[key] = (None, "none") if v is None else (float(v.float().mean()), loaded.card.likelihood)
    return _TEST_NLL[key]


def quality(loaded: Loaded, point: Point, drawn: Draw, record: dict[str, Any]) -> None:
    wanted = tuple(m for m in point.metrics if m != "test_nll" and m in loaded.dataset.metrics)
    if wanted:  # a speed-only spec (metrics = []) never loads the metric nets
        from scalebench.metrics.floor import data_floor
        from scalebench.metrics.quality import compute_quality

        record["metrics"] = compute_quality(drawn.samples, loaded.dataset, device=point.device, metrics=wanted)
        floors = data_floor(loaded.dataset, wanted, len(drawn.samples), point.device)
        record["floors"] = {m: {"mean": f["mean"], "sd": f["sd"], "n": f["n"]} for m, f in floors.items()}
    if "test_nll" in point.metrics:
        value, kind = test_nll(loaded, point)
        record["nll_kind"] = kind
        if value is not None:
            record["metrics"]["test_nll"] = value
    bad = [k for k, v in record["metrics"].items() if v is None or not math.isfinite(v)]
    if bad:
        raise NonFiniteMetric(f"metric {bad[0]} is not finite")


# ---------------------------------------------------------------- timing rounds

NOISY_FACTOR = 3.0  # a point's round spread above this × the sweep's median spread is flagged
NOISY_MIN_S = 1e-3  # ...and above this absolute p90 − p10 per batch (sub-ms points jitter by nature)


def set_latency(record: dict[str, Any], point: Point, times: list[float], calls: list[int], mode: str,
                **extra: Any) -> None:
    """Latency (median over timed batches, per sample) and the raw samples into the record."""
    b = point.batch_size
    per_sample = [t / b for t in times]
    stats = summarize(per_sample)
    record["timing"] = {"mode": mode, "samples_s": times, "per_sample_s": per_sample, "batch": b,
                        "warmup": point.timing.warmup, "repeats": len(times), "calls": calls, **extra}
    record["cost"].update(latency_s=stats["median"], latency_p10_s=stats["p10"], latency_p90_s=stats["p90"])


def spread(times: list[float]) -> float:
    """Relative spread across rounds, (p90 − p10) / median: scale-free, so points compare."""
    s = summarize(times)
    return (s["p90"] - s["p10"]) / s["median"] if s["median"] > 0 else float("nan")


def time_rounds(pairs: list[tuple[Point, Record]], order_seed: int = 0,
                on_round: Callable[[int], None] | None = None) -> list[Record]:
    """Complete the pending records of `pairs`: `rounds` rounds, each timing one batch of every
    point in an order shuffled by Random(order_seed), so a slow minute lands on all points alike.

    Works on whatever points one process holds (the runner's, or a worker's own), and returns
    the completed records; a point that fails here becomes a failed record.
    """
    rounds = max(p.timing.rounds for p, _ in pairs) if pairs else 0
    order_rng = random.Random(order_seed)
    state: dict[str, tuple[Loaded, torch.Generator, list[float], list[int]]] = {}
    failed: dict[str, str] = {}
    for p, _ in pairs:
        try:
            set_threads(p.threads, p.timing.steady_allocator)
            loaded = load(p)
            with torch.inference_mode(), _autocast(p.device, p.dtype):
                warm_up(loaded, p, once=True)  # a resumed re-time in a fresh process still warms up
            state[p.point_id] = (loaded, _rng(p.device, TIMING_SEED + p.seed), [], [])
        except Exception as e:  # noqa: BLE001 — as in execute_point
            failed[p.point_id] = f"{type(e).__name__}: {e}"
    orders: list[list[int]] = []
    for r in range(rounds):
        order = [i for i, (p, _) in enumerate(pairs) if p.point_id in state and r < p.timing.rounds]
        order_rng.shuffle(order)
        orders.append(order)
        for i in order:
            p = pairs[i][0]
            loaded, rng, times, calls = state[p.point_id]
            try:
                set_threads(p.threads, p.timing.steady_allocator)
                with torch.inference_mode(), _autocast(p.device, p.dtype), loaded.counter:
                    times.append(time_call(_sampler(loaded, p, p.batch_size, rng), p.device)[1])
                calls.append(loaded.counter.count)
            except Exception as e:  # noqa: BLE001
                failed[p.point_id] = f"{type(e).__name__}: {e}"
                state.pop(p.point_id)
        if on_round:
            on_round(r)
    out = []
    for i, (p, done) in enumerate(pairs):
        rec = done.to_json()  # a fresh draft: the caller's record is left as it was
        rec.update(threads=p.threads, timing_key=p.timing_key)  # a re-time with other threads keeps the samples
        if p.point_id in failed:
            rec.update(status="failed", error=failed[p.point_id])
            out.append(rec)
            continue
        loaded, _, times, calls = state[p.point_id]
        set_latency(rec, p, times, calls, "interleaved", rounds=len(times), order_seed=order_seed,
                    positions=[o.index(i) for o in orders if i in o], spread=spread(times), noisy=False)
        if loaded.counter.available:
            nfe, warnings = nfe_cost(loaded, p, Draw(torch.empty(0), times, rec["timing"]["calls"]))
            rec["cost"].update(nfe)
            rec["warnings"] = sorted(set(rec["warnings"]) | set(warnings))
        out.append(rec)
    flag_noisy([r for r in out if r["status"] == "ok"])
    return [Record.from_json(r) for r in out]


def measure_points(points: list[Point], order_seed: int = 0) -> list[Record]:
    """Quality pass of every point, then the timing rounds over the interleaved ones (one process)."""
    recs = [execute_point(p) for p in points]
    pending = [(p, r) for p, r in zip(points, recs, strict=True) if r.timing.mode == "pending"]
    done = {r.point_id: r for r in time_rounds(pending, order_seed)}
    return [done.get(r.point_id, r) for r in recs]


def flag_noisy(records: list[dict[str, Any]]) -> None:
    """Mark points whose round spread is > NOISY_FACTOR × the median spread of these points."""
    spreads = [r["timing"]["spread"] for r in records if math.isfinite(r["timing"]["spread"])]
    if len(spreads) < 3:
        return
    typical = statistics.median(spreads)
    for r in records:
        s, t = r["timing"]["spread"], r["timing"]["samples_s"]
        wide = percentile(t, 90) - percentile(t, 10) > NOISY_MIN_S
        if math.isfinite(s) and s > NOISY_FACTOR * typical and wide:
            r["timing"]["noisy"] = True
            r["warnings"].append(f"timing: noisy, spread across rounds {s:.2f} vs the sweep's median "
                                 f"{typical:.2f}")


# ---------------------------------------------------------------- the point

def new_record(point: Point) -> dict[str, Any]:
    """The draft of a point's record (JSON form), filled in as the point is measured; `Record` at the end."""
    from scalebench.generators import default_checkpoint

    return {
        "schema": SCHEMA_VERSION, "point_id": point.point_id, "spec_hash": point.spec_hash,
        "generator": point.name, "sampler": point.sampler, "S": point.S, "K": point.K,
        "seed": point.seed, "n": point.n, "batch_size": point.batch_size, "device": point.device,
        "dtype": point.dtype, "compile": point.compile, "threads": point.threads,
        "sampled_threads": point.threads, "timing_key": point.timing_key,
        "fingerprint": point.fingerprint,
        **({"generator_name": point.generator} if point.entry_label else {}),
        **({"args": point.gen_args} if point.args else {}),
        "replicate": point.replicate or default_checkpoint(point.generator),
        "identity": dict(point.identity), "metrics": {}, "cost": {}, "timing": {}, "warnings": [],
        "status": "failed", "error": None, "started_at": now(),
    }


def execute_point(point: Point) -> Record:
    """Measure one grid point; never raises: failures become a record with status 'failed'."""
    t0 = time.perf_counter()
    record = new_record(point)
    try:
        record["allocator"] = set_threads(point.threads, point.timing.steady_allocator)
        record["calibration_s"] = calibration_figure(point.device)
        loaded = load(point)
        card = loaded.card
        record.update(family=card.family, category=card.category, outer=card.outer,
                      likelihood=card.likelihood, dataset=getattr(loaded.dataset, "name", card.dataset))
        with torch.inference_mode(), _autocast(point.device, point.dtype):
            interleaved = point.timing.mode == "interleaved"
            record["warmup_s"] = warm_up(loaded, point, once=interleaved)
            drawn = draw(loaded, point)
            validate(loaded, point, drawn)
            if not interleaved:
                time_more(loaded, point, drawn)
            nfe, warnings = nfe_cost(loaded, point, drawn)
            peak, peak_kind = memory(loaded, point)
            flops_per_sample = flops(loaded, point)
        record["warnings"] = warnings
        record["cost"] = {**nfe, "flops": flops_per_sample, "peak_mem_bytes": peak, "peak_mem_kind": peak_kind}
        if interleaved:  # latency comes from time_rounds; until then the record says so
            record["timing"] = {"mode": "pending", "batch": point.batch_size, "warmup": point.timing.warmup,
                                "draw_s": drawn.times, "draw_calls": drawn.calls}
        else:
            set_latency(record, point, drawn.times, drawn.calls, "contiguous")
        record["preview"] = encode_preview(loaded.dataset.quantise(drawn.samples[:PREVIEW]), loaded.dataset.form.levels)
        quality(loaded, point, drawn, record)
        if drawn.diagnostics is not None:
            record["diagnostics"] = drawn.diagnostics
        record["status"] = "ok"
    except Exception as e:  # noqa: BLE001 — a point's failure is data, the sweep goes on
        log.warning("%s failed: %s: %s", point.label(), type(e).__name__, e)
        record["error"] = f"{type(e).__name__}: {e}"
    for w in record["warnings"]:
        log.warning("%s: %s", point.label(), w)
    record["ended_at"] = now()
    record["wall_s"] = round(time.perf_counter() - t0, 3)
    record["provenance"] = provenance(point.device)
    return Record.from_json(record)
