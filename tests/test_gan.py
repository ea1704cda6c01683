"""The `gan` family: one-shot card, sampling contract, the hinge loss and spectral norm, and the
quality of the shipped generator against independent-pixel samples. (`scalebench check gan` runs
in test_contract's parametrised suite over every family.)"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.data.digits import LEVELS, Digits
from scalebench.methods import gan
from scalebench.metrics.cost import CallCounter
from scalebench.training import make_state
from tests.conftest import independent_pixel_quality, seeded_rng, shipped_generator

gen = shipped_generator(gan.GANGenerator)


def test_card_is_one_shot_without_likelihood(gen: gan.GANGenerator) -> None:
    card = gan.GANGenerator.card
    assert (card.name, card.category, card.likelihood) == ("gan", "neither", "none")
    assert card.S.is_fixed and card.K.is_fixed and card.S.default == card.K.default == 1
    assert card.S.describe() == card.K.describe() == "— (fixed 1)"
    assert "Goodfellow" in card.paper and card.samplers == ("one-shot",)
    assert isinstance(gen, Generator) and not isinstance(gen, HasLikelihood)


@pytest.mark.parametrize("budget", [Budget(S=2), Budget(K=2), Budget(S=64, K=4)])
def test_any_other_budget_is_invalid(gen: gan.GANGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="gan"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)
    with pytest.raises(ValueError, match="sampler"):
        gen.sample(2, Budget(), seeded_rng(0), sampler="truncated")


def test_one_network_call_and_canonical_form(gen: gan.GANGenerator) -> None:
    counter = CallCounter(gen.networks())
    with counter:
        x = gen.sample(300, Budget(), seeded_rng(0))
    assert gen.nfe(Budget()) == counter.count == 1
    assert x.shape == (300, 1, 8, 8) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and bool(torch.isfinite(x).all())


def test_deterministic_in_the_rng_and_independent_of_the_batch(gen: gan.GANGenerator) -> None:
    a, b, c = (gen.sample(16, Budget(), seeded_rng(seed)) for seed in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    z = gan.latents(16, gen.net.z_dim, seeded_rng(7))
    with torch.no_grad():
        one_by_one = torch.cat([gan.sample_one_shot(gen.net, z[i:i + 1]) for i in range(16)])
    torch.testing.assert_close(one_by_one, a, atol=1e-6, rtol=0)  # eval mode: a sample sees only its own z


# ---------------------------------------------------------------- the maths

def test_hinge_loss_values() -> None:
    """D's hinge loss is zero once real logits ≥ 1 and fake logits ≤ −1; otherwise the mean margin shortfall."""
    assert float(gan.hinge_d_loss(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -7.0]))) == 0.0
    assert float(gan.hinge_d_loss(torch.zeros(4), torch.zeros(4))) == 2.0  # D at chance with zero logits
    # real: max(0, 1-0.5)=0.5, max(0, 1-2)=0 → 0.25; fake: max(0, 1+0.5)=1.5, max(0, 1-3)=0 → 0.75
    assert float(gan.hinge_d_loss(torch.tensor([0.5, 2.0]), torch.tensor([0.5, -3.0]))) == pytest.approx(1.0)
    assert float(gan.hinge_g_loss(torch.tensor([0.5, -3.0, 1.0]))) == pytest.approx(0.5)  # −mean: unbounded, no margin


def test_hinge_gradients_vanish_only_beyond_the_margin() -> None:
    real = torch.tensor([2.0, 0.0], requires_grad=True)
    fake = torch.tensor([-2.0, 0.0], requires_grad=True)
    gan.hinge_d_loss(real, fake).backward()
    assert real.grad.tolist() == [0.0, -0.5] and fake.grad.tolist() == [0.0, 0.5]


def test_spectral_norm_bounds_each_layers_largest_singular_value() -> None:
    """After a few power iterations (train-mode forwards) every layer's weight, reshaped to a matrix,
    has largest singular value ≈ 1 (Miyato et al. 2018), whatever its scale at initialisation."""
    torch.manual_seed(0)
    d = gan.Discriminator(16).train()
    with torch.no_grad():
        for layer in [*d.convs, d.head]:
            layer.parametrizations.weight.original.mul_(5.0)  # far from 1 to start with
        for _ in range(30):
            d(torch.randn(8, 1, 8, 8))
    for layer in [*d.convs, d.head]:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        raw = torch.linalg.matrix_norm(layer.parametrizations.weight.original.detach().flatten(1), ord=2)
        assert float(sigma) == pytest.approx(1.0, abs=0.02) and float(raw) > 2.0


def test_real_images_are_dequantised_within_their_bin() -> None:
    x = Digits().continuous("train")[:64]
    y = gan.dequantise_real(x, seeded_rng(0))
    assert float((y - x).abs().max()) <= 1.0 / (LEVELS - 1) + 1e-6 and -1 <= float(y.min()) and float(y.max()) <= 1
    assert torch.equal(torch.round((y + 1) * (LEVELS - 1) / 2), torch.round((x + 1) * (LEVELS - 1) / 2))


def test_one_step_updates_both_networks_from_the_training_rng() -> None:
    recipe = dataclasses.replace(gan.RECIPE, steps=1)
    torch.manual_seed(0)
    G, D = gan.Generator(8, 8), gan.Discriminator(8)
    state = make_state({"G": G, "D": D}, recipe, betas=gan.BETAS)
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in state.nets.items()}
    rng_before = torch.get_rng_state()
    loss = gan.gan_step(state, (Digits().continuous("train")[:16],), seeded_rng(0))
    assert torch.equal(rng_before, torch.get_rng_state())  # all noise (z, dequantisation) from the step's rng
    assert 0 < float(loss) and "g_loss" in state.extra
    for k, m in state.nets.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters(), strict=True)), k


# ---------------------------------------------------------------- the shipped checkpoint

def test_checkpoint_metadata_and_size(gen: gan.GANGenerator) -> None:
    from scalebench.zoo import checkpoint_path, read_index

    assert checkpoint_path("gan").stat().st_size <= 2 * 1024 * 1024
    assert read_index()["gan"]["parents"] == []
    meta = gen.meta
    assert meta["train_seconds"] <= 600 and meta["recipe"]["steps"] == gan.RECIPE.steps and meta["loss"] == "hinge"
    assert 0 <= meta["final_loss"] < 2.0  # D's hinge loss below chance: it is still learning something


N_QUALITY = 1000


@pytest.fixture(scope="module")
def quality(gen: gan.GANGenerator) -> dict[str, dict[str, float]]:
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    ds = get_dataset("digits")
    which = ("fid", "diversity")
    out = {"gan": compute_quality(gen.sample(N_QUALITY, Budget(), seeded_rng(0)), ds, metrics=which)}
    out["marginal"] = independent_pixel_quality(N_QUALITY, which)
    return out


def test_quality_beats_independent_pixel_marginals(quality: dict[str, dict[str, float]]) -> None:
    assert quality["gan"]["fid"] < 0.25 * quality["marginal"]["fid"], quality


def test_no_mode_collapse(quality: dict[str, dict[str, float]]) -> None:
    """Spread in feature space close to real data's (1.0); a collapsed GAN scores near 0."""
    assert quality["gan"]["diversity"] > 0.8, quality
