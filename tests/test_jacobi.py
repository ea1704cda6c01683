"""The `jacobi` family: Jacobi decoding of the shipped gpt reproduces its sequential samples at K = 64,
fixes at least the first k tokens after k iterations, counts NFE = K, reports its convergence through
the harness's per-point diagnostics, and beats independent pixels on quality."""

from __future__ import annotations

import math

import pytest
import torch

from scalebench.api import Budget, Generator, HasDiagnostics, HasLikelihood
from scalebench.data.digits import LEVELS, Digits, to_tokens
from scalebench.methods import gpt, jacobi
from scalebench.metrics.cost import CallCounter
from tests.conftest import independent_pixels, seeded_rng, shipped_generator

FULL = Budget(S=64, K=64)


gen = shipped_generator(jacobi.JacobiGenerator)


def _sequential(gen: jacobi.JacobiGenerator, n: int, seed: int) -> torch.Tensor:
    """The shipped gpt's own sample (token by token, KV cache) from the same seed."""
    return gen.gpt.sample(n, Budget(S=64), seeded_rng(seed))


def test_card_and_protocols(gen: jacobi.JacobiGenerator) -> None:
    card = jacobi.JacobiGenerator.card
    assert card.name == "jacobi" and card.category == "refinement" and card.likelihood == "exact"
    assert card.S.is_fixed and card.S.default == 64 and card.K.values == jacobi.KS == (1, 2, 4, 8, 16, 32, 64)
    assert card.K.default == 64 and card.samplers == ("jacobi",) and "Song" in card.paper
    assert jacobi.JacobiGenerator.checkpoints == ("gpt",)
    assert isinstance(gen, Generator) and isinstance(gen, HasLikelihood) and isinstance(gen, HasDiagnostics)


@pytest.mark.parametrize("budget", [Budget(S=1, K=64), Budget(S=16, K=4), Budget(S=64, K=3), Budget(S=64, K=128)])
def test_invalid_budget_raises(gen: jacobi.JacobiGenerator, budget: Budget) -> None:
    with pytest.raises(ValueError, match="jacobi"):
        gen.sample(2, budget, seeded_rng(0))
    with pytest.raises(ValueError):
        gen.nfe(budget)


def test_train_names_the_parent() -> None:
    from scalebench.errors import UsageError
    from scalebench.generators import trainer

    with pytest.raises(UsageError, match="jacobi has no checkpoint of its own.*scalebench train gpt"):
        trainer("jacobi")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_k64_reproduces_the_sequential_gpt_sample(gen: jacobi.JacobiGenerator, seed: int) -> None:
    """Jacobi on a triangular system reaches its solution in at most 64 iterations: the same noise
    gives the very sample the gpt writes token by token (seed 0 is checked on 200 samples below)."""
    assert torch.equal(gen.sample(16, FULL, seeded_rng(seed)), _sequential(gen, 16, seed))


def test_first_k_tokens_are_sequential_after_k_iterations(gen: jacobi.JacobiGenerator) -> None:
    """The triangular-system property, iteration by iteration, and sample(K) is the K-th iterate."""
    n = 12
    u = torch.rand(n, 64, generator=seeded_rng(5))  # what sample() draws from this seed
    seq = gpt.decode(gen.model, 8, u)
    iterates: dict[int, torch.Tensor] = {}
    jacobi.jacobi_decode(gen.logits, u, 64, callback=lambda k, x: iterates.__setitem__(k, x))
    for k, x in iterates.items():
        assert torch.equal(x[:, :k], seq[:, :k]), k
    assert torch.equal(iterates[64], seq)
    assert not torch.equal(iterates[1], seq)  # one pass from zeros is not yet the sample
    for K in (1, 8, 32):
        assert torch.equal(to_tokens(gen.sample(n, Budget(S=64, K=K), seeded_rng(5))), iterates[K])


@pytest.mark.parametrize("K", jacobi.KS)
def test_nfe_declared_equals_counted(gen: jacobi.JacobiGenerator, K: int) -> None:
    counter = CallCounter(gen.networks())
    with counter:
        x = gen.sample(2, Budget(S=64, K=K), seeded_rng(0))
    assert gen.nfe(Budget(S=64, K=K)) == K == counter.count
    assert x.shape == (2, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x * (LEVELS - 1), torch.round(x * (LEVELS - 1)))


