"""The `ebm` family: one Langevin step's exact update, the Gaussian stationary law, counted NFE
inside inference mode, frozen parameters, determinism, the replay buffer's proportions, the CD
loss, and quality on the shipped checkpoint at the training chain length."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.methods import ebm
from scalebench.metrics.cost import CallCounter
from tests.conftest import fid_by_budget, seeded_rng, shipped_generator

gen = shipped_generator(ebm.EBMGenerator)


class Quadratic(nn.Module):
    """E(x) = ½ Σ (x − μ)² / s² per image: the energy of N(μ, s² I); ∇E = (x − μ) / s²."""

    def __init__(self, mu: torch.Tensor, s: float) -> None:
        super().__init__()
        self.mu, self.s = mu, s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((x - self.mu) ** 2).flatten(1).sum(1) / self.s**2


def test_card_and_protocols(gen: ebm.EBMGenerator) -> None:
    card = gen.card
    assert (card.name, card.category, card.likelihood) == ("ebm", "refinement", "none")
    assert card.S.is_fixed and card.K.default == ebm.K_TRAIN and card.K.valid(1) and card.K.valid(200)
    assert not card.K.valid(ebm.K_MAX + 1) and card.samplers == ("langevin",) and "Du & Mordatch" in card.paper
    assert isinstance(gen, Generator) and not isinstance(gen, HasLikelihood)  # unnormalised: no nll
    assert gen.meta["k_train"] == ebm.K_TRAIN and gen.step_size == ebm.STEP_SIZE and gen.noise == ebm.NOISE


def test_one_langevin_step_on_a_gaussian_energy_is_exact() -> None:
    """x₁ = x₀ − (λ/2)·(x₀ − μ)/s² + σ·ε, with ε the first normal draw of the same generator."""
    mu, s, lam, sigma = torch.linspace(-0.5, 0.5, 64).view(1, 1, 8, 8), 0.7, 0.3, 0.05
    x0 = torch.rand(5, 1, 8, 8, generator=seeded_rng(1)) * 2 - 1
    with torch.inference_mode():  # as the harness calls it: the gradient must still be taken
        x1 = ebm.langevin(Quadratic(mu, s), x0, 1, seeded_rng(9), lam, sigma, clamp=False)
    eps = torch.randn(x0.shape, generator=seeded_rng(9))
    torch.testing.assert_close(x1, x0 - 0.5 * lam * (x0 - mu) / s**2 + sigma * eps, atol=1e-6, rtol=0)
    torch.testing.assert_close(ebm.energy_grad(Quadratic(mu, s), x0), (x0 - mu) / s**2, atol=1e-6, rtol=0)
    # noise scale 0 is pure gradient descent; the clamp keeps the chain in the data range
    far = torch.full((2, 1, 8, 8), 0.9)
    pulled = ebm.langevin(Quadratic(-mu, 0.01), far, 1, seeded_rng(0), 1.0, 0.0)
    assert torch.equal(pulled.abs().amax(), torch.tensor(1.0))


def test_langevin_reaches_the_discretised_stationary_law() -> None:
    """With σ = √λ (true ULA) on N(μ, s²): x' = (1−a)x + aμ + σε, a = λ/(2s²), so the chain's law
    tends to N(μ, σ² / (1 − (1−a)²)) — a little wider than s² (the discretisation bias)."""
    mu, s, lam = 0.2, 0.3, 0.02
    a = lam / (2 * s**2)
    x = torch.rand(4000, 1, 8, 8, generator=seeded_rng(3)) * 2 - 1
    x = ebm.langevin(Quadratic(torch.tensor(mu), s), x, 300, seeded_rng(4), lam, lam**0.5, clamp=False)
    var = lam / (1 - (1 - a) ** 2)
    assert abs(float(x.mean()) - mu) < 0.01
    assert abs(float(x.var()) / var - 1) < 0.03 and var > s**2


@pytest.mark.parametrize("K", [1, 5, ebm.K_TRAIN])
def test_nfe_declared_equals_counted_under_inference_mode(gen: ebm.EBMGenerator, K: int) -> None:
    counter = CallCounter(gen.networks())
    with counter, torch.inference_mode():
        x = gen.sample(4, Budget(K=K), seeded_rng(0))
    assert gen.nfe(Budget(K=K)) == K == counter.count
    assert x.shape == (4, 1, 8, 8) and x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert not any(p.requires_grad or p.grad is not None for p in gen.net.parameters())


def test_flops_are_counted_through_the_gradient(gen: ebm.EBMGenerator) -> None:
    """The harness's FLOP counter runs `sample` (with its ∇ₓE) and counts forward + input backward."""
    from torch.utils.flop_counter import FlopCounterMode

    from scalebench.metrics.cost import count_flops

    per_sample = count_flops(lambda: gen.sample(2, Budget(K=3), seeded_rng(0)), 2)
    fwd = FlopCounterMode(display=False)
    with fwd, torch.no_grad():
        gen.net(torch.zeros(1, 1, 8, 8))
    assert 3 * 2 * fwd.get_total_flops() <= per_sample <= 3 * 3.5 * fwd.get_total_flops()


