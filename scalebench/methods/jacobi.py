"""`jacobi`: the shipped `gpt` sampled by Jacobi fixed-point iteration instead of token by token.

Song, Meng, Liao & Ermon 2021 (ICML), "Accelerating Feedforward Computation via Parallel
Nonlinear Equation Solving": with all of a sample's noise drawn up front, ancestral sampling of
an autoregressive model is the solution of a triangular system of nonlinear equations,
x_t = g_t(x_<t, u_t) for t = 0 .. 63 (g_t inverts token t's conditional CDF at its own uniform
u_t). Jacobi iteration solves all 64 equations at once from the previous iterate,

    x^(k)_t = g_t(x^(k-1)_<t, u_t)   for every t in one causal forward pass,

from x^(0) = 0 (the paper's initial guess; here the black grey level). The system is triangular,
so after k iterations the first k tokens equal the sequential ones, and at K = 64 the iterate *is*
the sequential sample; an iterate that stops changing is the fixed point, the sequential sample.

K (iterations) is a refinement axis: every pass may revise every token. S is fixed at 64 tokens
(the full 8×8 raster; no resolution trick). NFE = K: always K passes, no early stop, so the
declared NFE is the counted one; convergence is reported as per-point diagnostics instead
(`diagnostics`, stored by the harness in `record["diagnostics"]`).

No training: the weights, the noise convention (one uniform per token drawn from `rng` in
raster order, exactly as `gpt` draws them) and the exact likelihood are `gpt`'s, so
`jacobi` at (S=64, K) and `gpt` at S=64 with the same seed share their noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from scalebench.api import Axis, Budget, MethodCard
from scalebench.data.digits import SIDE, from_tokens, quantise, to_tokens
from scalebench.methods import gpt
from scalebench.methods.samplers import autoregressive as ar

N_TOKENS = SIDE * SIDE  # 64 raster tokens at 8×8
KS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)

TokenLogits = Callable[[torch.Tensor], torch.Tensor]
"""tokens (n, d) → logits (n, d, V): row t is token t's conditional given tokens[:, :t] (one pass)."""


@torch.no_grad()
def jacobi_decode(logits: TokenLogits, u: torch.Tensor, iterations: int, init: torch.Tensor | None = None,
                  callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Jacobi fixed-point iteration for autoregressive sampling from explicit noise (Song et al. 2021, ICML).

    Each iteration is one `logits` call on the whole previous iterate; token t becomes the inverse
    CDF of its conditional at u[:, t]. `init` defaults to all zeros; `callback(k, tokens)` after
    iteration k.
    """
    x = torch.zeros_like(u, dtype=torch.long) if init is None else init.clone()
    for k in range(1, iterations + 1):
        x = ar.inverse_cdf(logits(x), u)
        if callback is not None:
            callback(k, x)
    return x


def gpt_logits(model: torch.nn.Module) -> TokenLogits:
    """The 8×8 gpt's teacher-forced logits as Jacobi's update map (one forward pass per call)."""
    return lambda tokens: gpt.teacher_forced_logits(model, tokens, SIDE)  # type: ignore[arg-type]


@torch.no_grad()
def iterations_changed(logits: TokenLogits, u: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`jacobi_decode` from zeros, also counting per sample how many of the iterations changed it.

    The changing iterations are always the first ones (an iteration that changes nothing has
    reached the fixed point, which later ones keep), so the count is the number of iterations
    until the sample stopped changing, capped at `iterations`. Returns (final tokens, counts).
    """
    changed = torch.zeros(u.shape[0], dtype=torch.long, device=u.device)
    prev = [torch.zeros_like(u, dtype=torch.long)]

    def count(_: int, x: torch.Tensor) -> None:
        changed.add_((x != prev[0]).any(1).long())
        prev[0] = x

    return jacobi_decode(logits, u, iterations, callback=count), changed


class JacobiGenerator:
    """The shipped `gpt` weights, decoded by K parallel Jacobi iterations over all 64 tokens."""

    card = MethodCard(
        name="jacobi",
        family="parallel nonlinear equation solving (Jacobi decoding of gpt)",
        category="refinement",
        S=Axis.fixed(N_TOKENS, meaning="fixed: all 64 tokens of the 8×8 raster are solved for together"),
        K=Axis(meaning="Jacobi iterations: one causal forward pass over the whole current 64-token guess each; "
                       "K = 64 gives the sequential gpt sample exactly", default=64, values=KS),
        likelihood="exact",
        paper="Song et al. 2021 (ICML)",
        samplers=("jacobi",),
        notes=("gpt's checkpoint and noise (one uniform per token, drawn as gpt draws them); iterate "
               "x_t ← inverse-CDF of p(x_t | previous iterate's x_<t) at u_t for all t in parallel from "
               "x = 0, K times (no early stop: NFE = K). The fixed point is the sequential sample, reached "
               "by K = 64. Likelihood is gpt's exact bits/dim at K = 64 (the sampler then draws from the "
               "model); nll returns None for K < 64, whose samples come from another distribution."),
    )

    checkpoints = ("gpt",)

    def __init__(self, device: str = "cpu") -> None:
        self.gpt = gpt.GPTGenerator(device)
        self.model, self.meta = self.gpt.model, self.gpt.meta
        self.device = torch.device(device)
        self.logits = gpt_logits(self.model)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"transformer": self.model}

    def noise(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """The n × 64 uniforms of one batch, drawn exactly as `gpt` draws them at S = 64."""
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return torch.rand(n, N_TOKENS, generator=rng, device=rng.device).to(self.device)

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n samples, canonical (n, 1, 8, 8) in [0, 1]; all randomness from `rng` (n × 64 uniforms)."""
        u = self.noise(n, budget, rng, sampler)
        return from_tokens(jacobi_decode(self.logits, u, budget.K))

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        """K: one full-sequence forward pass per iteration."""
        self.card.check_budget(budget)
        return budget.K

    def nll(self, x: torch.Tensor, budget: Budget) -> torch.Tensor | None:
        """gpt's exact bits/dim at K = 64 (where the samples are gpt's); None for K < 64."""
        self.card.check_budget(budget)
        return self.gpt.nll(x, Budget(S=N_TOKENS)) if budget.K == N_TOKENS else None

    @torch.no_grad()
    def diagnostics(self, x: torch.Tensor, budget: Budget, rng: torch.Generator,
                    sampler: str | None = None) -> dict[str, float]:
        """Convergence of the batch x that `sample(len(x), budget, rng, sampler)` returned.

        `rng` is in the state that call started from, so the same noise is redrawn; the harness
        calls this untimed and outside NFE counting. `exact_match`: fraction of samples identical
        to the sequential gpt sample from the same noise; `token_match`: fraction of tokens that
        are; `iterations_until_unchanged`: mean number of iterations that changed the sample
        (capped at K: a sample still changing at iteration K counts K).
        """
        u = self.noise(len(x), budget, rng, sampler)
        tokens = to_tokens(quantise(x.to(self.device).float()))
        final, changed = iterations_changed(self.logits, u, budget.K)
        if not torch.equal(final, tokens):
            raise RuntimeError("jacobi: re-running the iteration from the batch's noise did not give the batch")
        same = tokens == self.gpt.decode_tokens(SIDE, u)  # the sequential sample from the same noise
        return {"exact_match": float(same.all(1).float().mean()),
                "token_match": float(same.float().mean()),
                "iterations_until_unchanged": float(changed.float().mean())}
