"""`mar`: masked autoregression with a per-token diffusion head (Li et al. 2024, "Autoregressive
Image Generation without Vector Quantization").

Tokens are continuous: the 64 grey values of an image in [-1, 1] (`Digits().continuous`), one
scalar per position. A bidirectional transformer (`nets/transformer.py`) reads the known tokens
(a linear embedding of each value plus a "known" id) and [MASK] ids at the other positions, plus
a 3×3 convolutional stem over the (value·known, known) maps, and outputs a conditioning vector
z_i at every position. A small MLP (`DiffusionHead`, residual
blocks with adaptive LayerNorm as in the paper's head) models p(x_i | z_i) by diffusion: it
predicts v from (x_t, t, z_i) on the project's cosine log-SNR process, trained with the
v-objective on the masked tokens only (mask sizes from MaskGIT's cosine schedule, positions
uniform at random), each token's loss drawn at 4 noise levels as in the paper.

Generation (S × K): a random order of the 64 positions is drawn per image; at AR step t the
transformer runs once on the current tokens, and the next positions of the order, as many as
the cosine schedule `maskgit.mask_schedule(S)` commits at step t, are sampled by the head with
K DDPM (η = 1, the paper's sampler) or DDIM (η = 0) steps of the shared loops in
`samplers/diffusion.py`, each token from its own z_i. Committed tokens are never revised, so S
is the outer loop and K the inner one. S = 1 samples all 64 tokens independently given nothing;
S = 64 commits one token per step. K = 1 returns the head's posterior mean E[x_i | z_i] (the
one step from pure noise to t = 0 adds no noise), a blurred token.

NFE counts every network call in sequence: S transformer calls plus S·K head calls, S·(K + 1)
in all. The two nets differ in cost (a transformer pass over 64 positions against an MLP over
the few tokens committed that step), so NFE is the count and the FLOP counter is the cost.
All randomness (order, starting noise, DDPM noise) comes from the caller's generator. The
model has no tractable likelihood (card: "none").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scalebench.api import Axis, Budget, MethodCard
from scalebench.data.digits import SIDE, Digits
from scalebench.methods.maskgit import mask_schedule, random_mask
from scalebench.methods.nets.transformer import CausalTransformer, TransformerConfig, n_params
from scalebench.methods.samplers.diffusion import SAMPLERS, SCHEDULE, alpha_sigma, logsnr, randn_like, sampler_times
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

N_TOKENS = SIDE * SIDE  # 64 continuous tokens, one grey value each
STEPS: tuple[int, ...] = (1, 2, 4, 8, 16, 64)  # S: AR steps
HEAD_STEPS: tuple[int, ...] = (1, 2, 5, 10, 25, 50)  # K: diffusion-head steps per AR step
KNOWN, MASKED = 0, 1  # ids the transformer reads; known positions add an embedding of their value
HEAD = {"width": 64, "depth": 3, "freq": 16}
Z_DIM = (3 * HEAD["depth"] + 2) * HEAD["width"]  # z_i: the head's AdaLN modulations, 704 numbers

MODEL = TransformerConfig(vocab_size=2, n_positions=N_TOKENS, d_model=64, n_layers=3, n_heads=4,
                          mlp_ratio=4, out_size=Z_DIM, dropout=0.1)
DIFFUSION_BATCH_MUL = 4  # noise levels drawn per masked token per step (the paper's value)
RECIPE = Recipe(steps=2400, batch_size=64, lr=2e-3, weight_decay=0.01, warmup=100,
                grad_clip=1.0, ema=0.995, seed=0, threads=2)


# ---------------------------------------------------------------- networks

class MARTransformer(nn.Module):
    """Bidirectional transformer over 64 continuous tokens: z (B, 64, Z_DIM) from values and a
    known-mask; the values at masked positions are ignored.

    Each position's input adds to its known/[MASK] id and position a linear embedding of its own
    value (known positions only) and a 3×3 convolution over the (value·known, known) maps: the
    stem, our stand-in for the paper's tokenizer, whose latent tokens already summarise a patch.
    Without it the transformer sat on the per-position marginals for the whole training budget
    (held-out x̂0 error the same with 0 % or 90 % of tokens known; docs/methods/mar.md)."""

    def __init__(self, cfg: TransformerConfig = MODEL) -> None:
        super().__init__()
        self.value_emb = nn.Linear(1, cfg.d_model)
        self.stem = nn.Conv2d(2, cfg.d_model, 3, padding=1)
        self.net = CausalTransformer(cfg)

    def forward(self, x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        ids = torch.where(known, KNOWN, MASKED)
        k = known.to(x.dtype)
        emb = self.value_emb(x.unsqueeze(-1)) * k.unsqueeze(-1)
        maps = torch.stack([x * k, k], 1).view(x.shape[0], 2, SIDE, SIDE)
        emb = emb + self.stem(maps).flatten(2).transpose(1, 2)
        return self.net(ids, embeds=emb, causal=False)


class DiffusionHead(nn.Module):
    """v(x_t, t, z): the per-token denoiser, a residual MLP whose LayerNorms are shifted, scaled and
    gated by z (adaptive LayerNorm as in the paper's `SimpleMLPAdaLN`, much narrower: one scalar
    per token here). z *is* the modulation vector (the transformer's output projection makes it),
    so the K head calls of an AR step reuse it; the time t enters additively at the input."""

    def __init__(self, width: int = 64, depth: int = 3, freq: int = 16) -> None:
        super().__init__()
        self.width, self.depth = width, depth
        self.register_buffer("freqs", torch.exp(-math.log(1000.0) * torch.arange(freq) / freq), persistent=False)
        self.x_in = nn.Linear(1, width)
        self.t_in = nn.Linear(2 * freq, width)
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
                                  for _ in range(depth))
        self.out = nn.Linear(width, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def z_dim(self) -> int:
        """Modulations per token: shift, scale and gate per block, shift and scale at the output."""
        return (3 * self.depth + 2) * self.width

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """v prediction (M, 1) for noisy tokens x (M, 1) at times t (M,) in [0, 1] given z (M, z_dim)."""
        arg = 1000.0 * t.float().unsqueeze(-1) * self.freqs
        h = self.x_in(x) + self.t_in(torch.cat([torch.cos(arg), torch.sin(arg)], -1))
        mods = z.split(self.width, dim=-1)
        for j, mlp in enumerate(self.mlps):
            shift, scale, gate = mods[3 * j:3 * j + 3]
            h = h + gate * mlp(F.layer_norm(h, (self.width,)) * (1 + scale) + shift)
        shift, scale = mods[-2:]
        return self.out(F.layer_norm(h, (self.width,)) * (1 + scale) + shift)


class MARNet(nn.Module):
    """Transformer + head as one state dict (prefixes `transformer.` and `head.`)."""

    def __init__(self, cfg: TransformerConfig = MODEL, head: dict[str, int] | None = None) -> None:
        super().__init__()
        self.head = DiffusionHead(**(head or HEAD))
        if cfg.out_size != self.head.z_dim:
            raise ValueError(f"transformer out_size {cfg.out_size} != the head's z_dim {self.head.z_dim}")
        self.transformer = MARTransformer(cfg)


def build_model(meta: dict[str, Any] | None = None) -> MARNet:
    if meta is None:
        return MARNet()
    return MARNet(TransformerConfig(**meta["model"]), meta["head"])


def head_denoiser(head: DiffusionHead, z: torch.Tensor) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """The shared samplers' `Denoiser` for tokens conditioned on z (M, Z): clipped x̂0 = α x − σ v."""

    def D(x: torch.Tensor, t: float) -> torch.Tensor:
        a, s = alpha_sigma(t)
        v = head(x, torch.full((x.shape[0],), t, device=x.device), z)
        return (a * x - s * v).clamp(-1.0, 1.0)

    return D


# ---------------------------------------------------------------- sampling

@torch.no_grad()
def masked_ar_decode(net: MARNet, n: int, S: int, K: int, rng: torch.Generator, sampler: str = "ddpm",
                     callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Random-order masked AR with a per-token diffusion head (Li et al. 2024, §3.3-3.4 and §4).

    A random order per image; AR step t runs the transformer once and commits the order's next
    positions (as many as `mask_schedule(S)` says), each sampled by the head with K steps of
    `sampler` ("ddpm" or "ddim"). Returns (n, 64) tokens in [-1, 1]; `callback(t, positions)`
    sees the (n, m) positions committed at step t.
    """
    dev = next(net.parameters()).device
    order = torch.rand(n, N_TOKENS, generator=rng, device=rng.device).argsort(1).to(dev)
    x = torch.zeros(n, N_TOKENS, device=dev)
    known = torch.zeros(n, N_TOKENS, dtype=torch.bool, device=dev)
    ts, loop, left = sampler_times(K, sampler), SAMPLERS[sampler], N_TOKENS
    for t, still_masked in enumerate(mask_schedule(S, N_TOKENS)):
        z = net.transformer(x, known)  # (n, 64, Z)
        pos = order[:, N_TOKENS - left:N_TOKENS - still_masked]  # (n, m): the order's next m positions
        zc = z.gather(1, pos.unsqueeze(-1).expand(-1, -1, z.shape[-1])).reshape(-1, z.shape[-1])
        noise = randn_like(torch.empty(zc.shape[0], 1, device=dev), rng)
        values = loop(head_denoiser(net.head, zc), noise, ts, rng).view(n, -1)
        x = x.scatter(1, pos, values)
        known = known.scatter(1, pos, True)
        left = still_masked
        if callback is not None:
            callback(t, pos)
    return x


class MARGenerator:
    """The shipped MAR: S random-order masked-AR steps, K diffusion-head steps per committed token."""

    card = MethodCard(
        name="mar",
        family="masked autoregression with diffusion head",
        category="both-outer-S",
        outer="S",
        S=Axis(meaning="masked-AR steps in a random order (tokens per step from the cosine "
                       "schedule; committed tokens never revised)", default=16, values=STEPS),
        K=Axis(meaning="diffusion-head sampling steps for each committed token", default=25,
               values=HEAD_STEPS),
        likelihood="none",
        paper="Li et al. 2024 (MAR)",
        samplers=("ddpm", "ddim"),
        notes=("Continuous tokens (the 64 grey values in [-1, 1]). A bidirectional transformer "
               "gives z_i at every masked position; a small AdaLN MLP head samples each committed "
               "token from p(x_i | z_i) by diffusion (v-prediction, cosine log-SNR, trailing "
               "strided steps). S AR steps in a per-image random order, ⌊64·cos(π/2·(t+1)/S)⌋ "
               "still masked after step t; K head steps per step: ddpm = ancestral (the paper's), "
               "ddim = η=0. NFE = S transformer calls + S·K head calls = S·(K+1); the head is far "
               "cheaper per call, so compare costs by FLOPs. No likelihood."),
    )

    checkpoints = ("mar",)

    def __init__(self, device: str = "cpu") -> None:
        self.model, self.meta = load_module("mar", build_model, device)
        self.device = torch.device(device)
        if self.meta.get("schedule", SCHEDULE) != SCHEDULE:
            raise ValueError(f"checkpoint schedule {self.meta['schedule']} differs from the code's {SCHEDULE}; retrain")

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"transformer": self.model.transformer, "head": self.model.head}

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n samples, canonical (n, 1, 8, 8) in [0, 1]; all randomness from `rng`."""
        s = self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        x = masked_ar_decode(self.model, n, budget.S, budget.K, rng, s)
        return ((x.float().view(n, 1, SIDE, SIDE) + 1.0) / 2.0).clamp(0.0, 1.0)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        """S transformer calls + S·K head calls (one per head step per AR step)."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return budget.S * (budget.K + 1)


# ---------------------------------------------------------------- training

def diffusion_loss(head: DiffusionHead, x0: torch.Tensor, z: torch.Tensor, gen: torch.Generator,
                   mul: int = DIFFUSION_BATCH_MUL) -> torch.Tensor:
    """The per-token diffusion loss (Li et al. 2024, Eq. 2) with the v-objective (Salimans & Ho
    2022) on the continuous cosine schedule: tokens x0 (M,) given z (M, Z), each at `mul` times."""
    x0, z = x0.repeat(mul).unsqueeze(-1), z.repeat(mul, 1)
    t = torch.rand(x0.shape[0], generator=gen)
    lam = logsnr(t).float().unsqueeze(-1)
    a, s = torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()
    eps = torch.randn(x0.shape, generator=gen)
    return F.mse_loss(head(a * x0 + s * eps, t, z), a * eps - s * x0)


def mar_loss(net: MARNet, x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Diffusion loss on the masked tokens of x (B, 64) given the unmasked ones (mask True = masked)."""
    z = net.transformer(x, ~mask)
    return diffusion_loss(net.head, x[mask], z[mask], gen)


def train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Train transformer and head jointly on the `train` split and write `mar.safetensors`."""
    recipe = recipe or RECIPE
    with seeded(recipe.seed):
        model = build_model()
    data = Digits().continuous("train").flatten(1)  # (N, 64) in [-1, 1]

    def loss_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        x = batch[0]
        return mar_loss(m, x, random_mask(*x.shape, gen), gen)  # type: ignore[arg-type]

    log.info("training mar: %d parameters (%d in the head), recipe %s", n_params(model),
             n_params(model.head), recipe)
    ema, stats = fit_model(model, data, loss_fn, recipe, log_every=250)
    test = Digits().continuous("test").flatten(1)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        test_loss = mar_loss(ema, test, random_mask(*test.shape, gen), gen).item()  # type: ignore[arg-type]
    meta = {**stats, "method": "mar", "model": MODEL.to_dict(), "head": HEAD, "schedule": SCHEDULE,
            "n_params": n_params(ema), "n_params_head": n_params(ema.head),  # type: ignore[union-attr]
            "final_loss": round(stats["final_loss"], 4), "test_loss": round(test_loss, 4),
            "data": Digits().fingerprint(),
            "layout": "transformer.* = MARTransformer (value_emb + 3x3 stem + CausalTransformer); head.* = DiffusionHead"}
    path = save_checkpoint("mar", ema.state_dict(), meta, directory=out_dir)
    log.info("mar: test v-loss %.4f; %.0fs; wrote %s", test_loss, stats["train_seconds"], path)
    return path
