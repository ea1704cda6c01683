"""The generator contract suite: `scalebench check NAME` and the parametrised test of every family.

Each check is a plain function `(ctx) -> detail` that raises `CheckFailed` (or any error)
when the generator breaks the contract; `run_checks` runs them all and never stops early,
so one report lists every broken rule. The budgets tried are each axis's smallest and
default values (cheap, yet they cover "fixed" and "varied" axes), for every sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from scalebench.api import Axis, Budget, MethodCard
from scalebench.samples import check_samples

N = 6  # samples per check call: small enough to be instant, more than one to catch batch bugs


class CheckFailed(AssertionError):
    """A contract rule is broken; the message says which and how."""


@dataclass
class Context:
    name: str
    device: str = "cpu"
    gen: Any = None
    args: dict[str, Any] = field(default_factory=dict)  # the generator's validated args (an adapter's path)
    card: MethodCard | None = None
    dataset: Any = None
    notes: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)  # the generator's validated args
    dataset_name: str = ""  # "" = the card's dataset
    dataset_args: str = ""  # canonical JSON of the dataset's validated args


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def _axis_probe(axis: Axis) -> list[int]:
    lo = axis.values[0] if axis.values else (axis.low or 1)
    return sorted({min(axis.values) if axis.values else lo, axis.default})


def budgets(card: MethodCard, sampler: str) -> list[Budget]:
    c = card.for_sampler(sampler)
    return [Budget(S=s, K=k) for s in _axis_probe(c.S) for k in _axis_probe(c.K)]


def _draw(ctx: Context, budget: Budget, sampler: str, seed: int, n: int = N) -> torch.Tensor:
    rng = torch.Generator(device=ctx.device).manual_seed(seed)
    with torch.inference_mode():
        return ctx.gen.sample(n, budget, rng, sampler)


def _each(ctx: Context) -> Iterator[tuple[str, Budget]]:
    assert ctx.card is not None
    for s in ctx.card.samplers:
        for b in budgets(ctx.card, s):
            yield s, b


# ---------------------------------------------------------------- checks

def check_card(ctx: Context) -> str:
    from scalebench.api import SEED_CATEGORIES
    from scalebench.generators import load_generator

    cls_card = getattr(ctx.gen, "card", None) if ctx.gen is not None else None
    if ctx.gen is None:
        ctx.gen = load_generator(ctx.name, ctx.device, **ctx.args)
        cls_card = getattr(ctx.gen, "card", None)
    if not isinstance(cls_card, MethodCard):
        raise CheckFailed(f"card is {type(cls_card).__name__}, not a scalebench.api.MethodCard")
    ctx.card = cls_card
    from scalebench.data import get_dataset

    if not (ctx.dataset_name or cls_card.dataset):
        raise CheckFailed(f"{cls_card.name} fits any dataset; name one with --dataset")
    ctx.dataset = get_dataset(ctx.dataset_name or cls_card.dataset, ctx.dataset_args)
    for s in cls_card.samplers:
        c = cls_card.for_sampler(s)
        if c.category not in SEED_CATEGORIES:
            raise CheckFailed(f"sampler {s!r}: category {c.category!r} is not one of {list(SEED_CATEGORIES)}")
        for axis in ("S", "K"):
            a: Axis = getattr(c, axis)
            if not a.valid(a.default):
                raise CheckFailed(f"sampler {s!r}: default {axis}={a.default} is not among its own valid values")
    return f"{cls_card.family}, {len(cls_card.samplers)} sampler(s): {', '.join(cls_card.samplers)}"


def check_form(ctx: Context) -> str:
    """Output is exactly the dataset's canonical form (rows, shape, dtype, finite, range)."""
    tried = 0
    for s, b in _each(ctx):
        x = _draw(ctx, b, s, seed=0)
        try:
            check_samples(x, N, ctx.dataset.form, ctx.name)
        except ValueError as e:
            raise CheckFailed(f"sampler {s!r} at S={b.S} K={b.K}: {e}") from None
        tried += 1
    f = ctx.dataset.form
    return f"{tried} budget(s) × sampler(s): ({N}, {', '.join(map(str, f.shape))}) {f.dtype} in [{f.low:g}, {f.high:g}]"


