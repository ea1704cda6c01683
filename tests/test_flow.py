"""The `flow` family: exact invertibility, log-determinants against a brute-force Jacobian, the NLL
as the change of variables plus dequantisation, one network call per sample batch, and quality on
the shipped checkpoint against independent pixels."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.data.digits import LEVELS, Digits, from_tokens, to_tokens
from scalebench.methods import flow as FL
from scalebench.methods.nets.realnvp import RealNVP, RealNVPConfig, make_mask
from scalebench.metrics.cost import CallCounter
from tests.conftest import independent_pixel_fid, seeded_rng, shipped_generator

gen = shipped_generator(FL.FlowGenerator)


@pytest.fixture(scope="module")
def flow64(gen: FL.FlowGenerator) -> RealNVP:
    """The shipped flow in float64 (for Jacobians to many digits)."""
    return copy.deepcopy(gen.flow).double()


def _logit_data(n: int, seed: int = 0) -> torch.Tensor:
    tokens = Digits().tokens("test")[:n]
    y = FL.dequantise(tokens, torch.rand(tokens.shape, generator=seeded_rng(seed)))
    return FL.to_logit(y)[0]


def test_card_and_protocols(gen: FL.FlowGenerator) -> None:
    card = FL.FlowGenerator.card
    assert (card.name, card.category, card.likelihood, card.samplers) == ("flow", "neither", "bound", ("inverse",))
    assert card.S.is_fixed and card.K.is_fixed and "Dinh" in card.paper
    assert "dequantised-bound" in card.notes and "not exact" in card.notes
    assert isinstance(gen, Generator) and isinstance(gen, HasLikelihood)
    with pytest.raises(ValueError, match="K=2"):
        gen.sample(2, Budget(K=2), seeded_rng(0))
    with pytest.raises(ValueError, match="sampler"):
        gen.sample(2, Budget(), seeded_rng(0), sampler="ancestral")


def test_masks() -> None:
    c = make_mask("checker0", 1, 4)[0, 0]
    assert c[0, 0] == 1 and c[0, 1] == 0 and c.sum() == 8
    assert torch.equal(make_mask("checker1", 1, 4), 1 - make_mask("checker0", 1, 4))
    assert make_mask("chan0", 4, 2)[0, :, 0, 0].tolist() == [1, 1, 0, 0]
    assert make_mask("chanx1", 4, 2)[0, :, 0, 0].tolist() == [0, 1, 0, 1]


def test_invertible_to_float_tolerance(gen: FL.FlowGenerator, flow64: RealNVP) -> None:
    x = _logit_data(64)
    with torch.no_grad():
        z, ld = gen.flow(x)
        back, ld_inv = gen.flow(z, reverse=True)
        z64, ld64 = flow64(x.double())
        back64, ld_inv64 = flow64(z64, reverse=True)
    torch.testing.assert_close(back, x, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ld_inv, -ld, atol=1e-3, rtol=1e-5)
    assert (back64 - x.double()).abs().max() < 1e-10 and (ld_inv64 + ld64).abs().max() < 1e-9
    zz = torch.randn(8, 1, 8, 8, generator=seeded_rng(1), dtype=torch.float64)  # and the other way round
    with torch.no_grad():
        assert (flow64(flow64(zz, reverse=True)[0])[0] - zz).abs().max() < 1e-9


def _jacobian_logdet(fn, v: torch.Tensor) -> float:  # noqa: ANN001
    jac = torch.autograd.functional.jacobian(lambda a: fn(a.view(1, 1, 8, 8)).flatten(), v.flatten())
    sign, logabs = torch.linalg.slogdet(jac)
    assert sign != 0
    return float(logabs)


def test_logdet_matches_brute_force_jacobian(flow64: RealNVP) -> None:
    """log |det ∂z/∂x| of the flow = slogdet of the 64 × 64 Jacobian, for the shipped weights and a
    small random-weight flow (so that the check does not depend on what training learnt)."""
    x = _logit_data(2).double()
    with torch.no_grad():
        _, ld = flow64(x)
    for i in range(2):
        assert abs(_jacobian_logdet(lambda a: flow64(a)[0], x[i]) - float(ld[i])) < 1e-8
    torch.manual_seed(0)
    tiny = RealNVP(RealNVPConfig(stages=(("checker0", "checker1"), ("chan0", "chanx1")), hidden=(8, 8))).double()
    with torch.no_grad():
        for p in tiny.parameters():
            p.add_(0.3 * torch.randn_like(p))  # the last convs start at zero: perturb them
        _, ld_tiny = tiny(x)
    assert float(ld_tiny.abs().min()) > 0.1
    for i in range(2):
        assert abs(_jacobian_logdet(lambda a: tiny(a)[0], x[i]) - float(ld_tiny[i])) < 1e-8


def test_nll_is_the_change_of_variables_plus_dequantisation(gen: FL.FlowGenerator, flow64: RealNVP) -> None:
    """bits = −[log N(z) + log |det ∂z/∂y|] / (64 ln 2) + log₂ 17 at y = (k + u)/17, where the
    log-det is brute force over the whole y → z map (logit included); nll() is its mean over
    NLL_DRAWS fixed-seed draws of u."""
    tokens = Digits().tokens("test")[:3]
    u = torch.rand(tokens.shape, generator=seeded_rng(5), dtype=torch.float64)
    y = FL.dequantise(tokens, u).double()
    with torch.no_grad():
        bits = FL.dequantised_bits(flow64, tokens, u)

    def y_to_z(a: torch.Tensor) -> torch.Tensor:
        return flow64(FL.to_logit(a)[0])[0]

    for i in range(3):
        with torch.no_grad():
            z = y_to_z(y[i:i + 1])
        log_pz = float(torch.distributions.Normal(0.0, 1.0).log_prob(z).sum())
        by_hand = -(log_pz + _jacobian_logdet(y_to_z, y[i])) / (64 * math.log(2)) + math.log2(LEVELS)
        assert abs(by_hand - float(bits[i])) < 1e-8
    x = from_tokens(tokens)
    nll = gen.nll(x, Budget())
    gen_u = seeded_rng(FL.NLL_SEED)
    draws = torch.rand(FL.NLL_DRAWS, 3, 64, generator=gen_u)
    with torch.no_grad():
        mean = torch.stack([FL.dequantised_bits(gen.flow, tokens, draws[d]) for d in range(FL.NLL_DRAWS)]).mean(0)
    torch.testing.assert_close(nll, mean, atol=1e-4, rtol=1e-5)
    assert torch.equal(nll, gen.nll(x, Budget()))
    # the draws do not depend on how many rows are scored at once
    many = Digits().tokens("test")[:40]
    torch.testing.assert_close(FL.nll_bits(gen.flow, many, rows=FL.NLL_DRAWS * 5),
                               FL.nll_bits(gen.flow, many, rows=FL.NLL_DRAWS * 7))


def test_importance_weighted_bound_is_tighter(gen: FL.FlowGenerator) -> None:
    """−log mean exp(−a) ≤ mean a: the importance-weighted dequantised bound is below the plain one
    (for the same draws) and both are below log₂ 17 on test data."""
    tokens = Digits().tokens("test")[:100]
    plain = FL.nll_bits(gen.flow, tokens, draws=16)
    iw = FL.nll_bits(gen.flow, tokens, draws=16, importance=True)
    assert (iw <= plain + 1e-5).all() and plain.mean() < math.log2(LEVELS)


def test_sample_is_one_inverse_pass(gen: FL.FlowGenerator) -> None:
    n = 10
    counter = CallCounter(gen.networks())
    with counter:
        x = gen.sample(n, Budget(), seeded_rng(4))
    assert gen.nfe(Budget()) == 1 == counter.count
    assert x.shape == (n, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x * (LEVELS - 1), torch.round(x * (LEVELS - 1)))
    z = torch.randn(n, 1, 8, 8, generator=seeded_rng(4))
    with torch.no_grad():
        y = FL.from_logit(gen.flow(z, reverse=True)[0])
    assert torch.equal(to_tokens(x), torch.floor(y * LEVELS).clamp(0, LEVELS - 1).long().flatten(1))
    assert torch.equal(x, gen.sample(n, Budget(), seeded_rng(4)))
    assert not torch.equal(x, gen.sample(n, Budget(), seeded_rng(5)))


def test_checkpoint_metadata_and_size(gen: FL.FlowGenerator) -> None:
    from scalebench.zoo import checkpoint_path, read_index

    assert checkpoint_path("flow").stat().st_size <= 2 * 1024 * 1024
    assert read_index()["flow"]["parents"] == []
    meta = gen.meta
    assert meta["train_seconds"] <= 600 and meta["recipe"]["steps"] == FL.RECIPE.steps
    assert meta["test_nll_importance_weighted_64_draws"] <= meta["test_nll_bits_per_dim"] < math.log2(LEVELS)


# ---------------------------------------------------------------- quality on the shipped checkpoint

def test_quality_beats_independent_pixel_marginals(gen: FL.FlowGenerator) -> None:
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    ds, n = get_dataset("digits"), 1000
    fid = compute_quality(gen.sample(n, Budget(), seeded_rng(0)), ds, metrics=("fid",))["fid"]
    marginal = independent_pixel_fid(n)
    assert fid < marginal, (fid, marginal)
