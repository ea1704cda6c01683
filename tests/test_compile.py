"""`compile = true`: torch.compile of the networks' forward, a recorded setting that enters the point id."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from scalebench.api import Budget
from scalebench.generators import load_generator
from scalebench.metrics.cost import CallCounter, networks_of
from scalebench.sweep.measure import compile_networks
from scalebench.sweep.plan import expand
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import SpecError, parse_spec
from tests.conftest import toy_spec


def test_compile_is_a_checked_boolean() -> None:
    with pytest.raises(SpecError, match=r"compile = 'yes' must be true or false"):
        parse_spec(toy_spec(compile="yes"))
    assert parse_spec(toy_spec(compile=True)).compile is True
    assert parse_spec(toy_spec(), compile=True).compile is True  # the CLI's --compile
    assert parse_spec(toy_spec(compile=True), compile=False).compile is False  # and --eager


def test_eager_points_keep_their_ids_and_compiled_ones_differ() -> None:
    plain, eager, compiled = (parse_spec(toy_spec(**kw)) for kw in ({}, {"compile": False}, {"compile": True}))
    assert plain.hash() == eager.hash() != compiled.hash()
    ids = [[p.point_id for p in expand(s)] for s in (plain, eager, compiled)]
    assert ids[0] == ids[1]
    assert not set(ids[0]) & set(ids[2])


def test_compiled_forward_gives_the_same_samples_and_keeps_the_nfe_hooks() -> None:
    """The eager backend runs dynamo's capture without codegen: same numbers, hooks still counted."""
    eager, compiled = load_generator("diffusion"), load_generator("diffusion")
    compile_networks(compiled, backend="eager")
    assert all(hasattr(m.forward, "_torchdynamo_orig_callable") for m in networks_of(compiled).values())
    counter = CallCounter(networks_of(compiled))
    with torch.inference_mode():
        a = eager.sample(8, Budget(K=3), torch.Generator().manual_seed(0), "ddim")
        with counter:
            b = compiled.sample(8, Budget(K=3), torch.Generator().manual_seed(0), "ddim")
    assert torch.equal(a, b)
    assert counter.count == eager.nfe(Budget(K=3), "ddim") == 3


def test_a_compiled_sweep_records_the_setting(tmp_path) -> None:
    run_sweep(parse_spec(toy_spec(compile=True)), tmp_path / "run", progress=False)
    recs = [json.loads(line) for line in (tmp_path / "run" / "points.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["status"] == "ok" and r["compile"] is True for r in recs)
    assert all(r["cost"]["nfe_measured"] == r["K"] for r in recs)


def test_compile_needs_declared_networks() -> None:
    class NoNets:
        pass

    with pytest.raises(ValueError, match=r"compile = true needs networks\(\) on NoNets; run it eager"):
        compile_networks(NoNets())


@pytest.mark.slow
def test_cli_compile_runs_inductor_and_matches_eager(tmp_path) -> None:
    """`scalebench run --compile` on CPU (inductor's C++ backend): same FID as eager, NFE counted."""
    spec = tmp_path / "s.toml"
    spec.write_text('name = "c"\nseeds = [0]\nsamples = 64\nbatch_size = 32\nthreads = 2\nmetrics = ["fid"]\n'
                    '[timing]\nrounds = 2\n[[generators]]\nname = "diffusion"\nsamplers = ["ddim"]\nK = [2]\n')
    recs = {}
    for mode in ("--eager", "--compile"):
        out = tmp_path / mode.strip("-")
        subprocess.run([sys.executable, "-m", "scalebench.cli", "run", str(spec), "--out", str(out), mode,
                        "--no-progress"], check=True, capture_output=True)
        lines = [json.loads(x) for x in (out / "points.jsonl").read_text().splitlines()]
        recs[mode] = [r for r in lines if r["timing"].get("mode") == "interleaved"][0]
    e, c = recs["--eager"], recs["--compile"]
    assert (e["compile"], c["compile"]) == (False, True) and e["point_id"] != c["point_id"]
    assert c["status"] == "ok" and c["cost"]["nfe_measured"] == c["cost"]["nfe"] == 2
    assert c["metrics"]["fid"] == pytest.approx(e["metrics"]["fid"], abs=1e-3)
    assert c["warmup_s"][0] > 0