def check_determinism(ctx: Context) -> str:
    """Same rng seed → identical samples; another seed → different samples."""
    for s, b in _each(ctx):
        a, a2, c = _draw(ctx, b, s, 0), _draw(ctx, b, s, 0), _draw(ctx, b, s, 1)
        if not torch.equal(a, a2):
            raise CheckFailed(f"sampler {s!r} at S={b.S} K={b.K}: the same seed gave different samples; "
                              "draw all randomness from the rng argument")
        if torch.equal(a, c):
            raise CheckFailed(f"sampler {s!r} at S={b.S} K={b.K}: seeds 0 and 1 gave identical samples; "
                              "the rng argument is ignored")
    return "same seed identical, other seed different"


def check_global_rng(ctx: Context) -> str:
    """Sampling leaves torch's global RNG exactly as it found it."""
    for s, b in _each(ctx):
        before = torch.get_rng_state()
        cuda_before = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        _draw(ctx, b, s, 0)
        if not torch.equal(before, torch.get_rng_state()):
            raise CheckFailed(f"sampler {s!r} at S={b.S} K={b.K}: sample() used torch's global RNG; "
                              "pass generator=rng to every random call")
        if cuda_before is not None and any(not torch.equal(x, y) for x, y in
                                           zip(cuda_before, torch.cuda.get_rng_state_all(), strict=True)):
            raise CheckFailed(f"sampler {s!r} at S={b.S} K={b.K}: sample() used the global CUDA RNG")
    return "untouched"


def check_nfe(ctx: Context) -> str:
    """Declared NFE equals the forward calls counted by hooks on `networks()`."""
    from scalebench.metrics.cost import CallCounter, networks_of

    counter = CallCounter(networks_of(ctx.gen))
    if not counter.available:
        raise CheckFailed("networks() is missing or empty, so NFE cannot be counted; "
                          "return {name: module} of the networks sample() calls")
    seen = []
    for s, b in _each(ctx):
        declared = ctx.gen.nfe(b, s)
        with counter:
            _draw(ctx, b, s, 0)
        if declared is not None and int(declared) != counter.count:
            raise CheckFailed(f"sampler {s!r} at S={b.S} K={b.K}: declares NFE {declared} "
                              f"but made {counter.count} network calls")
        seen.append(f"{s} S={b.S} K={b.K}: {counter.count}" + ("" if declared is not None else " (undeclared)"))
    return "; ".join(seen)


def check_invalid_input(ctx: Context) -> str:
    """An invalid budget or sampler raises ValueError naming the valid values."""
    assert ctx.card is not None
    bad_sampler = "no-such-sampler"
    rng = torch.Generator(device=ctx.device).manual_seed(0)
    try:
        ctx.gen.sample(1, Budget(), rng, bad_sampler)
    except ValueError as e:
        if ctx.card.samplers[0] not in str(e):
            raise CheckFailed(f"unknown sampler raised ValueError without naming the valid ones: {e}") from None
    else:
        raise CheckFailed(f"sample(sampler={bad_sampler!r}) did not raise ValueError")
    tried = 0
    for s in ctx.card.samplers:
        c = ctx.card.for_sampler(s)
        for axis in ("S", "K"):
            a: Axis = getattr(c, axis)
            bad = (max(a.values) + 1) if a.values else (a.high + 1 if a.high else None)
            if bad is None:
                continue
            budget = Budget(**{axis: bad, ("K" if axis == "S" else "S"): getattr(c, "K" if axis == "S" else "S").default})
            try:
                ctx.gen.sample(1, budget, rng, s)
            except ValueError as e:
                if f"{axis}=" not in str(e):
                    raise CheckFailed(f"sampler {s!r}: invalid {axis}={bad} raised ValueError not naming {axis}: {e}") from None
            else:
                raise CheckFailed(f"sampler {s!r}: invalid {axis}={bad} did not raise ValueError")
            tried += 1
    return f"unknown sampler and {tried} out-of-range budget(s) rejected"