def test_determinism_and_rng_only(gen: ebm.EBMGenerator) -> None:
    before = torch.get_rng_state()
    a = gen.sample(8, Budget(K=5), seeded_rng(7))
    b = gen.sample(8, Budget(K=5), seeded_rng(7))
    c = gen.sample(8, Budget(K=5), seeded_rng(8))
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(before, torch.get_rng_state())
    # K steps from the seed's uniform noise: sample(K) is the chain of langevin() from init_noise
    g = seeded_rng(7)
    ref = ebm.langevin(gen.net, ebm.init_noise(8, g), 5, g, ebm.STEP_SIZE, ebm.NOISE)
    torch.testing.assert_close(a, ((ref + 1) / 2).clamp(0, 1), atol=0, rtol=0)


def test_invalid_budget_and_sampler(gen: ebm.EBMGenerator) -> None:
    with pytest.raises(ValueError, match="K=1001"):
        gen.sample(2, Budget(K=ebm.K_MAX + 1), seeded_rng(0))
    with pytest.raises(ValueError, match="S=2"):
        gen.nfe(Budget(S=2, K=5))
    with pytest.raises(ValueError, match="langevin"):
        gen.sample(2, Budget(K=5), seeded_rng(0), sampler="hmc")


def test_replay_buffer_proportions_and_write_back() -> None:
    buf = ebm.ReplayBuffer(1000, seeded_rng(0))
    n = 20_000
    x0, idx, fresh = buf.starts(n, seeded_rng(1), reinit=ebm.REINIT)
    frac = float(fresh.float().mean())
    sd = (ebm.REINIT * (1 - ebm.REINIT) / n) ** 0.5
    assert abs(frac - ebm.REINIT) < 4 * sd, frac  # 5 % fresh noise, 95 % from the buffer
    assert torch.equal(x0[~fresh], buf.x[idx[~fresh]])
    assert not torch.isclose(x0[fresh], buf.x[idx[fresh]]).flatten(1).all(1).any()
    assert float(x0.min()) >= -1 and float(x0.max()) <= 1
    counts = torch.bincount(idx, minlength=len(buf)).float()  # entries drawn uniformly: Poisson-like counts
    assert abs(float(counts.mean()) - n / len(buf)) < 1e-9 and abs(float(counts.var() / counts.mean()) - 1) < 0.15
    # write back: the entries hold the new states; ages count steps since the last fresh start
    idx = buf.starts(64, seeded_rng(2))[1].unique()
    x_new = torch.full((len(idx), 1, 8, 8), 0.25)
    buf.put(idx, x_new, torch.zeros(len(idx), dtype=torch.bool), 20)
    buf.put(idx[:3], x_new[:3], torch.ones(3, dtype=torch.bool), 20)
    assert torch.equal(buf.x[idx], x_new) and buf.age[idx[3:]].eq(20).all() and buf.age[idx[:3]].eq(20).all()
    buf.put(idx[:3], x_new[:3], torch.zeros(3, dtype=torch.bool), 20)
    assert buf.age[idx[:3]].eq(40).all()


def test_cd_loss() -> None:
    e_pos, e_neg = torch.tensor([1.0, -1.0, 0.5]), torch.tensor([2.0, 0.0, 1.0])
    want = (0.5 / 3) - 1.0 + ebm.ALPHA * ((1 + 1 + 0.25) / 3 + (4 + 0 + 1) / 3)
    torch.testing.assert_close(ebm.cd_loss(e_pos, e_neg), torch.tensor(want))
    # the gradient lowers the data's energy and raises the samples'
    p, q = e_pos.clone().requires_grad_(True), e_neg.clone().requires_grad_(True)
    ebm.cd_loss(p, q, alpha=0.0).backward()
    assert bool((p.grad > 0).all() and (q.grad < 0).all())


def test_checkpoint_metadata_and_size(gen: ebm.EBMGenerator) -> None:
    from scalebench.zoo import checkpoint_path, read_index

    assert checkpoint_path("ebm").stat().st_size <= 2 * 1024 * 1024
    assert read_index()["ebm"]["parents"] == []
    meta = gen.meta
    assert meta["train_seconds"] <= 600 and meta["recipe"]["steps"] == ebm.RECIPE.steps
    assert meta["buffer_chain_steps"]["mean"] >= ebm.K_TRAIN  # buffer chains outlast one training chain


# ---------------------------------------------------------------- quality on the shipped checkpoint

N_QUALITY = 1000


@pytest.fixture(scope="module")
def fids(gen: ebm.EBMGenerator) -> dict[str, float]:
    return fid_by_budget(gen, {f"K={K}": Budget(K=K) for K in (1, ebm.K_TRAIN)}, N_QUALITY)


def test_quality_at_the_training_chain_length_beats_independent_pixels(fids: dict[str, float]) -> None:
    assert fids[f"K={ebm.K_TRAIN}"] < fids["marginal"], fids


def test_langevin_improves_on_its_start(fids: dict[str, float]) -> None:
    assert fids[f"K={ebm.K_TRAIN}"] < fids["K=1"], fids
