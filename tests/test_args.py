"""Generator and dataset arguments in a spec: validation, labels, identity, records (issue 15, item 1)."""

from __future__ import annotations

import json
import tomllib

import pytest
import torch
from typer.testing import CliRunner

from scalebench.api import Axis, Budget, MethodCard
from scalebench.cli import app
from scalebench.generators import GENERATORS
from scalebench.params import ArgsError, Param, validate_args
from scalebench.results import load_results
from scalebench.sweep.plan import expand
from scalebench.sweep.spec import SpecError, parse_spec
from tests.conftest import toy_spec

runner = CliRunner(env={"COLUMNS": "200"})


class WeightsFromFile:
    """A generator "loaded from" a local file: its brightness is the file's first byte / 255."""

    card = MethodCard(name="from-file", family="test", category="refinement", S=Axis.fixed(1),
                      K=Axis(meaning="steps", default=2, low=1, high=10), paper="none")
    params = (Param("path", "path", help="a weights file"), Param("scale", "float", 1.0),
              Param("mode", "str", "plain", choices=("plain", "noisy")))

    def __init__(self, device: str = "cpu", path: str = "", scale: float = 1.0, mode: str = "plain") -> None:
        with open(path, "rb") as f:
            self.level = f.read(1)[0] / 255.0 * scale
        self.mode, self.device = mode, device
        self.net = torch.nn.Identity()

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"net": self.net}

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        self.card.check_sampler(sampler)
        self.card.check_budget(budget)
        x = torch.rand(n, 1, 8, 8, generator=rng) * 0.1 + self.level
        for _ in range(budget.K):
            x = self.net(x)
        return x.clamp(0, 1)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        return budget.K


if "from-file" not in GENERATORS:
    GENERATORS.register("from-file", WeightsFromFile)


