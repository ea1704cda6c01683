"""What every resolution-conditioned raster-order AR generator shares (gpt, pixelcnn).

At a budget of S = r² sequential steps such a generator writes r×r grey levels in raster order
from noise drawn up front (`samplers/autoregressive.py`) and nearest-upsamples them to 8×8; its
likelihood is exact at S = 64 only (a coarser model's likelihood is not bits/dim of an 8×8
image). A family supplies `decode_tokens(r, u)` and `token_bits(tokens)`; the rest lives here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from scalebench.api import Budget, MethodCard
from scalebench.data.digits import SIDE, from_tokens, quantise, to_tokens, upsample


class ResolutionARGenerator:
    card: MethodCard
    device: torch.device
    chunk: int = 4096  # rows decoded or scored at once; bounds memory, results do not depend on it

    def decode_tokens(self, r: int, u: torch.Tensor) -> torch.Tensor:
        """(n, r²) tokens written in raster order from noise u (n, r²)."""
        raise NotImplementedError

    def token_bits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-example exact bits/dim of (n, 64) tokens under the 8×8 model."""
        raise NotImplementedError

    def _sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None,
                decode: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        self.card.check_budget(budget)
        self.card.check_sampler(sampler)
        r = math.isqrt(budget.S)
        u = torch.rand(n, budget.S, generator=rng, device=rng.device).to(self.device)
        tokens = torch.cat([decode(r, u[i:i + self.chunk]) for i in range(0, n, self.chunk)]) if n else u.long()
        return upsample(from_tokens(tokens), SIDE)

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n samples, canonical (n, 1, 8, 8) in [0, 1]; all randomness from `rng`."""
        return self._sample(n, budget, rng, sampler, self.decode_tokens)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        """S: one network call per token written."""
        self.card.check_budget(budget)
        return budget.S

    def nll(self, x: torch.Tensor, budget: Budget) -> torch.Tensor | None:
        """Exact bits/dim of canonical 8×8 images (quantised first) at S=64; None for S<64."""
        self.card.check_budget(budget)
        return exact_nll(x, self.token_bits, self.device, self.chunk) if budget.S == SIDE * SIDE else None


@torch.no_grad()
def exact_nll(x: torch.Tensor, token_bits: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
              chunk: int) -> torch.Tensor:
    """Per-example bits/dim of canonical 8×8 images under a token model, scored `chunk` rows at a time."""
    tokens = to_tokens(quantise(x.to(device).float()))
    if not len(tokens):
        return torch.zeros(0, device=device)
    return torch.cat([token_bits(tokens[i:i + chunk]) for i in range(0, len(tokens), chunk)])
