"""The `blockwise` family: speculative verification keeps the target's distribution exactly (toy model,
chi-square over every sequence), every token is verified once K ≥ k, the rounds taken stay ≤ 64 and
fall below it for k > 1, NFE is counted where it depends on the data, the S charts place the points at
the steps taken, and on the shipped weights the fully verified samples follow gpt while naive mtp does not."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from scalebench.api import STEPS_TAKEN, Budget, Generator, HasDiagnostics, HasLikelihood
from scalebench.data.digits import Digits, to_tokens
from scalebench.methods import blockwise as bw
from scalebench.metrics.cost import CallCounter
from tests.conftest import seeded_rng, shipped_generator

EXACT = Budget(S=8, K=8)  # k = 8 drafted tokens per block, every one verified


gen = shipped_generator(bw.BlockwiseGenerator, threads=2)


def test_card_and_protocols(gen: bw.BlockwiseGenerator) -> None:
    card = bw.BlockwiseGenerator.card
    assert card.name == "blockwise" and card.category == "both-outer-S" and card.outer == "S"
    assert card.S.values == bw.SS == (4, 8, 16, 32, 64) and card.K.values == bw.KS == (1, 2, 4, 8, 16)
    assert card.likelihood == "exact" and "Stern" in card.paper and "Leviathan" in card.paper
    assert bw.BlockwiseGenerator.checkpoints == ("gpt", "mtp")
    assert isinstance(gen, Generator) and isinstance(gen, HasLikelihood) and isinstance(gen, HasDiagnostics)
    # no train(): `scalebench train blockwise` names gpt and mtp (tests/test_contract.py)


@pytest.mark.parametrize("budget", [Budget(S=3, K=1), Budget(S=16, K=3), Budget(S=64, K=32)])
def test_invalid_budget_raises(gen: bw.BlockwiseGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="blockwise"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)


# ---------------------------------------------------------------- the maths on a toy model

V, D = 3, 4
_g = torch.Generator().manual_seed(11)
TARGET = 2.0 * torch.randn(D, V + 1, V, generator=_g)  # p(x_t | x_{t-1}); row V = no predecessor
DRAFT = 1.5 * torch.randn(D, D, V, generator=_g)  # q(x_{c+h} | committed c) by offset h ...
DRAFT_PREV = torch.randn(V + 1, V, generator=_g)  # ... shifted by the last committed token


def toy_target(tokens: torch.Tensor, b0: int, end: int) -> torch.Tensor:
    prev = torch.cat([torch.full_like(tokens[:, :1], V), tokens[:, :-1]], 1)
    return TARGET[torch.arange(D), prev][:, b0:end]


def toy_draft(tokens: torch.Tensor, b0: int, end: int, c: torch.Tensor) -> torch.Tensor:
    last = torch.where(c > 0, tokens.gather(1, (c - 1).clamp_min(0).unsqueeze(1)).squeeze(1), V)
    pos = torch.arange(b0, end)
    h = (pos - c.unsqueeze(1)).clamp_min(0)
    return DRAFT[h, pos] + DRAFT_PREV[last].unsqueeze(1)


def toy_exact() -> dict[tuple[int, ...], float]:
    """p(x) of all V^D sequences, by enumeration of the chain."""
    out = {}
    for x in itertools.product(range(V), repeat=D):
        prev, logp = V, 0.0
        for t, v in enumerate(x):
            logp += torch.log_softmax(TARGET[t, prev], -1)[v].item()
            prev = v
        out[x] = math.exp(logp)
    return out


def _chi2_pvalue(tokens: torch.Tensor) -> float:
    from scipy.stats import chisquare

    exact = toy_exact()
    idx = (tokens * V ** torch.arange(D - 1, -1, -1)).sum(1)
    counts = torch.bincount(idx, minlength=V ** D).numpy()
    expected = np.array([exact[x] for x in itertools.product(range(V), repeat=D)])
    expected = expected / expected.sum() * len(tokens)
    return float(chisquare(counts, expected).pvalue)


@pytest.mark.parametrize("k,K", [(1, 1), (2, 2), (4, 4), (4, 16)])
def test_fully_verified_decoding_draws_exactly_from_the_target(k: int, K: int) -> None:
    """Chi-square over all 81 sequences of 4 ternary tokens: with K ≥ k every token is verified and the
    empirical law is the target's, whatever the (deliberately poor, prefix-dependent) proposals."""
    n = 40_000
    out = bw.blockwise_decode(toy_draft, toy_target, k, K, bw.noise(n, k, K, seeded_rng(k + K), "cpu")[..., :D])
    assert int(out.unverified.sum()) == 0 and int(out.steps.max()) <= D
    assert _chi2_pvalue(out.tokens) > 1e-4
    if k > 1:  # drafts are accepted often enough to save rounds, and rejected often enough to matter
        assert out.steps.float().mean() < D and 0 < out.accepted.sum() < out.drafted.sum()


