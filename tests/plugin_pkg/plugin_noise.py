"""A third-party generator, discovered through the `scalebench.generators` entry point."""

from __future__ import annotations

import torch

from scalebench.api import Axis, Budget, MethodCard


class NoiseGenerator:
    card = MethodCard(name="plugin-noise", family="noise", category="neither", S=Axis.fixed(1),
                      K=Axis.fixed(1), paper="test plugin")

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.net = torch.nn.Hardtanh(0.0, 1.0)  # the "network": one call per batch

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"net": self.net}

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        self.card.check_budget(budget, sampler)
        self.card.check_sampler(sampler)
        return self.net(torch.rand(n, 1, 8, 8, generator=rng, device=self.device))

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        return 1
