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


def test_splits_are_disjoint_and_the_judges_never_saw_the_reference(ds: Digits) -> None:
    rows = {s: {tuple(x.flatten().tolist()) + (i,) for i, x in enumerate(ds.canonical(s))} for s in ("train",)}
    _, _, which = ds._arrays
    assert (which == "train").sum() == 1000 and (which == "features").sum() == 397 and (which == "reference").sum() == 400
    assert len(ds.canonical("test")) == 797 and len(ds.canonical("floor_pool")) == 1397 and rows
    from scalebench.zoo import load_checkpoint

    assert load_checkpoint("features")[1]["split"] == "features"
    assert load_checkpoint("refnet")[1]["split"] == "train"


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
    floor = data_floor(ds, FLOOR_METRICS, N)
    assert set(floor) == set(FLOOR_METRICS) and all(f["draws"] >= 5 for f in floor.values())
    real = ds.canonical("features")[torch.randperm(397, generator=torch.Generator().manual_seed(7))[:N]]
    got = compute_quality(real, ds, metrics=FLOOR_METRICS, floors=True)
    for m in FLOOR_METRICS:
        mean, sd = got[f"{m}_floor"], got[f"{m}_floor_sd"]
        assert (mean, sd) == (floor[m]["mean"], floor[m]["sd"])
        assert abs(got[m] - mean) <= 3 * sd + 1e-9, (m, got[m], mean, sd)
    assert floor["fid"]["sd"] > 0 and floor["memorisation"]["mean"] < 0.05


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
    real = ds.canonical("floor_pool")[:N]
    pr = precision_recall(real, ds)
    assert pr["precision"] > 0.8 and pr["recall"] > 0.8
    noise = precision_recall(torch.rand(N, 1, 8, 8, generator=torch.Generator().manual_seed(0)), ds)
    assert noise["precision"] < 0.1
    ones = ds.canonical("floor_pool")[ds.labels("floor_pool") == 1][:N]  # one class: faithful, no coverage
    pr1 = precision_recall(ones, ds)
    assert pr1["precision"] > 0.8 and pr1["recall"] < 0.3


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
