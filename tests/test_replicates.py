"""Replicate checkpoints: trained (seed + N, lineage in the index), named in a spec, planned as
points of their own, loaded in place of the shipped checkpoint, and a column of the tidy table.

Everything runs on a temporary zoo (copies of the shipped files it needs plus replicates trained
for two steps), so the tests never write into the shipped one and do not need its replicates.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from scalebench import zoo
from scalebench.api import Budget
from scalebench.cli import app
from scalebench.errors import UsageError
from scalebench.generators import default_checkpoint, load_generator
from scalebench.methods import diffusion
from scalebench.record import Record
from scalebench.results import load_results, record_rows
from scalebench.sweep.plan import expand
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import SpecError, parse_spec
from scalebench.training import Recipe, train_replicate

SHIPPED = ("diffusion", "gpt", "features", "refnet")
RECIPE = Recipe(steps=2, batch_size=16, threads=1, seed=5)
"""A stand-in trainer's recipe (`train_replicate` reads its trainer module's RECIPE)."""


def _fake_train(recipe: Recipe | None = None, out_dir: Path | None = None) -> Path:
    """Saves a checkpoint that is not its own name: a replicate must never write it."""
    meta = {"recipe": (recipe or RECIPE).to_dict(), "train_seconds": 0.0, "final_loss": 0.0}
    return zoo.save_checkpoint("someone-else", {"w": torch.ones(2)}, meta, directory=out_dir)


@pytest.fixture
def tmp_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A zoo with the shipped diffusion, gpt and metric nets, and diffusion-r1, -r2 trained 2 steps."""
    d = tmp_path / "zoo"
    d.mkdir()
    index = zoo.read_index()
    for name in SHIPPED:
        shutil.copy2(zoo.checkpoint_path(name), d)
    (d / zoo.INDEX).write_text(json.dumps({k: index[k] for k in SHIPPED}), encoding="utf-8")
    monkeypatch.setattr(zoo, "ZOO_DIR", d)
    monkeypatch.setattr(diffusion, "RECIPE", dataclasses.replace(diffusion.RECIPE, steps=2, batch_size=16))
    for n in (1, 2):
        train_replicate("diffusion", diffusion.train, n)
    return d


def _spec(**gen: object) -> dict:
    return {"name": "reps", "samples": 8, "batch_size": 8, "metrics": [], "seeds": [0, 1],
            "timing": {"warmup": 0, "min_repeats": 1, "min_duration_s": 0.0, "mode": "contiguous"},
            "generators": [{"name": "diffusion", "samplers": ["ddim"], "K": [1, 2], **gen}]}


def test_train_replicate_seed_lineage_and_no_other_file(tmp_zoo: Path) -> None:
    index = zoo.read_index(tmp_zoo)
    shipped = index["diffusion"]["sha256"]
    for n in (1, 2):
        entry = index[f"diffusion-r{n}"]
        assert entry["replicate_of"] == "diffusion" and entry["seed"] == diffusion.RECIPE.seed + n
        assert entry["parents"] == index["diffusion"]["parents"]
        _, meta = zoo.load_checkpoint(f"diffusion-r{n}", directory=tmp_zoo)
        assert meta["recipe"]["seed"] == diffusion.RECIPE.seed + n and meta["replicate_of"] == "diffusion"
    assert index["diffusion-r1"]["sha256"] != index["diffusion-r2"]["sha256"]
    assert zoo.checkpoint_hash("diffusion", tmp_zoo) == shipped  # the shipped file is untouched
    assert "replicate_of" not in index["diffusion"]
    # a replicate's lineage is its own: retraining the shipped checkpoint does not re-run its points
    assert set(zoo.lineage("diffusion-r1", tmp_zoo)) == {"diffusion-r1"}
    with pytest.raises(RuntimeError, match="'someone-else' is not the replicate being trained"):
        train_replicate("fake", _fake_train, 1, tmp_zoo)
    assert not zoo.checkpoint_path("someone-else", tmp_zoo).exists()
    with pytest.raises(UsageError, match="--replicate 0: replicate numbers start at 1"):
        train_replicate("diffusion", diffusion.train, 0)
    with pytest.raises(UsageError, match=r"dumps has no training recipe of its own \(RECIPE in json\)"):
        train_replicate("dumps", json.dumps, 1)  # any trainer whose module keeps no Recipe
    with pytest.raises(FileNotFoundError, match="`scalebench train diffusion --replicate 7`"):
        zoo.load_checkpoint("diffusion-r7")


