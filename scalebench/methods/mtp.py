"""`mtp`: naive multi-token prediction — a causal transformer trunk with k_max = 16 output heads.

Gloeckle et al. 2024, "Better & Faster Large Language Models via Multi-token Prediction": a
shared trunk reads the prefix x_<t+1 (the start token and x_0 .. x_t) and head j (j = 1 ..
k_max) predicts token x_{t+j} from the trunk's last hidden state; all heads are trained jointly
(mean cross-entropy over heads and positions); head 1 is an ordinary next-token model.

Inference commits k tokens per step (the seed's "fix the algorithm" example): at each of the
S = 64 / k steps the trunk runs once on the committed prefix (KV cache) and heads 1..k each
give the *marginal* of one of the next k tokens; the k tokens are sampled independently of
each other (inverse CDF at pre-drawn uniforms, so a sample is a deterministic function of
(weights, noise)). The heads cannot model the dependence between the tokens of one block, so
quality is expected to fall as k grows; at k = 1 this is exactly ancestral decoding with head 1.

Layout of the checkpoint (state-dict prefixes): `trunk.` is a `CausalTransformer` whose own
`head` is a d→d output projection (its "logits" are the hidden state the heads read);
`heads.` is `MTPHeads` (per-head residual feed-forward layers `heads.ffn.<j-1>.`, a shared
final LayerNorm `heads.ln.` and a shared unembedding `heads.unembed.`, as in the paper's
shared-unembedding design). `load_heads()` loads the heads alone (blockwise parallel decoding
reuses them).
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
from scalebench.data.digits import LEVELS, SIDE, Digits, from_tokens
from scalebench.methods.nets.transformer import CausalTransformer, KVCache, TransformerConfig, n_params
from scalebench.methods.raster_ar import exact_nll
from scalebench.methods.samplers import autoregressive as ar
from scalebench.training import Recipe, fit_model, seeded
from scalebench.zoo import load_checkpoint, load_module, save_checkpoint

log = logging.getLogger(__name__)

N_TOKENS = SIDE * SIDE  # 64 raster tokens, full resolution only
K_MAX = 16  # heads; k ∈ {1, 2, 4, 8, 16} tokens per step
KS: tuple[int, ...] = (1, 2, 4, 8, 16)
SAMPLE_CHUNK = 4096  # rows decoded at once; bounds KV-cache memory, results do not depend on it

# Trunk: the start token is conditioning id 0 (n_cond=1); 64 position rows; out_size = d_model
# turns the transformer's logits head into the trunk's output projection.
TRUNK = TransformerConfig(vocab_size=LEVELS, n_positions=N_TOKENS, n_cond=1, d_model=64, n_layers=4,
                          n_heads=4, mlp_ratio=4, out_size=64, dropout=0.1)
HEAD_HIDDEN = 64  # width of each head's residual feed-forward layer
RECIPE = Recipe(steps=1500, batch_size=64, lr=3e-3, weight_decay=0.01, warmup=100,
                grad_clip=1.0, ema=0.995, seed=0, threads=2)


class MTPHeads(nn.Module):
    """k_max prediction heads on the trunk's hidden state h_t: head j predicts x_{t+j}.

    Head j: z_j = h + FFN_j(LN_j(h)) (its own residual feed-forward layer), then a shared
    LayerNorm and a shared unembedding to LEVELS logits.
    """

    def __init__(self, d_model: int, vocab: int, k_max: int = K_MAX, hidden: int = HEAD_HIDDEN) -> None:
        super().__init__()
        self.k_max = k_max
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))
            for _ in range(k_max))
        self.ln = nn.LayerNorm(d_model)
        self.unembed = nn.Linear(d_model, vocab)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, h: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Logits (..., k, vocab) of heads 1..k (default all) from hidden states h (..., d)."""
        k = k or self.k_max
        if not 1 <= k <= self.k_max:
            raise ValueError(f"k={k} is outside 1..{self.k_max}")
        z = torch.stack([h + self.ffn[j](h) for j in range(k)], dim=-2)
        return self.unembed(self.ln(z))


