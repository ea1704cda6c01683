"""Test doubles for the harness itself; importing this module registers them.

`SleepyGenerator` ("sleepy") is a tiny generator whose every network call does a fixed
amount of real work (`blocks` elementwise layers tanh(h·w + c) on the batch); a planted
`slowdown` s adds s × blocks more layers (fractions carried over to the next call), so the
network really grows by s and the machine's noise scales with it. Elementwise layers are
invisible to the FLOP counter, so the planted slowdown models what only timing can catch
(overhead, syncs, copies) and the gate's FLOPs check cannot flag it. (Busy-waiting s × the
measured call time was tried first: on a contended CPU the spinning process is preempted
more, and a planted 30% read as 60–90%.) The A and B sides of a speed-gate experiment run the same code
and differ only by the environment variable ``SCALEBENCH_SLEEPY_SLOWDOWN``, read at
construction. It is registered only when this module is imported (``scalebench ab --import
scalebench.testing``), so it never shows up in a user's `scalebench list`.
"""

from __future__ import annotations

import math
import os

import torch

from scalebench.api import Axis, Budget, MethodCard
from scalebench.generators import GENERATORS

SLOWDOWN_ENV = "SCALEBENCH_SLEEPY_SLOWDOWN"


def _slowdown_from_env() -> float:
    raw = os.environ.get(SLOWDOWN_ENV, "0").strip() or "0"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{SLOWDOWN_ENV}={raw!r} is not a number; use e.g. 0.1 for a 10% slowdown") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{SLOWDOWN_ENV}={raw!r} must be a finite number ≥ 0 (0.1 = 10% slower)")
    return value


class SleepyGenerator:
    """Noise images after S×K cheap network calls, each (1 + slowdown)× as much work."""

    card = MethodCard(
        name="sleepy", family="test double", category="both-outer-S",
        S=Axis(meaning="outer steps", default=4, low=1, high=256),
        K=Axis(meaning="network calls per outer step", default=4, low=1, high=256),
        outer="S", paper="none (a timing test double)",
        notes=f"per call: `blocks` layers tanh(h·w + c), (1 + slowdown)× as many with {SLOWDOWN_ENV}",
    )

    def __init__(self, device: str = "cpu", slowdown: float | None = None, blocks: int = 40) -> None:
        self.device = device
        self.slowdown = _slowdown_from_env() if slowdown is None else float(slowdown)
        if not math.isfinite(self.slowdown) or self.slowdown < 0:
            raise ValueError(f"slowdown={slowdown!r} must be a finite number ≥ 0 (0.1 = 10% slower)")
        if blocks < 1:
            raise ValueError(f"blocks={blocks!r} must be a positive integer")
        self.blocks = blocks
        self._carry = 0.0  # fractional layers owed by the slowdown, paid on later calls
        gen = torch.Generator().manual_seed(0)
        self.w = torch.randn(64, generator=gen).to(device)
        self.c = (torch.randn(64, generator=gen) / 4).to(device)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        self._carry += self.blocks * (1 + self.slowdown)
        layers = int(self._carry)
        self._carry -= layers
        h = x
        for _ in range(layers):
            h = torch.tanh(torch.addcmul(self.c, h, self.w))
        return torch.sigmoid(h)

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        self.card.check_budget(budget)
        self.card.check_sampler(sampler)
        x = torch.rand(n, 64, generator=rng, device=self.device)
        for _ in range(budget.S * budget.K):
            x = self._call(x)
        return x.view(n, 1, 8, 8)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        return budget.S * budget.K


if "sleepy" not in GENERATORS:
    GENERATORS.register("sleepy", "scalebench.testing:SleepyGenerator")
