"""The `mtp` family: k-token decoding from independent head marginals, its exactness at k = 1,
causality of the heads, counted NFE, exact head-1 NLL, and quality on the shipped checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.data.digits import LEVELS, Digits, to_tokens
from scalebench.methods import mtp
from scalebench.methods.samplers import autoregressive as ar
from scalebench.metrics.cost import CallCounter
from tests.conftest import fid_by_budget, seeded_rng, shipped_generator

gen = shipped_generator(mtp.MTPGenerator)


def test_card_and_protocols(gen: mtp.MTPGenerator) -> None:
    card = mtp.MTPGenerator.card
    assert card.name == "mtp" and card.category == "sequence" and card.likelihood == "exact"
    assert card.S.values == (4, 8, 16, 32, 64) and card.S.default == 64 and card.K.is_fixed
    assert card.samplers == ("independent",) and "Gloeckle" in card.paper
    assert isinstance(gen, Generator) and isinstance(gen, HasLikelihood)
    assert gen.meta["k_max"] == mtp.K_MAX == 16 and "test_nll_bits_per_dim" in gen.meta


@pytest.mark.parametrize("budget", [Budget(S=1), Budget(S=2), Budget(S=5), Budget(S=128), Budget(S=64, K=2)])
def test_invalid_budget_raises(gen: mtp.MTPGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="mtp"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)


def test_unknown_sampler_raises(gen: mtp.MTPGenerator) -> None:
    with pytest.raises(ValueError, match="sampler"):
        gen.sample(2, Budget(S=64), seeded_rng(0), sampler="greedy")


def test_k1_is_ancestral_decoding_with_head_1(gen: mtp.MTPGenerator) -> None:
    """At S = 64 the sampler is ordinary token-by-token decoding with head 1, from the same noise."""
    net, n = gen.model, 12
    x = gen.sample(n, Budget(S=64), seeded_rng(5))
    u = torch.rand(n, 64, generator=seeded_rng(5))
    cond = mtp.start(n, "cpu")

    def next_logits(i: int, tokens: torch.Tensor) -> torch.Tensor:  # no cache, head 1 only
        return net(tokens[:, :i] if i else None, pos=torch.arange(i), cond=cond, k=1)[:, -1, 0]

    with torch.no_grad():
        ref = ar.decode(next_logits, u)
    assert torch.equal(to_tokens(x), ref)


@pytest.mark.parametrize("k", mtp.KS)
def test_block_is_drawn_from_the_heads_marginals(gen: mtp.MTPGenerator, k: int) -> None:
    """Each committed block is the inverse CDF of heads 1..k at the block's own uniforms, given
    the prefix: so the k tokens of a block are independent given the prefix."""
    n = 6
    u = torch.rand(n, 64, generator=seeded_rng(11))
    tokens = mtp.independent_decode(gen.model, k, u)
    with torch.no_grad():
        logits = mtp.head_logits(gen.model, tokens, k)  # row t: heads after x_<t
    for t in range(0, 64, k):
        want = ar.inverse_cdf(logits[:, t], u[:, t:t + k])
        assert torch.equal(tokens[:, t:t + k], want), t


def test_heads_are_causal(gen: mtp.MTPGenerator) -> None:
    """Changing tokens at positions ≥ t changes no head's output at row t (which sees x_<t)."""
    x = Digits().tokens("test")[:4]
    with torch.no_grad():
        base = mtp.head_logits(gen.model, x)
        for t in (0, 1, 17, 40, 63):
            y = x.clone()
            y[:, t:] = (y[:, t:] + 5) % LEVELS
            other = mtp.head_logits(gen.model, y)
            torch.testing.assert_close(other[:, :t + 1], base[:, :t + 1], atol=1e-5, rtol=1e-5)
            if t < 63:
                assert not torch.allclose(other[:, t + 1:], base[:, t + 1:])


@pytest.mark.parametrize("S", [4, 8, 16, 32, 64])
def test_nfe_declared_equals_counted(gen: mtp.MTPGenerator, S: int) -> None:
    counter = CallCounter(gen.networks())
    with counter:
        x = gen.sample(3, Budget(S=S), seeded_rng(0))
    assert gen.nfe(Budget(S=S)) == S == 64 // (64 // S) == counter.count
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x * (LEVELS - 1), torch.round(x * (LEVELS - 1)))


