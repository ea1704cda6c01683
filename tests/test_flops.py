"""FLOPs per sample: attention is counted, and every net type matches a closed-form count (issue 26).

The closed forms below are written from each network's definition (2 × multiply-adds of every
linear and convolution, biases left out as torch's counter does, plus attention's QKᵀ and AV
over the full L × S rectangle, `cost.sdpa_flops`). `count_flops` (torch's counter with the
attention formula) and `layer_flops` (layer shapes seen above the dispatcher) must both match.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from scalebench.methods.nets.pixelcnn import GatedPixelCNN, PixelCNNConfig
from scalebench.methods.nets.realnvp import RealNVP, RealNVPConfig
from scalebench.methods.nets.transformer import CausalTransformer, TransformerConfig
from scalebench.methods.nets.unet import UNet
from scalebench.metrics.cost import count_flops, layer_flops, sdpa_flops

TOL = 0.05


def torch_alone(fn, n: int) -> float:  # noqa: ANN001
    """torch's registry without the attention formula: the count before issue 26."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn()
    return counter.get_total_flops() / n


def check(fn, n: int, analytic: float, attention: float) -> None:  # noqa: ANN001
    """Both counts equal the closed form (the issue asks 5 %: on these nets they agree exactly);
    with `attention`, torch's registry alone misses it by more than 5 %."""
    counted, layers = count_flops(fn, n), layer_flops(fn, n)
    assert counted == analytic, (counted, analytic)
    assert layers == analytic, (layers, analytic)
    if attention:  # the shapes are chosen so that missing attention would fail the 5 % test
        assert attention / analytic > TOL
        assert abs(torch_alone(fn, n) / analytic - 1) > TOL


# ---------------------------------------------------------------- attention itself

@pytest.mark.parametrize("kind", ["none", "causal", "bool", "float"])
@pytest.mark.parametrize("grad", [False, True])
def test_sdpa_counts_the_full_rectangle_whatever_the_mask(kind: str, grad: bool) -> None:
    b, h, lq, lk, e, ev = 2, 3, 5, 7, 8, 4
    q = torch.randn(b, h, lq, e, requires_grad=grad)
    k = torch.randn(b, h, lk, e, requires_grad=grad)
    v = torch.randn(b, h, lk, ev, requires_grad=grad)
    kw = {"none": {}, "causal": {"is_causal": True},
          "bool": {"attn_mask": torch.ones(lq, lk, dtype=torch.bool).tril()},
          "float": {"attn_mask": torch.zeros(lq, lk)}}[kind]
    forward = 2 * b * h * lq * lk * e + 2 * b * h * lq * lk * ev  # QKᵀ + AV

    def run() -> None:
        with torch.inference_mode(False), torch.set_grad_enabled(grad):
            y = F.scaled_dot_product_attention(q, k, v, **kw)
            if grad:
                y.sum().backward()

    assert sdpa_flops(q.shape, k.shape, v.shape) == forward
    expected = forward * (3 if grad else 1)  # the backward's dQ, dK, dV: twice the forward
    assert count_flops(run, 1) == expected
    assert layer_flops(run, 1) == expected


def test_sdpa_with_grouped_query_heads_and_no_head_dim() -> None:
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    fn = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)  # noqa: E731
    assert count_flops(fn, 1) == layer_flops(fn, 1) == 2 * 2 * 4 * 6 * 6 * (8 + 8)
    q3 = torch.randn(3, 5, 8)  # (B, L, E): no head dimension
    fn3 = lambda: F.scaled_dot_product_attention(q3, q3, q3)  # noqa: E731
    assert count_flops(fn3, 1) == layer_flops(fn3, 1) == 2 * 3 * 5 * 5 * 16


# ---------------------------------------------------------------- transformer

CFG = TransformerConfig(vocab_size=11, n_positions=64, n_cond=3, d_model=16, n_layers=2, n_heads=2, mlp_ratio=4)


