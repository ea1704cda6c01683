"""`blockwise`: blockwise parallel decoding of the shipped `gpt`, the shipped `mtp` heads proposing.

Stern, Shazeer & Uszkoreit 2018 (NeurIPS), "Blockwise Parallel Decoding for Deep Autoregressive
Models": a proposal model guesses the next tokens of a block at once, the base model scores
every guess in one parallel (teacher-forced) pass, and the longest verified prefix is kept. The
paper verifies greedy decoding (a guess is kept if it is the base model's argmax); to keep the
base model's *sampling* distribution this family verifies with speculative sampling's rule
(Leviathan, Kalman & Matias 2023; Chen et al. 2023): a drafted token x ~ q is accepted with
probability min(1, p(x)/q(x)); at the first rejection that position is resampled from
norm(max(0, p − q)) and the round ends. Every token so committed is distributed exactly as gpt's
conditional p given the committed prefix.

The grid. The 64 raster tokens are cut into S = 64 / k blocks of k tokens (k ∈ {1, 2, 4, 8, 16}:
the draft length). Within a block, each *round* is one `mtp` call on the committed prefix
(heads 1..m give the marginals of the block's m remaining tokens; they are drafted independently
at pre-drawn uniforms) followed by one `gpt` call scoring the drafts. A round commits at least
one token, so a block needs at most k rounds. K = verification rounds allowed per block: a block
still incomplete after K rounds keeps its remaining drafted tokens unverified (naive-mtp quality
for those). Hence K ≥ k verifies every token: the samples follow gpt's distribution exactly,
in fewer than 64 rounds when drafts are accepted; K < k trades quality for fewer rounds.

Rounds are data-dependent, so NFE is declared only where it is not (K = 1 or k = 1: one round per
block, 2 calls each, NFE = 2·S) and is otherwise counted by the harness's hooks; a batch runs
a round while any of its samples still has an incomplete block, so its NFE is 2 × Σ_blocks (the
largest round count in the batch). Each round is two sequential network calls (the mtp draft,
then the gpt verification), so a sample's sequential steps are its network calls, 2 × its rounds:
`diagnostics` reports those under `api.STEPS_TAKEN` (the S coordinate of the report's S charts,
comparable with gpt's 64 calls) and the rounds beside them (`rounds_taken` and their spread).

No training: the weights are `gpt`'s and `mtp`'s. All randomness is drawn from the caller's rng
up front: per block round r and position t, a draft uniform, an accept uniform and a residual
uniform (`noise`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from scalebench.api import STEPS_TAKEN, Axis, Budget, MethodCard
from scalebench.data.digits import SIDE, from_tokens, quantise, to_tokens
from scalebench.methods import gpt, mtp
from scalebench.methods.nets.transformer import KVCache
from scalebench.methods.samplers import autoregressive as ar

N_TOKENS = SIDE * SIDE  # 64 raster tokens
SS: tuple[int, ...] = (4, 8, 16, 32, 64)  # nominal S = blocks = 64 / k
KS: tuple[int, ...] = (1, 2, 4, 8, 16)  # verification rounds allowed per block
SAMPLE_CHUNK = 4096  # rows decoded at once; bounds memory, results do not depend on it

BlockLogits = Callable[[torch.Tensor, int, int], torch.Tensor]
"""(tokens (n, d), b0, end) → logits of the rows for positions b0 .. end-1, row i read after tokens[:, :b0+i]."""

Drafter = Callable[[torch.Tensor, int, int, torch.Tensor], torch.Tensor]
"""(tokens (n, d), b0, end, committed (n,)) → proposal logits (n, end-b0, V) of positions b0 .. end-1,
each from tokens[:, :committed] only (entries before `committed` are ignored)."""


class PrefixScorer:
    """A causal network's rows for one block, on a KV cache of the committed prefix (one call each).

    The cache holds the prefix ids and tokens 0 .. b0-2 (final); each call feeds the tokens from
    the cache's end up to end-2 (the previous block's last tokens and the current block's guesses),
    reads the rows of positions b0 .. end-1, and rolls the cache back to b0 entries: guesses are
    never kept, so one network call per round serves any mix of committed and drafted tokens.
    """

    def __init__(self, net: Callable[..., torch.Tensor], cache: KVCache, cond: torch.Tensor,
                 pos: torch.Tensor) -> None:
        self.net, self.cache, self.cond, self.pos, self.valid = net, cache, cond, pos, 0

    def __call__(self, tokens: torch.Tensor, b0: int, end: int) -> torch.Tensor:
        v = self.valid
        if v == 0:  # the prefix ids come first; row i reads position i
            out = self.net(tokens[:, :end - 1] if end > 1 else None, pos=self.pos[:end - 1], cond=self.cond,
                           cache=self.cache)
        else:  # fed token v-1 first; row i reads position v + i
            out = self.net(tokens[:, v - 1:end - 1], pos=self.pos[v - 1:end - 1], cache=self.cache)
        self.cache.truncate(b0)
        self.valid = b0
        return out[:, b0 - v:end - v]


def gpt_scorer(model: torch.nn.Module, n: int, device: torch.device) -> PrefixScorer:
    """gpt's 8×8 next-token logits (rows (n, m, V)) on a fresh cache."""
    pos = torch.arange(gpt.POS_OFFSET[SIDE], gpt.POS_OFFSET[SIDE] + N_TOKENS, device=device)
    cond = torch.full((n,), gpt.RESOLUTIONS.index(SIDE), dtype=torch.long, device=device)
    return PrefixScorer(model, model.new_cache(), cond, pos)  # type: ignore[operator]


