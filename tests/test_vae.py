"""The `vae` family: one decoder call per sample, samples drawn from the decoder's categoricals,
the IWAE bound (k = 1 is the ELBO; it tightens with k), counted NFE, and quality on the shipped
checkpoint against independent pixels."""

from __future__ import annotations

import math

import pytest
import torch

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.data.digits import LEVELS, Digits, to_tokens
from scalebench.methods import vae as V
from scalebench.methods.samplers import autoregressive as ar
from scalebench.metrics.cost import CallCounter
from tests.conftest import independent_pixel_fid, seeded_rng, shipped_generator

gen = shipped_generator(V.VAEGenerator)


def test_card_and_protocols(gen: V.VAEGenerator) -> None:
    card = V.VAEGenerator.card
    assert (card.name, card.category, card.likelihood) == ("vae", "neither", "bound")
    assert card.S.is_fixed and card.K.is_fixed and card.S.default == card.K.default == 1
    assert card.samplers == ("sample", "mode") and "Kingma" in card.paper and "Burda" in card.paper
    assert "iwae-bound" in card.notes and "not exact" in card.notes
    assert isinstance(gen, Generator) and isinstance(gen, HasLikelihood)


@pytest.mark.parametrize("budget", [Budget(S=2), Budget(K=2), Budget(S=64)])
def test_invalid_budget_and_sampler_raise(gen: V.VAEGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="vae"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)
    with pytest.raises(ValueError, match="sampler"):
        gen.sample(2, Budget(), seeded_rng(0), sampler="ddim")


@pytest.mark.parametrize("sampler", ["sample", "mode"])
def test_one_decoder_call_and_canonical_grid(gen: V.VAEGenerator, sampler: str) -> None:
    counter = CallCounter(gen.networks())
    with counter:
        x = gen.sample(7, Budget(), seeded_rng(0), sampler)
    assert gen.nfe(Budget(), sampler) == 1 == counter.count
    assert x.shape == (7, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x * (LEVELS - 1), torch.round(x * (LEVELS - 1)))
    assert torch.equal(x, gen.sample(7, Budget(), seeded_rng(0), sampler))
    assert not torch.equal(x, gen.sample(7, Budget(), seeded_rng(1), sampler))


def test_sample_is_a_draw_from_the_decoders_categoricals(gen: V.VAEGenerator) -> None:
    """z ~ N(0, I), then one uniform per pixel, both from the rng; pixel = inverse CDF at its uniform;
    the mode sampler is the argmax at the same z."""
    n, rng = 9, seeded_rng(3)
    z = torch.randn(n, gen.model.latent, generator=rng)
    u = torch.rand(n, 64, generator=rng)
    with torch.no_grad():
        logits = gen.model.decoder(z)
    assert torch.equal(to_tokens(gen.sample(n, Budget(), seeded_rng(3))), ar.inverse_cdf(logits, u))
    assert torch.equal(to_tokens(gen.sample(n, Budget(), seeded_rng(3), "mode")), logits.argmax(-1))


def test_iwae_with_one_sample_is_the_elbo(gen: V.VAEGenerator) -> None:
    """k = 1: the bound is log p(x|z) + log p(z) − log q(z|x) at one z — the single-sample ELBO;
    its mean over draws agrees with the ELBO computed with the KL in closed form."""
    tokens = Digits().tokens("test")[:8]
    m, reps = gen.model, 2000
    eps = torch.randn(reps, 8, m.latent, generator=seeded_rng(0))
    with torch.no_grad():
        w = V.log_weights(m, tokens, eps)  # (reps, 8): k = 1 bounds, one per draw
        one = V.iwae_bound(m, tokens, 1, seeded_rng(0))
        mu, logvar = m.encoder((tokens.float() / 8 - 1).view(-1, 1, 8, 8))
        z = mu + torch.exp(0.5 * logvar) * eps[0]
        by_hand = (V.log_px_given_z(m.decoder(z), tokens)
                   + torch.distributions.Normal(0, 1).log_prob(z).sum(-1)
                   - torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1))
        analytic = torch.stack([V.elbo(m, tokens, e) for e in eps]).mean(0)
    torch.testing.assert_close(one, w[0], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(w[0], by_hand, atol=1e-3, rtol=1e-5)
    se = w.std(0) / math.sqrt(reps)
    assert ((w.mean(0) - analytic).abs() < 4 * se + 1e-3).all(), (w.mean(0), analytic, se)


def test_bound_tightens_with_k(gen: V.VAEGenerator) -> None:
    """The IWAE bound on the NLL decreases with k on average (Burda et al. 2016, Theorem 1)."""
    tokens = Digits().tokens("test")[:200]
    bits = {k: V.iwae_bits(gen.model, tokens, k).mean().item() for k in (1, 4, 16, 64)}
    assert bits[1] > bits[4] > bits[16] > bits[64] > 0, bits


def test_nll_is_the_fixed_seed_iwae_bound(gen: V.VAEGenerator) -> None:
    x = Digits().canonical("test")[:32]
    a, b = gen.nll(x, Budget()), gen.nll(x, Budget())
    assert torch.equal(a, b) and a.shape == (32,)
    torch.testing.assert_close(a, V.iwae_bits(gen.model, to_tokens(x), V.IWAE_K))
    assert V.IWAE_K >= 64 and 0 < a.mean().item() < math.log2(LEVELS)
    # chunking does not change the bound
    torch.testing.assert_close(V.iwae_bits(gen.model, to_tokens(x), 64, rows=64 * 5),
                               V.iwae_bits(gen.model, to_tokens(x), 64, rows=64 * 7))


def test_checkpoint_metadata_and_size(gen: V.VAEGenerator) -> None:
    from scalebench.zoo import checkpoint_path, read_index

    assert checkpoint_path("vae").stat().st_size <= 2 * 1024 * 1024
    assert read_index()["vae"]["parents"] == []
    meta = gen.meta
    assert meta["train_seconds"] <= 600 and meta["recipe"]["steps"] == V.RECIPE.steps
    by_k = meta["test_iwae_bits_per_dim_by_k"]
    assert by_k[str(V.IWAE_K)] == meta["test_nll_bits_per_dim"] < by_k["1"] < math.log2(LEVELS)


# ---------------------------------------------------------------- quality on the shipped checkpoint

def test_quality_beats_independent_pixel_marginals(gen: V.VAEGenerator) -> None:
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    ds, n = get_dataset("digits"), 1000
    fid = compute_quality(gen.sample(n, Budget(), seeded_rng(0)), ds, metrics=("fid",))["fid"]
    marginal = independent_pixel_fid(n)
    assert fid < marginal, (fid, marginal)
