"""`ards`: autoregressive distribution smoothing — an AR model of noise-smoothed digits, then denoising.

Meng et al. 2021, "Improved Autoregressive Modeling with Distribution Smoothing": instead of
modelling the data x, model a smoothed x̃ ~ q_σ(x̃ | x) with an autoregressive net (stage 1),
then revert the smoothing with a learned denoiser p(x | x̃) (stage 2); the two-stage model has
the bound log p(x) ≥ E_q[log p(x̃) + log p(x | x̃) − log q(x̃ | x)]; samples are stage 1's x̃
followed by single-step denoising to E[x | x̃].

Smoothing channel (a choice for 17 grey levels): x̃ = the grey level nearest to
clamp(x + σ ε, −1, 1) with ε ~ N(0, 1), σ = SIGMA in [−1, 1] units. So q_σ is a 17 × 17
transition matrix between grey levels (`smoothing_matrix`, exact Gaussian bin masses with
open edge bins), x̃ lives on the same grid as x, and stage 1 is a categorical AR model that
reuses `gpt`'s resolution-conditioned transformer and inverse-CDF decoding unchanged.

Axes. S = r² tokens of x̃ written by the AR model at r×r (1, 4, 16, 64, as `gpt`; the r×r
sample is nearest-upsampled to 8×8 before denoising). K = smoothing levels walked back in the
outer loop, shifted by one because a `Budget` needs K ≥ 1: K = 1 returns the AR's smoothed
sample itself, K = 1 + P applies P denoising passes along the decreasing ladder
σ_j = SIGMA·(P − j)/P, j = 0..P−1; between passes the pass's categorical p(x | x̃, σ_j) is
sampled and re-smoothed at σ_{j+1}; the last pass returns the posterior mean (the paper's
single-step denoising). NFE = S + K − 1.

One checkpoint `ards` holds both stages (`ar.*`: `gpt`'s transformer fine-tuned on smoothed
pyramids, so its parent is `gpt`; `den.*`: a σ-conditioned U-Net with 17 logits per pixel).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scalebench.api import Axis, Budget, MethodCard
from scalebench.data.digits import LEVELS, SIDE, Digits, from_tokens, to_tokens
from scalebench.methods import gpt
from scalebench.methods.nets.transformer import TransformerConfig, n_params
from scalebench.methods.nets.unet import UNet
from scalebench.methods.raster_ar import ResolutionARGenerator
from scalebench.methods.samplers import autoregressive as ar
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_checkpoint, load_module, save_checkpoint

log = logging.getLogger(__name__)

SIGMA = 0.25  # smoothing std in [-1, 1] units: two grey-level bins (bin width 2/16)
KS: tuple[int, ...] = (1, 2, 3, 5, 9)  # K = 1 + denoising passes: 0, 1, 2, 4, 8 passes
DEN = {"out_ch": LEVELS, "base": 16, "blocks": 1, "up_blocks": 1, "emb_dim": 64}
AR_RECIPE = Recipe(steps=600, batch_size=64, lr=1e-3, weight_decay=0.01, warmup=50,
                   grad_clip=1.0, ema=0.99, seed=0, threads=2)
"""Fine-tunes `gpt`'s weights on smoothed pyramids (a from-scratch run needs ~1500 steps, ~5 min)."""
DEN_RECIPE = Recipe(steps=2000, batch_size=128, lr=2e-3, warmup=100, grad_clip=1.0, ema=0.995, seed=0, threads=2)
NLL_SEED = 1234  # the bound's Monte-Carlo draws of x̃ are fixed so the number is reproducible
NLL_DRAWS = 4
SAMPLE_CHUNK = 4096


# ---------------------------------------------------------------- the smoothing channel

def levels(device: torch.device | str = "cpu") -> torch.Tensor:
    """The 17 grey levels in [-1, 1]."""
    return torch.linspace(-1.0, 1.0, LEVELS, device=device)


