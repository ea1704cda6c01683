"""Autoregressive decoding from explicit noise, shared by every token-by-token family.

A sample is a deterministic function of (weights, noise u): each token inverts its
conditional CDF at its own pre-drawn uniform. So cached and uncached decoding agree exactly,
and a parallel solver (Jacobi iteration, blockwise verification) that is handed the same u
can reach the very same sample as sequential decoding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NextLogits = Callable[[int, torch.Tensor], torch.Tensor]
"""(i, tokens so far (n, d) with positions ≥ i undefined) → logits (n, V) of token i."""


def bits_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per-example exact NLL in bits per token from teacher-forced logits (B, d, V) of tokens (B, d)."""
    import math

    import torch.nn.functional as F

    nll = F.cross_entropy(logits.float().transpose(1, 2), tokens, reduction="none")  # (B, d) nats
    return nll.sum(1) / (tokens.shape[1] * math.log(2))


def inverse_cdf(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Token whose CDF interval holds u ∈ [0, 1): ancestral sampling from explicit noise."""
    cdf = torch.softmax(logits.float(), dim=-1).cumsum(-1)
    return (cdf < u.unsqueeze(-1)).sum(-1).clamp_max(logits.shape[-1] - 1)


@torch.no_grad()
def decode(next_logits: NextLogits, u: torch.Tensor,
           callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Write d = u.shape[1] tokens in order, one `next_logits` call each; `callback(i, tokens)` after each."""
    n, d = u.shape
    tokens = torch.zeros(n, d, dtype=torch.long, device=u.device)
    for i in range(d):
        tokens[:, i] = inverse_cdf(next_logits(i, tokens), u[:, i])
        if callback is not None:
            callback(i, tokens)
    return tokens
