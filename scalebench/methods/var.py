"""`var`: next-scale prediction over the grey-level pyramid (Tian et al. 2024, VAR).

An image is a chain of token maps at the sides `SIDES` = 1, 2, 3, 4, 6, 8: map k is the 8×8
image area-downsampled to side s_k and re-quantised to the 17 grey levels (`digits.downsample`,
the dataset's pyramid view), so the last map is the image itself. These *quantised pyramid
levels of the grey values* stand in for the paper's residual multi-scale VQ-VAE tokens (see the
doc for why). One transformer (the shared `CausalTransformer`) reads the 130 tokens of the
whole chain at once under a **block-causal** mask: a row of scale k attends to every row of
scales ≤ k (its own scale included, in both directions) and to nothing finer. The rows fed for
scale k (k ≥ 1) are map k−1 nearest-upsampled to side s_k (the paper feeds the interpolated
coarser map likewise); scale 0 is predicted from the start token (a conditioning id). Row t of
the output predicts flat token t, so a single teacher-forced pass scores the whole chain.

At a budget of S scales the sampler runs S network calls (one per scale, KV cache): call k
feeds scale k's rows and draws all s_k² tokens of map k in parallel, each independently from
its own categorical at a pre-drawn uniform (inverse CDF, `samplers/autoregressive.py`); map
S−1 is nearest-upsampled to 8×8. The 130 uniforms per sample are drawn up front whatever S is,
so the S-scale sample is the coarse prefix of the 6-scale sample from the same seed.

Likelihood is a **bound**: the pyramid is a deterministic function P(x) of the image, so
p(x) = Σ_c p(c, x) ≥ p(P(x)) and −log₂ p(P(x)) / 64 (the chain's NLL of the true pyramid, per
pixel of the 8×8 image) upper-bounds the model's −log₂ p(x) / 64 at S = 6. It is not exact:
the model may put mass on chains whose coarse maps disagree with their last one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from scalebench.api import Axis, Budget, MethodCard
from scalebench.data.digits import LEVELS, SIDE, Digits, downsample, from_tokens, quantise, to_tokens, upsample
from scalebench.methods.nets.transformer import CausalTransformer, TransformerConfig, n_params
from scalebench.methods.samplers import autoregressive as ar
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

SIDES: tuple[int, ...] = (1, 2, 3, 4, 6, 8)  # the scale schedule (VAR's patch_nums), coarse to fine
N_SCALES = len(SIDES)
# Flat layout of the chain: map k occupies tokens OFFSETS[k] .. OFFSETS[k+1]-1; 130 tokens in all.
OFFSETS: tuple[int, ...] = tuple(sum(s * s for s in SIDES[:k]) for k in range(N_SCALES + 1))
N_TOKENS = OFFSETS[-1]
SAMPLE_CHUNK = 4096  # rows decoded or scored at once; bounds memory, results do not depend on it

# The start token is conditioning id 0; the 129 fed rows of scales 1..5 take positions 0..128
# (each scale its own block of the table, which also plays the paper's level embedding).
MODEL = TransformerConfig(vocab_size=LEVELS, n_positions=N_TOKENS - 1, n_cond=1, d_model=64, n_layers=4,
                          n_heads=4, mlp_ratio=4, dropout=0.1)
# gpt's recipe and net (d = 64, dropout 0.1: its sweep's choice for this data set) with 1,000
# steps instead of 1,500: one step reads all 130 chain tokens in one pass (~0.36 s on 2 threads).
RECIPE = Recipe(steps=1000, batch_size=64, lr=3e-3, weight_decay=0.01, warmup=100,
                grad_clip=1.0, ema=0.995, seed=0, threads=2)


# ---------------------------------------------------------------- the pyramid (tokeniser)

def pyramid_tokens(x: torch.Tensor) -> torch.Tensor:
    """Canonical 8×8 images (n, 1, 8, 8) → the flat chain (n, 130): each map is the image
    area-downsampled to its side and re-quantised (map 5 is the quantised image itself)."""
    x = quantise(x.float())
    return torch.cat([to_tokens(downsample(x, s)) for s in SIDES], dim=1)


def scale_map(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Map k of a flat chain as canonical images (n, 1, s_k, s_k)."""
    return from_tokens(flat[:, OFFSETS[k]:OFFSETS[k + 1]])


