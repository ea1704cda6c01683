"""The `consistency` family: the skip/out parameterisation and its exact boundary condition, the
teacher-initialised start, the sampling levels, counted NFE, determinism, lineage, and quality
(K = 1 far better than DDIM's one step) on the shipped checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.data.digits import Digits
from scalebench.methods import consistency as C
from scalebench.methods.nets.unet import UNet
from scalebench.methods.samplers import diffusion as DS
from scalebench.metrics.cost import CallCounter
from tests.conftest import fid_by_budget, seeded_rng, shipped_generator

gen = shipped_generator(C.ConsistencyGenerator)


def test_card_and_protocols(gen: C.ConsistencyGenerator) -> None:
    card = C.ConsistencyGenerator.card
    assert (card.name, card.family, card.category, card.likelihood) == ("consistency", "consistency", "refinement", "none")
    assert card.S.is_fixed and card.K.values == (1, 2, 4, 8) == C.KS and card.K.default == 1
    assert card.samplers == ("multistep",) and "Song et al. 2023" in card.paper
    assert isinstance(gen, Generator) and not isinstance(gen, HasLikelihood)


# ---------------------------------------------------------------- the parameterisation

def test_boundary_condition_is_exact(gen: C.ConsistencyGenerator) -> None:
    """f(x, t_min) = x bit for bit, from c_skip(t_min) = 1 and c_out(t_min) = 0, whatever the net."""
    assert C.coefficients(C.T_MIN) == (1.0, 0.0) and C.LEVELS[-1] == C.T_MIN == 1 / DS.T
    x = 3.0 * torch.randn(16, 1, 8, 8, generator=seeded_rng(0))  # also far outside the data range
    with torch.no_grad():
        random_net = UNet(**gen.meta["net"])
        for p in random_net.parameters():
            p.add_(torch.randn(p.shape, generator=seeded_rng(1)))  # nonzero output layer too
        for net in (gen.net, random_net):
            assert torch.equal(C.consistency_fn(net, x, C.T_MIN), x)
            assert torch.equal(C.consistency_fn(net, x, torch.full((16,), C.T_MIN, dtype=torch.float64)), x)
            assert not torch.equal(C.consistency_fn(net, x, C.LEVELS[-2]), x)
    with pytest.raises(ValueError):
        C.coefficients(0.0)


def test_coefficients_match_the_teachers_denoiser_away_from_the_boundary() -> None:
    """With σ_data = 1 the skip/out form is the v-prediction's x0 = αx − σv up to the t_min shift, so
    the student initialised with the teacher's weights starts as the teacher's denoiser (paper, §5)."""
    a0, s0 = DS.alpha_sigma(C.T_MIN)
    for t in C.LEVELS[:-1]:  # teacher: x0 = α·x − σ·v; the shift is at most ~ g_min = σ/α at t_min ≈ 0.008
        a, s = DS.alpha_sigma(t)
        k_skip, k_out = C.coefficients(t)
        assert abs(k_skip - a) + abs(k_out + s) < 2 * s0 / a0, t
    assert abs(C.coefficients(1.0)[1] + DS.alpha_sigma(1.0)[1]) < 1e-4
    skip = [C.coefficients(t)[0] for t in C.LEVELS]
    assert skip == sorted(skip) and skip[-1] == 1.0  # c_skip grows to 1 as the noise level falls


def test_training_grid_and_sampling_levels() -> None:
    assert len(C.LEVELS) == C.N_LEVELS and C.LEVELS[0] == 1.0 and list(C.LEVELS) == sorted(C.LEVELS, reverse=True)
    assert C.sample_times(1) == [1.0]
    for K in C.KS:
        ts = C.sample_times(K)
        assert len(ts) == K and ts[0] == 1.0 and set(ts) <= set(C.LEVELS) and ts == sorted(ts, reverse=True)
        assert C.T_MIN not in ts  # the last call is at a noisy level; f maps it to t_min
    assert C.sample_times(2)[1] == C.LEVELS[8]
    for bad in (0, 3, 5, 32):
        with pytest.raises(ValueError, match="K="):
            C.sample_times(bad)


def test_renoising_reaches_each_levels_marginal() -> None:
    """With f the identity, one re-noise from a clean x gives x_τ ~ N(α_τ x/α_min, σ_τ² − (α_τ g_min)²)."""
    x = torch.full((20000, 1, 1, 1), 0.5, dtype=torch.float64)
    seen: list[torch.Tensor] = []
    ts = [C.LEVELS[0], C.LEVELS[10]]
    C.sample_multistep(lambda y, t: (seen.append(y.clone()), y)[1], x, ts, seeded_rng(0))
    a, s = DS.alpha_sigma(ts[1])
    a0, s0 = DS.alpha_sigma(C.T_MIN)
    y = seen[1]
    assert abs(float(y.mean()) - a * 0.5 / a0) < 4 * s / math.sqrt(20000)
    assert abs(float(y.var()) - (s * s - (a * s0 / a0) ** 2)) < 0.05 * s * s


# ---------------------------------------------------------------- the generator contract

@pytest.mark.parametrize("budget", [Budget(K=3), Budget(K=16), Budget(S=2, K=1)])
def test_invalid_budget_raises(gen: C.ConsistencyGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="consistency"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)
    with pytest.raises(ValueError, match="sampler"):
        gen.sample(2, Budget(K=1), seeded_rng(0), sampler="ddim")


@pytest.mark.parametrize("K", C.KS)
def test_nfe_declared_equals_counted(gen: C.ConsistencyGenerator, K: int) -> None:
    counter = CallCounter(gen.networks())
    with counter:
        x = gen.sample(4, Budget(K=K), seeded_rng(0))
    assert gen.nfe(Budget(K=K)) == K == counter.count
    assert x.shape == (4, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("K", [1, 4])
def test_determinism(gen: C.ConsistencyGenerator, K: int) -> None:
    before = torch.random.get_rng_state()
    a = gen.sample(8, Budget(K=K), seeded_rng(7))
    b = gen.sample(8, Budget(K=K), seeded_rng(7))
    c = gen.sample(8, Budget(K=K), seeded_rng(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is never used


def test_one_step_is_one_call_of_f_on_the_diffusion_noise(gen: C.ConsistencyGenerator) -> None:
    """K = 1 is f(x_T, 1) on the same x_T that `diffusion` draws from the same seed."""
    x = torch.randn(6, 1, 8, 8, generator=seeded_rng(3))
    want = ((gen.f(x, 1.0) + 1) / 2).clamp(0, 1)
    assert torch.equal(gen.sample(6, Budget(K=1), seeded_rng(3)), want)


def test_checkpoint_metadata_lineage_and_size(gen: C.ConsistencyGenerator) -> None:
    from scalebench.zoo import checkpoint_path, lineage, read_index

    assert read_index()["consistency"]["parents"] == ["diffusion"]
    assert set(lineage("consistency")) == {"consistency", "diffusion"}
    assert checkpoint_path("consistency").stat().st_size <= 2 * 1024 * 1024
    meta = gen.meta
    assert meta["train_seconds"] <= 600 and meta["recipe"]["steps"] == C.RECIPE.steps
    assert meta["teacher"] == "diffusion" and meta["levels"] == list(C.LEVELS) and meta["target_ema"] == C.TARGET_EMA
    assert math.isfinite(meta["final_loss"])


# ---------------------------------------------------------------- quality on the shipped checkpoint

N_QUALITY = 1000


@pytest.fixture(scope="module")
def fids(gen: C.ConsistencyGenerator) -> dict[str, float]:
    from scalebench.methods.diffusion import DiffusionGenerator
    from scalebench.metrics.quality import compute_quality

    out = fid_by_budget(gen, {f"K={K}": Budget(K=K) for K in (1, 8)}, N_QUALITY, baseline_seed=1)
    ddim = DiffusionGenerator("cpu").sample(N_QUALITY, Budget(K=1), seeded_rng(0), "ddim")
    out["ddim K=1"] = compute_quality(ddim, Digits(), metrics=("fid",))["fid"]
    return out


def test_one_step_is_far_better_than_ddims_one_step(fids: dict[str, float]) -> None:
    """The point of consistency models: a usable sample from one call, where DDIM's one call is the mean image."""
    assert fids["K=1"] < 0.25 * fids["ddim K=1"], fids


def test_quality_beats_independent_pixel_marginals(fids: dict[str, float]) -> None:
    assert fids["K=8"] < fids["marginal"], fids
