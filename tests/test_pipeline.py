"""End to end on the shipped reference models: determinism and the records' quality fields."""

from __future__ import annotations

from scalebench.results import iter_records, load_results
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import parse_spec

SPEC = {
    "name": "tiny", "seeds": [0], "samples": 120, "batch_size": 60,
    "metrics": ["fid", "kid", "ref_nll", "diversity", "test_nll"],
    "timing": {"warmup": 0, "min_repeats": 2, "min_duration_s": 0.0},
    "generators": [{"name": "diffusion", "samplers": ["ddim", "ddpm"], "K": [2]},
                   {"name": "gpt", "S": [16, 64]}],
}


def _by_point(run_dir):
    return {r.point_id: r for r in iter_records(run_dir)}


def test_same_seed_identical_samples_and_metrics(tmp_path) -> None:
    spec = parse_spec(SPEC)
    run_sweep(spec, tmp_path / "a", progress=False)
    run_sweep(spec, tmp_path / "b", progress=False)
    a, b = _by_point(tmp_path / "a"), _by_point(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 4
    for pid, ra in a.items():
        rb = b[pid]
        assert ra.status == rb.status == "ok", ra.error
        assert ra.preview == rb.preview
        assert ra.metrics == rb.metrics and ra.floors == rb.floors
        assert ra.cost.flops == rb.cost.flops and ra.cost.nfe == rb.cost.nfe
    gpt64 = next(r for r in a.values() if r.generator == "gpt" and r.S == 64)
    gpt16 = next(r for r in a.values() if r.generator == "gpt" and r.S == 16)
    assert gpt64.nll_kind == "exact" and 1.0 < gpt64.metrics["test_nll"] < 2.5
    assert "test_nll" not in gpt16.metrics  # an r×r model has no 8×8 bits/dim
    ddim = next(r for r in a.values() if r.sampler == "ddim")
    assert ddim.nll_kind == "bound" and ddim.metrics["test_nll"] > 0
    assert gpt64.metrics["fid"] < gpt16.metrics["fid"]
    df = load_results(tmp_path / "a")
    assert set(df["metric"]) >= {"fid", "kid", "ref_nll", "diversity", "test_nll", "latency_s", "nfe", "flops"}
    other = run_sweep(parse_spec({**SPEC, "seeds": [1]}), tmp_path / "c", progress=False)
    assert other.failed == 0
    c = list(iter_records(tmp_path / "c"))
    assert {r.preview["data"] for r in c}.isdisjoint({r.preview["data"] for r in a.values()})
