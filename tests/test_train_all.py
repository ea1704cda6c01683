"""`scalebench train --all`: the zoo's training order is derived from the index's parents.

Nothing is trained here (the whole zoo takes an hour): the order is a pure function of the
index and the trainer names, and `--dry-run` prints it.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from scalebench import zoo
from scalebench.cli import app
from scalebench.errors import UsageError
from scalebench.generators import TRAINERS
from scalebench.methods import FAMILIES, METRIC_NETS
from scalebench.zoo.order import TrainJob, training_order

runner = CliRunner(env={"COLUMNS": "200"})


def _entry(*parents: str, replicate_of: str | None = None) -> dict:
    return {"parents": list(parents), **({"replicate_of": replicate_of} if replicate_of else {})}


def test_parents_and_bases_come_first_and_ties_keep_the_trainer_order() -> None:
    index = {"student": _entry("teacher"), "teacher": _entry(), "teacher-r2": _entry(replicate_of="teacher"),
             "teacher-r1": _entry(replicate_of="teacher"), "alone": _entry()}
    order = training_order(index, ["student", "alone", "teacher", "fresh"])
    assert [job.command() for job in order] == [
        "scalebench train alone", "scalebench train teacher", "scalebench train student",
        "scalebench train teacher --replicate 1", "scalebench train teacher --replicate 2",
        "scalebench train fresh"]  # fresh: a trainer with no checkpoint yet is trained too
    assert [job.checkpoint for job in order][3:5] == ["teacher-r1", "teacher-r2"]


def test_a_chain_of_parents_is_walked_whatever_the_name_order() -> None:
    index = {"a": _entry("b"), "b": _entry("c"), "c": _entry()}
    assert training_order(index, ["a", "b", "c"]) == [TrainJob("c"), TrainJob("b"), TrainJob("a")]


@pytest.mark.parametrize("index, needle", [
    ({"a": _entry("b"), "b": _entry("a")}, "['a', 'b'] are their own ancestors"),
    ({"a": _entry("ghost")}, "names parents ['ghost'] that no trainer makes"),
    ({"orphan": _entry()}, "zoo checkpoint 'orphan' has no trainer"),
    ({"a-r1": _entry(replicate_of="b")}, "says replicate_of 'b' but is not named b-rN"),
])
def test_an_index_the_order_cannot_follow_names_the_checkpoint(index: dict, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        training_order(index, ["a", "b"])
    assert needle in str(info.value)


def test_the_shipped_zoo_order_covers_every_checkpoint_each_after_its_parents() -> None:
    """What `make train` runs: every trainer and every index entry once, parents and bases first."""
    index = zoo.read_index()
    order = [job.checkpoint for job in training_order(index, TRAINERS.names())]
    assert len(order) == len(set(order))
    assert set(order) == set(index) | set(TRAINERS.names())
    for checkpoint, entry in index.items():
        for parent in [*entry.get("parents", []), *filter(None, [entry.get("replicate_of")])]:
            assert order.index(parent) < order.index(checkpoint), f"{checkpoint} is trained before {parent}"
    with_weights = {f.id for f in FAMILIES if not f.samples_weights_of} | set(METRIC_NETS)
    assert with_weights <= set(order)  # every family with a checkpoint of its own, and the judges


def test_dry_run_prints_the_order_and_trains_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("--dry-run trained something")

    monkeypatch.setattr("scalebench.generators.TRAINERS.get", refuse)
    res = runner.invoke(app, ["train", "--all", "--dry-run"])
    assert res.exit_code == 0, res.output
    want = [job.command() for job in training_order(zoo.read_index(), TRAINERS.names())]
    assert res.output.splitlines() == want
    monkeypatch.undo()  # one NAME: its trainer is looked up (a bad name fails), not called
    res = runner.invoke(app, ["train", "diffusion", "--replicate", "2", "--dry-run"])
    assert res.exit_code == 0 and res.output.splitlines() == ["scalebench train diffusion --replicate 2"]


@pytest.mark.parametrize("args, needle", [
    (["train"], "name what to train"),
    (["train", "--all", "gpt"], "--all retrains the whole zoo in place"),
    (["train", "--all", "--out-dir", "x"], "drop NAME, --replicate and --out-dir"),
    (["train", "gpt", "--replicate", "-1", "--dry-run"], "--replicate -1: replicate numbers start at 1"),
    (["train", "jacobi", "--dry-run"], "jacobi has no checkpoint of its own"),
])
def test_train_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
