"""The one training loop every reference method uses (seeded, CPU-friendly, minibatch Adam).

Methods supply a network and a `loss(batch, gen) -> scalar` closure; this module owns
shuffling, the optimiser, cosine learning-rate decay, gradient clipping, logging and the
EMA of weights that sampling uses (Ho et al. 2020 keep an EMA too).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

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


def fit(model: torch.nn.Module, data: torch.Tensor | tuple[torch.Tensor, ...],
        loss_fn: Callable[[torch.nn.Module, tuple[torch.Tensor, ...], torch.Generator], torch.Tensor],
        recipe: Recipe, log_every: int = 500) -> tuple[torch.nn.Module, dict]:
    """Train `model` on `data` (tensors sharing the first dim) and return (EMA model, stats).

    `loss_fn(model, batch, gen)` must draw all its randomness from `gen` so a recipe is
    reproducible bit for bit on the same machine.
    """
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    gen = torch.Generator().manual_seed(recipe.seed)
    tensors = data if isinstance(data, tuple) else (data,)
    n = tensors[0].shape[0]
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)

    def lr_at(step: int) -> float:
        if step < recipe.warmup:
            return (step + 1) / recipe.warmup
        t = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
        return 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    model.train()
    t0, running, perm, pos = time.perf_counter(), 0.0, torch.randperm(n, generator=gen), 0
    for step in range(recipe.steps):
        if pos + recipe.batch_size > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + recipe.batch_size]
        pos += recipe.batch_size
        loss = loss_fn(model, tuple(t[idx] for t in tensors), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(recipe.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - decay)
            for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
                be.copy_(bm)
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if log_every and (step + 1) % log_every == 0:
            log.info("step %d/%d loss %.4f (%.0fs)", step + 1, recipe.steps, running, time.perf_counter() - t0)
    model.eval()
    return ema, {"final_loss": running, "train_seconds": round(time.perf_counter() - t0, 1),
                 "recipe": recipe.to_dict()}
