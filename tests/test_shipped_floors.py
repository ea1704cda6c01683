"""The data floors shipped as package data: fresh for every shipped spec, used only when their key matches."""

from __future__ import annotations

import json

import pytest

from scalebench.data import get_dataset
from scalebench.metrics import floor as floor_mod


def test_every_floor_a_shipped_spec_needs_is_shipped_under_todays_key() -> None:
    shipped = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in floor_mod.SHIPPED.glob("*.json")}
    needed = {}
    for name, metrics, n in floor_mod.shipped_needs():
        ds = get_dataset(name)
        key = floor_mod.floor_key(ds, tuple(sorted(m for m in metrics if m in tuple(ds.metrics))), n)
        needed[floor_mod.floor_file(key)] = key
    assert needed, "the shipped specs ask for no floor?"
    missing = sorted(set(needed) - set(shipped))
    assert not missing, f"stale shipped floors: run `make floors` (python -m scalebench.metrics.floor --ship) ({missing})"
    for name, key in needed.items():
        assert floor_mod._canonical(shipped[name]["key"]) == floor_mod._canonical(key)
    assert set(shipped) == set(needed)  # nothing shipped that no spec asks for


def test_a_cold_cache_reads_the_shipped_floor_without_computing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SCALEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("scalebench.metrics.function", lambda path: pytest.fail(f"computed {path}"))
    name, metrics, n = floor_mod.shipped_needs()[0]
    got = floor_mod.data_floor(get_dataset(name), metrics, n)
    assert set(got) == set(metrics) and all(got[m]["n"] == n for m in metrics)


def test_a_shipped_floor_whose_key_differs_is_recomputed(tmp_path, monkeypatch) -> None:
    """The file name is a hash of the key, but the key inside is what is trusted: a mismatch is recomputed."""
    monkeypatch.setenv("SCALEBENCH_CACHE", str(tmp_path / "cache"))
    name, metrics, n = floor_mod.shipped_needs()[0]
    ds = get_dataset(name)
    key = floor_mod.floor_key(ds, metrics, n)
    fake = tmp_path / "shipped"
    fake.mkdir()
    (fake / floor_mod.floor_file(key)).write_text(json.dumps({"key": {**key, "n": n + 1}, "floor": {"fid": {}}}))
    monkeypatch.setattr(floor_mod, "SHIPPED", fake)
    calls = []

    def compute(path):
        calls.append(path)
        return lambda dataset, names, n, device: {m: {"mean": 1.0, "sd": 0.0, "n": n} for m in names}

    monkeypatch.setattr("scalebench.metrics.function", compute)
    got = floor_mod.data_floor(ds, metrics, n)
    assert calls and got["fid"] == {"mean": 1.0, "sd": 0.0, "n": n}
    assert (tmp_path / "cache" / "floors" / floor_mod.floor_file(key)).is_file()  # cached for next time