def test_too_few_rounds_leave_drafts_unverified_and_the_law_changes() -> None:
    """K < k: the leftover drafts are committed as proposed, so the chi-square test must reject."""
    n = 40_000
    out = bw.blockwise_decode(toy_draft, toy_target, 4, 1, bw.noise(n, 4, 1, seeded_rng(3), "cpu")[..., :D])
    assert int(out.steps.max()) == 1 and out.unverified.sum() > 0
    assert _chi2_pvalue(out.tokens) < 1e-6


def test_one_position_commit_law_is_p_exactly() -> None:
    """The accept/reject rule alone, by exact integration over the uniforms on a fine grid."""
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    q = torch.tensor([0.1, 0.2, 0.3, 0.4])
    m = 400  # midpoints of an m × m × m grid of (draft, accept, resample) uniforms
    grid = (torch.arange(m, dtype=torch.float64) + 0.5) / m
    x = torch.searchsorted(q.double().cumsum(0), grid).clamp_max(3)
    ia, ib = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    xs, ua = x[ia], grid[ib].float()
    ok, y = bw.speculative_commit(p.expand(m, m, 4), q.expand(m, m, 4), xs, ua,
                                  torch.full((m, m), 0.5))  # y from the residual's CDF at u = 0.5 …
    resid = (p - q).clamp_min(0) / (p - q).clamp_min(0).sum()
    law = torch.zeros(4, dtype=torch.float64)
    law.index_add_(0, xs[ok], torch.ones(int(ok.sum()), dtype=torch.float64) / m ** 2)
    law += (1 - law.sum()) * resid.double()  # … and over all resample uniforms the residual's law
    assert torch.allclose(law, p.double(), atol=2e-3)
    assert set(y[~ok].tolist()) <= {0, 1}  # only where p > q can a rejection land


# ---------------------------------------------------------------- the shipped weights

def test_rounds_and_nfe(gen: bw.BlockwiseGenerator) -> None:
    counter = CallCounter(gen.networks())
    for S, K in [(64, 4), (16, 1), (16, 16), (4, 16), (4, 2)]:
        b = Budget(S=S, K=K)
        with counter:
            x = gen.sample(24, b, seeded_rng(1))
        d = gen.diagnostics(x, b, seeded_rng(1))
        k = 64 // S
        assert d["rounds_max"] <= 64 and d["rounds_min"] >= S and d["rounds_taken"] <= min(K, k) * S
        assert d[STEPS_TAKEN] == 2 * d["rounds_taken"]  # calls: each round drafts (mtp) then verifies (gpt)
        if k == 1 or K == 1:  # one round per block: declared, and exactly what the hooks count
            assert gen.nfe(b) == 2 * S == counter.count == d[STEPS_TAKEN] and d["rounds_taken"] == S
        else:  # data-dependent: a batch runs a round while any sample needs one
            assert gen.nfe(b) is None and 2 * d["rounds_max"] <= counter.count <= 2 * min(K, k) * S
            assert d["rounds_taken"] < 64
        assert (d["unverified_fraction"] == 0) == (K >= k)


