"""Generators that cheat the quality metrics on purpose: a verbatim copier and a collapsed one.

They are the cases the data floor and `scalebench.flags` exist for: a copier wins FID (it *is*
real data) and, before issue 22, the reference NLL; a collapsed generator wins reference NLL and
precision. `register()` makes them sweepable by name.
"""

from __future__ import annotations

import torch

from scalebench.api import Axis, Budget, MethodCard
from scalebench.data.digits import Digits
from scalebench.generators import GENERATORS


class CopyGenerator:
    """Returns training images verbatim: memorisation must be 1.0 and the row flagged "copies"."""

    card = MethodCard(name="copier", family="test", category="neither", S=Axis.fixed(1), K=Axis.fixed(1))

    def __init__(self, device: str = "cpu") -> None:
        self.train = Digits().canonical("train")

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        return self.train[torch.randint(len(self.train), (n,), generator=rng)]

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        return 1


class CollapseGenerator:
    """Returns one real (unseen) digit repeated: perfect precision, no recall or diversity."""

    card = MethodCard(name="collapser", family="test", category="neither", S=Axis.fixed(1), K=Axis.fixed(1))

    def __init__(self, device: str = "cpu") -> None:
        self.one = Digits().canonical("features")[:1]  # not a training image: collapse without copying

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        return self.one.expand(n, -1, -1, -1).clone()

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        return 1


def register() -> None:
    for name, cls in (("copier", CopyGenerator), ("collapser", CollapseGenerator)):
        if name not in GENERATORS:
            GENERATORS.register(name, cls)
