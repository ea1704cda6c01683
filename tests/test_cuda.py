"""The GPU path: CUDA-event timing on the point's device, autocast, allocator peak memory, compile.

Marked `cuda` and skipped where torch sees no GPU (CI has none); `benchmarks/gpu_run.sh` runs them
on a GPU machine before its sweeps.
"""

from __future__ import annotations

import json

import pytest
import torch

from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import parse_spec
from scalebench.timing import time_call

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")]

DEVICES = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _spec(device: str = "cuda", **over) -> dict:
    spec = {"name": "gpu", "seeds": [0], "samples": 128, "batch_size": 64, "device": device, "metrics": ["fid"],
            "timing": {"warmup": 1, "rounds": 3},
            "generators": [{"name": "diffusion", "samplers": ["ddim"], "K": [2, 10]},
                           {"name": "gpt", "S": [4, 16]}]}
    spec.update(over)
    return spec


def _done(run_dir) -> list[dict]:
    recs = [json.loads(x) for x in (run_dir / "points.jsonl").read_text().splitlines()]
    return [r for r in recs if r["timing"].get("mode") != "pending"]


@pytest.mark.parametrize("device", DEVICES)
def test_cuda_events_time_the_points_device(device) -> None:
    """Events are recorded on the given device's stream (cuda:1 too, while cuda:0 is current)."""
    x = torch.randn(2048, 2048, device=device)
    time_call(lambda: x @ x, device)  # the first product pays cuBLAS's start-up, not a fair "small"
    _, small = time_call(lambda: x @ x, device)
    _, big = time_call(lambda: [x @ x for _ in range(20)], device)
    assert 0 < small < big
    assert torch.cuda.current_device() == 0


def test_a_sweep_on_the_gpu_records_gpu_costs(tmp_path) -> None:
    run_sweep(parse_spec(_spec()), tmp_path / "run", progress=False)
    recs = _done(tmp_path / "run")
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    for r in recs:
        assert r["device"] == "cuda" and r["provenance"]["device_name"] == torch.cuda.get_device_name(0)
        assert r["cost"]["nfe_measured"] == r["cost"]["nfe"]
        assert r["cost"]["peak_mem_bytes"] > 0 and "CUDA" in r["cost"]["peak_mem_kind"]
        assert r["cost"]["latency_s"] > 0 and r["timing"]["mode"] == "interleaved"
    lat = {(r["generator"], r["S"], r["K"]): r["cost"]["latency_s"] for r in recs}
    assert lat[("diffusion", 1, 10)] > lat[("diffusion", 1, 2)]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_runs_and_stays_close_to_float32(tmp_path, dtype) -> None:
    run_sweep(parse_spec(_spec()), tmp_path / "fp32", progress=False)
    run_sweep(parse_spec(_spec(dtype=dtype)), tmp_path / dtype, progress=False)
    ref = {(r["generator"], r["S"], r["K"]): r for r in _done(tmp_path / "fp32")}
    for r in _done(tmp_path / dtype):
        assert r["status"] == "ok" and r["dtype"] == dtype, r.get("error")
        fid, fid32 = r["metrics"]["fid"], ref[(r["generator"], r["S"], r["K"])]["metrics"]["fid"]
        assert fid == pytest.approx(fid32, rel=0.5, abs=5.0)  # lower precision, same model


def test_compile_on_the_gpu_matches_eager(tmp_path) -> None:
    run_sweep(parse_spec(_spec()), tmp_path / "eager", progress=False)
    run_sweep(parse_spec(_spec(compile=True)), tmp_path / "compiled", progress=False)
    ref = {(r["generator"], r["S"], r["K"]): r for r in _done(tmp_path / "eager")}
    for r in _done(tmp_path / "compiled"):
        e = ref[(r["generator"], r["S"], r["K"])]
        assert r["status"] == "ok" and r["compile"] is True, r.get("error")
        assert r["cost"]["nfe_measured"] == e["cost"]["nfe_measured"]
        assert r["metrics"]["fid"] == pytest.approx(e["metrics"]["fid"], rel=0.05, abs=0.5)


def test_transformers_adapter_on_the_gpu_draws_gpts_samples(tmp_path) -> None:
    """The exported GPT through transformers' generate() on cuda: the same tokens as the native GPT on
    cuda from the same seed (both draw by inverse CDF from the same uniforms; GPU kernels of the two
    implementations may round differently, so a rare token at a CDF boundary may flip: ≥ 99% identical)."""
    pytest.importorskip("transformers")
    from scalebench.adapters.hf_export import export_gpt
    from scalebench.adapters.transformers import TransformersGenerator
    from scalebench.api import Budget
    from scalebench.methods.gpt import GPTGenerator

    export_gpt(tmp_path / "gpt-hf")
    native, hf = GPTGenerator("cuda"), TransformersGenerator("cuda", path=str(tmp_path / "gpt-hf"))
    for S in (16, 64):
        xs = [g.sample(256, Budget(S=S), torch.Generator("cuda").manual_seed(3)) for g in (native, hf)]
        same = (xs[0] == xs[1]).flatten(1).all(1).float().mean().item()
        assert same >= 0.99, f"S={S}: only {same:.3f} of the samples are identical"


def test_diffusers_adapter_sweeps_on_the_gpu(tmp_path) -> None:
    """A tiny random UNet2DModel through the diffusers adapter, two schedulers, on cuda: every point ok,
    counted UNet calls equal the declared NFE."""
    pytest.importorskip("diffusers")
    from scalebench.adapters.diffusers_native import tiny_unet

    tiny_unet(channels=1, size=8).save_pretrained(tmp_path / "unet")
    spec = _spec(generators=[{"name": "diffusers", "args": {"path": str(tmp_path / "unet")}, "dataset": "digits",
                              "samplers": ["ddim", "dpmpp2m"], "K": [2, 10]}])
    run_sweep(parse_spec(spec), tmp_path / "run", progress=False)
    recs = _done(tmp_path / "run")
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    for r in recs:
        assert r["device"] == "cuda" and r["cost"]["nfe_measured"] == r["cost"]["nfe"], r["cost"]
        assert r["metrics"]["fid"] > 0