def transformer_flops(cfg: TransformerConfig, queries: list[tuple[int, int]]) -> tuple[int, int]:
    """(total, attention) FLOPs of one sample for calls of (new positions, keys attended) each."""
    d, per_layer = cfg.d_model, 2 * cfg.d_model ** 2 * (3 + 1 + 2 * cfg.mlp_ratio)  # qkv, proj, MLP
    head = 2 * d * (cfg.out_size or cfg.vocab_size)
    dense = sum(t * (cfg.n_layers * per_layer + head) for t, _ in queries)
    attention = sum(cfg.n_layers * 2 * t * keys * 2 * d for t, keys in queries)  # QKᵀ + AV over all heads
    return dense + attention, attention


@pytest.fixture(scope="module")
def net() -> CausalTransformer:
    torch.manual_seed(0)
    return CausalTransformer(CFG).eval()


def test_transformer_without_cache(net: CausalTransformer) -> None:
    """One causal pass over a 1-token prefix and 31 tokens (is_causal), and a bidirectional one."""
    n, t = 3, 31
    tokens, cond = torch.randint(0, 11, (n, t)), torch.randint(0, 3, (n,))
    total, attention = transformer_flops(CFG, [(t + 1, t + 1)])
    check(lambda: net(tokens, cond=cond), n, total, attention)
    check(lambda: net(tokens, cond=cond, causal=False), n, total, attention)


def test_transformer_with_cache(net: CausalTransformer) -> None:
    """Cached decoding as gpt does it: the prefix, then one token per call over the whole cache;
    then a 4-token block over the cache (the tril-mask path blockwise and jacobi verify with)."""
    n, t = 3, 31
    tokens, cond = torch.randint(0, 11, (n, t + 4)), torch.randint(0, 3, (n,))

    def decode() -> None:
        cache = net.new_cache(t + 5)
        net(cond=cond, cache=cache)
        for i in range(t):
            net(tokens[:, i:i + 1], pos=torch.tensor([i]), cache=cache)
        net(tokens[:, t:], pos=torch.arange(t, t + 4), cache=cache)
        assert cache.length == t + 5

    calls = [(1, 1)] + [(1, i + 2) for i in range(t)] + [(4, t + 5)]
    total, attention = transformer_flops(CFG, calls)
    check(decode, n, total, attention)
    # the cache makes decoding cheaper than t + 1 full causal passes (counted, not assumed)
    assert count_flops(decode, n) < transformer_flops(CFG, [(i + 1, i + 1) for i in range(t + 1)])[0]


# ---------------------------------------------------------------- U-Net

