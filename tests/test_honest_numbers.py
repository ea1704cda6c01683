"""Honest numbers: disjoint splits, the data floor, memorisation and precision/recall."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scalebench.api import Axis, Budget, MethodCard
from scalebench.data.digits import Digits
from scalebench.metrics.floor import data_floor
from scalebench.metrics.memorisation import memorisation, thresholds
from scalebench.metrics.precision_recall import precision_recall
from scalebench.metrics.quality import compute_quality
from scalebench.registry import GENERATORS

N = 300
FLOOR_METRICS = ("fid", "kid", "precision", "recall", "diversity", "ref_nll", "memorisation", "memorisation_feat")


@pytest.fixture(scope="module")
def ds() -> Digits:
    from scalebench.data import get_dataset

    return get_dataset("digits")  # type: ignore[return-value]


def test_splits_are_disjoint_and_each_judge_trained_on_its_own(ds: Digits) -> None:
    _, _, which = ds._arrays
    assert [(which == s).sum() for s in ("train", "features", "reference")] == [1000, 397, 400]
    assert len(ds.canonical("test")) == 797 and len(ds.canonical("all")) == 1797
    from scalebench.zoo import load_checkpoint

    assert load_checkpoint("features")[1]["split"] == "features"
    assert load_checkpoint("refnet")[1]["split"] == "train"
    with pytest.raises(ValueError, match="unknown split"):
        ds.canonical("validation")


class CopyGenerator:
    """Returns training images verbatim: the memorisation metric must flag every sample."""

    card = MethodCard(name="copier", family="test", category="neither", S=Axis.fixed(1), K=Axis.fixed(1))

    def __init__(self, device: str = "cpu") -> None:
        self.train = Digits().canonical("train")

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        return self.train[torch.randint(len(self.train), (n,), generator=rng)]

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        return 1


if "copier" not in GENERATORS:
    GENERATORS.register("copier", CopyGenerator)


def test_real_held_out_data_lands_inside_the_floor_band(ds: Digits) -> None:
    """A fresh draw of real images (from each metric's floor pool, another seed) scores inside mean ± 2 sd."""
    from scalebench.metrics.floor import DEFAULT_POOL, POOLS

    floor = data_floor(ds, FLOOR_METRICS, N)
    assert set(floor) == set(FLOOR_METRICS) and all(f["draws"] >= 5 and f["sd"] > 0 for f in floor.values())
    for m in FLOOR_METRICS:
        pool = ds.canonical(POOLS.get(m, DEFAULT_POOL))
        real = pool[torch.randint(len(pool), (N,), generator=torch.Generator().manual_seed(99))] \
            if len(pool) < N else pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(99))[:N]]
        got = compute_quality(real, ds, metrics=(m,), floors=True)
        mean, sd = got[f"{m}_floor"], got[f"{m}_floor_sd"]
        assert (mean, sd) == (floor[m]["mean"], floor[m]["sd"])
        assert abs(got[m] - mean) <= 2 * sd + 1e-9, (m, got[m], mean, sd)
    assert floor["memorisation"]["mean"] < 0.05 and floor["precision"]["mean"] > 0.8


def test_a_copying_model_is_flagged_and_does_not_beat_the_floor(ds: Digits) -> None:
    x = CopyGenerator().sample(N, Budget(), torch.Generator().manual_seed(0))
    got = compute_quality(x, ds, metrics=FLOOR_METRICS, floors=True)
    assert got["memorisation"] == 1.0 and got["memorisation_feat"] == 1.0
    assert got["fid"] >= got["fid_floor"] - 2 * got["fid_floor_sd"]  # copies are not "better than real"


def test_memorisation_thresholds_come_from_unseen_real_data(ds: Digits) -> None:
    t = thresholds(ds)
    assert t["pixel"] > 0 and t["feature"] > 0
    unseen = memorisation(ds.canonical("reference"), ds)
    assert unseen["memorisation"] == pytest.approx(0.01, abs=0.006)  # 1% by construction (ties aside)
    noise = memorisation(torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(0)), ds)
    assert noise["memorisation"] == 0.0


def test_precision_recall_separate_fidelity_from_coverage(ds: Digits) -> None:
    real = ds.canonical("train")  # unseen by the feature net, disjoint from the reference
    pr = precision_recall(real, ds)
    assert pr["precision"] > 0.85 and pr["recall"] > 0.85
    noise = precision_recall(torch.rand(1000, 1, 8, 8, generator=torch.Generator().manual_seed(0)), ds)
    assert noise["precision"] < pr["precision"] - 0.4 and noise["recall"] < 0.05
    ones = real[ds.labels("train") == 1]  # one class: faithful, no coverage
    pr1 = precision_recall(ones, ds)
    assert pr1["precision"] > 0.85 and pr1["recall"] < 0.3


def test_copier_in_a_sweep_records_floors(tmp_path) -> None:
    from scalebench.results import iter_records
    from scalebench.sweep.runner import run_sweep
    from scalebench.sweep.spec import parse_spec
    from tests.conftest import toy_spec

    spec = parse_spec(toy_spec(samples=N, batch_size=N, metrics=["fid", "memorisation"],
                               generators=[{"name": "copier"}]))
    run_sweep(spec, tmp_path / "run", progress=False)
    (rec,) = list(iter_records(tmp_path / "run"))
    assert rec["status"] == "ok" and rec["metrics"]["memorisation"] == 1.0
    assert np.isfinite(rec["metrics"]["fid_floor"]) and rec["metrics"]["fid_floor_sd"] > 0
