"""The transformers adapter and `scalebench export-hf` (issue 15, item 3): the exported GPT is the native one."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("transformers")

from scalebench.adapters import AdapterError  # noqa: E402
from scalebench.adapters.hf_export import TOKEN_VIEW_FILE, export_gpt  # noqa: E402
from scalebench.adapters.transformers import TransformersGenerator  # noqa: E402
from scalebench.api import Budget  # noqa: E402
from scalebench.cli import app  # noqa: E402
from scalebench.contract import run_checks  # noqa: E402
from scalebench.data.digits import Digits, to_tokens  # noqa: E402
from scalebench.methods import gpt  # noqa: E402
from scalebench.metrics.cost import CallCounter  # noqa: E402
from scalebench.results import load_results  # noqa: E402

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_gpt(tmp_path_factory.mktemp("hf") / "gpt-hf")


@pytest.fixture(scope="module")
def pair(exported):
    return gpt.GPTGenerator("cpu"), TransformersGenerator("cpu", path=str(exported))


def test_export_is_a_plain_gpt2_whose_log_probs_equal_the_native_ones(exported, pair) -> None:
    from transformers import GPT2LMHeadModel

    cfg = json.loads((exported / "config.json").read_text())
    assert cfg["architectures"] == ["GPT2LMHeadModel"] and cfg["model_type"] == "gpt2"
    assert (exported / "model.safetensors").is_file() and not cfg["tie_word_embeddings"]
    hf = GPT2LMHeadModel.from_pretrained(exported, local_files_only=True).eval()  # no scalebench code involved
    native = pair[0].model
    tok = to_tokens(Digits().canonical("test"))  # held-out digits
    with torch.no_grad():
        want = torch.log_softmax(gpt.teacher_forced_logits(native, tok, 8).double(), -1)
        ids = torch.cat([torch.full((len(tok), 1), cfg["bos_token_id"]), tok[:, :-1]], 1)  # positions 0..63
        got = torch.log_softmax(hf(ids).logits.double(), -1)  # over all 21 ids, start tokens included
    pick = tok[..., None]
    assert (want.gather(-1, pick) - got.gather(-1, pick)).abs().max() < 1e-5
    assert got[..., 17:].exp().max() < 1e-30  # the start tokens are never predicted
    # coarser resolutions: their prompts start where scalebench.json says
    view = json.loads((exported / TOKEN_VIEW_FILE).read_text())
    tok4 = to_tokens(Digits().pyramid("test", (4,))[4])
    p = view["prompts"]["16"]
    with torch.no_grad():
        want = torch.log_softmax(gpt.teacher_forced_logits(native, tok4, 4), -1).gather(-1, tok4[..., None])
        ids = torch.cat([torch.tensor(p["input_ids"]).expand(len(tok4), 1), tok4[:, :-1]], 1)
        got = torch.log_softmax(hf(ids, position_ids=torch.arange(16) + p["position"]).logits, -1)
    assert (want - got.gather(-1, tok4[..., None])).abs().max() < 1e-5
    # the test NLL (bits/dim) through the adapter equals gpt's
    x = Digits().canonical("test")
    a, b = pair[0].nll(x, Budget(S=64)), pair[1].nll(x, Budget(S=64))
    assert (a - b).abs().max() < 1e-5 and abs(a.mean() - b.mean()) < 1e-6


@pytest.mark.parametrize("s", [1, 4, 16, 64])
def test_generate_gives_gpts_samples_under_the_same_seed_and_counts_s_calls(pair, s) -> None:
    g, h = pair
    want = g.sample(24, Budget(S=s), torch.Generator().manual_seed(11))
    state = torch.get_rng_state()
    with CallCounter(h.networks()) as c:
        got = h.sample(24, Budget(S=s), torch.Generator().manual_seed(11))
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(want, got)
    assert c.count == h.nfe(Budget(S=s)) == s


def test_adapter_passes_the_contract_suite(exported) -> None:
    bad = [r for r in run_checks("transformers", "cpu", args={"path": str(exported.resolve()), "start_token": -1,
                                                            "first_level_token": -1}) if not r.ok]
    assert not bad, bad


def test_bad_paths_and_views_are_one_line_errors(tmp_path, exported) -> None:
    with pytest.raises(AdapterError, match="no config.json"):
        TransformersGenerator(path=str(tmp_path))
    h = TransformersGenerator(path=str(exported), start_token=20)  # a plain model: only S = 64
    with pytest.raises(ValueError, match="offers S = \\[64\\], not S = 16"):
        h.sample(2, Budget(S=16), torch.Generator().manual_seed(0))
    with pytest.raises(AdapterError, match="exceed the model's vocab_size 21"):
        TransformersGenerator(path=str(exported), first_level_token=10)


def test_old_generate_that_drops_position_ids_is_refused(monkeypatch, exported) -> None:
    """Before huggingface/transformers#43734 generate() did not advance given position ids."""
    from transformers.generation.utils import GenerationMixin

    update = GenerationMixin._update_model_kwargs_for_generation

    def stale(self, outputs, model_kwargs, *a, **kw):
        pos = model_kwargs.get("position_ids")
        out = update(self, outputs, model_kwargs, *a, **kw)
        if pos is not None:
            out["position_ids"] = pos
        return out

    monkeypatch.setattr(GenerationMixin, "_update_model_kwargs_for_generation", stale)
    with pytest.raises(AdapterError, match="does not advance custom position_ids"):
        TransformersGenerator(path=str(exported))


def test_cli_exports_and_sweeps_gpt_native_and_through_transformers_side_by_side(tmp_path) -> None:
    out = tmp_path / "gpt-hf"
    res = runner.invoke(app, ["export-hf", "gpt", str(out)])
    assert res.exit_code == 0 and (out / "config.json").is_file(), res.output
    res = runner.invoke(app, ["export-hf", "diffusion", str(tmp_path / "x")])
    assert res.exit_code == 2 and "only ['gpt']" in res.output
    spec = tmp_path / "hf.toml"
    spec.write_text(f'''name = "hf"
samples = 40
batch_size = 40
metrics = ["fid", "test_nll"]
[timing]
warmup = 0
min_repeats = 1
min_duration_s = 0
[[generators]]
name = "gpt"
S = [16, 64]
[[generators]]
name = "transformers"
args = {{ path = "{out}" }}
S = [16, 64]
''')
    res = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0, res.output
    df = load_results(tmp_path / "run")
    v = df[df["metric"].isin(["fid", "test_nll"])].set_index(["metric", "generator", "S"])["value"]
    for metric, s in [("fid", 16), ("fid", 64), ("test_nll", 64)]:  # same samples, same numbers
        assert v[(metric, "gpt", s)] == pytest.approx(v[(metric, "transformers", s)], abs=1e-5)
    nfe = df[df["metric"] == "fid"].set_index(["generator", "S"])["nfe_measured"]
    assert nfe[("transformers", 64)] == nfe[("gpt", 64)] == 64
    res = runner.invoke(app, ["table", str(tmp_path / "run"), "--metric", "fid"])
    assert res.exit_code == 0 and "transformers" in res.output and "gpt" in res.output, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    html = "".join(p.read_text() for p in (tmp_path / "rep").rglob("*.html"))
    assert "transformers" in html and "gpt" in html
    # a path that does not exist: exit 2, one line naming it
    spec.write_text(spec.read_text().replace(str(out), str(tmp_path / "nope")))
    res = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run2"), "--no-progress"])
    assert res.exit_code == 2 and str(tmp_path / "nope") in res.output
