"""The `maskgit` family: the cosine mask schedule, confidence-ordered unmasking that never revises
a committed token, the training mask, counted NFE, determinism, and quality on the shipped checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.data.digits import LEVELS, to_tokens
from scalebench.methods import maskgit as mg
from scalebench.methods.samplers import autoregressive as ar
from scalebench.metrics.cost import CallCounter
from tests.conftest import independent_pixel_fid, seeded_rng, shipped_generator

gen = shipped_generator(mg.MaskGITGenerator)


def test_card_and_protocols(gen: mg.MaskGITGenerator) -> None:
    card = mg.MaskGITGenerator.card
    assert card.name == "maskgit" and card.category == "sequence" and card.likelihood == "none"
    assert card.S.values == (1, 2, 4, 8, 16, 64) and card.S.default == 8 and card.K.is_fixed
    assert card.samplers == ("confidence",) and "Chang" in card.paper
    assert isinstance(gen, Generator) and not isinstance(gen, HasLikelihood)  # no likelihood claimed
    assert gen.meta["mask_token"] == mg.MASK == LEVELS


@pytest.mark.parametrize("budget", [Budget(S=3), Budget(S=32), Budget(S=128), Budget(S=8, K=2)])
def test_invalid_budget_raises(gen: mg.MaskGITGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="maskgit"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)


def test_unknown_sampler_raises(gen: mg.MaskGITGenerator) -> None:
    with pytest.raises(ValueError, match="sampler"):
        gen.sample(2, Budget(S=8), seeded_rng(0), sampler="greedy")


# ---------------------------------------------------------------- the mask schedule

@pytest.mark.parametrize("S", [*mg.STEPS, 3, 5, 32, 63])
def test_schedule_is_monotone_ends_at_zero_and_commits_every_token(S: int) -> None:
    sched = mg.mask_schedule(S)
    assert len(sched) == S and sched[-1] == 0
    before = (64, *sched[:-1])
    committed = [a - b for a, b in zip(before, sched, strict=True)]
    assert all(c >= 1 for c in committed)  # strictly decreasing: every iteration commits a token
    assert sum(committed) == 64
    assert all(m >= 1 for m in sched[:-1])  # nothing is left over before the last iteration
    for t, m in enumerate(sched[:-1]):  # the cosine target, clamped to commit ≥ 1 and keep ≥ 1
        target = math.floor(64 * math.cos(math.pi / 2 * (t + 1) / S))
        assert m == max(1, min(before[t] - 1, target)), (t, m, target)


def test_schedule_values() -> None:
    assert mg.mask_schedule(1) == (0,)
    assert mg.mask_schedule(2) == (45, 0)  # ⌊64 cos(π/4)⌋
    assert mg.mask_schedule(8) == (62, 59, 53, 45, 35, 24, 12, 0)
    assert mg.mask_schedule(64) == tuple(range(63, -1, -1))  # S = 64: exactly one token per iteration
    with pytest.raises(ValueError):
        mg.mask_schedule(65)
    # the cosine front-loads caution: fewer tokens committed in the first half than in the second
    s16 = mg.mask_schedule(16)
    assert 64 - s16[7] < s16[7]


def test_training_mask_follows_the_cosine_schedule() -> None:
    g = seeded_rng(3)
    mask = mg.random_mask(4000, 64, g)
    counts = mask.sum(1)
    assert counts.min() >= 1 and counts.max() <= 64
    # E[⌈64 cos(πr/2)⌉] for r ~ U[0,1) is about 64·2/π + 0.5 ≈ 41.2
    assert abs(counts.float().mean().item() - (128 / math.pi + 0.5)) < 1.0
    # every position is masked equally often
    per_pos = mask.float().mean(0)
    assert (per_pos - per_pos.mean()).abs().max() < 0.05


# ---------------------------------------------------------------- the decoder

def _trace(gen: mg.MaskGITGenerator, u: torch.Tensor, tau: float = mg.CHOICE_TEMPERATURE) -> list[torch.Tensor]:
    states: list[torch.Tensor] = []
    mg.confidence_decode(gen.model, u, tau, callback=lambda t, x: states.append(x.clone()))
    return states


@pytest.mark.parametrize("S", [2, 8, 64])
def test_committed_tokens_stay_fixed_and_counts_follow_the_schedule(gen: mg.MaskGITGenerator, S: int) -> None:
    u = torch.rand(5, S, 2, 64, generator=seeded_rng(S))
    states = _trace(gen, u)
    assert len(states) == S
    prev = torch.full((5, 64), mg.MASK)
    for t, (x, m) in enumerate(zip(states, mg.mask_schedule(S), strict=True)):
        assert ((x == mg.MASK).sum(1) == m).all(), t
        known = prev != mg.MASK
        assert torch.equal(x[known], prev[known]), t  # never revised
        assert not (x[known] == mg.MASK).any()
        if S == 64:
            assert ((prev == mg.MASK) & (x != mg.MASK)).sum(1).eq(1).all()  # one token per iteration
        prev = x
    assert (prev != mg.MASK).all() and prev.max() < LEVELS


def test_kept_tokens_are_the_most_confident(gen: mg.MaskGITGenerator) -> None:
    """With the choice temperature at 0 the tokens committed at iteration t are those whose sampled
    value has the highest probability under that iteration's pass; with τ > 0 it is log p + τ_t·Gumbel."""
    S, n = 8, 6
    u = torch.rand(n, S, 2, 64, generator=seeded_rng(1))
    for tau in (0.0, mg.CHOICE_TEMPERATURE):
        states = _trace(gen, u, tau)
        prev = torch.full((n, 64), mg.MASK)
        for t, x in enumerate(states[:-1]):
            with torch.no_grad():
                logits = mg.logits_of(gen.model, prev).float()
            unknown = prev == mg.MASK
            sampled = torch.where(unknown, ar.inverse_cdf(logits, u[:, t, 0]), prev)
            conf = F.log_softmax(logits, -1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
            conf = conf + tau * (1 - (t + 1) / S) * mg.gumbel(u[:, t, 1])
            new = unknown & (x != mg.MASK)
            still = x == mg.MASK
            assert torch.equal(x[new], sampled[new])  # a committed token is this pass's draw
            for i in range(n):
                assert conf[i][new[i]].min() >= conf[i][still[i]].max(), (tau, t, i)
            prev = x


def test_one_iteration_draws_every_token_from_its_marginal(gen: mg.MaskGITGenerator) -> None:
    """S = 1: all 64 tokens from one pass on the all-[MASK] input, each by inverse CDF at its uniform."""
    n = 8
    x = gen.sample(n, Budget(S=1), seeded_rng(4))
    u = torch.rand(n, 1, 2, 64, generator=seeded_rng(4))
    with torch.no_grad():
        logits = mg.logits_of(gen.model, torch.full((n, 64), mg.MASK))
    assert torch.equal(to_tokens(x), ar.inverse_cdf(logits.float(), u[:, 0, 0]))


@pytest.mark.parametrize("S", mg.STEPS)
def test_nfe_declared_equals_counted(gen: mg.MaskGITGenerator, S: int) -> None:
    counter = CallCounter(gen.networks())
    with counter:
        x = gen.sample(3, Budget(S=S), seeded_rng(0))
    assert gen.nfe(Budget(S=S)) == S == counter.count
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x * (LEVELS - 1), torch.round(x * (LEVELS - 1)))