@pytest.mark.parametrize("S", [4, 64])
def test_determinism_and_kv_cache(gen: mtp.MTPGenerator, S: int) -> None:
    a = gen.sample(8, Budget(S=S), seeded_rng(7))
    b = gen.sample(8, Budget(S=S), seeded_rng(7))
    c = gen.sample(8, Budget(S=S), seeded_rng(8))
    full = gen.sample(8, Budget(S=S), seeded_rng(7), use_cache=False)
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(a, full)


def test_nll_is_the_sum_of_stepwise_head1_log_probs(gen: mtp.MTPGenerator) -> None:
    x = Digits().canonical("test")[:16]
    tokens = to_tokens(x)
    bpd = gen.nll(x, Budget(S=64))
    assert bpd is not None and bpd.shape == (16,)
    cond = mtp.start(16, "cpu")
    total = torch.zeros(16)
    with torch.no_grad():
        for t in range(64):
            logits = gen.model(tokens[:, :t] if t else None, pos=torch.arange(t), cond=cond, k=1)[:, -1, 0]
            total += F.log_softmax(logits, -1).gather(1, tokens[:, t:t + 1]).squeeze(1)
    torch.testing.assert_close(bpd, -total / (64 * math.log(2)), atol=1e-4, rtol=1e-4)
    assert 0 < bpd.mean().item() < math.log2(LEVELS)
    for S in (4, 8, 16, 32):
        assert gen.nll(x, Budget(S=S)) is None


def test_loss_targets_and_joint_loss() -> None:
    """Head j at row t is trained on x_{t+j-1}; the loss is the mean over all valid pairs."""
    torch.manual_seed(0)
    tok = torch.randint(0, LEVELS, (3, 64))
    tgt = mtp._targets(tok, 16)
    assert tgt.shape == (3, 64, 16)
    assert torch.equal(tgt[:, 10, 0], tok[:, 10]) and torch.equal(tgt[:, 10, 5], tok[:, 15])
    assert (tgt[:, 60, 4:] == -100).all() and torch.equal(tgt[:, 60, 3], tok[:, 63])
    net = mtp.build_model().eval()
    with torch.no_grad():
        loss = mtp.mtp_loss(net, tok)
        logits = mtp.head_logits(net, tok)
        parts = [F.cross_entropy(logits[:, t, j], tok[:, t + j], reduction="sum")
                 for j in range(16) for t in range(64 - j)]
        count = 3 * sum(64 - j for j in range(16))
    torch.testing.assert_close(loss, torch.stack(parts).sum() / count, atol=1e-5, rtol=1e-5)


def test_heads_load_on_their_own(gen: mtp.MTPGenerator) -> None:
    heads = mtp.load_heads()
    h = torch.randn(5, 7, gen.model.heads.unembed.in_features)
    with torch.no_grad():
        torch.testing.assert_close(heads(h), gen.model.heads(h))
        torch.testing.assert_close(heads(h, 3), gen.model.heads(h)[..., :3, :])


def test_checkpoint_metadata_and_size(gen: mtp.MTPGenerator) -> None:
    from scalebench.zoo import checkpoint_path, read_index

    assert checkpoint_path("mtp").stat().st_size <= 2 * 1024 * 1024
    assert read_index()["mtp"]["parents"] == []
    meta = gen.meta
    assert meta["train_seconds"] <= 600 and meta["recipe"]["steps"] == mtp.RECIPE.steps
    by_head = meta["test_bits_per_token_by_head"]
    assert by_head["1"] == meta["test_nll_bits_per_dim"] < math.log2(LEVELS)
    assert by_head["16"] > by_head["1"]  # a token 16 ahead is harder to predict than the next one


# ---------------------------------------------------------------- quality on the shipped checkpoint

N_QUALITY = 1000


@pytest.fixture(scope="module")
def fids(gen: mtp.MTPGenerator) -> dict[str, float]:
    return fid_by_budget(gen, {f"S={S}": Budget(S=S) for S in (4, 64)}, N_QUALITY)


def test_quality_beats_independent_pixel_marginals(fids: dict[str, float]) -> None:
    assert fids["S=64"] < fids["marginal"], fids


def test_more_tokens_per_step_is_worse(fids: dict[str, float]) -> None:
    """The family's central measurement: k = 16 tokens per step (S = 4) is worse than k = 1."""
    assert fids["S=4"] > fids["S=64"], fids
