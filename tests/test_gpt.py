"""The `gpt` reference generator and the shared transformer: contracts, determinism, KV cache."""

from __future__ import annotations

import math

import pytest
import torch

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.data.digits import LEVELS, Digits, from_tokens
from scalebench.methods import gpt
from scalebench.methods.nets.transformer import CausalTransformer, TransformerConfig
from scalebench.metrics.refnll import reference_nll
from tests.conftest import seeded_rng, shipped_generator

gen = shipped_generator(gpt.GPTGenerator)


def test_card_and_protocols(gen: gpt.GPTGenerator) -> None:
    card = gpt.GPTGenerator.card
    assert card.name == "gpt" and card.category == "sequence" and card.likelihood == "exact"
    assert card.S.values == (1, 4, 16, 64) and card.S.default == 64 and card.K.is_fixed
    assert isinstance(gen, Generator) and isinstance(gen, HasLikelihood)
    assert "model" in gen.meta and "test_nll_bits_per_dim" in gen.meta


@pytest.mark.parametrize("budget", [Budget(S=2), Budget(S=8), Budget(S=128), Budget(S=64, K=2)])
def test_invalid_budget_raises(gen: gpt.GPTGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="gpt"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)


def test_unknown_sampler_raises(gen: gpt.GPTGenerator) -> None:
    with pytest.raises(ValueError, match="sampler"):
        gen.sample(2, Budget(S=4), seeded_rng(0), sampler="greedy")


@pytest.mark.parametrize("S", [1, 4, 16, 64])
def test_shapes_ranges_and_resolution(gen: gpt.GPTGenerator, S: int) -> None:
    x = gen.sample(6, Budget(S=S), seeded_rng(1))
    assert x.shape == (6, 1, 8, 8) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x * (LEVELS - 1), torch.round(x * (LEVELS - 1)))  # on the 17-level grid
    block = 8 // math.isqrt(S)  # an r×r sample is constant on (8/r)² blocks
    assert torch.equal(x, x[..., ::block, ::block].repeat_interleave(block, -1).repeat_interleave(block, -2))
    assert gen.nfe(Budget(S=S)) == S


def test_determinism_per_seed(gen: gpt.GPTGenerator) -> None:
    a = gen.sample(8, Budget(S=64), seeded_rng(7))
    b = gen.sample(8, Budget(S=64), seeded_rng(7))
    c = gen.sample(8, Budget(S=64), seeded_rng(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("S", [4, 64])
def test_kv_cache_matches_full_recompute(gen: gpt.GPTGenerator, S: int) -> None:
    cached = gen.sample(16, Budget(S=S), seeded_rng(3), use_cache=True)
    full = gen.sample(16, Budget(S=S), seeded_rng(3), use_cache=False)
    assert torch.equal(cached, full)


def test_cache_chunks_and_truncate_match_full_forward() -> None:
    """Feeding several tokens at once onto a cache (the masked path) and rolling it back."""
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=5, n_positions=12, n_cond=2, d_model=16, n_layers=2, n_heads=2)
    net = CausalTransformer(cfg).eval()
    tok, cond = torch.randint(0, 5, (3, 10)), torch.tensor([0, 1, 1])
    with torch.no_grad():
        full = net(tok, cond=cond)
        cache = net.new_cache()
        parts = [net(cond=cond, cache=cache), net(tok[:, :4], pos=torch.arange(4), cache=cache)]
        cache.truncate(3)  # keep [cond, t0, t1]; drop t2, t3 and re-feed them with the rest
        parts.append(net(tok[:, 2:], pos=torch.arange(2, 10), cache=cache))
    stitched = torch.cat([parts[0], parts[1][:, :2], parts[2]], dim=1)
    assert cache.length == 11
    torch.testing.assert_close(stitched, full, atol=1e-5, rtol=1e-5)


def test_nll_exact_and_sensible(gen: gpt.GPTGenerator) -> None:
    x = Digits().canonical("test")[:64]
    bpd = gen.nll(x, Budget(S=64))
    assert bpd is not None and bpd.shape == (64,) and torch.isfinite(bpd).all()
    assert 0 < bpd.mean().item() < math.log2(LEVELS)  # beats the uniform model
    for S in (1, 4, 16):
        assert gen.nll(x, Budget(S=S)) is None


def test_reference_nll_real_below_random() -> None:
    real = Digits().canonical("test")[:128]
    noise = from_tokens(torch.randint(0, LEVELS, (128, 64), generator=seeded_rng(0)))
    r, n = reference_nll(real), reference_nll(noise)
    assert r.shape == n.shape == (128,)
    assert r.mean() + 2.0 < n.mean()
    # batching does not change per-example values
    torch.testing.assert_close(reference_nll(real[:5]), r[:5], atol=1e-4, rtol=1e-4)