@pytest.fixture
def weights(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(bytes([40]))
    b.write_bytes(bytes([200]))
    return a, b


def _spec(*entries, **top):
    return parse_spec(toy_spec(generators=list(entries), metrics=["fid"], samples=20, batch_size=20, **top))


def test_validate_args_names_the_key_and_fills_defaults(tmp_path, weights) -> None:
    params = WeightsFromFile.params
    got = validate_args("x", params, {"path": str(weights[0])})
    assert got == {"path": str(weights[0].resolve()), "scale": 1.0, "mode": "plain"}
    cases = [({}, "missing required argument args.path"),
             ({"path": str(weights[0]), "scael": 2.0}, "did you mean 'scale'"),
             ({"path": str(weights[0]), "scale": "big"}, "args.scale = 'big' must be a float"),
             ({"path": str(weights[0]), "mode": "noisey"}, "did you mean 'noisy'"),
             ({"path": str(tmp_path / "nope")}, "does not exist")]
    for args, needle in cases:
        with pytest.raises(ArgsError, match=needle):
            validate_args("x", params, args)
    with pytest.raises(ArgsError, match="takes no args"):
        validate_args("x", (), {"a": 1})


def test_two_models_of_one_generator_get_distinct_labels_and_identities(weights) -> None:
    a, b = weights
    spec = _spec({"name": "from-file", "args": {"path": str(a)}, "K": [1]},
                 {"name": "from-file", "args": {"path": str(b)}, "K": [1]},
                 {"name": "from-file", "args": {"path": str(b), "scale": 0.5}, "K": [1], "label": "half-b"})
    pts = expand(spec)
    assert [p.name for p in pts] == ["from-file@a.bin", "from-file@b.bin", "half-b"]
    assert len({p.fingerprint for p in pts}) == 3 and len({p.point_id for p in pts}) == 3
    assert json.loads(pts[2].args) == {"path": str(b.resolve()), "scale": 0.5, "mode": "plain"}
    # the file's content is in the identity: the same path with new weights is a new point
    before = expand(_spec({"name": "from-file", "args": {"path": str(a)}}))[0]
    a.write_bytes(bytes([41]))
    after = expand(_spec({"name": "from-file", "args": {"path": str(a)}}))[0]
    assert before.point_id != after.point_id
    assert dict(after.identity)["content:path"] != dict(before.identity)["content:path"]
    # a single entry keeps the plain name; entries without args keep the ids they had
    assert before.name == "from-file" and before.entry_label == ""
    plain = expand(_spec({"name": "toy", "K": [1]}))[0]
    assert "args" not in plain.to_dict() or plain.args == ""


@pytest.mark.parametrize("entry, needle", [
    ({"name": "from-file"}, "missing required argument args.path"),
    ({"name": "from-file", "args": {"path": "/no/such/model"}}, "'/no/such/model' does not exist"),
    ({"name": "toy", "args": {"x": 1}}, "takes no args"),
    ({"name": "from-file", "args": "path"}, "must be a table"),
    ({"name": "from-file", "args": {"path": [1]}}, "must be a string, number or boolean"),
    ({"name": "toy", "label": "../x"}, "label = '../x'"),
    ({"name": "toy", "dataset": "cifar99"}, "unknown dataset 'cifar99'"),
    ({"name": "toy", "dataset_args": {"path": "x"}}, "dataset_args needs dataset"),
])
def test_bad_args_fail_at_planning_naming_the_key(entry, needle) -> None:
    with pytest.raises((SpecError, ArgsError), match=needle):
        expand(_spec(entry))


def test_the_same_label_for_two_models_is_refused(weights) -> None:
    a, b = weights
    spec = _spec({"name": "from-file", "args": {"path": str(a)}, "label": "m"},
                 {"name": "from-file", "args": {"path": str(b)}, "label": "m"})
    with pytest.raises(SpecError, match="both named 'm'"):
        expand(spec)


def test_cli_sweeps_two_models_and_records_their_args(tmp_path, weights) -> None:
    a, b = weights
    spec = tmp_path / "two.toml"
    spec.write_text(f'''name = "two"
samples = 40
batch_size = 40
metrics = ["fid"]
[timing]
warmup = 0
min_repeats = 1
min_duration_s = 0
[[generators]]
name = "from-file"
args = {{ path = "{a}" }}
K = [1, 2]
[[generators]]
name = "from-file"
label = "bright"
args = {{ path = "{b}", mode = "noisy" }}
K = [1]
''')
    assert tomllib.loads(spec.read_text())["generators"][1]["label"] == "bright"
    res = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0, res.output
    df = load_results(tmp_path / "run")
    fid = df[df["metric"] == "fid"].set_index(["generator", "K"])["value"]
    assert set(fid.index) == {("from-file@a.bin", 1), ("from-file@a.bin", 2), ("bright", 1)}
    assert fid[("bright", 1)] != fid[("from-file@a.bin", 1)]  # two models, two numbers
    assert set(df["generator_name"]) == {"from-file"}
    assert json.loads(df[df["generator"] == "bright"]["args"].iloc[0])["mode"] == "noisy"
    res = runner.invoke(app, ["table", str(tmp_path / "run"), "--metric", "fid"])
    assert res.exit_code == 0 and "bright" in res.output, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "rep" / "index.html").read_text()
    assert 'id="model-args"' in page and "&quot;mode&quot;: &quot;noisy&quot;" in page
    # a bad arg: exit 2, one line naming it, and the recorded points are kept
    bad = tmp_path / "bad.toml"
    bad.write_text(spec.read_text().replace('mode = "noisy"', 'mode = "loud"'))
    res = runner.invoke(app, ["run", str(bad), "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 2 and "args.mode = 'loud'" in res.output and len(res.output.strip().splitlines()) == 1
    assert len(load_results(tmp_path / "run")["point_id"].unique()) == 3


def test_check_and_list_take_args(weights) -> None:
    res = runner.invoke(app, ["check", "from-file", "--arg", f"path={weights[0]}", "--arg", "scale=0.5"])
    assert res.exit_code == 0, res.output
    assert "FAIL" not in res.output and "one point through the measuring path" in res.output
    res = runner.invoke(app, ["check", "from-file"])
    assert res.exit_code == 2 and "missing required argument args.path" in res.output
    res = runner.invoke(app, ["check", "from-file", "--arg", f"path={weights[0]}", "--arg", "scale=big"])
    assert res.exit_code == 2 and "'big' is not a float" in res.output
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0 and "from-file" in res.output and "required" in res.output, res.output
