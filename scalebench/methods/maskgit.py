"""`maskgit`: a bidirectional transformer over the 64 tokens with a [MASK] token (Chang et al. 2022).

Training masks a random subset of each image's 64 grey-level tokens, its size drawn from the
cosine schedule (a fraction γ(r) = cos(πr/2) of the tokens, r ~ U[0, 1)), and the network
predicts every masked token from all unmasked ones at once (bidirectional attention; the loss is
the cross-entropy on the masked tokens only).

Generation starts from 64 [MASK] tokens and runs S decoding iterations. At iteration t
(ratio = (t+1)/S) one network pass gives a distribution at every position; a token is sampled
at every still-masked position; the sampled tokens are ranked by confidence, the log-probability
of the sampled token plus Gumbel noise scaled by a choice temperature annealed linearly to 0
(τ·(1 − ratio)); the least confident ones are masked again so that ⌊64·γ(ratio)⌋ (at least one
fewer than before, at least one until the last iteration) stay masked. Tokens unmasked earlier
are never revised. The last iteration commits everything that is left, so S = 1 draws all 64
tokens independently from their marginals given nothing, and S = 64 commits one token per step.

All randomness is drawn from the caller's `rng` up front (one uniform for each token's
inverse-CDF draw and one for its Gumbel noise, per iteration), so a sample is a deterministic
function of (weights, noise). The model has no tractable likelihood (card: "none").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from scalebench.api import Axis, Budget, MethodCard
from scalebench.data.digits import LEVELS, SIDE, Digits, from_tokens
from scalebench.methods.nets.transformer import CausalTransformer, TransformerConfig, n_params
from scalebench.methods.samplers import autoregressive as ar
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_module, save_checkpoint

log = logging.getLogger(__name__)

N_TOKENS = SIDE * SIDE  # 64 raster positions; the order plays no role in decoding
MASK = LEVELS  # input id of [MASK]; the network reads LEVELS + 1 ids and predicts LEVELS
STEPS: tuple[int, ...] = (1, 2, 4, 8, 16, 64)
CHOICE_TEMPERATURE = 4.5  # the official MaskGIT sampling configuration's value
SAMPLE_CHUNK = 4096  # rows decoded at once; bounds memory, results do not depend on it

MODEL = TransformerConfig(vocab_size=LEVELS + 1, n_positions=N_TOKENS, d_model=64, n_layers=4,
                          n_heads=4, mlp_ratio=4, out_size=LEVELS, dropout=0.1)
RECIPE = Recipe(steps=2200, batch_size=64, lr=3e-3, weight_decay=0.01, warmup=100,
                grad_clip=1.0, ema=0.995, seed=0, threads=2)


def gamma(r: float | torch.Tensor) -> float | torch.Tensor:
    """The cosine mask schedule γ(r) = cos(πr/2): the fraction of tokens masked at ratio r ∈ [0, 1]."""
    if isinstance(r, torch.Tensor):
        return torch.cos(0.5 * math.pi * r)
    return math.cos(0.5 * math.pi * r)


def mask_schedule(steps: int, n: int = N_TOKENS) -> tuple[int, ...]:
    """Tokens still masked after each of `steps` iterations, starting from n masked.

    Chang et al. 2022 (official decoder): ⌊n·γ((t+1)/S)⌋, kept at least one below the
    previous count (every iteration commits a token) and at least one above 0 until the last
    iteration, which commits the rest.
    """
    if not 1 <= steps <= n:
        raise ValueError(f"steps={steps} must lie in 1..{n}")
    out, masked = [], n
    for t in range(steps):
        masked = 0 if t == steps - 1 else max(1, min(masked - 1, math.floor(n * gamma((t + 1) / steps))))
        out.append(masked)
    return tuple(out)


def gumbel(u: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise from uniforms in [0, 1) (clamped away from 0 and 1)."""
    eps = torch.finfo(u.dtype).tiny
    return -torch.log(-torch.log(u.clamp(eps, 1 - 1e-7)))


