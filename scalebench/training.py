"""The one training loop every reference model uses: seeded, CPU-friendly, no global side effects.

`fit(step, state, data, recipe)` owns what every recipe shares — shuffled minibatches drawn
from one seeded generator, warm-up + cosine learning-rate decay on every optimiser, EMA copies
of chosen networks (Ho et al. 2020 sample from an EMA), logging, wall time and the final
loss — while the *step function* owns the maths of one update. A plain supervised model is
`loss_step(loss_fn)`; a GAN alternates two optimisers, an EBM keeps a Langevin replay buffer
in `state.extra`, a distilled student reads a frozen teacher from `state.extra`: all through
the same loop. Threads are an argument and torch's global thread count and RNG are restored
afterwards, so training inside a test or a sweep leaves the process as it found it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one training run; stored in the checkpoint's metadata."""

    steps: int = 3000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup: int = 100
    grad_clip: float = 1.0
    ema: float = 0.999
    seed: int = 0
    threads: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainState:
    """What a step function may touch: networks, their optimisers, EMA copies and anything else
    (a frozen teacher, a replay buffer, a target network) in `extra`."""

    nets: dict[str, torch.nn.Module]
    opts: dict[str, torch.optim.Optimizer]
    ema: dict[str, torch.nn.Module] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    step: int = 0


StepFn = Callable[[TrainState, tuple[torch.Tensor, ...], torch.Generator], "float | torch.Tensor"]
"""One update: `step(state, batch, gen) -> loss` (for logging). All randomness from `gen`."""


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch threads and restore the previous count afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global RNG for the block (network init, dropout) and restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def make_state(nets: Mapping[str, torch.nn.Module], recipe: Recipe, ema: tuple[str, ...] = (),
               lr: Mapping[str, float] | None = None, betas: tuple[float, float] = (0.9, 0.999),
               extra: Mapping[str, Any] | None = None) -> TrainState:
    """AdamW per network (learning rate `lr[name]` or the recipe's), EMA copies of the `ema` nets."""
    lr = lr or {}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=lr.get(k, recipe.lr), weight_decay=recipe.weight_decay,
                                 betas=betas) for k, m in nets.items()}
    emas = {}
    for k in ema:
        e = copy.deepcopy(nets[k]).eval()
        e.requires_grad_(False)
        emas[k] = e
    return TrainState(nets=dict(nets), opts=opts, ema=emas, extra=dict(extra or {}))


def optimise(state: TrainState, name: str, loss: torch.Tensor, grad_clip: float = 0.0) -> None:
    """Backward `loss` into net `name` and take one step of its optimiser (with optional clipping)."""
    opt = state.opts[name]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(state.nets[name].parameters(), grad_clip)
    opt.step()


def loss_step(loss_fn: Callable[[torch.nn.Module, tuple[torch.Tensor, ...], torch.Generator], torch.Tensor],
              net: str = "model", grad_clip: float = 1.0) -> StepFn:
    """The supervised step: one loss on one network."""

    def step(state: TrainState, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        loss = loss_fn(state.nets[net], batch, gen)
        optimise(state, net, loss, grad_clip)
        return loss

    return step


def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
            pe.lerp_(pm, 1 - decay)
        for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
            be.copy_(bm)


def fit(step: StepFn, state: TrainState, data: torch.Tensor | tuple[torch.Tensor, ...], recipe: Recipe,
        n_threads: int | None = None, log_every: int = 500) -> dict[str, Any]:
    """Run `recipe.steps` updates of `step` over shuffled minibatches of `data`; return stats.

    Stats (`final_loss`, `train_seconds`, `recipe`, `threads`) go into the checkpoint metadata.
    Bit-reproducible on one machine for a given recipe and thread count.
    """
    tensors = data if isinstance(data, tuple) else (data,)
    n = tensors[0].shape[0]
    n_threads = n_threads or recipe.threads

    def lr_at(i: int) -> float:
        if i < recipe.warmup:
            return (i + 1) / recipe.warmup
        t = (i - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
        return 0.5 * (1 + math.cos(math.pi * t))

    with threads(n_threads), seeded(recipe.seed):
        gen = torch.Generator().manual_seed(recipe.seed)
        scheds = [torch.optim.lr_scheduler.LambdaLR(o, lr_at) for o in state.opts.values()]
        for m in state.nets.values():
            m.train()
        t0, running, perm, pos = time.perf_counter(), 0.0, torch.randperm(n, generator=gen), 0
        for i in range(recipe.steps):
            if pos + recipe.batch_size > n:
                perm, pos = torch.randperm(n, generator=gen), 0
            idx = perm[pos:pos + recipe.batch_size]
            pos += recipe.batch_size
            state.step = i
            out = step(state, tuple(t[idx] for t in tensors), gen)
            loss = out.item() if isinstance(out, torch.Tensor) else float(out)
            for s in scheds:
                s.step()
            decay = min(recipe.ema, (1 + i) / (10 + i))
            for k, e in state.ema.items():
                _update_ema(e, state.nets[k], decay)
            running = 0.98 * running + 0.02 * loss if i else loss
            if log_every and (i + 1) % log_every == 0:
                log.info("step %d/%d loss %.4f (%.0fs)", i + 1, recipe.steps, running, time.perf_counter() - t0)
        for m in state.nets.values():
            m.eval()
    return {"final_loss": running, "train_seconds": round(time.perf_counter() - t0, 1),
            "recipe": recipe.to_dict(), "threads": n_threads}


def fit_model(model: torch.nn.Module, data: torch.Tensor | tuple[torch.Tensor, ...],
              loss_fn: Callable[[torch.nn.Module, tuple[torch.Tensor, ...], torch.Generator], torch.Tensor],
              recipe: Recipe, log_every: int = 500) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Supervised training of one network; returns (its EMA copy, stats)."""
    state = make_state({"model": model}, recipe, ema=("model",))
    stats = fit(loss_step(loss_fn, grad_clip=recipe.grad_clip), state, data, recipe, log_every=log_every)
    return state.ema["model"], stats


def train_replicate(name: str, train: Callable[..., Path], n: int, out_dir: Path | None = None) -> Path:
    """Train replicate `n` of checkpoint `name`: its module's `RECIPE` with training seed
    `RECIPE.seed + n`, saved as `<name>-r<n>` (zoo index: same parents, `replicate_of`, `seed`).

    Replicates measure training variance: same data, code and hyper-parameters, another seed
    (network init, minibatch order, training noise). Only a trainer whose module owns a `Recipe`
    and that saves the checkpoint `name` qualifies; any other save raises before writing.
    """
    from scalebench.errors import UsageError
    from scalebench.zoo import replicate_name, substitute

    if n < 1:
        raise UsageError(f"--replicate {n}: replicate numbers start at 1 (0 is the shipped checkpoint)")
    recipe = getattr(importlib.import_module(train.__module__), "RECIPE", None)
    if not isinstance(recipe, Recipe):
        raise UsageError(f"{name} has no training recipe of its own (RECIPE in {train.__module__}); "
                         "train a replicate of the checkpoint it loads instead")
    with substitute(name, replicate_name(name, n), exclusive=True) as used:
        path = train(recipe=dataclasses.replace(recipe, seed=recipe.seed + n), out_dir=out_dir)
    if name not in used:
        raise RuntimeError(f"training {name} saved no checkpoint named {name!r}")
    return path