class MTPNet(nn.Module):
    """Trunk + heads as one module, so the harness counts one network call per decoding step."""

    def __init__(self, trunk: TransformerConfig = TRUNK, k_max: int = K_MAX, head_hidden: int = HEAD_HIDDEN) -> None:
        super().__init__()
        self.trunk = CausalTransformer(trunk)
        self.heads = MTPHeads(trunk.out_size or trunk.d_model, trunk.vocab_size, k_max, head_hidden)

    def forward(self, tokens: torch.Tensor | None = None, pos: torch.Tensor | None = None,
                cond: torch.Tensor | None = None, cache: KVCache | None = None, k: int | None = None,
                last: bool = False) -> torch.Tensor:
        """Logits (B, P+T, k, LEVELS): row i holds heads 1..k read after fed row i.

        `cond` (B,) of zeros feeds the start token first (`start(n)`); `tokens`/`pos`/`cache`
        are as for `CausalTransformer`. `last` applies the heads to the last row only (B, 1, k, V):
        decoding needs no other row.
        """
        h = self.trunk(tokens, pos=pos, cond=cond, cache=cache)
        return self.heads(h[:, -1:] if last else h, k)


def start(n: int, device: torch.device | str) -> torch.Tensor:
    """The start token's conditioning ids for n rows (the trunk has one: id 0)."""
    return torch.zeros(n, dtype=torch.long, device=device)


def build_model(meta: dict[str, Any] | None = None) -> MTPNet:
    if meta is None:
        return MTPNet()
    return MTPNet(TransformerConfig(**meta["model"]), meta["k_max"], meta["head_hidden"])


def head_logits(net: MTPNet, tokens: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """Teacher-forced logits (B, 64, k, LEVELS): row t is read after x_<t, so head j at row t
    predicts x_{t+j-1}; one forward pass over [start, x_0 .. x_62]."""
    return net(tokens[:, :-1], cond=start(tokens.shape[0], tokens.device), k=k)


@torch.no_grad()
def independent_decode(net: MTPNet, k: int, u: torch.Tensor, use_cache: bool = True) -> torch.Tensor:
    """Naive multi-token decoding with the heads of Gloeckle et al. 2024 (no verification):
    d/k steps, each one network call on the committed prefix; the next k tokens are drawn
    independently, token t+j-1 from head j's marginal at its own uniform u[:, t+j-1].

    `use_cache=False` recomputes the whole prefix every step (the reference for the cache).
    """
    n, d = u.shape
    if d % k:
        raise ValueError(f"k={k} does not divide {d} tokens")
    tokens = torch.zeros(n, d, dtype=torch.long, device=u.device)
    cache = net.trunk.new_cache() if use_cache else None
    pos, cond = torch.arange(d, device=u.device), start(n, u.device)
    for t in range(0, d, k):
        if t == 0:  # the start token alone
            logits = net(cond=cond, cache=cache, k=k, last=True)
        elif cache is not None:  # feed the k tokens committed last step
            logits = net(tokens[:, t - k:t], pos=pos[t - k:t], cache=cache, k=k, last=True)
        else:
            logits = net(tokens[:, :t], pos=pos[:t], cond=cond, k=k, last=True)
        tokens[:, t:t + k] = ar.inverse_cdf(logits[:, -1], u[:, t:t + k])
    return tokens


def bits_per_dim(net: MTPNet, tokens: torch.Tensor, head: int = 1) -> torch.Tensor:
    """Per-example NLL in bits per token of (B, 64) tokens under head `head` (head 1: exact).

    Head j > 1 scores token t from the prefix x_<t-j+1 (its first j-1 tokens are skipped):
    a marginal, not a likelihood of the image; reported in the checkpoint for the doc."""
    logits = head_logits(net, tokens, head)[:, :, head - 1].float()  # (B, 64, V); row t → x_{t+head-1}
    valid = tokens.shape[1] - head + 1
    nll = F.cross_entropy(logits[:, :valid].transpose(1, 2), tokens[:, head - 1:], reduction="none")
    return nll.sum(1) / (valid * math.log(2))


def load_heads(device: str | torch.device = "cpu", directory: Path | None = None) -> MTPHeads:
    """The shipped heads alone (state-dict prefix `heads.`), e.g. for blockwise parallel decoding."""
    state, meta = load_checkpoint("mtp", "cpu", directory)
    heads = MTPHeads(meta["model"]["out_size"] or meta["model"]["d_model"], meta["model"]["vocab_size"],
                     meta["k_max"], meta["head_hidden"])
    heads.load_state_dict({k.removeprefix("heads."): v for k, v in state.items() if k.startswith("heads.")})
    heads = heads.to(device).eval()
    heads.requires_grad_(False)
    return heads


class MTPGenerator:
    """The shipped multi-token-prediction model, decoding k = 64/S tokens per step."""

    card = MethodCard(
        name="mtp",
        family="multi-token prediction (naive)",
        category="sequence",
        S=Axis(meaning="decoding steps; k = 64/S tokens committed per step, each sampled "
                       "independently from its head", default=64, values=(4, 8, 16, 32, 64)),
        K=Axis.fixed(1),
        likelihood="exact",
        paper="Gloeckle et al. 2024",
        samplers=("independent",),
        notes=("A causal transformer trunk with 16 heads (head j predicts token t+j). At S steps "
               "each trunk call (KV cache) commits k = 64/S tokens drawn independently from heads "
               "1..k's marginals; S = 64 is ordinary ancestral decoding with head 1. Likelihood is "
               "exact bits/dim via head 1 at S = 64; nll returns None otherwise (the k-token "
               "sampler's own distribution has no tractable likelihood of a given image here)."),
    )

    checkpoints = ("mtp",)

    def __init__(self, device: str = "cpu") -> None:
        self.model, self.meta = load_module("mtp", build_model, device)
        self.device = torch.device(device)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"mtp": self.model}

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None,
               use_cache: bool = True) -> torch.Tensor:
        """n samples, canonical (n, 1, 8, 8) in [0, 1]; all randomness from `rng` (n × 64 uniforms)."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        k = N_TOKENS // budget.S
        u = torch.rand(n, N_TOKENS, generator=rng, device=rng.device).to(self.device)
        tokens = torch.cat([independent_decode(self.model, k, u[i:i + SAMPLE_CHUNK], use_cache)
                            for i in range(0, n, SAMPLE_CHUNK)]) if n else u.long()
        return from_tokens(tokens)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        """S: one trunk+heads call per step (the first sees only the start token)."""
        self.card.check_budget(budget)
        return budget.S

    @torch.no_grad()
    def nll(self, x: torch.Tensor, budget: Budget) -> torch.Tensor | None:
        """Exact bits/dim of canonical 8×8 images (quantised first) via head 1 at S=64; None otherwise."""
        self.card.check_budget(budget)
        if budget.S != N_TOKENS:
            return None
        return exact_nll(x, lambda t: bits_per_dim(self.model, t), self.device, SAMPLE_CHUNK)


def _targets(tokens: torch.Tensor, k_max: int) -> torch.Tensor:
    """(B, 64, k_max) targets: [b, t, j-1] = x_{t+j-1}, or -100 (ignored) past the last token."""
    b, d = tokens.shape
    idx = torch.arange(d).unsqueeze(1) + torch.arange(k_max)  # (64, k_max)
    padded = torch.cat([tokens, tokens.new_full((b, k_max), -100)], dim=1)
    return padded[:, idx]


def mtp_loss(net: MTPNet, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every (head, position) pair with a target (Gloeckle et al. eq. 2)."""
    logits = head_logits(net, tokens)  # (B, 64, k_max, V)
    target = _targets(tokens, logits.shape[2])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)