def unet_flops(base: int, emb: int, side: int = 8, heads: int = 4) -> tuple[int, int]:
    """(total, attention) of `UNet(base=base, blocks=1, emb_dim=emb)` on one 1-channel side² image:
    8×8 level: in conv, ResBlock(b→b), stride-2 conv; 4×4: ResBlock(b→2b), mid ResBlocks and
    attention, up ResBlocks (4b→2b, 2b→2b); 8×8 again: ResBlocks (3b→b, 2b→b), out conv."""
    hi, lo = side * side, (side // 2) ** 2

    def conv(hw: int, cin: int, cout: int, k: int = 3) -> int:
        return 2 * hw * cout * cin * k * k

    def res(hw: int, cin: int, cout: int) -> int:
        skip = conv(hw, cin, cout, 1) if cin != cout else 0
        return conv(hw, cin, cout) + 2 * emb * 2 * cout + conv(hw, cout, cout) + skip

    b, c = base, 2 * base
    attention = 2 * heads * lo * lo * (c // heads) * 2
    total = (2 * 2 * emb * emb  # time MLP
             + conv(hi, 1, b) + res(hi, b, b) + conv(lo, b, b)
             + res(lo, b, c) + res(lo, c, c) + conv(lo, c, 3 * c, 1) + attention + conv(lo, c, c, 1) + res(lo, c, c)
             + res(lo, 2 * c, c) + res(lo, c, c)
             + res(hi, c + b, b) + res(hi, 2 * b, b) + conv(hi, b, 1))
    return total, attention


def test_unet() -> None:
    """Its attention (2 % here) was counted before issue 26 too: its q, k, v are transposed views,
    which the CPU flash kernel does not take, so torch runs the math path's counted `bmm`s."""
    torch.manual_seed(0)
    net = UNet(base=8, blocks=1, emb_dim=8).eval()
    n, x, t = 2, torch.randn(2, 1, 8, 8), torch.rand(2)
    total, attention = unet_flops(8, 8)
    check(lambda: net(x, t), n, total, 0)


# ---------------------------------------------------------------- PixelCNN

def pixelcnn_flops(cfg: PixelCNNConfig, height: int, width: int) -> int:
    """One canvas: per gated layer the vertical (k//2 or k//2+1 rows × k) and horizontal (1 × k//2
    or k//2+1) convolutions, the 1×1 v→h link, h output and two conditioning maps; the 1×1 head.
    Layer 0's convolutions compute one row (v) or column (h) more than they keep."""
    c, p, k, hw = cfg.channels, cfg.kernel // 2, cfg.kernel, height * width
    total = 0
    for i in range(cfg.n_layers):
        cin, rows = (cfg.levels, p) if i == 0 else (c, p + 1)
        v_out, h_out = ((height + 1) * width, height * (width + 1)) if i == 0 else (hw, hw)
        total += 2 * v_out * 2 * c * cin * rows * k + 2 * h_out * 2 * c * cin * rows
        total += 2 * hw * (2 * c * 2 * c + c * c + 2 * 2 * c * cfg.cond_dim)
    return total + 2 * hw * (c * c + c * cfg.levels)


def test_pixelcnn() -> None:
    torch.manual_seed(0)
    cfg = PixelCNNConfig(levels=5, channels=6, n_layers=3, kernel=5, cond_dim=4, n_cond=2, n_positions=64)
    net = GatedPixelCNN(cfg).eval()
    n, x, cond = 2, torch.randint(0, 5, (2, 6, 8)), torch.zeros(2, dtype=torch.long)
    check(lambda: net(x, cond, 8), n, pixelcnn_flops(cfg, 6, 8), 0)


# ---------------------------------------------------------------- RealNVP

def realnvp_flops(cfg: RealNVPConfig) -> int:
    """One pass: every coupling net is three 3×3 convs, 2c → hidden → hidden → 2c, at its stage's
    side (each stage after the first squeezes: 4× the channels, half the side)."""
    total, c, side = 0, cfg.channels, cfg.side
    for i, (kinds, h) in enumerate(zip(cfg.stages, cfg.hidden, strict=True)):
        if i:
            c, side = 4 * c, side // 2
        total += len(kinds) * 2 * side * side * 9 * (2 * c * h + h * h + h * 2 * c)
    return total


def test_realnvp_both_directions() -> None:
    torch.manual_seed(0)
    cfg = RealNVPConfig(stages=(("checker0", "checker1"), ("chan0", "chanx1")), hidden=(6, 5))
    net = RealNVP(cfg).eval()
    n, x = 2, torch.randn(2, 1, 8, 8)
    check(lambda: net(x), n, realnvp_flops(cfg), 0)
    check(lambda: net(x, reverse=True), n, realnvp_flops(cfg), 0)


# ---------------------------------------------------------------- every family of the quick spec

def _quick_families() -> list:
    from scalebench.sweep.plan import expand
    from scalebench.sweep.spec import load_spec

    chosen: dict = {}  # per family: its first sampler at the spec's largest S and K
    for p in expand(load_spec("quick", device="cpu")):
        best = chosen.get(p.name)
        if best is None or (p.sampler == best.sampler and (p.S, p.K) > (best.S, best.K)):
            chosen[p.name] = p
    return list(chosen.values())


@pytest.mark.slow
@pytest.mark.parametrize("point", _quick_families(), ids=lambda p: f"{p.name}-S{p.S}-K{p.K}")
def test_every_family_counts_within_5_percent_of_its_layers(point) -> None:  # noqa: ANN001
    """The harness's count against the layer-shape count on the sampler's real calls."""
    from scalebench.sweep.measure import get_loaded

    torch.set_num_threads(2)
    gen = get_loaded(point.generator, "cpu", args=point.args, replicate=point.replicate)
    counts = []
    for count in (count_flops, layer_flops):
        rng = torch.Generator().manual_seed(0)
        counts.append(count(lambda: gen.sample(2, point.budget, rng, point.sampler), 2))  # noqa: B023
    assert counts[1] > 0 and abs(counts[0] / counts[1] - 1) <= TOL, counts