def test_spec_validates_replicates_in_one_line(tmp_zoo: Path) -> None:
    spec = parse_spec(_spec(replicates=["diffusion", "diffusion-r1"]))
    assert spec.generators[0].replicates == ("diffusion", "diffusion-r1")
    assert "replicates" not in parse_spec(_spec()).to_dict()["generators"][0]  # old specs keep their hash
    cases = {
        "diffusion-r9": r"replicates has 'diffusion-r9', which is not a zoo checkpoint; train it with "
                        r"`scalebench train diffusion --replicate 9` \(zoo has \['diffusion', 'diffusion-r1', "
                        r"'diffusion-r2'\]\)",
        "difusion": r"replicates has 'difusion', which is not a zoo checkpoint; name a zoo checkpoint",
    }
    for bad, msg in cases.items():
        with pytest.raises(SpecError, match=msg):
            parse_spec(_spec(replicates=["diffusion", bad]))
    with pytest.raises(SpecError, match="must be a non-empty list of zoo checkpoint names"):
        parse_spec(_spec(replicates="diffusion-r1"))
    with pytest.raises(SpecError, match="must be a non-empty list"):
        parse_spec(_spec(replicates=[]))
    with pytest.raises(SpecError, match="lists 'diffusion-r1' twice"):
        parse_spec(_spec(replicates=["diffusion-r1", "diffusion-r1"]))
    with pytest.raises(SpecError, match="mixes replicates of 'diffusion' and 'gpt'"):
        parse_spec(_spec(replicates=["diffusion-r1", "gpt"]))
    gpt_entry = {**_spec(), "generators": [{"name": "gpt", "replicates": ["diffusion", "diffusion-r1"]}]}
    with pytest.raises(SpecError, match=r"are checkpoints of 'diffusion', but gpt loads \['gpt'\]; list "
                                        r"replicates of 'gpt' \(e.g. 'gpt-r1'\)"):
        expand(parse_spec(gpt_entry))


def test_cli_rejects_an_unknown_replicate_with_exit_2(tmp_path: Path) -> None:
    from tests.specfiles import toml_of

    path = tmp_path / "spec.toml"
    path.write_text(toml_of(_spec(replicates=["diffusion", "diffusion-r99"])), encoding="utf-8")
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "'diffusion-r99', which is not a zoo checkpoint" in res.output
    assert "scalebench train diffusion --replicate 99" in res.output
    assert not (tmp_path / "out").exists()


def test_plan_has_points_per_replicate_with_distinct_ids(tmp_zoo: Path) -> None:
    plain = expand(parse_spec(_spec()))
    reps = expand(parse_spec(_spec(replicates=["diffusion", "diffusion-r1", "diffusion-r2"])))
    assert len(plain) == 4 and len(reps) == 12
    assert len({p.point_id for p in reps}) == 12
    by_rep = {r: [p for p in reps if p.replicate == r] for r in ("", "diffusion-r1", "diffusion-r2")}
    assert all(len(v) == 4 for v in by_rep.values())
    # the shipped checkpoint's points keep the ids and fingerprints they had without replicates
    assert [p.point_id for p in by_rep[""]] == [p.point_id for p in plain]
    assert {p.fingerprint for p in by_rep[""]} == {p.fingerprint for p in plain}
    ident = dict(by_rep["diffusion-r1"][0].identity)
    assert ident["replicate"] == "diffusion-r1" and "checkpoint:diffusion-r1" in ident
    assert "checkpoint:diffusion" not in ident
    assert len({p.fingerprint for p in reps}) == 3
    assert "replicate=diffusion-r2" in by_rep["diffusion-r2"][0].label()
    # the default checkpoint listed anywhere in the list is still the default
    swapped = expand(parse_spec(_spec(replicates=["diffusion-r1", "diffusion"])))
    assert {p.point_id for p in swapped} == {p.point_id for p in reps if p.replicate in ("", "diffusion-r1")}


def test_generator_loads_the_replicates_weights(tmp_zoo: Path) -> None:
    def draw(gen: object) -> torch.Tensor:
        return gen.sample(4, Budget(S=1, K=2), torch.Generator().manual_seed(0), "ddim")  # type: ignore[attr-defined]

    shipped, r1 = load_generator("diffusion"), load_generator("diffusion", replicate="diffusion-r1")
    want, _ = zoo.load_checkpoint("diffusion-r1")
    assert all(torch.equal(v, want[k]) for k, v in r1.net.state_dict().items())
    assert not torch.equal(draw(shipped), draw(r1))
    assert torch.equal(draw(shipped), draw(load_generator("diffusion")))  # the substitution ends with the load
    with pytest.raises(ValueError, match="toy did not load checkpoint 'diffusion' while being built"):
        load_generator("toy", replicate="diffusion-r1")


def test_table_has_a_replicate_column(tmp_zoo: Path, tmp_path: Path) -> None:
    spec = _spec(replicates=["diffusion", "diffusion-r1"], K=[2])
    spec["seeds"] = [0]
    res = run_sweep(parse_spec(spec), tmp_path / "run", progress=False)
    assert res.failed == 0 and res.planned == 2
    df = load_results(tmp_path / "run")
    assert set(df["replicate"]) == {"diffusion", "diffusion-r1"}
    lat = df[df.metric == "latency_s"].set_index("replicate")
    assert lat.loc["diffusion", "point_id"] != lat.loc["diffusion-r1", "point_id"]
    # records written before replicates existed: the generator's own checkpoint (jacobi samples gpt's)
    old = {"point_id": "x", "status": "ok", "generator": "jacobi", "metrics": {"fid": 1.0}}
    assert {r["replicate"] for r in record_rows(Record.from_json(old), "run")} == {"gpt"}
    labelled = {**old, "generator": "my-diffusion", "generator_name": "diffusion"}
    assert {r["replicate"] for r in record_rows(Record.from_json(labelled), "run")} == {"diffusion"}
    assert default_checkpoint("toy") == "toy"  # no zoo checkpoint: its own name
