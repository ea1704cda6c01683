"""Shared fixtures: a cheap toy generator registered in-process, a temp cache dir, a family's
shipped generator, seeded torch generators and the independent-pixel baseline every family's
quality test must beat."""

from __future__ import annotations

from typing import Any

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


def shipped_generator(cls: Any, threads: int = 1) -> Any:
    """A module-scoped `gen` fixture: `cls` loaded on CPU from its shipped checkpoint with `threads`
    torch threads (one by default: small nets, and the tests run beside other work). In a test
    module: `gen = shipped_generator(MyGenerator)`."""

    @pytest.fixture(scope="module", name="gen")
    def fixture() -> Any:
        torch.set_num_threads(threads)
        return cls("cpu")

    return fixture


def seeded_rng(seed: int) -> torch.Generator:
    """A CPU torch generator at `seed`: every test draws its randomness from one of these."""
    return torch.Generator().manual_seed(seed)


def independent_pixels(n: int, seed: int = 0) -> torch.Tensor:
    """`n` digits whose pixel j is pixel j of an independently drawn training image: each pixel
    from its training marginal, no structure between pixels — the trivial baseline a family's
    samples must beat."""
    from scalebench.data.digits import SIDE, Digits, from_tokens

    train = Digits().tokens("train")
    rows = torch.randint(0, len(train), (n, SIDE * SIDE), generator=seeded_rng(seed))
    return from_tokens(train.gather(0, rows))


def independent_pixel_quality(n: int, metrics: tuple[str, ...] = ("fid",), seed: int = 0) -> dict[str, float]:
    """`metrics` of `independent_pixels(n, seed)` against the digits reference (FID by default)."""
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    return compute_quality(independent_pixels(n, seed), get_dataset("digits"), metrics=metrics)


def independent_pixel_fid(n: int, seed: int = 0) -> float:
    """FID of `independent_pixels(n, seed)`: the number a family's FID at its largest budget must beat."""
    return independent_pixel_quality(n, ("fid",), seed)["fid"]


def fid_by_budget(gen: Any, budgets: dict[str, Budget], n: int, baseline_seed: int = 0) -> dict[str, float]:
    """FID of `n` samples of `gen` at each named budget (each drawn from `seeded_rng(0)`), and under
    "marginal" the independent-pixel baseline at the same n: what a family's quality tests compare."""
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    dataset = get_dataset("digits")
    out = {name: compute_quality(gen.sample(n, budget, seeded_rng(0)), dataset, metrics=("fid",))["fid"]
           for name, budget in budgets.items()}
    out["marginal"] = independent_pixel_fid(n, baseline_seed)
    return out