def smoothing_matrix(sigma: float | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """M[i, j] = q_σ(x̃ = level j | x = level i): Gaussian mass of level j's bin around level i,
    the edge bins open (the clamp); σ = 0 is the identity. Rows sum to 1. A tensor of σ (B,)
    gives one matrix per σ, (B, 17, 17)."""
    sig = torch.as_tensor(sigma, dtype=torch.float64, device=device)
    c = levels(device).double()
    edges = torch.cat([c.new_tensor([-math.inf]), (c[1:] + c[:-1]) / 2, c.new_tensor([math.inf])])
    diff = edges[None, :] - c[:, None]  # (17, 18)
    s = sig.clamp_min(1e-12)[..., None, None]
    cdf = torch.where(s > 1e-9, torch.special.ndtr(diff / s), (diff > 0).double())
    return (cdf[..., 1:] - cdf[..., :-1]).float()


def smooth_tokens(tokens: torch.Tensor, sigma: float, u: torch.Tensor) -> torch.Tensor:
    """x̃ ~ q_σ(· | x) for integer tokens, one uniform per token (inverse CDF of the row of M)."""
    logm = smoothing_matrix(sigma, tokens.device).clamp_min(1e-30).log()
    return ar.inverse_cdf(logm[tokens], u)


def channel_log_prob(x: torch.Tensor, xt: torch.Tensor, sigma: float) -> torch.Tensor:
    """Per-example log q_σ(x̃ | x) in nats for tokens (B, d)."""
    logm = smoothing_matrix(sigma, x.device).clamp_min(1e-30).log()
    return logm[x, xt].sum(1)


def ladder(passes: int) -> list[float]:
    """The decreasing smoothing levels walked back by `passes` denoising passes."""
    return [SIGMA * (passes - j) / passes for j in range(passes)]


# ---------------------------------------------------------------- stage 2: the denoiser

def denoiser_logits(den: nn.Module, xt: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Logits (B, 64, LEVELS) of p(x | x̃, σ) for smoothed tokens x̃ (B, 64); σ is fed as σ/SIGMA."""
    b = xt.shape[0]
    s = sigma if isinstance(sigma, torch.Tensor) else torch.full((b,), float(sigma), device=xt.device)
    img = from_tokens(xt) * 2.0 - 1.0
    return den(img, s / SIGMA).flatten(2).transpose(1, 2)


@torch.no_grad()
def reverse_smoothing(den: nn.Module, xt: torch.Tensor, passes: int, rng: torch.Generator) -> torch.Tensor:
    """Walk the smoothing ladder back from x̃ (B, 64 tokens) in `passes` denoiser calls; canonical out.

    Meng et al. 2021, §3 (single-step denoising to E[x | x̃]), iterated over decreasing σ.
    Between passes x ~ p(x | x̃, σ_j) and x̃ ~ q_{σ_{j+1}}(· | x); the last pass returns E[x | x̃].
    """
    if passes == 0:
        return from_tokens(xt)
    sigmas = ladder(passes)
    for j, s in enumerate(sigmas):
        logits = denoiser_logits(den, xt, s)
        if j == passes - 1:
            mean = (torch.softmax(logits.float(), -1) * levels(xt.device)).sum(-1)  # (B, 64) in [-1, 1]
            return ((mean.view(-1, 1, SIDE, SIDE) + 1.0) / 2.0).clamp(0.0, 1.0)
        u = torch.rand(2, *xt.shape, generator=rng, device=rng.device).to(xt.device)
        xt = smooth_tokens(ar.inverse_cdf(logits, u[0]), sigmas[j + 1], u[1])
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- both stages in one module

class ARDSNet(nn.Module):
    """Stage 1 (`ar`: `gpt`'s resolution-conditioned transformer) and stage 2 (`den`: a U-Net)."""

    def __init__(self, model: TransformerConfig = gpt.MODEL, den: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.ar = gpt.build_model(model)
        self.den = UNet(**(den or DEN))


def build_model(meta: dict[str, Any] | None = None) -> ARDSNet:
    if meta is None:
        return ARDSNet()
    return ARDSNet(TransformerConfig(**meta["model"]), meta["den"])


class ARDSGenerator(ResolutionARGenerator):
    """The shipped two-stage model: S tokens of x̃ from the AR model, then K − 1 denoising passes."""

    card = MethodCard(
        name="ards",
        family="autoregressive distribution smoothing",
        category="both-outer-K",
        outer="K",
        S=Axis(meaning="tokens of the smoothed image written by the AR model (r×r at S=r², upsampled "
                       "to 8×8 before denoising)", default=64, values=gpt.GPTGenerator.card.S.values),
        K=Axis(meaning="1 + denoising passes along a decreasing smoothing ladder (K=1: the smoothed AR "
                       "sample itself)", default=2, values=KS),
        likelihood="bound",
        paper="Meng et al. 2021",
        samplers=("ladder",),
        notes=(f"Stage 1: gpt's resolution-conditioned transformer fine-tuned on digits smoothed by "
               f"x̃ = nearest grey level of clamp(x + {SIGMA}·ε, −1, 1) (a 17×17 channel). Stage 2: a "
               f"σ-conditioned U-Net with a categorical p(x | x̃, σ) per pixel. K is shifted by one "
               f"(Budget needs K ≥ 1): K = 1 + P denoising passes at σ_j = {SIGMA}·(P−j)/P; between "
               "passes x is drawn from p(x | x̃) and re-smoothed at the next σ; the last pass returns "
               "E[x | x̃]. Outer loop = K (the AR stage runs once, first). NFE = S + K − 1. nll at S = 64: "
               "K = 1 exact bits/dim of the smoothed model; K = 2 the two-stage bound "
               "E_q[−log p(x̃) − log p(x | x̃) + log q(x̃ | x)] (4 fixed draws of x̃), of the model that "
               "draws x from p(x | x̃), as in the paper; None for K > 2 and S < 64."),
    )

    checkpoints = ("ards",)
    chunk = SAMPLE_CHUNK

    def __init__(self, device: str = "cpu") -> None:
        net, self.meta = load_module("ards", build_model, device)
        self.net: ARDSNet = net  # type: ignore[assignment]
        self.device = torch.device(device)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"ar": self.net.ar, "denoiser": self.net.den}

    def decode_tokens(self, r: int, u: torch.Tensor) -> torch.Tensor:
        return gpt.decode(self.net.ar, r, u)

    def token_bits(self, tokens: torch.Tensor) -> torch.Tensor:
        return gpt.bits_per_dim(self.net.ar, tokens)

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n samples, canonical (n, 1, 8, 8) in [0, 1]: the AR's x̃ (S tokens), then K − 1 passes."""
        smoothed = self._sample(n, budget, rng, sampler, self.decode_tokens)
        return reverse_smoothing(self.net.den, to_tokens(smoothed), budget.K - 1, rng)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        """S AR calls (KV cache) and K − 1 denoiser calls."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return budget.S + budget.K - 1

    @torch.no_grad()
    def nll(self, x: torch.Tensor, budget: Budget) -> torch.Tensor | None:
        """Bits/dim at S = 64: exact for K = 1, the two-stage bound for K = 2; None otherwise."""
        self.card.check_budget(budget)
        if budget.S != SIDE * SIDE or budget.K > 2:
            return None
        if budget.K == 1:
            return super().nll(x, budget)
        return two_stage_bound(self.net, to_tokens(x.to(self.device).float()))


@torch.no_grad()
def two_stage_bound(net: ARDSNet, tokens: torch.Tensor, draws: int = NLL_DRAWS) -> torch.Tensor:
    """Per-example bound in bits/dim: E_{x̃~q}[−log p(x̃) − log p(x | x̃, σ) + log q(x̃ | x)]
    (Meng et al. 2021, Eq. 4), averaged over `draws` fixed-seed draws of x̃."""
    gen = torch.Generator(device=tokens.device).manual_seed(NLL_SEED)
    total = torch.zeros(tokens.shape[0], device=tokens.device)
    for _ in range(draws):
        xt = smooth_tokens(tokens, SIGMA, torch.rand(tokens.shape, generator=gen, device=tokens.device))
        ar_nats = gpt.bits_per_dim(net.ar, xt) * tokens.shape[1] * math.log(2)
        logits = denoiser_logits(net.den, xt, SIGMA)
        den_nats = F.cross_entropy(logits.float().transpose(1, 2), tokens, reduction="none").sum(1)
        total += ar_nats + den_nats + channel_log_prob(tokens, xt, SIGMA)
    return total / (draws * tokens.shape[1] * math.log(2))


# ---------------------------------------------------------------- training

def smoothed_ar_loss(m: nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
    """Next-token cross-entropy on freshly smoothed pyramid tokens x̃ ~ q_σ(· | x), all resolutions."""
    total, count = 0.0, 0
    for r, tok in zip(gpt.RESOLUTIONS, batch, strict=True):
        xt = smooth_tokens(tok, SIGMA, torch.rand(tok.shape, generator=gen))
        logits = gpt.teacher_forced_logits(m, xt, r)  # type: ignore[arg-type]
        total = total + F.cross_entropy(logits.reshape(-1, LEVELS), xt.reshape(-1), reduction="sum")
        count += xt.numel()
    return total / count


def denoiser_loss(m: nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
    """Cross-entropy of x under p(x | x̃, σ), x̃ ~ q_σ(· | x); half the batch at σ = SIGMA (stage 1's
    level), half at σ ~ U(0, SIGMA] (the ladder's lower levels)."""
    tok = batch[0]
    b = tok.shape[0]
    s = SIGMA * torch.where(torch.arange(b) < b // 2, torch.ones(b), 1.0 - torch.rand(b, generator=gen))
    u = torch.rand(tok.shape, generator=gen)
    mats = smoothing_matrix(s).clamp_min(1e-30).log()  # (b, 17, 17)
    xt = ar.inverse_cdf(mats[torch.arange(b)[:, None], tok], u)
    return F.cross_entropy(denoiser_logits(m, xt, s).transpose(1, 2), tok)


def train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Fine-tune `gpt` on smoothed pyramids (stage 1), train the denoiser (stage 2); write `ards.safetensors`.

    `recipe` replaces the AR stage's recipe (the denoiser's steps scale with it)."""
    ar_recipe = recipe or AR_RECIPE
    den_recipe = DEN_RECIPE if recipe is None else Recipe(**{**DEN_RECIPE.to_dict(), "steps": max(1, recipe.steps * 10 // 3),
                                                               "seed": recipe.seed})
    state, gpt_meta = load_checkpoint("gpt", "cpu", out_dir if out_dir and (out_dir / "gpt.safetensors").exists() else None)
    with seeded(ar_recipe.seed):
        net = build_model({"model": gpt_meta["model"], "den": DEN})
    net.ar.load_state_dict(state)
    pyr = Digits().pyramid("train", gpt.RESOLUTIONS)
    data = tuple(to_tokens(pyr[r]) for r in gpt.RESOLUTIONS)
    log.info("ards stage 1: fine-tuning gpt (%d params) on σ=%.2f smoothed pyramids, %s", n_params(net.ar), SIGMA, ar_recipe)
    ar_ema, ar_stats = fit_model(net.ar, data, smoothed_ar_loss, ar_recipe, log_every=200)
    log.info("ards stage 2: denoiser UNet(%s), %d params, %s", DEN, n_params(net.den), den_recipe)
    den_ema, den_stats = fit_model(net.den, Digits().tokens("train"), denoiser_loss, den_recipe, log_every=500)
    net.ar, net.den = ar_ema, den_ema  # type: ignore[assignment]
    test = Digits().tokens("test")
    with torch.no_grad():
        exact_smoothed = gpt.bits_per_dim(net.ar, test).mean().item()
        bound = two_stage_bound(net, test).mean().item()
        gen = torch.Generator().manual_seed(NLL_SEED)
        xt = smooth_tokens(test, SIGMA, torch.rand(test.shape, generator=gen))
        mean = reverse_smoothing(net.den, xt, 1, gen)
        mse_before = (from_tokens(xt) - from_tokens(test)).pow(2).mean().item()
        mse_after = (mean - from_tokens(test)).pow(2).mean().item()
    meta = {"method": "ards", "model": gpt_meta["model"], "den": DEN, "sigma": SIGMA,
            "recipe": ar_recipe.to_dict(), "den_recipe": den_recipe.to_dict(),
            "train_seconds": round(ar_stats["train_seconds"] + den_stats["train_seconds"], 1),
            "final_loss": round(ar_stats["final_loss"] + den_stats["final_loss"], 4),
            "final_loss_ar": round(ar_stats["final_loss"], 4), "final_loss_denoiser": round(den_stats["final_loss"], 4),
            "threads": ar_stats["threads"], "n_params": n_params(net), "data": Digits().fingerprint(),
            "test_nll_bits_per_dim": round(bound, 4), "test_exact_bits_per_dim_smoothed_model": round(exact_smoothed, 4),
            "test_mse_smoothed": round(mse_before, 5), "test_mse_denoised": round(mse_after, 5),
            "final_loss_is": "AR cross-entropy (nats/token) + denoiser cross-entropy (nats/pixel)"}
    path = save_checkpoint("ards", net.state_dict(), meta, directory=out_dir, parents=("gpt",))
    log.info("ards: bound %.4f bits/dim (smoothed-model exact %.4f); MSE %.4f → %.4f; %.0fs; wrote %s",
             bound, exact_smoothed, mse_before, mse_after, meta["train_seconds"], path)
    return path
