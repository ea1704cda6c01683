"""`vae`: convolutional VAE with a 17-way categorical likelihood per pixel; IWAE-bound test NLL.

Kingma & Welling 2013, "Auto-Encoding Variational Bayes": an encoder q(z|x) = N(μ(x), σ²(x)),
a prior p(z) = N(0, I) and a decoder p(x|z) trained by maximising the evidence lower bound
(ELBO) with the reparameterisation trick. Here the decoder's likelihood is *discretised* to the
data's 17 grey levels: for every pixel it outputs 17 logits and p(x|z) is the product of the 64
categoricals, so log p(x) is a probability of the discrete image, in the same units as `gpt`'s.

Sampling is one decoder call (S = K = fixed 1): z ~ N(0, I) and one uniform per pixel are drawn
from the caller's `rng`, the decoder gives 64 categoricals and each pixel inverts its CDF at its
own uniform (`samplers/autoregressive.inverse_cdf`). That is an exact draw from the model whose
likelihood is reported; the "mode" sampler takes each pixel's most likely level instead.

Test NLL is the importance-weighted bound of Burda, Grosse & Salakhutdinov 2016 ("Importance
Weighted Autoencoders") with k = IWAE_K samples from q(z|x): log p(x) ≥ E[log 1/k Σ p(x, zᵢ)/q(zᵢ|x)].
At k = 1 it is the ELBO; it tightens as k grows. The Monte-Carlo noise is a fixed seed.
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
from scalebench.data.digits import LEVELS, SIDE, Digits, from_tokens, quantise, to_continuous, to_tokens
from scalebench.methods.samplers import autoregressive as ar
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

D = SIDE * SIDE  # 64 pixels
NET: dict[str, Any] = {"latent": 32, "width": 32, "dropout": 0.2}
RECIPE = Recipe(steps=4000, batch_size=64, lr=2e-3, weight_decay=0.0, warmup=100,
                grad_clip=1.0, ema=0.995, seed=0, threads=2)
IWAE_K = 128  # importance samples of the reported test NLL (Burda et al. report k = 5000; ≥ 64 asked)
NLL_SEED = 1234  # the bound's Monte-Carlo noise is fixed so the number is reproducible
ROWS = 16384  # decoder rows (images × importance samples) evaluated at once; results do not depend on it
LOG_2PI = math.log(2 * math.pi)


class Encoder(nn.Module):
    """x (B, 1, 8, 8) in [-1, 1] → (μ, log σ²), each (B, latent): 8×8 → 4×4 → 2×2 convs, then linear."""

    def __init__(self, latent: int, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        w = width
        self.conv = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.SiLU(), nn.Dropout(dropout),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.SiLU(), nn.Dropout(dropout),
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.SiLU())
        self.out = nn.Linear(2 * w * 4, 2 * latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.out(self.conv(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """z (B, latent) → logits (B, 64, LEVELS) of the 64 pixels' categoricals (raster order)."""

    def __init__(self, latent: int, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        w = width
        self.width = w
        self.inp = nn.Linear(latent, 2 * w * 4)
        self.conv = nn.Sequential(
            nn.SiLU(),
            nn.ConvTranspose2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.SiLU(), nn.Dropout(dropout),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.SiLU(), nn.Dropout(dropout),
            nn.Conv2d(w, w, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w, LEVELS, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.inp(z).view(-1, 2 * self.width, 2, 2)
        return self.conv(h).flatten(2).transpose(1, 2)  # (B, LEVELS, 8, 8) → (B, 64, LEVELS)


class ConvVAE(nn.Module):
    def __init__(self, latent: int = 16, width: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        self.latent = latent
        self.encoder = Encoder(latent, width, dropout)
        self.decoder = Decoder(latent, width, dropout)


def build_model(meta: dict[str, Any] | None = None) -> ConvVAE:
    return ConvVAE(**(meta or {}).get("net", NET))


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _encode(model: ConvVAE, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return model.encoder(to_continuous(from_tokens(tokens)))


def log_px_given_z(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(x|z) in nats, summed over the 64 pixels: logits (..., 64, LEVELS), tokens (..., 64)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).sum(-1)


def log_weights(model: ConvVAE, tokens: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """log p(x, zᵢ) − log q(zᵢ|x) for zᵢ = μ + σ εᵢ: tokens (B, 64), eps (k, B, latent) → (k, B)."""
    mu, logvar = _encode(model, tokens)
    std = torch.exp(0.5 * logvar)
    z = mu + std * eps  # (k, B, L)
    k, b, L = eps.shape
    logits = model.decoder(z.reshape(k * b, L)).view(k, b, D, LEVELS)
    log_px = log_px_given_z(logits, tokens.expand(k, b, D))
    log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    log_qz = -0.5 * (eps.pow(2) + LOG_2PI + logvar).sum(-1)
    return log_px + log_pz - log_qz


def iwae_bound(model: ConvVAE, tokens: torch.Tensor, k: int, gen: torch.Generator,
               eps: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example IWAE lower bound on log p(x) in nats (Burda et al. 2016, eq. 8); k = 1 is the ELBO.
    eps (B, k, latent), when given, is the reparameterisation noise (else drawn from gen)."""
    if eps is None:
        eps = torch.randn(tokens.shape[0], k, model.latent, generator=gen, device=gen.device)
    return torch.logsumexp(log_weights(model, tokens, eps.to(tokens.device).transpose(0, 1)), dim=0) - math.log(k)


def elbo(model: ConvVAE, tokens: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Per-example ELBO in nats with the KL to the prior in closed form (Kingma & Welling 2013, eq. 10)
    and one reparameterised sample eps (B, latent) for the reconstruction term."""
    mu, logvar = _encode(model, tokens)
    z = mu + torch.exp(0.5 * logvar) * eps
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
    return log_px_given_z(model.decoder(z), tokens) - kl


@torch.no_grad()
def iwae_bits(model: ConvVAE, tokens: torch.Tensor, k: int = IWAE_K, seed: int = NLL_SEED,
              rows: int = ROWS) -> torch.Tensor:
    """Per-example IWAE bound on −log₂ p(x) / 64 (bits/dim) with fixed-seed noise, `rows` at a time."""
    gen = torch.Generator(device=tokens.device).manual_seed(seed)
    # all noise drawn up front, one row of k per example, so the bound does not depend on `rows`
    eps = torch.randn(len(tokens), k, model.latent, generator=gen, device=tokens.device)
    per = max(1, rows // k)
    out = [iwae_bound(model, tokens[i:i + per], k, gen, eps[i:i + per]) for i in range(0, len(tokens), per)]
    return -torch.cat(out) / (D * math.log(2)) if out else torch.zeros(0, device=tokens.device)


def decode_sample(decoder: Decoder, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Ancestral VAE sampling (Kingma & Welling 2013): x ~ p(x|z), each pixel by inverse CDF at u."""
    return ar.inverse_cdf(decoder(z), u)


def decode_mode(decoder: Decoder, z: torch.Tensor) -> torch.Tensor:
    """The decoder's most likely image given z (the usual "mean" VAE picture): argmax per pixel."""
    return decoder(z).argmax(-1)


class VAEGenerator:
    """The shipped convolutional VAE: one decoder call per sample batch."""

    card = MethodCard(
        name="vae",
        family="variational autoencoder",
        category="neither",
        S=Axis.fixed(1),
        K=Axis.fixed(1),
        likelihood="bound",
        paper="Kingma & Welling 2013; IWAE bound: Burda et al. 2016",
        samplers=("sample", "mode"),
        notes=("Convolutional encoder/decoder, 32-d Gaussian latent, 17-way categorical per pixel "
               "(a discretised likelihood on the grey levels). One decoder call per batch: z ~ N(0, I) "
               "from rng, then 'sample' draws every pixel from its categorical with uniforms from the "
               "same rng (an exact draw from the model whose likelihood is reported: the default), "
               "'mode' takes each pixel's most likely level (the smoother picture VAE papers show; "
               "not a draw from the model). nll = IWAE bound (k=128, fixed seed) on -log2 p(x)/64: "
               "an upper bound on the NLL in bits/dim ('iwae-bound'), not exact."),
    )

    checkpoints = ("vae",)

    def __init__(self, device: str = "cpu") -> None:
        self.model, self.meta = load_module("vae", build_model, device)
        self.device = torch.device(device)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"decoder": self.model.decoder}

    @torch.no_grad()
    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n samples, canonical (n, 1, 8, 8) in [0, 1]; z then n × 64 uniforms drawn from `rng`."""
        s = self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        z = torch.randn(n, self.model.latent, generator=rng, device=rng.device).to(self.device)
        if s == "mode":
            return from_tokens(decode_mode(self.model.decoder, z).view(n, D))
        u = torch.rand(n, D, generator=rng, device=rng.device).to(self.device)
        return from_tokens(decode_sample(self.model.decoder, z, u).view(n, D))

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        """1: the decoder runs once per batch (the encoder is not used to sample)."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return 1

    @torch.no_grad()
    def nll(self, x: torch.Tensor, budget: Budget) -> torch.Tensor:
        """IWAE bound (k = IWAE_K) on the NLL in bits/dim of canonical 8×8 images (quantised first)."""
        self.card.check_budget(budget)
        tokens = to_tokens(quantise(x.to(self.device).float()))
        return iwae_bits(self.model, tokens)


def vae_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
    """−ELBO in bits/dim, one reparameterised sample per image."""
    tokens = batch[0]
    eps = torch.randn(tokens.shape[0], model.latent, generator=gen)  # type: ignore[arg-type]
    return -elbo(model, tokens, eps).mean() / (D * math.log(2))  # type: ignore[arg-type]


def train(recipe: Recipe | None = None, out_dir: Path | None = None, net: dict[str, Any] | None = None) -> Path:
    """Train the shipped VAE on the `train` split (maximise the ELBO) and write `vae.safetensors`.

    `net` overrides NET (for sweeps and tests)."""
    recipe = recipe or RECIPE
    net = net or NET
    with seeded(recipe.seed):
        model = build_model({"net": net})
    log.info("training vae: %d parameters, recipe %s", n_params(model), recipe)
    ema, stats = fit_model(model, Digits().tokens("train"), vae_loss, recipe, log_every=500)
    test = Digits().tokens("test")
    gen = torch.Generator().manual_seed(NLL_SEED)
    with torch.no_grad():
        test_elbo = round((-elbo(ema, test, torch.randn(len(test), ema.latent, generator=gen))  # type: ignore[arg-type]
                           / (D * math.log(2))).mean().item(), 4)
        by_k = {str(k): round(iwae_bits(ema, test, k).mean().item(), 4) for k in (1, 8, 64, IWAE_K)}  # type: ignore[arg-type]
    meta = {**stats, "method": "vae", "net": net, "n_params": n_params(ema), "iwae_k": IWAE_K,
            "final_loss": round(stats["final_loss"], 4), "test_nll_bits_per_dim": by_k[str(IWAE_K)],
            "test_negative_elbo_bits_per_dim": test_elbo, "test_iwae_bits_per_dim_by_k": by_k}
    path = save_checkpoint("vae", ema.state_dict(), meta, directory=out_dir)
    log.info("vae: test IWAE NLL bound %.4f bits/dim (k=%d; by k %s; -ELBO %.4f); %.0fs; wrote %s",
             by_k[str(IWAE_K)], IWAE_K, by_k, test_elbo, stats["train_seconds"], path)
    return path
