"""Honest numbers: disjoint splits, the data floor, memorisation and precision/recall."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scalebench.api import Budget
from scalebench.data.digits import Digits
from scalebench.metrics.floor import data_floor
from scalebench.metrics.memorisation import memorisation, thresholds
from scalebench.metrics.precision_recall import precision_recall
from scalebench.metrics.quality import compute_quality
from tests.degenerate import CopyGenerator, register

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
    assert load_checkpoint("refnet")[1]["split"] == "features"  # the generators never see it (issue 22)
    with pytest.raises(ValueError, match="unknown split"):
        ds.canonical("validation")


register()


def _fresh(ds: Digits, splits: tuple[str, ...], n: int, seed: int = 99) -> torch.Tensor:
    pool = torch.cat([ds.canonical(s) for s in splits])
    return pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:n]]


# real images no judge of the metric (nor any generator, where it matters) trained on, outside the floor's draws' seeds
FRESH = {"ref_nll": ("train", "reference"), "memorisation": ("features",), "memorisation_feat": ("reference",)}


@pytest.mark.slow  # ≥ 15 s on 2 cores: run by `make test-slow` (CI runs both)
def test_real_held_out_data_lands_inside_the_floor_band(ds: Digits) -> None:
    """A fresh draw of real unseen images scores inside the floor's mean ± 2 sd on every metric."""
    floor = data_floor(ds, FLOOR_METRICS, N)
    assert set(floor) == set(FLOOR_METRICS)
    assert all(f["draws"] >= 200 and f["sd"] > 0 and f["without_replacement"] for f in floor.values())
    for m in FLOOR_METRICS:
        got = compute_quality(_fresh(ds, FRESH.get(m, ("train",)), N), ds, metrics=(m,), floors=True)
        mean, sd = got[f"{m}_floor"], got[f"{m}_floor_sd"]
        assert (mean, sd) == (floor[m]["mean"], floor[m]["sd"])
        assert abs(got[m] - mean) <= 2 * sd + 1e-9, (m, got[m], mean, sd)
    assert floor["memorisation"]["mean"] < 0.05 and floor["precision"]["mean"] > 0.8


def test_each_floor_is_drawn_from_data_its_judge_never_saw(ds: Digits) -> None:
    """refnet learns from `features` only, so its floor pool (train ∪ reference) is unseen by it; the
    feature metrics redraw their reference from train ∪ reference (the feature net learnt from `features`);
    memorisation cross-fits its threshold inside `reference`, which neither generators nor the feature net saw."""
    from scalebench.metrics.refnll import HELD_OUT, TRAIN_SPLIT
    from scalebench.zoo import load_checkpoint

    assert TRAIN_SPLIT not in HELD_OUT and ds.generator_split not in (TRAIN_SPLIT,)
    assert load_checkpoint("features")[1]["split"] not in HELD_OUT
    floor = data_floor(ds, FLOOR_METRICS, N)
    assert floor["ref_nll"]["pool"] == "train+reference" and floor["ref_nll"]["pool_size"] == 1400
    assert floor["fid"]["pool"].startswith("train+reference") and floor["fid"]["reference_size"] == 400
    mem = floor["memorisation_feat"]
    assert mem["pool"].startswith("reference") and mem["held_out"] + mem["threshold_size"] == 400


def test_a_copying_model_is_flagged_and_does_not_beat_the_floor(ds: Digits) -> None:
    """The issue-22 copier: training images verbatim. Before, ref-NLL 1.57 against a floor of 1.82."""
    x = CopyGenerator().sample(N, Budget(), torch.Generator().manual_seed(0))
    got = compute_quality(x, ds, metrics=FLOOR_METRICS, floors=True)
    assert got["memorisation"] == 1.0 and got["memorisation_feat"] == 1.0
    for m in ("fid", "ref_nll"):  # lower is better: copies are not "better than real"
        assert got[m] >= got[f"{m}_floor"] - 2 * got[f"{m}_floor_sd"], (m, got[m], got[f"{m}_floor"])
    from scalebench.flags import flags_of

    assert flags_of(got)[0] == ["copies"]


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
    assert rec.status == "ok" and rec.metrics["memorisation"] == 1.0
    assert np.isfinite(rec.floors["fid"].mean) and rec.floors["fid"].sd > 0