def mtp_drafter(net: mtp.MTPNet, k: int, n: int, device: torch.device) -> Drafter:
    """mtp's proposals: one trunk call (cached) per round; heads 1..m read the trunk's row of each
    sample's committed length c only, head j proposing position c + j - 1 (Gloeckle et al. 2024)."""
    trunk = PrefixScorer(net.trunk, net.trunk.new_cache(), mtp.start(n, device), torch.arange(N_TOKENS, device=device))

    def draft(tokens: torch.Tensor, b0: int, end: int, c: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(c), device=c.device)
        h = trunk(tokens, b0, end)[rows, (c - b0).clamp_max(end - b0 - 1)]  # (n, d): read after x_<c
        by_head = net.heads(h, end - b0)  # (n, k, V): head j → position c + j - 1
        head = (torch.arange(b0, end, device=c.device) - c.unsqueeze(1)).clamp(0, end - b0 - 1)
        return by_head[rows.unsqueeze(1), head]

    return draft


def noise(n: int, k: int, rounds: int, rng: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, 3, R, 64) uniforms, R = min(rounds, k): [:, 0] drafts, [:, 1] accept tests, [:, 2] residual
    resamples, for round r of a block and raster position t; a row depends on its sample alone."""
    return torch.rand(n, 3, min(rounds, k), N_TOKENS, generator=rng, device=rng.device).to(device)


@dataclass
class Decoded:
    tokens: torch.Tensor  # (n, d)
    steps: torch.Tensor  # (n,) rounds taken by each sample, summed over its blocks
    unverified: torch.Tensor  # (n,) tokens committed as drafted, never verified (K < k only)
    drafted: torch.Tensor  # (n,) drafted tokens tested
    accepted: torch.Tensor  # (n,) of those, accepted


def speculative_commit(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor, u_accept: torch.Tensor,
                       u_resample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Speculative sampling's test of drafts x ~ q against the target p (Leviathan et al. 2023).

    p, q (..., V) probabilities, x (...) drafts, uniforms (...). Returns (accepted (...) bool:
    u < p(x)/q(x); y (...): the token committed on rejection, drawn from norm(max(0, p − q))
    at u_resample by inverse CDF; p itself where that is empty, which cannot reject anyway).
    """
    px, qx = p.gather(-1, x.unsqueeze(-1)).squeeze(-1), q.gather(-1, x.unsqueeze(-1)).squeeze(-1)
    accepted = u_accept * qx < px
    resid = (p - q).clamp_min(0)
    resid = torch.where(resid.sum(-1, keepdim=True) > 0, resid, p)
    return accepted, ar.inverse_cdf(resid.log(), u_resample)


