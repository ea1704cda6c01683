"""The metric registry is the only list: every declared function resolves, and the loops cover it."""

from __future__ import annotations

import inspect

import pytest

from scalebench.metrics import FEATURE_METRICS, METRICS, QUALITY_METRICS, SAMPLE_METRICS, function, grouped


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_declared_function_resolves_with_the_registry_signature(name: str) -> None:
    m = METRICS[name]
    for attr, params in (("compute", 4), ("floor", 4), ("on_features", 5)):
        path = getattr(m, attr)
        if path:
            fn = function(path)
            assert callable(fn) and len(inspect.signature(fn).parameters) == params, (name, attr, path)


def test_derived_lists_follow_the_declarations() -> None:
    assert set(SAMPLE_METRICS) == {n for n, m in METRICS.items() if m.compute}
    assert "test_nll" in QUALITY_METRICS and "test_nll" not in SAMPLE_METRICS  # from the model, not samples
    assert set(FEATURE_METRICS) == {"fid", "kid", "precision", "recall", "diversity", "memorisation_feat"}
    assert all(METRICS[n].kind == "quality" for n in SAMPLE_METRICS)
    # metrics computed together share one call: FID+KID, precision+recall, both copy fractions
    assert list(grouped(["fid", "recall", "kid", "precision"], "compute").values()) == [["fid", "kid"],
                                                                                       ["recall", "precision"]]


def test_a_metric_without_a_floor_is_refused_by_name() -> None:
    from scalebench.data.digits import Digits
    from scalebench.metrics.floor import data_floor

    with pytest.raises(ValueError, match=r"no data floor is defined for \['test_nll'\]"):
        data_floor(Digits(), ["test_nll"], 10)


def test_compute_quality_returns_exactly_the_requested_sample_metrics() -> None:
    import torch

    from scalebench.data.digits import Digits
    from scalebench.metrics.quality import compute_quality

    ds = Digits()
    x = ds.canonical("test")[:64]
    got = compute_quality(x, ds, metrics=("kid", "memorisation", "test_nll", "nonsense"))
    assert list(got) == ["kid", "memorisation"] and all(torch.isfinite(torch.tensor(v)) for v in got.values())
