"""The diffusers adapter (issue 15, item 2): a tiny random UNet2DModel saved with save_pretrained, swept
through the real CLI with two schedulers; the contract; the side-by-side with the project's DDIM loop."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("diffusers")

from scalebench.adapters.diffusers import SCHEDULERS, DiffusersGenerator  # noqa: E402
from scalebench.adapters.diffusers_native import (  # noqa: E402
    diffusers_ddim,
    native_ddim,
    native_ddim_scheduler,
    tiny_unet,
)
from scalebench.api import Budget  # noqa: E402
from scalebench.cli import app  # noqa: E402
from scalebench.data import get_dataset  # noqa: E402
from scalebench.results import load_results  # noqa: E402

runner = CliRunner(env={"COLUMNS": "200"})

DATASETS = [pytest.param(("digits", {}), id="digits")]
"""(dataset, dataset_args) the adapter is swept on; an image-folder variant adds one row here."""


def _form(dataset: tuple[str, dict]):
    name, args = dataset
    return get_dataset(name, json.dumps(args, sort_keys=True) if args else "").form


def _toml_table(d: dict) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }"


@pytest.fixture(scope="module", params=DATASETS)
def dataset(request) -> tuple[str, dict]:
    return request.param


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, dataset):
    """A random UNet2DModel shaped like the dataset's samples, saved as diffusers saves it."""
    c, h, _ = _form(dataset).shape
    path = tmp_path_factory.mktemp("unet") / "tiny-unet"
    tiny_unet(channels=c, size=h).save_pretrained(path)
    return path


def _spec(tmp_path, model, dataset, extra: str = "") -> str:
    name, args = dataset
    ds = f'dataset = "{name}"\n' + (f"dataset_args = {_toml_table(args)}\n" if args else "")
    spec = tmp_path / "d.toml"
    spec.write_text(f'''name = "diffusers-tiny"
samples = 48
batch_size = 24
metrics = ["fid"]
threads = 2
[timing]
warmup = 0
min_repeats = 1
min_duration_s = 0
mode = "contiguous"
[[generators]]
name = "diffusers"
{ds}args = {{ path = "{model}" }}
samplers = ["ddim", "heun"]
K = [1, 3]
{extra}''')
    return str(spec)


