"""Quality metrics: the feature net, FID/KID against an independent float64 reference, the
reference cache, diversity and reference NLL. Uses the shipped checkpoints; no training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scalebench.data.digits import Digits, quantise
from scalebench.metrics import METRICS
from scalebench.metrics import fid as fid_mod
from scalebench.metrics.diversity import diversity
from scalebench.metrics.features import (
    NUM_FEATURES,
    FeatureExtractor,
    accuracy,
    feature_extractor,
    load_feature_net,
    shift_augment,
    to_grid,
)
from scalebench.metrics.fid import (
    cache_dir,
    fid_kid,
    frechet_distance,
    gaussian_stats,
    reference_features,
    reference_path,
)
from scalebench.metrics.quality import SAMPLE_METRICS, compute_quality
from scalebench.zoo import checkpoint_path


@pytest.fixture(scope="module")
def ds() -> Digits:
    return Digits()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh, empty cache per test (so cache behaviour is observable) and no stale memo."""
    monkeypatch.setenv("SCALEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fid_mod, "_MEMO", {})


def _noised(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return quantise(x + sigma * torch.randn(x.shape, generator=g))


def test_feature_net_accuracy(ds: Digits) -> None:
    net = load_feature_net("cpu")
    acc = accuracy(net, ds.canonical("reference"), ds.labels("reference"))  # never seen by the net
    assert acc >= 0.97, f"feature net held-out accuracy {acc:.4f} < 0.97"
    assert accuracy(net, ds.canonical("train"), ds.labels("train")) >= 0.97  # the generators' split: unseen too
    assert checkpoint_path("features").stat().st_size < 1_000_000


def test_feature_extractor_survives_torchmetrics_conversions(ds: Digits) -> None:
    x = ds.canonical("test")[:64]
    fx = feature_extractor("cpu")
    assert isinstance(fx, FeatureExtractor) and fx.num_features == NUM_FEATURES
    ref = fx(x)
    assert ref.shape == (64, NUM_FEATURES)
    assert torch.equal(to_grid((x * 255).byte()), x)  # the 17-level grid survives uint8
    assert torch.equal(fx((x * 255).byte()), ref)
    assert torch.equal(fx(x[:, 0]), ref)  # (N, 8, 8) accepted
    fx.train()
    assert not fx.training and not fx.net.training


def test_shift_augment_is_a_translation() -> None:
    x = torch.zeros(3, 1, 8, 8)
    x[:, 0, 3, 4] = 1.0
    y = shift_augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.all(y.flatten(1).sum(1) == 1.0)
    pos = y[:, 0].flatten(1).argmax(1)
    assert torch.all((pos // 8 - 3).abs() <= 1) and torch.all((pos % 8 - 4).abs() <= 1)


def test_fid_self_zero_and_held_out_small(ds: Digits) -> None:
    same = fid_kid(ds.canonical("reference"), ds, which=("fid",))["fid"]
    assert abs(same) < 1e-3  # the reference split against itself
    held_out = fid_kid(ds.canonical("train"), ds, which=("fid",))["fid"]
    assert 0.0 < held_out < 5.0


@pytest.mark.parametrize("sigma", [0.0, 0.2])
def test_fid_matches_float64_scipy_reference(ds: Digits, sigma: float) -> None:
    x = _noised(ds.canonical("train"), sigma, seed=1) if sigma else ds.canonical("train")
    ours = fid_kid(x, ds, which=("fid",))["fid"]
    with torch.no_grad():
        real = feature_extractor("cpu")(ds.canonical("reference"))
        fake = feature_extractor("cpu")(x)
    ref = frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))
    assert ours == pytest.approx(ref, rel=1e-4)


def test_fid_and_kid_grow_with_noise(ds: Digits) -> None:
    x = ds.canonical("test")
    res = [fid_kid(_noised(x, s, seed=2), ds) for s in (0.1, 0.2, 0.4)]
    fids = [r["fid"] for r in res]
    kids = [r["kid"] for r in res]
    assert fids[0] < fids[1] < fids[2], fids
    assert kids[0] < kids[1] < kids[2], kids
    assert fid_kid(x, ds)["fid"] < fids[0]


def test_kid_is_deterministic_and_independent_of_global_rng(ds: Digits) -> None:
    x = _noised(ds.canonical("test"), 0.2)
    a = fid_kid(x, ds, which=("kid",))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    b = fid_kid(x, ds, which=("kid",))
    assert a == b and set(a) == {"kid", "kid_std"}
    assert torch.equal(torch.get_rng_state(), state)  # KID's subsets do not consume the global RNG


def test_reference_cache_created_keyed_and_reused(ds: Digits, monkeypatch: pytest.MonkeyPatch) -> None:
    path = reference_path(ds, "train")
    assert path.parent == cache_dir() and not path.exists()
    feats = reference_features(ds, "train")
    assert path.exists() and feats.shape == (len(ds.canonical("train")), NUM_FEATURES)
    assert not list(cache_dir().glob("*.tmp"))  # atomic write left no temp file
    assert reference_path(ds, "test") != path

    class Moved(Digits):
        def fingerprint(self) -> dict[str, object]:
            return {**super().fingerprint(), "split_seed": 99}

    assert reference_path(Moved(), "train") != path  # dataset fingerprint enters the key
    import scalebench.zoo as zoo

    with monkeypatch.context() as m:
        m.setattr(zoo, "checkpoint_hash", lambda name, directory=None: "retrained")
        assert reference_path(ds, "train") != path  # the feature-net checkpoint enters the key
    assert reference_path(ds, "train") == path

    # reuse: a fresh process (empty memo) reads the file and never runs the net on real data
    monkeypatch.setattr(fid_mod, "_MEMO", {})
    monkeypatch.setattr(fid_mod, "extractor_for", lambda dataset, device: pytest.fail("recomputed"))
    again = reference_features(ds, "train")
    assert torch.equal(again, feats)


def test_diversity_real_near_one_and_collapse_zero(ds: Digits) -> None:
    assert diversity(ds.canonical("reference"), ds) == pytest.approx(1.0, abs=1e-9)
    assert diversity(ds.canonical("train"), ds) == pytest.approx(1.0, abs=0.05)
    collapsed = ds.canonical("test")[:1].repeat(200, 1, 1, 1)
    assert diversity(collapsed, ds) < 1e-6
    two_modes = ds.canonical("test")[:2].repeat(100, 1, 1, 1)
    assert 0.0 < diversity(two_modes, ds) < 1.0


def test_ref_nll_prefers_real_digits(ds: Digits) -> None:
    from scalebench.metrics.refnll import ref_nll

    real = ds.canonical("test")[:200]
    g = torch.Generator().manual_seed(0)
    random_tokens = torch.randint(0, 17, (200, 1, 8, 8), generator=g).float() / 16
    r, n = ref_nll(real), ref_nll(random_tokens)
    assert math.isfinite(r) and 0.0 < r < n
    assert n > math.log2(17) * 0.9  # near-uniform tokens cost about log2(17) bits or more


def test_compute_quality_requested_and_applicable_only(ds: Digits) -> None:
    x = _noised(ds.canonical("test"), 0.1)

    class FidOnly(Digits):
        metrics = ("fid", "diversity")

    out = compute_quality(x, FidOnly(), metrics=("fid", "kid", "diversity"))
    assert set(out) == {"fid", "diversity"}
    assert all(math.isfinite(v) for v in out.values())
    assert set(compute_quality(x, ds, metrics=("kid", "test_nll"))) == {"kid"}
    assert set(SAMPLE_METRICS) <= set(METRICS)
    # judged on the grid: off-grid output scores as its quantised version
    off = x + 0.01
    assert compute_quality(off, ds, metrics=("fid",)) == compute_quality(quantise(off), ds, metrics=("fid",))
    assert np.isfinite(list(compute_quality(x, ds, metrics=("fid",)).values())).all()


def test_cpu_peak_memory_counts_live_storages_not_the_sum() -> None:
    """Peak of bytes alive at once: a freed temporary does not add up, a view keeps its base counted."""
    from scalebench.metrics.cost import peak_memory

    def overlapping() -> torch.Tensor:
        a = torch.ones(250_000)  # 1 MB
        b = torch.ones(500_000)  # 2 MB while a lives
        return a[:10] + b[:10]

    def sequential() -> None:
        for _ in range(5):
            torch.ones(250_000).sum()  # 1 MB, freed each time

    def view_keeps_base() -> torch.Tensor:
        v = torch.ones(250_000)[:1]  # the 1 MB base lives on through its view
        torch.ones(125_000).sum()
        return v

    peak = {name: peak_memory(f, "cpu")[0] for name, f in
            (("overlap", overlapping), ("sequential", sequential), ("view", view_keeps_base))}
    assert 3_000_000 <= peak["overlap"] < 3_001_000
    assert 1_000_000 <= peak["sequential"] < 1_001_000
    assert 1_500_000 <= peak["view"] < 1_501_000