def check_nll(ctx: Context) -> str:
    """Where a likelihood is declared: finite bits/dim, below the uniform model's log2(levels)."""
    assert ctx.card is not None
    if ctx.card.likelihood == "none" or not hasattr(ctx.gen, "nll"):
        if ctx.card.likelihood != "none":
            raise CheckFailed(f"card declares likelihood {ctx.card.likelihood!r} but the generator has no nll()")
        return "no likelihood declared"
    x = ctx.dataset.canonical("test")[:64].to(ctx.device)
    levels = ctx.dataset.form.levels
    b = Budget(S=ctx.card.S.default, K=ctx.card.K.default)
    with torch.inference_mode():
        v = ctx.gen.nll(x, b)
    if v is None:
        raise CheckFailed(f"nll() returned None at the default budget S={b.S} K={b.K}")
    v = v.float()
    if v.shape != (len(x),) or not torch.isfinite(v).all():
        raise CheckFailed(f"nll() must return {len(x)} finite values, got shape {tuple(v.shape)}")
    mean = float(v.mean())
    if levels and mean >= math.log2(levels):
        raise CheckFailed(f"mean NLL {mean:.3f} bits/dim is not below log2({levels}) = {math.log2(levels):.3f}")
    return f"{ctx.card.likelihood}: {mean:.3f} bits/dim on 64 test images (uniform: {math.log2(levels or 2):.3f})"


def check_measured_point(ctx: Context) -> str:
    """One small point through the real measuring path (`sweep/measure.execute_point`)."""
    from scalebench.generators import GENERATORS
    from scalebench.params import canonical_json
    from scalebench.sweep.measure import _GENERATORS, measure_points
    from scalebench.sweep.plan import Point, fingerprint_of, generator_identity
    from scalebench.timing import TimingSettings

    assert ctx.card is not None
    name = GENERATORS.canonical(ctx.name)
    args = canonical_json(ctx.args) if ctx.args else ""
    _GENERATORS.setdefault((name, ctx.device, False, args), ctx.gen)
    c = ctx.card.for_sampler(None)
    identity = generator_identity(name, ctx.args, ctx.dataset_name, ctx.dataset_args)
    point = Point(generator=name, sampler=ctx.card.samplers[0], S=c.S.default, K=c.K.default, seed=0, n=2 * N,
                  batch_size=N, device=ctx.device, dtype="float32", metrics=(),
                  timing=TimingSettings(warmup=0, min_repeats=2, min_duration_s=0.0, rounds=2), fingerprint=fingerprint_of(identity),
                  threads=torch.get_num_threads(), identity=tuple(sorted(identity.items())), args=args,
                  dataset=ctx.dataset_name, dataset_args=ctx.dataset_args)
    rec = measure_points([point])[0]
    if not rec.ok:
        raise CheckFailed(f"the measuring path failed: {rec.error}")
    if rec.warnings:
        raise CheckFailed(f"the measuring path warned: {rec.warnings[0]}")
    cost = rec.cost
    return (f"ok: nfe {cost.nfe} (measured {cost.nfe_measured}), {cost.flops:.3g} FLOP/sample, "
            f"{cost.latency_s * 1e3:.3f} ms/sample")


CHECKS: tuple[tuple[str, Callable[[Context], str]], ...] = (
    ("card", check_card),
    ("canonical form", check_form),
    ("determinism", check_determinism),
    ("global RNG untouched", check_global_rng),
    ("declared NFE = counted NFE", check_nfe),
    ("invalid budget/sampler → ValueError", check_invalid_input),
    ("likelihood", check_nll),
    ("one point through the measuring path", check_measured_point),
)


def run_checks(name: str, device: str = "cpu", gen: Any = None, args: dict[str, Any] | None = None,
               dataset: str = "", dataset_args: str = "") -> list[CheckResult]:
    """Every check on generator `name` (loaded once, with validated `args`, on `dataset` or the card's);
    a failed `card` check stops the rest."""
    ctx = Context(name=name, device=device, gen=gen, args=dict(args or {}), dataset_name=dataset,
                  dataset_args=dataset_args)
    out: list[CheckResult] = []
    for label, fn in CHECKS:
        try:
            out.append(CheckResult(label, True, fn(ctx)))
        except Exception as e:  # noqa: BLE001 — a broken generator is what we are here to report
            detail = str(e) if isinstance(e, CheckFailed) else f"{type(e).__name__}: {e}"
            out.append(CheckResult(label, False, detail.splitlines()[0] if detail else type(e).__name__))
            if ctx.card is None:
                break
    return out