def test_cli_sweeps_two_schedulers_into_table_and_report(tmp_path, model_dir, dataset) -> None:
    res = runner.invoke(app, ["run", _spec(tmp_path, model_dir, dataset), "--out", str(tmp_path / "run"),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in (tmp_path / "run" / "points.jsonl").read_text().splitlines()]
    assert {(r["sampler"], r["K"]) for r in recs} == {("ddim", 1), ("ddim", 3), ("heun", 1), ("heun", 3)}
    for r in recs:  # declared NFE = hook-counted UNet calls, no warnings (heun: 2K − 1)
        assert r["status"] == "ok" and not r["warnings"], r
        want = 2 * r["K"] - 1 if r["sampler"] == "heun" else r["K"]
        assert r["cost"]["nfe_declared"] == r["cost"]["nfe_measured"] == want
        assert r["generator"] == "diffusers" and r["args"]["path"] == str(model_dir)
        assert "content:path" in r["identity"] and r["identity"]["checkpoint:declared"].startswith("diffusers==")
    df = load_results(tmp_path / "run")
    fid = df[df["metric"] == "fid"].set_index(["sampler", "K"])["value"]
    assert fid[("ddim", 1)] != fid[("heun", 3)]  # two schedulers, two numbers
    res = runner.invoke(app, ["table", str(tmp_path / "run"), "--metric", "fid"])
    assert res.exit_code == 0 and "diffusers" in res.output and "heun" in res.output, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "diffusers" in (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")


def test_bad_paths_and_shapes_are_one_line_exit_2(tmp_path, model_dir, dataset) -> None:
    def run(spec: str) -> str:
        res = runner.invoke(app, ["run", spec, "--out", str(tmp_path / "run"), "--no-progress"])
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
        return res.output

    missing = tmp_path / "no-such-model"
    assert str(missing) in run(_spec(tmp_path, missing, dataset))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no diffusers model" in run(_spec(tmp_path, empty, dataset))
    c, h, w = _form(dataset).shape
    other = tmp_path / "other"
    tiny_unet(channels=c + 2, size=h * 2).save_pretrained(other)
    assert f"makes {c + 2}×{2 * h}×{2 * w} images" in run(_spec(tmp_path, other, dataset))
    assert not (tmp_path / "run" / "points.jsonl").exists()


def test_contract_determinism_and_nfe_for_every_scheduler(model_dir, dataset) -> None:
    """`scalebench check`'s rules, on a generator built with args (the CLI checks only arg-less ones)."""
    from scalebench import contract

    gen = DiffusersGenerator(path=str(model_dir))
    card = replace(gen.card, K=replace(gen.card.K, default=3))  # probes K = 1 and 3 (the default is 50)
    ctx = contract.Context(name="diffusers", gen=gen, card=card, dataset=get_dataset(*_ds_key(dataset)))
    for check in (contract.check_form, contract.check_determinism, contract.check_global_rng,
                  contract.check_nfe, contract.check_invalid_input):
        check(ctx)  # raises CheckFailed naming the sampler and budget
    assert card.samplers == tuple(SCHEDULERS)


def _ds_key(dataset: tuple[str, dict]) -> tuple[str, str]:
    name, args = dataset
    return name, json.dumps(args, sort_keys=True) if args else ""


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_declared_nfe_is_k_and_heun_2k_minus_1(model_dir, spacing) -> None:
    gen = DiffusersGenerator(path=str(model_dir), timestep_spacing=spacing)
    for s in SCHEDULERS:
        for K in (1, 2, 7, 50, 999, 1000):
            assert gen.nfe(Budget(K=K), s) == (2 * K - 1 if s == "heun" else K), (s, K)
    with pytest.raises(ValueError, match="K=1001"):
        gen.nfe(Budget(K=1001), "ddim")
    # diffusers' trailing grid is np.arange(T, 0, -T/K): for 62 K in 1..1000 it overshoots to a 62nd
    # timestep −1 (alphas_cumprod[-1] is then the noisiest level); such K are refused, not swept
    for K in (61, 103, 206):
        for s in SCHEDULERS:
            if spacing == "trailing":
                with pytest.raises(ValueError, match=f"K={K} is not valid with timestep_spacing 'trailing'"):
                    gen.sample(1, Budget(K=K), torch.Generator().manual_seed(0), s)
            else:
                assert gen.nfe(Budget(K=K), s) == (2 * K - 1 if s == "heun" else K)


def test_a_pipeline_folder_brings_its_scheduler_config(tmp_path) -> None:
    from diffusers import DDPMPipeline, DDPMScheduler

    pipe = DDPMPipeline(unet=tiny_unet(), scheduler=DDPMScheduler(prediction_type="v_prediction",
                                                                   beta_schedule="squaredcos_cap_v2"))
    pipe.save_pretrained(tmp_path / "pipe")
    gen = DiffusersGenerator(path=str(tmp_path / "pipe"))
    assert {s.config.prediction_type for s in gen.schedulers.values()} == {"v_prediction"}
    assert gen.schedulers["euler"].config.timestep_spacing == "trailing"
    x = gen.sample(4, Budget(K=2), torch.Generator().manual_seed(0), "unipc")
    assert x.shape == (4, 1, 8, 8) and 0 <= float(x.min()) and float(x.max()) <= 1


def test_listing_the_adapter_imports_no_diffusers() -> None:
    code = ("import sys; from scalebench.generators import GENERATORS; import scalebench.cli; "
            "card = GENERATORS.get('diffusers').card; assert card.dataset == '' and 'unipc' in card.samplers; "
            "assert 'diffusers' not in sys.modules and 'torch' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- side by side with the native DDIM loop

@pytest.mark.parametrize("prediction, clip", [("epsilon", False), ("v_prediction", False), ("v_prediction", True)])
def test_native_ddim_equals_diffusers_ddim_on_one_network(prediction, clip) -> None:
    """Same UNet, same noise, same schedule (native ᾱ as trained_betas, trailing, η = 0): same samples
    for every K that divides T = 1000. x̂0 clipping matches only with use_clipped_model_output (the
    native step re-derives ε̂ from the clipped x̂0)."""
    torch.manual_seed(0)
    unet = tiny_unet(seed=1)
    sched = native_ddim_scheduler(prediction, clip=clip)
    noise = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    for K in (1, 10, 50):
        a = native_ddim(unet, noise.clone(), K, prediction, clip)
        b = diffusers_ddim(unet, sched, noise.clone(), K, use_clipped_model_output=clip)
        scale = float(a.abs().max())  # a random ε-net's x̂0 at α_T ≈ 0.007 is large; compare relatively
        torch.testing.assert_close(b, a, rtol=1e-5, atol=2e-6 * max(scale, 1.0), msg=f"K={K}")
    # K ∤ T: diffusers' step goes to t − T//K (333), then evaluates at its next timestep (332)
    a, b = native_ddim(unet, noise.clone(), 3, prediction, clip), diffusers_ddim(unet, sched, noise.clone(), 3, clip)
    assert float((a - b).abs().max()) > 1e-4 * max(float(a.abs().max()), 1.0)  # 50× the tolerance above


def test_native_timesteps_are_diffusers_trailing_timesteps_plus_one() -> None:
    from scalebench.methods.samplers.diffusion import strided_steps

    sched = native_ddim_scheduler()
    for K in (1, 3, 7, 10, 50, 64, 1000):
        sched.set_timesteps(K)
        assert [int(t) + 1 for t in sched.timesteps] == strided_steps(K)[:-1], K


def test_check_cli_needs_args_for_the_adapter(tmp_path) -> None:
    res = runner.invoke(app, ["check", "diffusers", "--dataset", "digits"])
    assert res.exit_code == 2 and "missing required argument args.path" in res.output, res.output
    res = runner.invoke(app, ["check", "diffusers", "--arg", "path"])
    assert res.exit_code == 2 and "must be KEY=VALUE" in res.output, res.output
    res = runner.invoke(app, ["check", "diffusers", "--arg", f"path={tmp_path}", "--dataset", "digits"])
    assert res.exit_code == 1 and "holds no diffusers model" in res.output, res.output


@pytest.mark.slow
def test_check_cli_passes_on_a_saved_model(model_dir, dataset) -> None:
    """The whole contract suite through `scalebench check` (K = 1 and the card's default 50, six schedulers)."""
    name, args = dataset
    if args:
        pytest.skip("--dataset takes no dataset args")
    res = CliRunner(env={"COLUMNS": "300"}).invoke(
        app, ["check", "diffusers", "--arg", f"path={model_dir}", "--arg", "timestep_spacing=trailing",
              "--dataset", name])
    assert res.exit_code == 0 and res.output.count("PASS diffusers") == 8, res.output


@pytest.mark.slow
def test_cli_sweeps_a_tiny_model_on_an_image_folder_with_two_schedulers(tmp_path, monkeypatch) -> None:
    """Issue 15's end-to-end case: a 3×16×16 diffusers UNet on a folder of PNGs, two schedulers, scored with
    Inception FID (a random Inception saved to a file, found through $SCALEBENCH_INCEPTION), through the
    real CLI into `table` and the report."""
    from tests.image_fixtures import random_inception, write_folder

    monkeypatch.setenv("SCALEBENCH_INCEPTION", str(random_inception(tmp_path / "inception.pth")))
    folder = write_folder(tmp_path / "pets", n=40, side=16)
    tiny_unet(channels=3, size=16).save_pretrained(tmp_path / "unet")
    spec = _spec(tmp_path, tmp_path / "unet", ("imagefolder", {"path": str(folder)}))
    res = runner.invoke(app, ["run", spec, "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0, res.output
    df = load_results(tmp_path / "run")
    fid = df[df["metric"] == "fid"].set_index(["sampler", "K"])["value"]
    assert set(fid.index) == {("ddim", 1), ("ddim", 3), ("heun", 1), ("heun", 3)}
    assert (fid > 0).all() and set(df["dataset"]) == {"imagefolder-pets"}
    res = runner.invoke(app, ["table", str(tmp_path / "run"), "--metric", "fid"])
    assert res.exit_code == 0 and "heun" in res.output and "diffusers" in res.output, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "imagefolder-pets" in (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
