"""The FLOP counts shipped as package data: fresh for every shipped spec's point, used only when their key matches."""

from __future__ import annotations

import json

import pytest

from scalebench.specs import shipped
from scalebench.sweep import flopcache, measure
from scalebench.sweep.plan import expand
from scalebench.sweep.spec import load_spec


def _cpu_points():
    return [p for name in shipped() for p in expand(load_spec(name)) if p.device == "cpu" and not p.args
            and not p.dataset]


def test_every_point_of_a_shipped_spec_has_a_shipped_count_under_todays_key() -> None:
    counts = json.loads(flopcache.SHIPPED.read_text(encoding="utf-8"))["counts"]
    needed = {flopcache.digest(flopcache.flops_key(p, measure.PROBE_N)): p for p in _cpu_points()}
    missing = sorted(p.label() for d, p in needed.items() if d not in counts)
    assert not missing, (f"stale shipped FLOP counts: run `make floors` (python -m scalebench.sweep.flopship --ship); "
                         f"{len(missing)} missing, e.g. {missing[:3]}")
    assert set(counts) == set(needed)  # nothing shipped that no spec asks for
    assert all(c["flops_per_sample"] > 0 for c in counts.values())


def test_a_cold_cache_reads_the_shipped_count_and_a_changed_key_is_recounted(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SCALEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(measure, "_FLOPS", {})
    point = next(p for p in _cpu_points() if p.generator == "gpt")
    monkeypatch.setattr(measure, "count_flops", lambda *a: pytest.fail("counted a shipped budget"))
    shipped_count = measure.flops(None, point)
    assert shipped_count > 0
    key = flopcache.flops_key(point, measure.PROBE_N)
    monkeypatch.setattr(flopcache, "_shipped", lambda: {flopcache.digest(key): {"key": {**key, "S": 0},
                                                                                 "flops_per_sample": 1.0}})
    monkeypatch.setattr(measure, "_FLOPS", {})
    monkeypatch.setattr(measure, "count_flops", lambda fn, n: 123.0)
    monkeypatch.setattr(measure, "get_loaded", lambda *a, **k: None)
    loaded = measure.Loaded(gen=type("G", (), {"sample": lambda *a: None})(), card=None, dataset=None, counter=None)
    assert measure.flops(loaded, point) == 123.0  # the stored key differs: counted, then cached
    monkeypatch.setattr(measure, "_FLOPS", {})
    monkeypatch.setattr(measure, "count_flops", lambda *a: pytest.fail("counted twice"))
    assert measure.flops(loaded, point) == 123.0