def test_nll_is_gpts_at_k64_only(gen: jacobi.JacobiGenerator) -> None:
    x = Digits().canonical("test")[:16]
    assert torch.equal(gen.nll(x, FULL), gen.gpt.nll(x, Budget(S=64)))
    assert gen.nll(x, Budget(S=64, K=16)) is None


def test_diagnostics_against_the_sequential_sample(gen: jacobi.JacobiGenerator) -> None:
    n = 8
    at = {K: gen.diagnostics(gen.sample(n, Budget(S=64, K=K), seeded_rng(6)), Budget(S=64, K=K), seeded_rng(6))
          for K in (1, 64)}
    assert at[64]["exact_match"] == at[64]["token_match"] == 1.0
    assert 1 < at[64]["iterations_until_unchanged"] < 64  # converged, and well before 64 iterations
    assert at[1]["exact_match"] < 1 and at[1]["iterations_until_unchanged"] == 1.0
    other = gen.sample(n, Budget(S=64, K=64), seeded_rng(7))  # not this rng's batch: the re-run notices
    with pytest.raises(RuntimeError, match="did not give the batch"):
        gen.diagnostics(other, FULL, seeded_rng(6))


def test_diagnostics_reach_the_record_and_the_tidy_table(gen: jacobi.JacobiGenerator) -> None:
    """The measuring path asks every quality batch (weighted by its size) and stores record["diagnostics"]."""
    from scalebench.results import record_rows
    from scalebench.sweep.measure import _GENERATORS, execute_point, mean_diagnostics
    from scalebench.sweep.plan import Point, fingerprint_of, generator_identity
    from scalebench.timing import TimingSettings

    assert mean_diagnostics([(3, {"a": 1.0}), (1, {"a": 5.0})]) == {"a": 2.0}
    with pytest.raises(ValueError, match="names"):
        mean_diagnostics([(3, {"a": 1.0}), (1, {"b": 5.0})])
    _GENERATORS.setdefault(("jacobi", "cpu", False), gen)
    identity = generator_identity("jacobi")
    point = Point(generator="jacobi", sampler="jacobi", S=64, K=4, seed=0, n=10, batch_size=4, device="cpu",
                  dtype="float32", metrics=(), timing=TimingSettings(warmup=0, min_repeats=1, min_duration_s=0.0,
                                                                      mode="contiguous"),
                  fingerprint=fingerprint_of(identity), threads=torch.get_num_threads(),
                  identity=tuple(sorted(identity.items())))
    rec = execute_point(point)
    assert rec.status == "ok", rec.error
    rng, batches = seeded_rng(0), []
    for size in (4, 4, 2):  # the batches draw() made from the seed's generator, in order
        start = rng.get_state()
        x = gen.sample(size, Budget(S=64, K=4), rng)
        again = torch.Generator()
        again.set_state(start)
        batches.append((size, gen.diagnostics(x, Budget(S=64, K=4), again)))
    assert rec.diagnostics == mean_diagnostics(batches)
    assert set(rec.diagnostics) == {"exact_match", "token_match", "iterations_until_unchanged"}
    rows = [r for r in record_rows(rec, "run") if r["kind"] == "diagnostic"]
    assert {r["metric"]: r["value"] for r in rows} == rec.diagnostics and all(r["better"] is None for r in rows)


# ---------------------------------------------------------------- quality on the shipped checkpoint

N_QUALITY = 200  # K = 64 costs 64 full passes per sample; 200 samples keep the test at a few seconds


@pytest.fixture(scope="module")
def samples(gen: jacobi.JacobiGenerator) -> dict[str, torch.Tensor]:
    out = {f"K={K}": gen.sample(N_QUALITY, Budget(S=64, K=K), seeded_rng(0)) for K in (1, 64)}
    out["marginal"] = independent_pixels(N_QUALITY)
    return out


def test_k64_equals_gpt_on_the_quality_samples(gen: jacobi.JacobiGenerator, samples: dict) -> None:
    assert torch.equal(samples["K=64"], _sequential(gen, N_QUALITY, 0))


def test_quality_beats_marginals_and_improves_with_k(samples: dict[str, torch.Tensor]) -> None:
    from scalebench.data import get_dataset
    from scalebench.metrics.quality import compute_quality

    ds = get_dataset("digits")
    fid = {k: compute_quality(x, ds, metrics=("fid",))["fid"] for k, x in samples.items()}
    assert all(math.isfinite(v) for v in fid.values()), fid
    assert fid["K=64"] < fid["marginal"], fid
    assert fid["K=64"] < fid["K=1"], fid
