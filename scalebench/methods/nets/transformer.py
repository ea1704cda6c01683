"""A small decoder-only transformer with a KV cache, shared by the token-sequence methods.

GPT, multi-token prediction, blockwise parallel decoding, Jacobi decoding, MaskGIT and VAR
all need the same pieces: a token embedding, a learned position table the caller indexes
(so one net can hold several resolutions or scales), conditioning ids embedded as prefix
tokens, attention that is causal, bidirectional or masked by the caller, an optional
KV cache for incremental decoding, and a logits head. Pre-LN blocks as in GPT-2
(Radford et al. 2019); attention through `F.scaled_dot_product_attention`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    """Shape of a `CausalTransformer`; stored in checkpoint metadata to rebuild the net."""

    vocab_size: int  # input tokens (data tokens plus any special ones, e.g. [MASK])
    n_positions: int  # rows of the learned position table; callers choose the indices
    n_cond: int = 0  # conditioning ids (resolution, scale, class, ...) embedded as prefix tokens
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    out_size: int | None = None  # logits per position; default vocab_size (mtp may use k·V)
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """Per-layer keys and values of the positions seen so far, for incremental decoding.

    Written in place into a buffer per layer (preallocated to `capacity` positions when the
    caller knows the longest sequence, else grown by doubling), so a step costs O(new positions)
    instead of a `torch.cat` copy of the whole cache: decoding S tokens is O(S) copies, not O(S²).
    Attention reads a view of the valid prefix. `truncate` rolls the cache back (blockwise
    decoding discards rejected proposals); later appends overwrite the discarded positions.
    """

    def __init__(self, n_layers: int, capacity: int = 0) -> None:
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.lengths = [0] * n_layers
        self.capacity = capacity

    @property
    def length(self) -> int:
        """Positions cached (read between forward calls; during one, layers differ)."""
        return self.layer_length(0)

    def layer_length(self, layer: int) -> int:
        return self.lengths[layer]

    def _reserve(self, layer: int, like: torch.Tensor, needed: int) -> None:
        buf = self.k[layer]
        if buf is not None and buf.shape[2] >= needed and buf.shape[:2] == like.shape[:2]:
            return
        size = max(needed, self.capacity, 2 * (buf.shape[2] if buf is not None else 0))
        b, h, _, dh = like.shape
        k = like.new_empty(b, h, size, dh)
        v = like.new_empty(b, h, size, dh)
        old = self.lengths[layer]
        if buf is not None and old:
            k[:, :, :old] = buf[:, :, :old]
            v[:, :, :old] = self.v[layer][:, :, :old]  # type: ignore[index]
        self.k[layer], self.v[layer] = k, v

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this step's (B, H, T, dh) keys/values after the cached ones; return views of all of them."""
        start = self.lengths[layer]
        end = start + k.shape[2]
        self._reserve(layer, k, end)
        kb, vb = self.k[layer], self.v[layer]
        assert kb is not None and vb is not None
        kb[:, :, start:end] = k
        vb[:, :, start:end] = v
        self.lengths[layer] = end
        return kb[:, :, :end], vb[:, :, :end]

    def truncate(self, length: int) -> None:
        self.lengths = [min(n, length) for n in self.lengths]


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model={cfg.d_model} is not divisible by n_heads={cfg.n_heads}")
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, causal: bool,
                cache: KVCache | None, layer: int) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        past = 0
        if cache is not None:
            past = cache.layer_length(layer)
            k, v = cache.append(layer, k, v)
        is_causal = False
        if mask is None and causal and t > 1:
            if past == 0:
                is_causal = True
            else:  # new queries see the whole cache plus the new keys up to themselves
                mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(past)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, causal: bool,
                cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask, causal, cache, layer)
        return x + self.mlp(self.ln2(x))


class CausalTransformer(nn.Module):
    """Token + position embeddings, optional conditioning prefix, pre-LN blocks, logits head.

    The sequence fed to the blocks is `[cond_emb(cond) ..., tok_emb(tokens) + pos_emb(pos)]`;
    the output has one row of logits per fed position (prefix included), so a GPT feeds
    `[cond, x_0 .. x_{T-2}]` and reads the prediction of `x_i` at row `i`.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.n_positions, cfg.d_model)
        self.cond_emb = nn.Embedding(cfg.n_cond, cfg.d_model) if cfg.n_cond else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.out_size or cfg.vocab_size)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def new_cache(self, capacity: int = 0) -> KVCache:
        """An empty cache; `capacity` = the longest sequence it will hold (prefix included), if known."""
        return KVCache(self.cfg.n_layers, capacity)

    def forward(self, tokens: torch.Tensor | None = None, pos: torch.Tensor | None = None,
                cond: torch.Tensor | None = None, cache: KVCache | None = None,
                causal: bool = True, mask: torch.Tensor | None = None,
                embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, P+T, out_size) for prefix ids `cond` (B,) or (B, P) and `tokens` (B, T).

        `pos` (T,) or (B, T) indexes the position table (default `arange(T)`); with a `cache`
        only the new positions are fed and the cached ones are attended to. `mask` (bool,
        True = may attend, shape broadcastable to (B, H, T_new, T_total)) overrides `causal`.
        `embeds` (B, T, d_model) is added to the token embeddings: continuous tokens (MAR feeds
        known/[MASK] ids as `tokens` and a linear embedding of the known values here).
        """
        parts = []
        if cond is not None:
            if self.cond_emb is None:
                raise ValueError("this transformer was built with n_cond=0; it takes no cond")
            parts.append(self.cond_emb(cond.view(cond.shape[0], -1)))
        if tokens is not None:
            if pos is None:
                pos = torch.arange(tokens.shape[1], device=tokens.device)
            emb = self.tok_emb(tokens) + self.pos_emb(pos)
            parts.append(emb if embeds is None else emb + embeds)
        if not parts:
            raise ValueError("give tokens, cond or both")
        x = self.drop(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
        for i, block in enumerate(self.blocks):
            x = block(x, mask, causal, cache, i)
        return self.head(self.ln_f(x))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
