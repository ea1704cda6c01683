"""The `imm` family: the grouped MMD estimator, the boundary f(x, t, t) = x, the mapping r(s, t),
the loss, counted NFE = K, determinism, and quality of the shipped checkpoint."""

from __future__ import annotations

import pytest
import torch

from scalebench.api import Budget, Generator
from scalebench.data.digits import Digits
from scalebench.methods import imm
from scalebench.methods.nets.unet import UNet
from scalebench.metrics.cost import CallCounter
from tests.conftest import fid_by_budget, seeded_rng, shipped_generator

gen = shipped_generator(imm.IMMGenerator)


def test_card_and_protocols(gen: imm.IMMGenerator) -> None:
    card = imm.IMMGenerator.card
    assert (card.name, card.category, card.likelihood) == ("imm", "refinement", "none")
    assert card.S.is_fixed and card.K.default == 8 and all(card.K.valid(k) for k in (1, 2, 4, 8, 64))
    assert not card.K.valid(65) and card.samplers == ("pushforward", "restart") and "Zhou" in card.paper
    assert isinstance(gen, Generator) and not hasattr(gen, "nll")
    assert gen.meta["net"]["two_times"] and gen.meta["particles"] == imm.PARTICLES


# ---------------------------------------------------------------- the MMD estimator

@pytest.mark.parametrize("unbiased", [False, True])
def test_mmd_is_zero_for_identical_groups(unbiased: bool) -> None:
    x = torch.randn(5, 4, 64, generator=seeded_rng(0))
    scale = torch.full((5,), 8.0)
    assert torch.allclose(imm.group_mmd2(x, x, scale, unbiased), torch.zeros(5), atol=1e-6)


@pytest.mark.parametrize("unbiased", [False, True])
def test_mmd_grows_with_the_shift_between_groups(unbiased: bool) -> None:
    """Groups of 64 particles from N(0, I) and N(δ·1, I): MMD² > 0 and increasing in δ."""
    x = torch.randn(3, 64, 16, generator=seeded_rng(1))
    y = torch.randn(3, 64, 16, generator=seeded_rng(2))
    scale = torch.full((3,), 4.0)
    m = [imm.group_mmd2(x, y + d, scale, unbiased).mean().item() for d in (0.0, 0.5, 1.0, 2.0)]
    assert 0 < m[1] < m[2] < m[3] and m[0] < m[1], m
    if unbiased:  # same distribution: zero up to sampling noise
        assert abs(m[0]) < m[1] / 4, m
    else:  # the V-statistic's bias at equal distributions: (2/M)(1 − E k(x, x')) > 0, small next to a shift
        assert 0 < m[0] < 2 / 64 and m[0] < m[3] / 10, m


def test_biased_mmd_is_a_squared_norm_and_matches_its_definition() -> None:
    """The V-statistic is ‖mean embedding difference‖² ≥ 0 for any groups and equals the double sum."""
    x, y = torch.randn(6, 4, 8, generator=seeded_rng(3)), torch.randn(6, 4, 8, generator=seeded_rng(4)) * 3
    scale = torch.rand(6, generator=seeded_rng(5)) + 0.5
    v, u = imm.group_mmd2(x, y, scale), imm.group_mmd2(x, y, scale, unbiased=True)
    assert bool((v >= 0).all())
    k = lambda a, b, h: torch.exp(-(a - b).norm() / h)  # noqa: E731
    g = 2
    want_v = sum(k(x[g, i], x[g, j], scale[g]) + k(y[g, i], y[g, j], scale[g]) - 2 * k(x[g, i], y[g, j], scale[g])
                 for i in range(4) for j in range(4)) / 16
    want_u = sum(k(x[g, i], x[g, j], scale[g]) + k(y[g, i], y[g, j], scale[g]) - 2 * k(x[g, i], y[g, j], scale[g])
                 for i in range(4) for j in range(4) if i != j) / 12
    torch.testing.assert_close(v[g], want_v, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(u[g], want_u, atol=1e-5, rtol=1e-5)


def test_mmd_gradient_is_finite_at_coinciding_particles() -> None:
    x = torch.zeros(2, 4, 8, requires_grad=True)
    imm.group_mmd2(x, torch.zeros(2, 4, 8), torch.ones(2)).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


# ---------------------------------------------------------------- time, boundary, loss

def test_boundary_s_equals_t_is_the_identity(gen: imm.IMMGenerator) -> None:
    x = torch.randn(6, 1, 8, 8, generator=seeded_rng(0))
    raw = UNet(base=8, two_times=True)
    for net in (gen.net, raw):
        for t in (0.0, 0.3, imm.T_MAX):
            assert torch.equal(imm.pushforward(net, x, t, t), x)
    assert not torch.allclose(imm.pushforward(gen.net, x, 0.9, 0.0), x)


def test_mapping_r_and_time_grid() -> None:
    t = torch.linspace(0.01, imm.T_MAX, 50, dtype=torch.float64)
    s = t * torch.rand(50, generator=seeded_rng(0), dtype=torch.float64)
    r = imm.mapping_r(s, t)
    assert bool((s <= r).all()) and bool((r < t).all())
    step = (imm.eta(r) - imm.eta(t))[r > s]  # a constant decrement in η where r is not clipped to s
    assert torch.allclose(step, step[:1].expand_as(step)) and bool((imm.mapping_r(s, t, 12) >= r).all())
    assert imm.uniform_times(1) == [imm.T_MAX, imm.T_MIN]
    ts = imm.uniform_times(8)
    assert len(ts) == 9 and ts == sorted(ts, reverse=True) and ts[-1] == imm.T_MIN
    with pytest.raises(ValueError, match="K=0"):
        imm.uniform_times(0)


def test_loss_is_deterministic_and_trains_only_the_online_branch() -> None:
    net = UNet(base=8, two_times=True, fourier=(3,))
    with torch.no_grad():  # non-zero output layer, so the loss depends on the weights
        net.out[-1].weight.normal_(0, 0.1, generator=seeded_rng(0))
    x = Digits().continuous("train")[:16]
    a, b = imm.imm_loss(net, x, seeded_rng(1)), imm.imm_loss(net, x, seeded_rng(1))
    assert torch.equal(a, b) and a.item() > 0 and a.requires_grad
    a.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in net.parameters())
    with pytest.raises(ValueError, match="particles"):
        imm.imm_loss(net, x[:6], seeded_rng(1))