def scale_inputs(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Tokens fed for scale k ≥ 1: map k−1 nearest-upsampled to side s_k, (n, s_k²)."""
    return to_tokens(upsample(scale_map(flat, k - 1), SIDES[k]))


def chain_inputs(flat: torch.Tensor, n_scales: int = N_SCALES) -> torch.Tensor:
    """Fed tokens of scales 1..n_scales−1 (n, OFFSETS[n_scales] − 1), from maps 0..n_scales−2."""
    parts = [scale_inputs(flat, k) for k in range(1, n_scales)]
    return torch.cat(parts, dim=1) if parts else flat.new_zeros(flat.shape[0], 0)


def levels(n_scales: int = N_SCALES) -> torch.Tensor:
    """Scale index of every fed row (start row included): (OFFSETS[n_scales],)."""
    return torch.cat([torch.full((s * s,), k) for k, s in enumerate(SIDES[:n_scales])])


def block_causal_mask(n_scales: int = N_SCALES) -> torch.Tensor:
    """(L, L) bool, True = may attend: row i sees row j iff scale(j) ≤ scale(i) (VAR's mask)."""
    lv = levels(n_scales)
    return lv.unsqueeze(0) <= lv.unsqueeze(1)


def start(n: int, device: torch.device | str) -> torch.Tensor:
    """The start token's conditioning ids for n rows (id 0: the model is unconditional)."""
    return torch.zeros(n, dtype=torch.long, device=device)


def chain_logits(model: CausalTransformer, flat: torch.Tensor, n_scales: int = N_SCALES) -> torch.Tensor:
    """Teacher-forced logits (n, OFFSETS[n_scales], LEVELS): row t predicts flat token t, from
    the true coarser maps; one forward pass with the block-causal mask."""
    n, length = flat.shape[0], OFFSETS[n_scales]
    inputs = chain_inputs(flat, n_scales)
    pos = torch.arange(length - 1, device=flat.device)
    mask = block_causal_mask(n_scales).to(flat.device)
    return model(inputs if length > 1 else None, pos=pos, cond=start(n, flat.device), mask=mask)


@torch.no_grad()
def next_scale_decode(model: CausalTransformer, n_scales: int, u: torch.Tensor,
                      use_cache: bool = True) -> torch.Tensor:
    """Next-scale prediction (Tian et al. 2024): one network call per scale, all tokens of a
    scale drawn in parallel, token t by inverse CDF at its own uniform u[:, t]. Returns the
    flat chain of the first n_scales maps, (n, OFFSETS[n_scales]).

    `use_cache=False` recomputes the whole chain each call under the block-causal mask (the
    reference for the cache); with the cache a call feeds one scale's rows, unmasked, against
    the cached coarser rows — the same attention pattern.
    """
    n = u.shape[0]
    flat = torch.zeros(n, OFFSETS[n_scales], dtype=torch.long, device=u.device)
    cache = model.new_cache() if use_cache else None
    cond = start(n, u.device)
    for k in range(n_scales):
        a, b = OFFSETS[k], OFFSETS[k + 1]
        if cache is None:
            logits = chain_logits(model, flat[:, :b], k + 1)[:, a:b]
        elif k == 0:
            logits = model(cond=cond, cache=cache)
        else:
            pos = torch.arange(a - 1, b - 1, device=u.device)
            logits = model(scale_inputs(flat, k), pos=pos, cache=cache, causal=False)
        flat[:, a:b] = ar.inverse_cdf(logits, u[:, a:b])
    return flat


def chain_bits(model: CausalTransformer, flat: torch.Tensor) -> torch.Tensor:
    """Per-example NLL of whole chains (n, 130) in bits per pixel of the 8×8 image (total / 64)."""
    nats = F.cross_entropy(chain_logits(model, flat).float().transpose(1, 2), flat, reduction="none")
    return nats.sum(1) / (SIDE * SIDE * torch.log(torch.tensor(2.0)))


def build_model(cfg: TransformerConfig = MODEL) -> CausalTransformer:
    return CausalTransformer(cfg)


class VARGenerator:
    """The shipped next-scale-prediction transformer, generating S of the 6 scales."""

    card = MethodCard(
        name="var",
        family="next-scale prediction",
        category="sequence",
        S=Axis(meaning="scales generated (sides 1,2,3,4,6,8; the S-th map nearest-upsampled to 8×8); "
                       "one parallel step per scale", default=N_SCALES, values=tuple(range(1, N_SCALES + 1))),
        K=Axis.fixed(1),
        likelihood="bound",
        paper="Tian et al. 2024",
        samplers=("parallel",),
        notes=("A transformer with block-causal attention over the token maps of the grey-level "
               "pyramid (area-downsampled, re-quantised to 17 levels; not the paper's residual VQ "
               "tokens) writes one whole scale per call (KV cache), all its tokens drawn in "
               "parallel; at S scales the S-th map (side 1,2,3,4,6,8) is upsampled to 8×8. nll "
               "at S=6 is an upper bound: the NLL of the image's own pyramid, −log₂ p(P(x))/64 ≥ "
               "−log₂ p(x)/64; None at S<6 (a coarser image)."),
    )

    checkpoints = ("var",)

    def __init__(self, device: str = "cpu") -> None:
        self.model, self.meta = load_module("var", lambda m: build_model(TransformerConfig(**m["model"])), device)
        self.device = torch.device(device)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"transformer": self.model}

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None,
               use_cache: bool = True) -> torch.Tensor:
        """n samples, canonical (n, 1, 8, 8) in [0, 1]; all randomness from `rng` (n × 130 uniforms,
        whatever S is, so fewer scales give the coarse prefix of the same chain)."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        u = torch.rand(n, N_TOKENS, generator=rng, device=rng.device).to(self.device)
        k = budget.S - 1
        if not n:
            return torch.zeros(0, 1, SIDE, SIDE, device=self.device)
        flat = torch.cat([next_scale_decode(self.model, budget.S, u[i:i + SAMPLE_CHUNK], use_cache)
                          for i in range(0, n, SAMPLE_CHUNK)])
        return upsample(scale_map(flat, k), SIDE)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        """S: one transformer call per scale (the first sees only the start token)."""
        self.card.check_budget(budget)
        return budget.S

    @torch.no_grad()
    def nll(self, x: torch.Tensor, budget: Budget) -> torch.Tensor | None:
        """Upper bound on bits/dim of canonical 8×8 images at S = 6 (the chain NLL of their own
        pyramid, quantised first); None for S < 6."""
        self.card.check_budget(budget)
        if budget.S != N_SCALES:
            return None
        flat = pyramid_tokens(x.to(self.device))
        if not len(flat):
            return torch.zeros(0, device=self.device)
        return torch.cat([chain_bits(self.model, flat[i:i + SAMPLE_CHUNK])
                          for i in range(0, len(flat), SAMPLE_CHUNK)])


def bits_by_scale(model: CausalTransformer, flat: torch.Tensor) -> dict[str, float]:
    """Mean bits per token of each map given the true coarser ones (for the checkpoint metadata)."""
    with torch.no_grad():
        nats = F.cross_entropy(chain_logits(model, flat).float().transpose(1, 2), flat, reduction="none")
    ln2 = torch.log(torch.tensor(2.0)).item()
    return {str(s): round(nats[:, OFFSETS[k]:OFFSETS[k + 1]].mean().item() / ln2, 4) for k, s in enumerate(SIDES)}


def train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Train the shipped VAR on the chains of the `train` split; write `var.safetensors`.

    The loss is the mean cross-entropy over all 130 tokens of the chain (every scale weighted
    per token, as in the paper), one teacher-forced pass per batch.
    """
    recipe = recipe or RECIPE
    with seeded(recipe.seed):
        model = build_model(MODEL)
    data = pyramid_tokens(Digits().canonical("train"))

    def loss_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        flat = batch[0]
        logits = chain_logits(m, flat)  # type: ignore[arg-type]
        return F.cross_entropy(logits.reshape(-1, LEVELS), flat.reshape(-1))

    log.info("training var: %d parameters, %d tokens per chain, recipe %s", n_params(model), N_TOKENS, recipe)
    ema, stats = fit_model(model, data, loss_fn, recipe, log_every=250)
    test = pyramid_tokens(Digits().canonical("test"))
    with torch.no_grad():
        bound = chain_bits(ema, test).mean().item()  # type: ignore[arg-type]
        by_scale = bits_by_scale(ema, test)  # type: ignore[arg-type]
    meta = {**stats, "method": "var", "model": MODEL.to_dict(), "sides": list(SIDES), "n_params": n_params(ema),
            "final_loss": round(stats["final_loss"], 4), "test_nll_bits_per_dim": round(bound, 4),
            "test_nll_kind": "bound: chain NLL of the image's own pyramid / 64",
            "test_bits_per_token_by_scale": by_scale}
    path = save_checkpoint("var", ema.state_dict(), meta, directory=out_dir)
    log.info("var: test NLL bound %.4f bits/dim (per scale %s); %.0fs; wrote %s",
             bound, by_scale, stats["train_seconds"], path)
    return path
