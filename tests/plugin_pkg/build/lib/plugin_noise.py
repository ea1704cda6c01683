"""A third-party generator, discovered through the `scalebench.generators` entry point."""

from __future__ import annotations

import torch

from scalebench.api import Axis, Budget, MethodCard


class NoiseGenerator:
    card = MethodCard(name="plugin-noise", family="noise", category="neither", S=Axis.fixed(1),
                      K=Axis.fixed(1), paper="test plugin")

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        return torch.rand(n, 1, 8, 8, generator=rng, device=self.device)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        return 1
