"""Shared fixtures: a cheap toy generator registered in-process, and a temp cache dir."""

from __future__ import annotations

import pytest
import torch

from scalebench.api import Axis, Budget, MethodCard
from scalebench.generators import GENERATORS


class ToyGenerator:
    """Uniform noise with knobs that fail on purpose: K=13 raises, K=7 yields a NaN sample."""

    card = MethodCard(name="toy", family="test", category="refinement", S=Axis.fixed(1),
                      K=Axis(meaning="steps", default=4, low=1, high=100), samplers=("a", "b"),
                      paper="none")

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.net = torch.nn.Linear(64, 64)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"net": self.net}

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        if budget.K == 13:
            raise RuntimeError("unlucky K")
        x = torch.rand(n, 64, generator=rng, device=self.device)
        for _ in range(budget.K):
            x = torch.sigmoid(self.net(x))
        x = x.view(n, 1, 8, 8)
        if budget.K == 7:
            x[0, 0, 0, 0] = float("nan")
        return x

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        return budget.K


if "toy" not in GENERATORS:
    GENERATORS.register("toy", ToyGenerator, aliases=("toy-alias",))


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's metric cache out of the user's home (shared per session for speed)."""
    monkeypatch.setenv("SCALEBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def toy_spec(**over: object) -> dict:
    spec = {"name": "toy", "samples": 20, "batch_size": 10, "metrics": [],
            # contiguous: one record per point, as most tests count; tests/test_interleaved.py covers rounds
            "timing": {"warmup": 0, "min_repeats": 2, "min_duration_s": 0.0, "mode": "contiguous"},
            "generators": [{"name": "toy", "samplers": ["a"], "K": [1, 2]}]}
    spec.update(over)
    return spec


INTERLEAVED = {"warmup": 0, "min_repeats": 2, "min_duration_s": 0.0, "mode": "interleaved"}
