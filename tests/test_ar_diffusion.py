"""The `ar_diffusion` family: per-row DDIM/DDPM steps, the skewed block schedule, the exact S = 1
reduction to plain diffusion, counted NFE, the per-row bound, and quality on the shipped checkpoint.
(The generic contract suite runs on it in tests/test_contract.py, parametrised over every family.)"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.data.digits import LEVELS, Digits
from scalebench.methods import ar_diffusion as A
from scalebench.methods.nets.unet import UNet
from scalebench.methods.samplers import diffusion as DS
from tests.conftest import independent_pixel_fid, seeded_rng, shipped_generator

GRID_S, GRID_K = (1, 2, 4, 8), (1, 2, 5, 10, 20)


gen = shipped_generator(A.ARDiffusionGenerator)


def test_card_and_protocols(gen: A.ARDiffusionGenerator) -> None:
    card = gen.card
    assert (card.name, card.category, card.outer, card.likelihood) == ("ar_diffusion", "both-outer-S", "S", "bound")
    assert card.S.values == (1, 2, 4, 8) and card.K.valid(1) and card.K.valid(1000) and not card.K.valid(0)
    assert card.samplers == ("ddim", "ddpm") and "Wu et al. 2023" in card.paper
    assert isinstance(gen, Generator) and isinstance(gen, HasLikelihood)


# ---------------------------------------------------------------- the shared maths

def test_ddim_step_per_row_moves_each_row_on_its_own_and_keeps_still_rows() -> None:
    """A per-row step equals the scalar step row by row, and rows with t = s come back bit for bit (η = 1 too)."""
    x = torch.randn(4, 1, 8, 8, generator=seeded_rng(0))
    x0 = torch.randn(4, 1, 8, 8, generator=seeded_rng(1)).clamp(-1, 1)
    t = [0.0, 0.0, 0.3, 0.6, 0.9, 1.0, 1.0, 0.5]
    s = [0.0, 0.0, 0.1, 0.4, 0.9, 0.8, 1.0, 0.0]
    for eta in (0.0, 1.0):
        out = DS.ddim_step(x, x0, t, s, seeded_rng(2), eta)
        noise = torch.randn(x.shape, generator=seeded_rng(2))
        for r in range(8):
            if t[r] == s[r]:
                assert torch.equal(out[:, :, r], x[:, :, r])
            else:
                a_t, s_t, a_s, k, c = DS.ddim_coefficients(t[r], s[r], eta)
                want = a_s * x0[:, :, r] + k * (x[:, :, r] - a_t * x0[:, :, r]) / s_t + c * noise[:, :, r]
                torch.testing.assert_close(out[:, :, r], want)
    with pytest.raises(ValueError, match="increase"):
        DS.ddim_step(x, x0, [0.5] * 8, [0.6] * 8)


def test_per_row_time_with_equal_rows_is_the_scalar_time() -> None:
    """The per-row FiLM path generalises the U-Net's scalar time: equal rows give the same output."""
    torch.manual_seed(0)
    net = UNet(**A.NET)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0.2, 0.5, 0.9])
    with torch.no_grad():
        torch.testing.assert_close(net(x, t[:, None].expand(3, 8)), net(x, t), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(net(x, t[:, None].expand(3, 4)), net(x, t), atol=1e-5, rtol=1e-5)


def test_skewed_block_schedule() -> None:
    """Block b walks its own K-step trailing schedule from call b⌈K/2⌉: exactly K steps per row, earlier
    blocks ahead (never noisier than later ones), S commits in order, NFE = K + (S−1)⌈K/2⌉."""
    for S in GRID_S:
        for K in GRID_K:
            table = A.row_time_table(A.ar_diffusion_starts(S, K), K)
            assert len(table) - 1 == K + (S - 1) * math.ceil(K / 2)
            assert table[0] == [1.0] * 8 and table[-1] == [0.0] * 8
            for col in zip(*table, strict=True):
                assert sum(a > b for a, b in pairwise(col)) == K  # K steps, never back up
                assert all(a >= b for a, b in pairwise(col))
            assert all(row == sorted(row) for row in table)  # noise grows with position
            assert A.commits(table) == [K + b * math.ceil(K / 2) for b in range(S)]
    assert A.row_time_table([0], 4) == [[t] * 8 for t in DS.sampler_times(4, "ddim")]


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
@pytest.mark.parametrize("K", [1, 5, 20])
def test_s1_is_plain_diffusion_bit_for_bit(gen: A.ARDiffusionGenerator, sampler: str, K: int) -> None:
    """At S = 1 the sampler is `samplers/diffusion.py`'s DDIM/DDPM loop on the same net with all rows at one t."""
    got = gen.sample(16, Budget(S=1, K=K), seeded_rng(3), sampler)
    rng = seeded_rng(3)
    x = DS.randn_like(torch.empty(16, 1, 8, 8), rng)
    x = DS.SAMPLERS[sampler](lambda x, t: gen.denoise(x, [t] * 8), x, DS.sampler_times(K, sampler), rng)
    assert torch.equal(got, ((x + 1) / 2).clamp(0, 1))


# ---------------------------------------------------------------- contract pieces

@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_nfe_declared_equals_counted_and_determinism(gen: A.ARDiffusionGenerator, sampler: str) -> None:
    calls: list[int] = []
    hook = gen.net.register_forward_hook(lambda *_: calls.append(1))
    try:
        for S, K in [(1, 3), (2, 5), (8, 2), (4, 1)]:
            calls.clear()
            a = gen.sample(3, Budget(S=S, K=K), seeded_rng(7), sampler)
            assert len(calls) == gen.nfe(Budget(S=S, K=K), sampler) == K + (S - 1) * math.ceil(K / 2)
            assert torch.equal(a, gen.sample(3, Budget(S=S, K=K), seeded_rng(7), sampler))
            assert a.shape == (3, 1, 8, 8) and 0 <= float(a.min()) and float(a.max()) <= 1
    finally:
        hook.remove()


@pytest.mark.parametrize("budget", [Budget(S=3, K=2), Budget(S=16, K=2), Budget(S=5, K=2), Budget(S=2, K=1001)])
def test_invalid_budget_and_sampler(gen: A.ARDiffusionGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)
    with pytest.raises(ValueError, match="sampler"):
        gen.sample(2, Budget(S=2, K=2), seeded_rng(0), "heun")


def test_nll_bound(gen: A.ARDiffusionGenerator) -> None:
    x = Digits().canonical("test")[:32]
    b = gen.nll(x, Budget(S=4, K=20))
    assert b.shape == (32,) and torch.equal(b, gen.nll(x, Budget(S=4, K=20)))
    assert bool(torch.isfinite(b).all()) and 0 < float(b.mean()) < math.log2(LEVELS)
    # the bound is not monotone at intermediate K (2.58 / 2.49 / 2.62 bits/dim at K = 2 / 10 / 100 on
    # these 32 images; docs/methods/ar_diffusion.md), but the fine-grid ELBO beats the 2-step one
    few = x[:8]
    assert float(gen.nll(few, Budget(S=1, K=1000)).mean()) < float(gen.nll(few, Budget(S=1, K=2)).mean()) - 0.3


def test_checkpoint_metadata_and_size(gen: A.ARDiffusionGenerator) -> None:
    from scalebench.zoo import checkpoint_path, read_index

    assert checkpoint_path("ar_diffusion").stat().st_size <= 2 * 1024 * 1024
    assert read_index()["ar_diffusion"]["parents"] == []
    assert gen.meta["train_seconds"] <= 600 and gen.meta["recipe"]["steps"] == A.RECIPE.steps
    assert gen.meta["times"] == "per-row" and math.isfinite(gen.meta["final_loss"])


# ---------------------------------------------------------------- quality on the shipped checkpoint

def test_quality_at_the_largest_budget_beats_independent_pixels(gen: A.ARDiffusionGenerator) -> None:
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    x = gen.sample(500, Budget(S=8, K=20), seeded_rng(0))
    fid = compute_quality(x, get_dataset("digits"), metrics=("fid",))["fid"]
    assert fid < 0.5 * independent_pixel_fid(500), fid  # 500 samples: ~3 vs ~52