@torch.no_grad()
def blockwise_decode(draft: Drafter, target: BlockLogits, k: int, rounds: int, u: torch.Tensor) -> Decoded:
    """Blockwise parallel decoding (Stern et al. 2018) verified by speculative sampling (Leviathan et al. 2023).

    `draft` (a `Drafter`) proposes the positions from the committed prefix; `target(tokens, b0, end)` → (n, k, V): the base model's logits of positions b0 .. end-1. Per
    block of k positions, up to `rounds` rounds of (draft from the committed prefix, score, accept
    the verified prefix, resample the first rejection); `u` from `noise`. A batch runs a round while
    any of its samples has an incomplete block (done rows are left untouched).
    """
    n, _, r_max, d = u.shape
    if d % k or r_max != min(rounds, k):
        raise ValueError(f"k={k} must divide {d} and the noise must have min(K, k) = {min(rounds, k)} rounds")
    dev = u.device
    tokens = torch.zeros(n, d, dtype=torch.long, device=dev)
    steps, unverified, drafted, accepted = (torch.zeros(n, dtype=torch.long, device=dev) for _ in range(4))
    rows = torch.arange(n, device=dev)
    for b0 in range(0, d, k):
        end, span = b0 + k, torch.arange(b0, b0 + k, device=dev)
        c = torch.full((n,), b0, dtype=torch.long, device=dev)  # committed length
        for r in range(r_max):
            active = c < end
            if not bool(active.any()):
                break
            steps += active
            q_logits = draft(tokens, b0, end, c)  # (n, k, V)
            todo = (span >= c.unsqueeze(1)) & active.unsqueeze(1)
            x = ar.inverse_cdf(q_logits, u[:, 0, r, b0:end])
            tokens[:, b0:end] = torch.where(todo, x, tokens[:, b0:end])
            p = torch.softmax(target(tokens, b0, end).float(), -1)
            q = torch.softmax(q_logits.float(), -1)
            ok, y = speculative_commit(p, q, tokens[:, b0:end], u[:, 1, r, b0:end], u[:, 2, r, b0:end])
            reject = todo & ~ok
            hit = reject.any(1)
            j = reject.long().argmax(1)  # first rejection (offset in the block) where there is one
            fix = rows[hit]
            tokens[fix, b0 + j[hit]] = y[fix, j[hit]]
            drafted += torch.where(active, torch.where(hit, b0 + j + 1, end) - c, 0)  # tested up to the rejection
            accepted += torch.where(active, torch.where(hit, b0 + j, end) - c, 0)
            c = torch.where(active, torch.where(hit, b0 + j + 1, end), c)
        unverified += end - c  # the drafts after the last rejection stay as drafted
    return Decoded(tokens, steps, unverified, drafted, accepted)


CALLS_PER_ROUND = 2  # one mtp draft + one gpt verification, in sequence


def quantiles(rounds: torch.Tensor) -> dict[str, float]:
    """The per-sample sequential steps as diagnostics: network calls (api.STEPS_TAKEN = 2 × rounds,
    mean) and the rounds' mean, min, p10, p50, p90 and max."""
    s = rounds.float()
    q = torch.quantile(s, torch.tensor([0.1, 0.5, 0.9], device=s.device)) if len(s) else torch.zeros(3)
    return {STEPS_TAKEN: CALLS_PER_ROUND * float(s.mean()), "rounds_taken": float(s.mean()),
            "rounds_min": float(s.min()), "rounds_p10": float(q[0]), "rounds_p50": float(q[1]),
            "rounds_p90": float(q[2]), "rounds_max": float(s.max())}