def logits_of(net: CausalTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """Logits (B, 64, LEVELS) at every position of (B, 64) tokens (ids 0..LEVELS, MASK included),
    one bidirectional pass."""
    return net(tokens, causal=False)


@torch.no_grad()
def confidence_decode(net: CausalTransformer, u: torch.Tensor, choice_temperature: float = CHOICE_TEMPERATURE,
                      callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Iterative confidence-ordered parallel decoding (Chang et al. 2022, §3.2), S = u.shape[1] passes.

    u (n, S, 2, 64) holds per iteration the uniforms of the token draws (inverse CDF) and of
    the Gumbel noise that randomises which tokens stay; returns (n, 64) tokens in 0..LEVELS-1.
    `callback(t, tokens)` sees the tokens after iteration t (MASK where still masked).
    """
    n, steps, _, d = u.shape
    tokens = torch.full((n, d), MASK, dtype=torch.long, device=u.device)
    for t, n_masked in enumerate(mask_schedule(steps, d)):
        unknown = tokens == MASK
        logits = logits_of(net, tokens).float()
        sampled = torch.where(unknown, ar.inverse_cdf(logits, u[:, t, 0]), tokens)
        if n_masked == 0:
            if callback is not None:
                callback(t, sampled)
            return sampled
        logp = F.log_softmax(logits, -1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        annealed = choice_temperature * (1 - (t + 1) / steps)
        confidence = (logp + annealed * gumbel(u[:, t, 1])).masked_fill(~unknown, math.inf)
        remask = confidence.sort(dim=1, stable=True).indices[:, :n_masked]  # least confident
        tokens = sampled.scatter(1, remask, MASK)
        if callback is not None:
            callback(t, tokens)
    raise AssertionError("the schedule's last iteration commits every token")  # pragma: no cover


def build_model(cfg: TransformerConfig = MODEL) -> CausalTransformer:
    return CausalTransformer(cfg)


class MaskGITGenerator:
    """The shipped MaskGIT transformer, decoding the 64 tokens in S confidence-ordered iterations."""

    card = MethodCard(
        name="maskgit",
        family="masked generative transformer",
        category="sequence",
        S=Axis(meaning="decoding iterations (cosine schedule; tokens committed per iteration "
                       "follow it, never revised)", default=8, values=STEPS),
        K=Axis.fixed(1),
        likelihood="none",
        paper="Chang et al. 2022",
        samplers=("confidence",),
        notes=("A bidirectional transformer over the 64 grey-level tokens with a [MASK] input "
               "token. Decoding starts all-masked; each of the S iterations is one full pass, "
               "samples every masked token, and keeps the most confident ones (log-prob plus "
               "Gumbel noise with a choice temperature 4.5 annealed linearly to 0), so that "
               "⌊64·cos(π/2·(t+1)/S)⌋ stay masked. S = 1 draws all tokens independently; S = 64 "
               "commits one per iteration. No exact likelihood (nll is not provided)."),
    )

    checkpoints = ("maskgit",)

    def __init__(self, device: str = "cpu") -> None:
        self.model, self.meta = load_module("maskgit", lambda m: build_model(TransformerConfig(**m["model"])),
                                            device)
        self.device = torch.device(device)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"transformer": self.model}

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None,
               choice_temperature: float = CHOICE_TEMPERATURE) -> torch.Tensor:
        """n samples, canonical (n, 1, 8, 8) in [0, 1]; all randomness from `rng` (n × S × 2 × 64 uniforms)."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        u = torch.rand(n, budget.S, 2, N_TOKENS, generator=rng, device=rng.device).to(self.device)
        if not n:
            return from_tokens(torch.zeros(0, N_TOKENS, dtype=torch.long, device=self.device))
        tokens = torch.cat([confidence_decode(self.model, u[i:i + SAMPLE_CHUNK], choice_temperature)
                            for i in range(0, n, SAMPLE_CHUNK)])
        return from_tokens(tokens)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        """S: one full bidirectional pass per decoding iteration."""
        self.card.check_budget(budget)
        return budget.S


def random_mask(b: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """(b, d) bool, True = masked: per row ⌈d·γ(r)⌉ positions (r ~ U[0, 1), so 1..d of them),
    chosen uniformly at random (Chang et al. 2022, §3.1)."""
    r = torch.rand(b, generator=gen)
    n_mask = torch.ceil(d * gamma(r)).long().clamp(1, d)  # type: ignore[union-attr]
    rank = torch.rand(b, d, generator=gen).argsort(1).argsort(1)  # a random permutation per row
    return rank < n_mask.unsqueeze(1)


def masked_loss(net: CausalTransformer, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of the masked tokens given the unmasked ones."""
    logits = logits_of(net, tokens.masked_fill(mask, MASK))
    return F.cross_entropy(logits[mask], tokens[mask])


@torch.no_grad()
def held_out_masked_bits(net: CausalTransformer, tokens: torch.Tensor, seed: int = 0) -> float:
    """Masked-token cross-entropy in bits per masked token on held-out tokens, masks from the
    training distribution (seeded). A diagnostic of the trained net, not a likelihood."""
    mask = random_mask(*tokens.shape, torch.Generator().manual_seed(seed))
    return masked_loss(net, tokens, mask).item() / math.log(2)


def train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Train the shipped MaskGIT on the `train` split and write `maskgit.safetensors`."""
    recipe = recipe or RECIPE
    with seeded(recipe.seed):
        model = build_model(MODEL)
    data = Digits().tokens("train")

    def loss_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        tok = batch[0]
        return masked_loss(m, tok, random_mask(*tok.shape, gen))  # type: ignore[arg-type]

    log.info("training maskgit: %d parameters, recipe %s", n_params(model), recipe)
    ema, stats = fit_model(model, data, loss_fn, recipe, log_every=250)
    test_bits = held_out_masked_bits(ema, Digits().tokens("test"))  # type: ignore[arg-type]
    meta = {**stats, "method": "maskgit", "model": MODEL.to_dict(), "n_params": n_params(ema),
            "final_loss": round(stats["final_loss"], 4), "mask_token": MASK,
            "test_masked_bits_per_token": round(test_bits, 4)}
    path = save_checkpoint("maskgit", ema.state_dict(), meta, directory=out_dir)
    log.info("maskgit: held-out masked-token CE %.4f bits; %.0fs; wrote %s", test_bits,
             stats["train_seconds"], path)
    return path
