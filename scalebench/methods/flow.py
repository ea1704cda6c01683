"""`flow`: a RealNVP normalising flow (Dinh et al. 2017) on uniformly dequantised `digits`.

The 17 grey levels k ∈ {0..16} are dequantised uniformly, y = (k + u) / 17 with u ~ U[0, 1)⁶⁴
(Theis et al. 2016; the RealNVP recipe), mapped to logit space, x = logit(α + (1 − 2α) y) with
α = 0.05 as in RealNVP, and a stack of affine coupling layers (`nets/realnvp.py`: 4 checkerboard
couplings at 8×8, a squeeze, 4 channel couplings at 4×4×4, a squeeze, 4 at 2×2×16) maps x to
z ~ N(0, I). The change of variables gives the exact density of y:

    log p(y) = log N(z; 0, I) + log |det ∂z/∂x| + log |det ∂x/∂y|.

NLL of the discrete data. The probability of an image is the mass of its bin, P(k) = ∫ p(y) dy
over a cube of side 1/17, and Jensen's inequality gives −log P(k) ≤ E_u[−log p((k + u)/17)] +
64 log 17. So the reported bits/dim, E_u[−log₂ p(y)] / 64 + log₂ 17 (a Monte-Carlo mean over
NLL_DRAWS fixed-seed draws of u), is an *upper bound* on the model's NLL of the discrete data
(the "dequantised bound" every flow paper reports), in the same units as `gpt`'s exact bits/dim.

Sampling is one inverse pass (S = K = fixed 1): z ~ N(0, I) from the caller's `rng`, x = f⁻¹(z),
y = (sigmoid(x) − α)/(1 − 2α), and the level is ⌊17 y⌋ (the bin y falls in, i.e. exactly the
discrete distribution P the bound is about). `RealNVP.forward(z, reverse=True)` runs the whole
inverse, so the harness counts NFE = 1.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from scalebench.api import Axis, Budget, MethodCard
from scalebench.data.digits import LEVELS, SIDE, Digits, from_tokens, quantise, to_tokens
from scalebench.methods.nets.realnvp import RealNVP, RealNVPConfig
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

D = SIDE * SIDE  # 64 dimensions
ALPHA = 0.05  # logit preprocessing of RealNVP: x = logit(α + (1 − 2α) y) keeps x finite at y = 0, 1
MODEL = RealNVPConfig(dropout=0.2)
RECIPE = Recipe(steps=2500, batch_size=64, lr=1e-3, weight_decay=0.0, warmup=100,
                grad_clip=1.0, ema=0.995, seed=0, threads=2)
NLL_DRAWS = 8  # dequantisation draws per test image in the reported bound (fixed seed)
NLL_SEED = 1234
LOG_2PI = math.log(2 * math.pi)
ROWS = 16384  # images × draws scored at once; results do not depend on it


def build_model(meta: dict[str, Any] | None = None) -> RealNVP:
    return RealNVP(RealNVPConfig.from_dict(meta["model"]) if meta else MODEL)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def dequantise(tokens: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Uniform dequantisation: levels (B, 64) and u ∈ [0, 1) (B, 64) → y = (k + u)/17 as (B, 1, 8, 8)."""
    return ((tokens.float() + u) / LEVELS).view(-1, 1, SIDE, SIDE)


