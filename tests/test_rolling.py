"""The `rolling` family: the sliding window's noise-level schedule (K steps per row, levels linear in
window position, committed rows never touched again), counted NFE, and quality on the shared checkpoint.
(The generic contract suite runs on it in tests/test_contract.py, parametrised over every family.)"""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from scalebench.api import Budget
from scalebench.methods import ar_diffusion as A
from scalebench.methods import rolling as R
from scalebench.methods.samplers import diffusion as DS
from tests.conftest import independent_pixel_fid, seeded_rng, shipped_generator

GRID_S, GRID_K = (1, 2, 4, 8), (1, 2, 4, 5, 8, 10, 16, 20)


gen = shipped_generator(R.RollingGenerator)


def test_card_and_checkpoint(gen: R.RollingGenerator) -> None:
    card = gen.card
    assert (card.name, card.category, card.outer, card.likelihood) == ("rolling", "both-outer-S", "S", "bound")
    assert card.S.values == (1, 2, 4, 8) and card.samplers == ("ddim", "ddpm") and "Ruhe" in card.paper
    assert R.RollingGenerator.checkpoints == ("ar_diffusion",)  # the shared per-row net, not its own


def test_window_schedule() -> None:
    """Every row gets exactly K steps, times never go back up, a committed row (t = 0) stays committed,
    the noise level grows with position in the window, at most W = min(S, K) frames are in flight,
    the S frames commit at S distinct calls in order, one shift (K/W calls) apart when W divides K,
    and then the levels inside the window are exactly (w + τ)/W."""
    for S in GRID_S:
        for K in GRID_K:
            W, rows = min(S, K), 8 // S
            table = A.row_time_table(R.rolling_starts(S, K), K)
            assert len(table) - 1 == (S - 1) * K // W + K
            for col in zip(*table, strict=True):
                assert sum(a > b for a, b in pairwise(col)) == K
                assert all(a >= b for a, b in pairwise(col))
                first_zero = col.index(0.0)
                assert all(v == 0.0 for v in col[first_zero:])
            for row in table:
                assert row == sorted(row)
                frames = row[::rows]
                assert sum(0.0 < t < 1.0 for t in frames) <= W
            done = A.commits(table)
            assert len(done) == S and done[0] == K
            if K % W == 0:
                assert all(b - a == K // W for a, b in pairwise(done))
                for row in table:  # frames strictly inside the window sit 1/W apart
                    inside = [t for t in row[::rows] if 0.0 < t < 1.0]
                    assert all(abs((b - a) - 1 / W) <= 1.01 / DS.T for a, b in pairwise(inside))
    assert R.rolling_starts(8, 16) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert R.rolling_starts(1, 7) == [0] and A.row_time_table([0], 7) == [[t] * 8 for t in DS.sampler_times(7, "ddim")]


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_committed_rows_are_never_changed_again(gen: R.RollingGenerator, sampler: str) -> None:
    """Walking the table on the real net: after a row reaches t = 0 its pixels stay bit-identical (DDPM's
    fresh noise included), and before its start call a row keeps its initial noise."""
    budget = Budget(S=8, K=4)
    table = gen.schedule(budget)
    states: list[torch.Tensor] = []
    x = DS.randn_like(torch.empty(4, 1, 8, 8), seeded_rng(1))
    DS.sample_rows(gen.denoise, x, table, seeded_rng(2), A.ETA[sampler],
                   callback=lambda d: states.append(d["x"].clone()))
    states = [x, *states]
    assert len(states) == len(table) == gen.nfe(budget) + 1
    for r in range(8):
        col = [row[r] for row in table]
        done, start = col.index(0.0), next(c for c, t in enumerate(col) if t < 1.0) - 1
        assert all(torch.equal(states[c][:, :, r], states[done][:, :, r]) for c in range(done, len(states)))
        assert all(torch.equal(states[c][:, :, r], x[:, :, r]) for c in range(start + 1))


def test_nfe_declared_equals_counted_and_determinism(gen: R.RollingGenerator) -> None:
    calls: list[int] = []
    hook = gen.net.register_forward_hook(lambda *_: calls.append(1))
    try:
        for S, K in [(1, 3), (4, 2), (8, 5), (8, 16)]:
            calls.clear()
            a = gen.sample(3, Budget(S=S, K=K), seeded_rng(7), "ddpm")
            assert len(calls) == gen.nfe(Budget(S=S, K=K)) == (S - 1) * K // min(S, K) + K
            assert torch.equal(a, gen.sample(3, Budget(S=S, K=K), seeded_rng(7), "ddpm"))
    finally:
        hook.remove()
    with pytest.raises(ValueError):
        gen.nfe(Budget(S=3, K=4))


def test_quality_at_the_largest_budget_beats_independent_pixels(gen: R.RollingGenerator) -> None:
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    x = gen.sample(500, Budget(S=8, K=20), seeded_rng(0))
    fid = compute_quality(x, get_dataset("digits"), metrics=("fid",))["fid"]
    assert fid < 0.5 * independent_pixel_fid(500), fid  # 500 samples: ~3 vs ~52