class BlockwiseGenerator:
    """gpt sampled by blockwise parallel decoding with mtp's heads as proposers, speculative verification."""

    card = MethodCard(
        name="blockwise",
        family="blockwise parallel decoding (gpt verifies mtp's drafts by speculative sampling)",
        category="both-outer-S",
        outer="S",
        S=Axis(meaning="nominal sequential blocks; k = 64/S tokens drafted per block (the sequential network "
                       "calls a sample actually takes, 2 per round, are the diagnostic steps_taken: the S "
                       "coordinate of the S charts; the rounds are rounds_taken)",
               default=16, values=SS),
        K=Axis(meaning="verification rounds allowed per block (one mtp draft + one gpt scoring pass each); "
                       "K ≥ k verifies every token: exactly gpt's distribution", default=16, values=KS),
        likelihood="exact",
        paper="Stern et al. 2018; Leviathan et al. 2023",
        samplers=("speculative",),
        notes=("The shipped mtp proposes a block's remaining tokens from the committed prefix (heads 1..m, "
               "independent draws); the shipped gpt scores them in one cached parallel pass; each draft is "
               "accepted with prob min(1, p/q), the first rejection is resampled from norm(max(0, p − q)) and "
               "ends the round. After K rounds a block's leftover drafts are committed unverified. NFE is "
               "data-dependent (2 calls per round, counted by hooks); declared 2·S only at K = 1 or k = 1. "
               "Likelihood: gpt's exact bits/dim where K ≥ k (the samples are gpt's), None otherwise."),
    )

    checkpoints = ("gpt", "mtp")

    def __init__(self, device: str = "cpu") -> None:
        self.gpt = gpt.GPTGenerator(device)
        self.mtp = mtp.MTPGenerator(device)
        self.model, self.drafter = self.gpt.model, self.mtp.model
        self.device = torch.device(device)
        self._last: tuple[Budget, torch.Tensor, dict[str, float]] | None = None

    def networks(self) -> dict[str, torch.nn.Module]:
        # one drafting call = mtp's trunk (hooked) + its heads on one row per sample (not counted again)
        return {"transformer": self.model, "mtp": self.drafter.trunk}

    def _k(self, budget: Budget, sampler: str | None) -> int:
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        return N_TOKENS // budget.S

    def decode(self, budget: Budget, u: torch.Tensor) -> Decoded:
        """Blockwise decoding of the rows of noise u (n, 3, R, 64), SAMPLE_CHUNK rows at a time."""
        k = N_TOKENS // budget.S
        parts = []
        for i in range(0, len(u), SAMPLE_CHUNK):
            uu = u[i:i + SAMPLE_CHUNK]
            n = len(uu)
            parts.append(blockwise_decode(mtp_drafter(self.drafter, k, n, self.device),
                                          gpt_scorer(self.model, n, self.device), k, budget.K, uu))
        return Decoded(*(torch.cat([getattr(p, f) for p in parts]) for f in Decoded.__dataclass_fields__))

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        """n samples, canonical (n, 1, 8, 8) in [0, 1]; all randomness from `rng` (`noise`, drawn up front)."""
        k = self._k(budget, sampler)
        u = noise(n, k, budget.K, rng, self.device)
        if not n:
            return from_tokens(torch.zeros(0, N_TOKENS, dtype=torch.long, device=self.device))
        out = self.decode(budget, u)
        self._last = (budget, out.tokens, self._stats(out))
        return from_tokens(out.tokens)

    @staticmethod
    def _stats(out: Decoded) -> dict[str, float]:
        d = out.tokens.shape[1]
        return {**quantiles(out.steps), "unverified_fraction": float(out.unverified.float().mean() / d),
                "acceptance": float(out.accepted.sum() / out.drafted.sum().clamp_min(1))}

    def nfe(self, budget: Budget, sampler: str | None = None) -> int | None:
        """2·S where the rounds are fixed (K = 1, or k = 1: one round per block); else None (counted)."""
        k = self._k(budget, sampler)
        return 2 * budget.S if budget.K == 1 or k == 1 else None

    def nll(self, x: torch.Tensor, budget: Budget) -> torch.Tensor | None:
        """gpt's exact bits/dim where every token is verified (K ≥ k); None otherwise."""
        k = self._k(budget, None)
        return self.gpt.nll(x, Budget(S=N_TOKENS)) if budget.K >= k else None

    @torch.no_grad()
    def diagnostics(self, x: torch.Tensor, budget: Budget, rng: torch.Generator,
                    sampler: str | None = None) -> dict[str, float]:
        """Per-sample rounds and verification of the batch x that `sample(len(x), budget, rng, sampler)` returned.

        `steps_taken`: mean over samples of the sequential network calls taken (2 per round: ≤ 128,
        and = 128 at k = 1); `rounds_taken`: the rounds (Σ over blocks; ≤ 64);
        `rounds_min/p10/p50/p90/max`: their spread within the batch (the record
        keeps batch-size-weighted means over batches); `unverified_fraction`: tokens committed as
        drafted (K < k only); `acceptance`: accepted / tested drafts. The values of the sample call
        just made are reused when x is its batch; otherwise the batch is redrawn from `rng`.
        """
        tokens = to_tokens(quantise(x.to(self.device).float()))
        if self._last is not None and self._last[0] == budget and torch.equal(self._last[1], tokens):
            return dict(self._last[2])
        k = self._k(budget, sampler)
        out = self.decode(budget, noise(len(x), k, budget.K, rng, self.device))
        if not torch.equal(out.tokens, tokens):
            raise RuntimeError("blockwise: re-running the decoding from the batch's noise did not give the batch")
        return self._stats(out)