def to_logit(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x = logit(α + (1 − 2α) y) and log |det ∂x/∂y| per example (Dinh et al. 2017, sec. 4.1)."""
    p = ALPHA + (1 - 2 * ALPHA) * y
    x = torch.log(p) - torch.log1p(-p)
    logdet = (math.log(1 - 2 * ALPHA) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
    return x, logdet


def from_logit(x: torch.Tensor) -> torch.Tensor:
    """The inverse of `to_logit`: y = (sigmoid(x) − α)/(1 − 2α) (may leave [0, 1] slightly)."""
    return (torch.sigmoid(x) - ALPHA) / (1 - 2 * ALPHA)


def log_density(flow: RealNVP, y: torch.Tensor) -> torch.Tensor:
    """log p(y) in nats per example by the change of variables through logit and the flow."""
    x, ld_logit = to_logit(y)
    z, ld_flow = flow(x)
    log_pz = -0.5 * (z.pow(2) + LOG_2PI).flatten(1).sum(1)
    return log_pz + ld_flow + ld_logit


def dequantised_bits(flow: RealNVP, tokens: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """−log₂ p(y)/64 + log₂ 17 at y = (k + u)/17: per example; its mean over u bounds the discrete NLL."""
    return -log_density(flow, dequantise(tokens, u)) / (D * math.log(2)) + math.log2(LEVELS)


@torch.no_grad()
def nll_bits(flow: RealNVP, tokens: torch.Tensor, draws: int = NLL_DRAWS, seed: int = NLL_SEED,
             importance: bool = False, rows: int = ROWS) -> torch.Tensor:
    """Per-example dequantised bound in bits/dim over `draws` fixed-seed draws of u.

    importance=False: the mean of the per-draw bits (the usual bound, E_u[−log p] + log 17).
    importance=True: −log₂ of the mean of the draws' bin masses 17⁻⁶⁴ p(y), per dim — also an upper
    bound on the NLL (Burda et al.'s argument with q = uniform), tighter, exact as draws → ∞.
    """
    gen = torch.Generator(device=tokens.device).manual_seed(seed)
    # all draws made up front (as vae.iwae_bits does), so the bound does not depend on `rows`
    u_all = torch.rand(draws, *tokens.shape, generator=gen, device=gen.device).to(tokens.device)
    per = max(1, rows // draws)
    out = []
    for i in range(0, len(tokens), per):
        t, u = tokens[i:i + per], u_all[:, i:i + per]
        bits = dequantised_bits(flow, t.expand(draws, *t.shape).reshape(-1, D), u.reshape(-1, D)).view(draws, -1)
        if importance:
            nats = bits * D * math.log(2)
            out.append(-(torch.logsumexp(-nats, 0) - math.log(draws)) / (D * math.log(2)))
        else:
            out.append(bits.mean(0))
    return torch.cat(out) if out else torch.zeros(0, device=tokens.device)


def inverse_sample(flow: RealNVP, z: torch.Tensor) -> torch.Tensor:
    """Flow sampling, one inverse pass (Dinh et al. 2017): x = f⁻¹(z), level = ⌊17 y⌋; (B, 64) levels."""
    x, _ = flow(z, reverse=True)
    y = from_logit(x)
    return torch.floor(y * LEVELS).clamp(0, LEVELS - 1).long().flatten(1)


class FlowGenerator:
    """The shipped RealNVP: one inverse pass per sample batch; dequantised-bound NLL."""

    card = MethodCard(
        name="flow",
        family="normalising flow (RealNVP)",
        category="neither",
        S=Axis.fixed(1),
        K=Axis.fixed(1),
        likelihood="bound",
        paper="Dinh et al. 2017 (RealNVP); uniform dequantisation: Theis et al. 2016",
        samplers=("inverse",),
        notes=("12 affine coupling layers (checkerboard at 8x8, channel masks after each squeeze), "
               "logit preprocessing, uniform dequantisation of the 17 levels. Sampling: z ~ N(0, I) "
               "from rng, one inverse pass of the whole flow (one network call), level = floor(17 y). "
               "The density of y is exact (change of variables); nll is the dequantised bound "
               "E_u[-log2 p((k+u)/17)]/64 + log2 17 over 8 fixed-seed draws: an upper bound on the "
               "NLL of the discrete data in bits/dim ('dequantised-bound'), not exact."),
    )

    checkpoints = ("flow",)

    def __init__(self, device: str = "cpu") -> None:
        self.flow, self.meta = load_module("flow", build_model, device)
        self.device = torch.device(device)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"flow": self.flow}

    @torch.no_grad()
    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n samples, canonical (n, 1, 8, 8) in [0, 1]; z (n × 64 normals) drawn from `rng`."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        z = torch.randn(n, 1, SIDE, SIDE, generator=rng, device=rng.device).to(self.device)
        return from_tokens(inverse_sample(self.flow, z))

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        """1: the whole inverse flow is one call of the network."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return 1

    @torch.no_grad()
    def nll(self, x: torch.Tensor, budget: Budget) -> torch.Tensor:
        """Dequantised upper bound on the NLL in bits/dim of canonical 8×8 images (quantised first)."""
        self.card.check_budget(budget)
        return nll_bits(self.flow, to_tokens(quantise(x.to(self.device).float())))


def flow_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
    """Mean dequantised bits/dim with a fresh uniform draw per pixel (maximum likelihood on y)."""
    tokens = batch[0]
    u = torch.rand(tokens.shape, generator=gen)
    return dequantised_bits(model, tokens, u).mean()  # type: ignore[arg-type]


def train(recipe: Recipe | None = None, out_dir: Path | None = None, model_cfg: RealNVPConfig | None = None) -> Path:
    """Train the shipped flow on the `train` split by maximum likelihood and write `flow.safetensors`.

    `model_cfg` overrides MODEL (for sweeps and tests)."""
    recipe = recipe or RECIPE
    cfg = model_cfg or MODEL
    with seeded(recipe.seed):
        model = RealNVP(cfg)
    log.info("training flow: %d parameters, recipe %s", n_params(model), recipe)
    ema, stats = fit_model(model, Digits().tokens("train"), flow_loss, recipe, log_every=500)
    test = Digits().tokens("test")
    bound = round(nll_bits(ema, test).mean().item(), 4)  # type: ignore[arg-type]
    iw = round(nll_bits(ema, test, draws=64, importance=True).mean().item(), 4)  # type: ignore[arg-type]
    meta = {**stats, "method": "flow", "model": cfg.to_dict(), "n_params": n_params(ema), "alpha": ALPHA,
            "final_loss": round(stats["final_loss"], 4), "test_nll_bits_per_dim": bound,
            "nll_draws": NLL_DRAWS, "test_nll_importance_weighted_64_draws": iw}
    path = save_checkpoint("flow", ema.state_dict(), meta, directory=out_dir)
    log.info("flow: test dequantised bound %.4f bits/dim (importance-weighted, 64 draws: %.4f); %.0fs; wrote %s",
             bound, iw, stats["train_seconds"], path)
    return path