def test_determinism_and_batch_independence(gen: mg.MaskGITGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_rng_state()
    a = gen.sample(8, Budget(S=8), seeded_rng(7))
    assert torch.equal(before, torch.get_rng_state())
    b = gen.sample(8, Budget(S=8), seeded_rng(7))
    c = gen.sample(8, Budget(S=8), seeded_rng(8))
    monkeypatch.setattr(mg, "SAMPLE_CHUNK", 3)
    chunked = gen.sample(8, Budget(S=8), seeded_rng(7))
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(a, chunked)
    assert gen.sample(0, Budget(S=8), seeded_rng(0)).shape == (0, 1, 8, 8)


def test_masked_loss_is_the_mean_over_masked_tokens() -> None:
    torch.manual_seed(0)
    net = mg.build_model().eval()
    tok = torch.randint(0, LEVELS, (3, 64))
    mask = mg.random_mask(3, 64, seeded_rng(0))
    with torch.no_grad():
        loss = mg.masked_loss(net, tok, mask)
        logits = net(tok.masked_fill(mask, mg.MASK), causal=False)
        want = torch.stack([F.cross_entropy(logits[i, j:j + 1], tok[i, j:j + 1])
                            for i in range(3) for j in range(64) if mask[i, j]]).mean()
        # unmasked inputs change the prediction at masked positions (attention is bidirectional)
        other = tok.clone()
        other[~mask] = (other[~mask] + 1) % LEVELS
        moved = net(other.masked_fill(mask, mg.MASK), causal=False)
    torch.testing.assert_close(loss, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(moved[mask], logits[mask])


def test_checkpoint_metadata_and_size(gen: mg.MaskGITGenerator) -> None:
    from scalebench.zoo import checkpoint_path, read_index

    assert checkpoint_path("maskgit").stat().st_size <= 2 * 1024 * 1024
    assert read_index()["maskgit"]["parents"] == []
    meta = gen.meta
    assert meta["train_seconds"] <= 600 and meta["recipe"]["steps"] == mg.RECIPE.steps
    assert 0 < meta["test_masked_bits_per_token"] < math.log2(LEVELS)


# ---------------------------------------------------------------- quality on the shipped checkpoint

def test_quality_beats_independent_pixel_marginals(gen: mg.MaskGITGenerator) -> None:
    """At S = 64 (the largest budget): FID below that of independent-pixel samples, both at n = 150
    (S = 64 is 64 full passes; n is kept small so the test stays fast)."""
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    ds, n = get_dataset("digits"), 150
    fid_model = compute_quality(gen.sample(n, Budget(S=64), seeded_rng(0)), ds, metrics=("fid",))["fid"]
    fid_marg = independent_pixel_fid(n, seed=1)
    assert fid_model < fid_marg, (fid_model, fid_marg)


def test_one_iteration_is_far_worse_than_eight(gen: mg.MaskGITGenerator) -> None:
    """The family's central measurement: one iteration (every token independent) is far worse than 8."""
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    ds = get_dataset("digits")
    fid = {S: compute_quality(gen.sample(500, Budget(S=S), seeded_rng(0)), ds, metrics=("fid",))["fid"] for S in (1, 8)}
    assert fid[1] > 2 * fid[8], fid