# ---------------------------------------------------------------- sampling contract

@pytest.mark.parametrize("sampler", ["pushforward", "restart"])
@pytest.mark.parametrize("K", [1, 2, 4, 8])
def test_nfe_declared_equals_counted(gen: imm.IMMGenerator, sampler: str, K: int) -> None:
    counter = CallCounter(gen.networks())
    with counter:
        x = gen.sample(3, Budget(K=K), seeded_rng(0), sampler)
    assert gen.nfe(Budget(K=K), sampler) == K == counter.count
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("sampler", ["pushforward", "restart"])
def test_determinism(gen: imm.IMMGenerator, sampler: str) -> None:
    a, b = gen.sample(8, Budget(K=4), seeded_rng(7), sampler), gen.sample(8, Budget(K=4), seeded_rng(7), sampler)
    assert torch.equal(a, b) and not torch.equal(a, gen.sample(8, Budget(K=4), seeded_rng(8), sampler))


def test_pushforward_uses_noise_once_restart_keeps_drawing(gen: imm.IMMGenerator) -> None:
    x = imm.SIGMA_D * torch.randn(8, 1, 8, 8, generator=seeded_rng(0))
    ts = imm.uniform_times(4)
    p1, p2 = (imm.sample_pushforward(gen.jump, x, ts, seeded_rng(i)) for i in (1, 2))
    r1, r2 = (imm.sample_restart(gen.jump, x, ts, seeded_rng(i)) for i in (1, 2))
    assert torch.equal(p1, p2) and not torch.equal(r1, r2)
    one = imm.sample_pushforward(gen.jump, x, imm.uniform_times(1))
    restarted = imm.sample_restart(gen.jump, x, imm.uniform_times(1), seeded_rng(3))
    assert torch.equal(one, restarted)  # K = 1: the same jump


@pytest.mark.parametrize("budget", [Budget(K=65), Budget(S=2, K=1)])
def test_invalid_budget_and_sampler(gen: imm.IMMGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="imm"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError, match="sampler"):
        gen.nfe(Budget(K=1), "euler")


def test_checkpoint_metadata_and_size(gen: imm.IMMGenerator) -> None:
    from scalebench.zoo import checkpoint_path, read_index

    assert checkpoint_path("imm").stat().st_size <= 2 * 1024 * 1024
    assert read_index()["imm"]["parents"] == []  # trained from scratch: no teacher
    assert gen.meta["train_seconds"] <= 600 and gen.meta["recipe"]["steps"] == imm.RECIPE.steps
    assert gen.meta["final_loss"] > 0


# ---------------------------------------------------------------- quality on the shipped checkpoint

N_QUALITY = 1000


@pytest.fixture(scope="module")
def fids(gen: imm.IMMGenerator) -> dict[str, float]:
    return fid_by_budget(gen, {f"K={K}": Budget(K=K) for K in (1, 8)}, N_QUALITY)


def test_quality_beats_independent_pixel_marginals(fids: dict[str, float]) -> None:
    assert fids["K=8"] < fids["marginal"] / 4, fids


def test_one_step_is_a_usable_sample(fids: dict[str, float]) -> None:
    """K = 1 is one network call from noise, yet far better than the pixel marginals."""
    assert fids["K=1"] < fids["marginal"] / 2, fids
