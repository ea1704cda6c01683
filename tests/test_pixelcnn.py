"""The `pixelcnn` generator and the gated PixelCNN net: masks (causal, no blind spot), exact NLL,
determinism from noise, decode = teacher forcing, and a quality test on the shipped checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scalebench.api import Budget, Generator, HasLikelihood
from scalebench.data.digits import LEVELS, Digits, from_tokens
from scalebench.methods import pixelcnn as pc
from scalebench.methods.nets.pixelcnn import GatedPixelCNN, PixelCNNConfig
from scalebench.metrics.quality import compute_quality
from tests.conftest import independent_pixel_fid, seeded_rng, shipped_generator

gen = shipped_generator(pc.PixelCNNGenerator)


def _input_gradient_support(net: GatedPixelCNN, r: int, pixel: int) -> torch.Tensor:
    """(r²,) bool: which input pixels the logits of `pixel` depend on (nonzero gradient)."""
    x = torch.randint(0, LEVELS, (1, r, r), generator=seeded_rng(pixel))
    one_hot = F.one_hot(x, LEVELS).permute(0, 3, 1, 2).double().requires_grad_(True)
    cond = torch.tensor([pc.RESOLUTIONS.index(r)])
    pos = net.pos_emb.weight[pc.POS_OFFSET[r]:pc.POS_OFFSET[r] + r * r].view(r, r, -1)
    cmap = pos.permute(2, 0, 1).unsqueeze(0) + net.cond_emb(cond)[:, :, None, None]
    v = h = one_hot
    for layer in net.layers:
        v, h = layer(v, h, cmap)
    out = net.head(h)
    row, col = divmod(pixel, r)
    (g,) = torch.autograd.grad(out[0, :, row, col].square().sum(), one_hot)
    return (g.abs().sum(1)[0].flatten() != 0)


@pytest.mark.parametrize("r", [2, 4, 8])
def test_masks_causal_and_no_blind_spot(r: int) -> None:
    """Output pixel i depends on every earlier pixel and on no pixel ≥ i (shipped architecture)."""
    torch.manual_seed(0)
    net = GatedPixelCNN(pc.MODEL).double().eval()
    for i in range(r * r):
        dep = _input_gradient_support(net, r, i)
        assert not dep[i:].any(), f"pixel {i} sees pixels {dep[i:].nonzero().flatten().tolist()} ≥ itself"
        assert dep[:i].all(), f"blind spot: pixel {i} ignores {(~dep[:i]).nonzero().flatten().tolist()}"


def test_shallow_net_has_limited_receptive_field_but_stays_causal() -> None:
    """The gradient test can see a missing dependency: a 1-layer net cannot reach far pixels."""
    torch.manual_seed(0)
    cfg = PixelCNNConfig(n_layers=1, kernel=3)
    dep = _input_gradient_support(GatedPixelCNN(cfg).double().eval(), 8, 63)
    assert not dep[:63].all() and not dep[63:].any()


def test_card_and_protocols(gen: pc.PixelCNNGenerator) -> None:
    card = pc.PixelCNNGenerator.card
    assert card.name == "pixelcnn" and card.category == "sequence" and card.likelihood == "exact"
    assert card.S.values == (1, 4, 16, 64) and card.S.default == 64 and card.K.is_fixed
    assert card.samplers == ("ancestral",)
    assert isinstance(gen, Generator) and isinstance(gen, HasLikelihood)
    assert set(gen.networks()) == {"pixelcnn"}
    assert "model" in gen.meta and "test_nll_bits_per_dim" in gen.meta


def test_checkpoint_small_and_described(gen: pc.PixelCNNGenerator) -> None:
    from scalebench.zoo import checkpoint_path, read_index

    assert checkpoint_path("pixelcnn").stat().st_size <= 2_000_000
    assert read_index()["pixelcnn"]["parents"] == []
    for k in ("recipe", "train_seconds", "final_loss", "test_bits_per_token_by_resolution"):
        assert k in gen.meta


@pytest.mark.parametrize("budget", [Budget(S=2), Budget(S=8), Budget(S=128), Budget(S=64, K=2)])
def test_invalid_budget_raises(gen: pc.PixelCNNGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="pixelcnn"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)


@pytest.mark.parametrize("S", [1, 4, 16, 64])
def test_shapes_ranges_resolution_and_nfe(gen: pc.PixelCNNGenerator, S: int) -> None:
    calls = []
    hook = gen.model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        x = gen.sample(6, Budget(S=S), seeded_rng(1))
    finally:
        hook.remove()
    assert x.shape == (6, 1, 8, 8) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x * (LEVELS - 1), torch.round(x * (LEVELS - 1)))
    block = 8 // math.isqrt(S)
    assert torch.equal(x, x[..., ::block, ::block].repeat_interleave(block, -1).repeat_interleave(block, -2))
    assert gen.nfe(Budget(S=S)) == S == len(calls)


def test_sample_is_a_function_of_noise(gen: pc.PixelCNNGenerator) -> None:
    a = gen.sample(8, Budget(S=64), seeded_rng(7))
    b = gen.sample(8, Budget(S=64), seeded_rng(7))
    c = gen.sample(8, Budget(S=64), seeded_rng(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    u = torch.rand(8, 64, generator=seeded_rng(7))
    assert torch.equal(from_tokens(pc.decode(gen.model, 8, u)), a.view(8, 1, 8, 8))
    # chunking does not change samples
    assert torch.equal(torch.cat([pc.decode(gen.model, 8, u[:3]), pc.decode(gen.model, 8, u[3:])]),
                       pc.decode(gen.model, 8, u))


@pytest.mark.parametrize("r", [2, 4, 8])
def test_decode_equals_teacher_forcing(gen: pc.PixelCNNGenerator, r: int) -> None:
    """Each decode step's logits (net on the cropped, partly written canvas) equal the logits of
    one teacher-forced pass over the finished sample; so the log-probs of the decoded tokens
    summed step by step equal the exact NLL."""
    n = 12
    u = torch.rand(n, r * r, generator=seeded_rng(r))
    step_logp = torch.zeros(n, r * r, dtype=torch.float64)
    step_logits = []

    def next_logits(i: int, tokens: torch.Tensor) -> torch.Tensor:
        row, col = divmod(i, r)
        out = gen.model(tokens.view(n, r, r)[:, :row + 1], pc._cond(r, n, "cpu"), r, pc.POS_OFFSET[r])
        step_logits.append(out[:, :, row, col])
        return step_logits[-1]

    from scalebench.methods.samplers import autoregressive as ar

    with torch.no_grad():
        tokens = ar.decode(next_logits, u)
        assert torch.equal(tokens, pc.decode(gen.model, r, u))
        tf = pc.teacher_forced_logits(gen.model, tokens, r)
        for i in range(r * r):
            torch.testing.assert_close(step_logits[i], tf[:, i], atol=1e-5, rtol=1e-5)
            step_logp[:, i] = torch.log_softmax(step_logits[i].double(), -1).gather(1, tokens[:, i:i + 1])[:, 0]
        bpd = pc.bits_per_dim(gen.model, tokens, r).double()
    torch.testing.assert_close(bpd, -step_logp.sum(1) / (r * r * math.log(2)), atol=1e-5, rtol=1e-5)


def test_nll_exact_and_sensible(gen: pc.PixelCNNGenerator) -> None:
    x = Digits().canonical("test")[:64]
    bpd = gen.nll(x, Budget(S=64))
    assert bpd is not None and bpd.shape == (64,) and torch.isfinite(bpd).all()
    assert 0 < bpd.mean().item() < math.log2(LEVELS)
    tokens = Digits().tokens("test")[:64]
    logp = torch.log_softmax(pc.teacher_forced_logits(gen.model, tokens, 8).double(), -1)
    by_hand = -logp.gather(2, tokens.unsqueeze(-1))[..., 0].sum(1) / (64 * math.log(2))
    torch.testing.assert_close(bpd.double(), by_hand, atol=1e-5, rtol=1e-5)
    # batching does not change per-example values
    torch.testing.assert_close(gen.nll(x[:5], Budget(S=64)), bpd[:5], atol=1e-5, rtol=1e-5)
    for S in (1, 4, 16):
        assert gen.nll(x, Budget(S=S)) is None
    # the stored test NLL is that of the whole `test` split
    full = gen.nll(Digits().canonical("test"), Budget(S=64)).mean().item()
    assert abs(full - gen.meta["test_nll_bits_per_dim"]) < 1e-3


@pytest.mark.slow  # ≥ 15 s on 2 cores: run by `make test-slow` (CI runs both)
def test_quality_beats_independent_pixel_marginals(gen: pc.PixelCNNGenerator) -> None:
    """At S = 64, 1000 samples: FID below that of pixels drawn independently from the data's marginals."""
    ds = Digits()
    samples = gen.sample(1000, Budget(S=64), seeded_rng(0))
    fid_model = compute_quality(samples, ds, metrics=("fid",))["fid"]
    fid_marg = independent_pixel_fid(1000, seed=1)
    assert fid_model < fid_marg, (fid_model, fid_marg)
