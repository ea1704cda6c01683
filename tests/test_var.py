"""The `var` family: the pyramid tokeniser and its flat layout, the block-causal mask (directly and
through the network), one call per scale, cached = uncached decoding, the likelihood bound, and
quality on the shipped checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.data.digits import LEVELS, Digits, to_tokens, upsample
from scalebench.methods import var
from scalebench.methods.samplers import autoregressive as ar
from scalebench.metrics.cost import CallCounter
from tests.conftest import fid_by_budget, seeded_rng, shipped_generator

gen = shipped_generator(var.VARGenerator)


def test_card_and_protocols(gen: var.VARGenerator) -> None:
    card = var.VARGenerator.card
    assert card.name == "var" and card.category == "sequence" and card.likelihood == "bound"
    assert card.S.values == (1, 2, 3, 4, 5, 6) and card.S.default == 6 and card.K.is_fixed
    assert card.samplers == ("parallel",) and "Tian" in card.paper
    assert isinstance(gen, Generator) and isinstance(gen, HasLikelihood)
    assert gen.meta["sides"] == list(var.SIDES) == [1, 2, 3, 4, 6, 8]


@pytest.mark.parametrize("budget", [Budget(S=7), Budget(S=64), Budget(S=6, K=2)])
def test_invalid_budget_raises(gen: var.VARGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="var"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)


def test_unknown_sampler_raises(gen: var.VARGenerator) -> None:
    with pytest.raises(ValueError, match="sampler"):
        gen.sample(2, Budget(S=6), seeded_rng(0), sampler="greedy")


# ---------------------------------------------------------------- the pyramid and the mask

def test_layout_and_pyramid_round_trip() -> None:
    """The flat chain is the dataset's pyramid view map by map; its last map is the image itself,
    and the rows fed for scale k are map k−1 nearest-upsampled to side s_k."""
    assert var.OFFSETS == (0, 1, 5, 14, 30, 66, 130) and var.N_TOKENS == 130
    x = Digits().canonical("test")[:32]
    flat = var.pyramid_tokens(x)
    assert flat.shape == (32, 130) and flat.min() >= 0 and flat.max() < LEVELS
    pyr = Digits().pyramid("test", var.SIDES)
    for k, s in enumerate(var.SIDES):
        assert torch.equal(var.scale_map(flat, k), pyr[s][:32]), s
        assert torch.equal(to_tokens(var.scale_map(flat, k)), flat[:, var.OFFSETS[k]:var.OFFSETS[k + 1]])
    assert torch.equal(var.scale_map(flat, 5), x) and torch.equal(var.pyramid_tokens(var.scale_map(flat, 5)), flat)
    fed = var.chain_inputs(flat)
    assert fed.shape == (32, 129)
    for k in range(1, 6):
        want = to_tokens(upsample(var.scale_map(flat, k - 1), var.SIDES[k]))
        assert torch.equal(fed[:, var.OFFSETS[k] - 1:var.OFFSETS[k + 1] - 1], want), k
    assert var.chain_inputs(flat, 1).shape == (32, 0)


def test_block_causal_mask_entries() -> None:
    """Row i may attend to row j iff scale(j) ≤ scale(i): all coarser rows, all of its own scale
    (both directions), nothing finer."""
    mask = var.block_causal_mask()
    assert mask.shape == (130, 130) and mask.dtype == torch.bool
    scale = torch.cat([torch.full((s * s,), k) for k, s in enumerate(var.SIDES)])
    for i in range(130):
        for j in range(130):
            assert bool(mask[i, j]) == bool(scale[j] <= scale[i]), (i, j)
    for k in range(6):  # every row of scale k sees exactly the rows of scales 0..k
        rows = mask[var.OFFSETS[k]:var.OFFSETS[k + 1]]
        assert (rows.sum(1) == var.OFFSETS[k + 1]).all()
    assert torch.equal(var.block_causal_mask(3), mask[:14, :14])


def test_network_respects_the_mask(gen: var.VARGenerator) -> None:
    """Changing map k changes no prediction of scales ≤ k (they see only coarser maps) and does
    change those of scale k+1 (whose fed rows are map k, upsampled)."""
    flat = var.pyramid_tokens(Digits().canonical("test")[:4])
    with torch.no_grad():
        base = var.chain_logits(gen.model, flat)
        for k in range(5):
            other = flat.clone()
            a, b = var.OFFSETS[k], var.OFFSETS[k + 1]
            other[:, a:b] = (other[:, a:b] + 5) % LEVELS
            out = var.chain_logits(gen.model, other)
            torch.testing.assert_close(out[:, :b], base[:, :b], atol=1e-5, rtol=1e-5)
            assert not torch.allclose(out[:, b:var.OFFSETS[k + 2]], base[:, b:var.OFFSETS[k + 2]])


# ---------------------------------------------------------------- sampling

@pytest.mark.parametrize("S", [1, 2, 3, 4, 5, 6])
def test_one_call_per_scale(gen: var.VARGenerator, S: int) -> None:
    counter = CallCounter(gen.networks())
    with counter:
        x = gen.sample(3, Budget(S=S), seeded_rng(0))
    assert gen.nfe(Budget(S=S)) == S == counter.count
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x * (LEVELS - 1), torch.round(x * (LEVELS - 1)))


@pytest.mark.parametrize("S", [2, 6])
def test_determinism_and_kv_cache(gen: var.VARGenerator, S: int) -> None:
    a = gen.sample(8, Budget(S=S), seeded_rng(7))
    b = gen.sample(8, Budget(S=S), seeded_rng(7))
    c = gen.sample(8, Budget(S=S), seeded_rng(8))
    full = gen.sample(8, Budget(S=S), seeded_rng(7), use_cache=False)
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(a, full)


def test_scales_are_drawn_in_parallel_from_the_chain(gen: var.VARGenerator) -> None:
    """Every token of map k is the inverse CDF of its own teacher-forced categorical (given the
    sampled coarser maps) at its own uniform; fewer scales give the coarse prefix of the chain,
    upsampled."""
    n = 6
    u = torch.rand(n, var.N_TOKENS, generator=seeded_rng(11))
    flat = var.next_scale_decode(gen.model, 6, u)
    with torch.no_grad():
        logits = var.chain_logits(gen.model, flat)
    assert torch.equal(flat, ar.inverse_cdf(logits, u))
    for S in range(1, 7):
        x = gen.sample(n, Budget(S=S), seeded_rng(11))
        assert torch.equal(x, upsample(var.scale_map(flat, S - 1))), S


# ---------------------------------------------------------------- likelihood

def test_nll_is_the_chain_nll_of_the_pyramid(gen: var.VARGenerator) -> None:
    """nll at S=6 = Σ over scales of −log₂ p(map k | true coarser maps) / 64, each scale scored
    by its own cached call (the sampler's path), an upper bound on −log₂ p(x) / 64."""
    x = Digits().canonical("test")[:16]
    bpd = gen.nll(x, Budget(S=6))
    assert bpd is not None and bpd.shape == (16,)
    flat = var.pyramid_tokens(x)
    cache, total = gen.model.new_cache(), torch.zeros(16)
    with torch.no_grad():
        for k in range(6):
            a, b = var.OFFSETS[k], var.OFFSETS[k + 1]
            if k == 0:
                logits = gen.model(cond=var.start(16, "cpu"), cache=cache)
            else:
                logits = gen.model(var.scale_inputs(flat, k), pos=torch.arange(a - 1, b - 1), cache=cache,
                                   causal=False)
            total += F.log_softmax(logits, -1).gather(2, flat[:, a:b, None]).squeeze(2).sum(1)
    torch.testing.assert_close(bpd, -total / (64 * math.log(2)), atol=1e-4, rtol=1e-4)
    assert 0 < bpd.mean().item() < math.log2(LEVELS)
    for S in range(1, 6):
        assert gen.nll(x, Budget(S=S)) is None


def test_checkpoint_metadata_and_size(gen: var.VARGenerator) -> None:
    from scalebench.zoo import checkpoint_path, read_index

    assert checkpoint_path("var").stat().st_size <= 2 * 1024 * 1024
    assert read_index()["var"]["parents"] == []
    meta = gen.meta
    assert meta["train_seconds"] <= 600 and meta["recipe"]["steps"] == var.RECIPE.steps
    by_scale = meta["test_bits_per_token_by_scale"]
    assert set(by_scale) == {"1", "2", "3", "4", "6", "8"}
    # the chain's total bits per 8×8 pixel add up from the per-scale means
    total = sum(by_scale[str(s)] * s * s for s in var.SIDES) / 64
    assert abs(total - meta["test_nll_bits_per_dim"]) < 1e-2 and total < math.log2(LEVELS)


# ---------------------------------------------------------------- quality on the shipped checkpoint

N_QUALITY = 1000


@pytest.fixture(scope="module")
def fids(gen: var.VARGenerator) -> dict[str, float]:
    return fid_by_budget(gen, {f"S={S}": Budget(S=S) for S in (1, 6)}, N_QUALITY)


def test_quality_beats_independent_pixel_marginals(fids: dict[str, float]) -> None:
    assert fids["S=6"] < fids["marginal"], fids


def test_more_scales_is_better(fids: dict[str, float]) -> None:
    """A single grey level (S = 1) upsampled to 8×8 is far worse than the full chain."""
    assert fids["S=1"] > fids["S=6"], fids