def train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Train the shipped trunk and all 16 heads jointly on the `train` split; write `mtp.safetensors`."""
    recipe = recipe or RECIPE
    with seeded(recipe.seed):
        model = build_model()
    data = Digits().tokens("train")

    def loss_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator) -> torch.Tensor:
        return mtp_loss(m, batch[0])  # type: ignore[arg-type]

    log.info("training mtp: %d parameters (%d in heads), recipe %s", n_params(model),
             n_params(model.heads), recipe)
    ema, stats = fit_model(model, data, loss_fn, recipe, log_every=250)
    test = Digits().tokens("test")
    with torch.no_grad():
        by_head = {str(j): round(bits_per_dim(ema, test, j).mean().item(), 4)  # type: ignore[arg-type]
                   for j in range(1, K_MAX + 1)}
    meta = {**stats, "method": "mtp", "model": TRUNK.to_dict(), "k_max": K_MAX, "head_hidden": HEAD_HIDDEN,
            "n_params": n_params(ema), "n_params_heads": n_params(ema.heads),  # type: ignore[union-attr]
            "final_loss": round(stats["final_loss"], 4), "test_nll_bits_per_dim": by_head["1"],
            "test_bits_per_token_by_head": by_head,
            "layout": "trunk.* = CausalTransformer (head = d→d projection); heads.* = MTPHeads"}
    path = save_checkpoint("mtp", ema.state_dict(), meta, directory=out_dir)
    log.info("mtp: head-1 test NLL %.4f bits/dim (by head %s); %.0fs; wrote %s",
             by_head["1"], by_head, stats["train_seconds"], path)
    return path