def test_diagnostics_redraw_the_batch(gen: bw.BlockwiseGenerator) -> None:
    b = Budget(S=16, K=2)
    x = gen.sample(10, b, seeded_rng(4))
    kept = gen.diagnostics(x, b, seeded_rng(4))
    gen._last = None  # as if another batch had been drawn since: the rng redraws this one
    assert gen.diagnostics(x, b, seeded_rng(4)) == kept
    other = gen.sample(10, b, seeded_rng(5))
    gen._last = None
    with pytest.raises(RuntimeError, match="did not give the batch"):
        gen.diagnostics(other, b, seeded_rng(4))


def test_nll_is_gpts_where_every_token_is_verified(gen: bw.BlockwiseGenerator) -> None:
    x = Digits().canonical("test")[:8]
    assert torch.equal(gen.nll(x, EXACT), gen.gpt.nll(x, Budget(S=64)))
    assert gen.nll(x, Budget(S=8, K=4)) is None


def test_s_charts_use_the_steps_taken() -> None:
    from scalebench.report.charts import quality_vs_S, s_coordinate

    rows = []
    for gname, S, taken in [("blockwise", 4, 16.5), ("blockwise", 64, 64.0), ("gpt", 16, None), ("gpt", 64, None)]:
        base = {"generator": gname, "sampler": None, "S": S, "K": 16 if gname == "blockwise" else 1, "seed": 0,
                "status": "ok", "n": 10, "dtype": "float32", "device": "cpu", "dataset": "digits", "nfe": 1.0,
                "flops": 1.0, "latency_s": 1.0, "latency_p10_s": 1.0, "latency_p90_s": 1.0}
        rows.append({**base, "metric": "fid", "value": 10.0 + S, "kind": "quality", "better": "lower"})
        if taken is not None:
            rows.append({**base, "metric": STEPS_TAKEN, "value": taken, "kind": "diagnostic", "better": None})
    df = pd.DataFrame(rows)
    pts = df[df["metric"] == "fid"].assign(sampler="default")
    assert s_coordinate(df, pts).tolist() == [16.5, 64.0, 16.0, 64.0]
    xs = {tr.name: list(tr.x) for tr in quality_vs_S(df, "fid").data if tr.name in ("blockwise", "gpt")}
    assert xs == {"blockwise": [16.5, 64.0], "gpt": [16.0, 64.0]}


N_QUALITY = 600


@pytest.fixture(scope="module")
def draws(gen: bw.BlockwiseGenerator) -> dict[str, torch.Tensor]:
    return {"blockwise": gen.sample(N_QUALITY, EXACT, seeded_rng(0)),
            "gpt": gen.gpt.sample(N_QUALITY, Budget(S=64), seeded_rng(1)),
            "mtp": gen.mtp.sample(N_QUALITY, Budget(S=8), seeded_rng(2))}


def test_fully_verified_samples_follow_gpt_in_fewer_rounds(gen: bw.BlockwiseGenerator,
                                                           draws: dict[str, torch.Tensor]) -> None:
    """gpt's own bits/dim of its samples estimates its entropy: blockwise (k = 8, K = 8) matches gpt's
    within 4 standard errors, naive 8-token mtp is far outside; and it took < 64 rounds a sample."""
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    bits = {m: gen.gpt.nll(x, Budget(S=64)).double() for m, x in draws.items()}

    def z(a: str, b: str) -> float:
        se = math.sqrt(bits[a].var() / len(bits[a]) + bits[b].var() / len(bits[b]))
        return abs(float(bits[a].mean() - bits[b].mean())) / se

    assert z("blockwise", "gpt") < 4 < z("mtp", "gpt"), {m: float(v.mean()) for m, v in bits.items()}
    d = gen.diagnostics(draws["blockwise"], EXACT, seeded_rng(0))
    assert d["rounds_taken"] < 40 and d["unverified_fraction"] == 0.0, d
    ds = get_dataset("digits")
    fid = {m: compute_quality(x, ds, metrics=("fid",))["fid"] for m, x in draws.items()}
    assert abs(fid["blockwise"] - fid["gpt"]) < 0.5 * (fid["mtp"] - fid["gpt"]), fid
    assert to_tokens(draws["blockwise"]).shape == (N_QUALITY, 64)
