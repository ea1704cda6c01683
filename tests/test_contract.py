"""Zoo-ready contracts: the contract suite, measured NFE, per-sampler cards, identity, zoo lineage, fit."""

from __future__ import annotations

import json
import math
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from scalebench.api import Axis, Budget, MethodCard, SamplerCard
from scalebench.cli import app
from scalebench.contract import run_checks
from scalebench.generators import GENERATORS, TRAINERS
from scalebench.methods import FAMILIES
from scalebench.results import iter_records, latest_records, read_manifest
from scalebench.sweep.plan import expand, generator_identity
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import parse_spec
from tests.conftest import toy_spec

BUILTIN = [f.id for f in FAMILIES]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_generator_passes_the_contract_suite(name: str) -> None:
    results = run_checks(name)
    failed = [f"{r.name}: {r.detail}" for r in results if not r.ok]
    assert not failed, failed
    assert len(results) == 8


# ---------------------------------------------------------------- deliberately broken generators

class _Base:
    card = MethodCard(name="broken", family="test", category="refinement", S=Axis.fixed(1),
                      K=Axis(meaning="steps", default=2, low=1, high=8), paper="none")

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.net = torch.nn.Sigmoid()

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"net": self.net}

    def _x(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None) -> torch.Tensor:
        self.card.check_sampler(sampler)
        self.card.check_budget(budget, sampler)
        x = torch.randn(n, 1, 8, 8, generator=rng)
        for _ in range(budget.K):
            x = self.net(x)
        return x

    def sample(self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None) -> torch.Tensor:
        return self._x(n, budget, rng, sampler)

    def nfe(self, budget: Budget, sampler: str | None = None) -> int:
        return budget.K


class WrongShape(_Base):
    def sample(self, n, budget, rng, sampler=None):  # type: ignore[no-untyped-def]
        return self._x(n, budget, rng, sampler).view(n, 64)


class NfeLiar(_Base):
    def nfe(self, budget, sampler=None):  # type: ignore[no-untyped-def]
        return budget.K + 1


class GlobalRng(_Base):
    def sample(self, n, budget, rng, sampler=None):  # type: ignore[no-untyped-def]
        return (self._x(n, budget, rng, sampler) + 0.01 * torch.rand(n, 1, 8, 8)).clamp(0, 1)


class NoNetworks(_Base):
    networks = None  # type: ignore[assignment]


for _name, _cls in [("wrong-shape", WrongShape), ("nfe-liar", NfeLiar), ("global-rng", GlobalRng),
                    ("ok-double", _Base), ("no-networks", NoNetworks)]:
    if _name not in GENERATORS:
        GENERATORS.register(_name, _cls)


@pytest.mark.parametrize("name, failing", [
    ("wrong-shape", "canonical form"),
    ("nfe-liar", "declared NFE = counted NFE"),
    ("global-rng", "global RNG untouched"),
    ("no-networks", "declared NFE = counted NFE"),
])
def test_broken_generators_fail_the_named_check(name: str, failing: str) -> None:
    res = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["check", name])
    assert res.exit_code == 1, res.output
    fails = [line for line in res.output.splitlines() if line.startswith("FAIL")]
    assert any(f"FAIL {name}: {failing}:" in line for line in fails), res.output
    assert "PASS" in res.output  # the other checks still ran and passed


def test_sound_double_passes_and_cli_exit_codes() -> None:
    runner = CliRunner(env={"COLUMNS": "300"})
    res = runner.invoke(app, ["check", "ok-double"])
    assert res.exit_code == 0 and res.output.count("PASS ok-double") == 8, res.output
    res = runner.invoke(app, ["check", "no-such-gen"])
    assert res.exit_code == 2 and "unknown generator" in res.output


# ---------------------------------------------------------------- measured NFE in records

def test_nfe_mismatch_is_recorded_not_hidden(tmp_path) -> None:
    spec = parse_spec(toy_spec(generators=[{"name": "nfe-liar", "K": [1, 3]}, {"name": "ok-double", "K": [3]}]))
    run_sweep(spec, tmp_path / "run", progress=False)
    recs = {(r.generator, r.K): r for r in iter_records(tmp_path / "run")}
    liar = recs[("nfe-liar", 3)]
    assert liar.status == "ok"
    assert (liar.cost.nfe_declared, liar.cost.nfe_measured) == (4, 3)
    assert liar.warnings and "declared 4 but counted [3]" in liar.warnings[0]
    ok = recs[("ok-double", 3)]
    assert ok.cost.nfe == ok.cost.nfe_measured == 3 and ok.warnings == []
    assert all(c == 3 for c in ok.timing.calls) and len(ok.timing.calls) == ok.timing.repeats


def test_threads_and_peak_memory_in_records_and_manifest(tmp_path) -> None:
    spec = parse_spec(toy_spec(threads=1, batch_size=10,
                               generators=[{"name": "ok-double", "K": [2]}, {"name": "ok-double", "K": [2],
                                                                              "batch_size": 20, "samples": 20}]))
    run_sweep(spec, tmp_path / "run", progress=False)
    recs = sorted(latest_records(tmp_path / "run").values(), key=lambda r: r.batch_size)
    assert [r.threads for r in recs] == [1, 1] and read_manifest(tmp_path / "run")["threads"] == 1
    assert read_manifest(tmp_path / "run")["invocations"][-1]["command"]  # the docs cite how a run was made
    small, big = (r.cost.peak_mem_bytes for r in recs)
    assert small > 0 and big > small  # per batch, not the process's lifetime high-water mark
    assert "storage" in recs[0].cost.peak_mem_kind
    assert recs[0].calibration_s > 0
    # threads key the timing, not the quality identity: a resume with other threads reuses the samples
    two = {p.point_id: p.timing_key for p in expand(parse_spec(toy_spec(
        threads=2, batch_size=10, generators=[{"name": "ok-double", "K": [2]}])))}
    one = {p.point_id: p.timing_key for p in expand(spec)}
    assert set(two) <= set(one) and all(one[i] != two[i] for i in two)


# ---------------------------------------------------------------- per-sampler cards

def test_sampler_card_overrides_axes_and_category() -> None:
    card = MethodCard(name="m", family="f", category="sequence", S=Axis("s", 4, values=(1, 4)), K=Axis.fixed(1),
                      samplers=("ancestral", "jacobi"),
                      sampler_cards={"jacobi": SamplerCard(category="refinement", S=Axis.fixed(4),
                                                           K=Axis("iterations", 4, low=1, high=4))})
    j = card.for_sampler("jacobi")
    assert (j.category, j.S.is_fixed, j.K.is_fixed) == ("refinement", True, False)
    assert card.for_sampler(None) is card
    card.check_budget(Budget(S=4, K=3), "jacobi")
    with pytest.raises(ValueError, match=r"m/jacobi: K=5 is not valid; valid K: 1..4"):
        card.check_budget(Budget(S=4, K=5), "jacobi")
    with pytest.raises(ValueError, match="K=3 is not valid"):
        card.check_budget(Budget(S=4, K=3), "ancestral")
    with pytest.raises(ValueError, match="not in samplers"):
        MethodCard(name="m", family="f", category="sequence", S=Axis.fixed(1), K=Axis.fixed(1),
                   sampler_cards={"nope": SamplerCard()})


# ---------------------------------------------------------------- one table, identity, zoo lineage

def test_registries_derive_from_the_family_table() -> None:
    for fam in FAMILIES:
        assert GENERATORS.target(fam.id) == fam.target
        assert (fam.id in TRAINERS) == (not fam.samples_weights_of)  # trainers only for families that train
        assert all(GENERATORS.canonical(a) == fam.id for a in fam.aliases)
    assert "features" in TRAINERS and "refnet" in TRAINERS


def test_training_a_family_without_weights_names_the_ones_to_retrain() -> None:
    from scalebench.errors import UsageError
    from scalebench.generators import trainer

    with pytest.raises(UsageError, match="blockwise has no checkpoint of its own.*scalebench train gpt.*train mtp"):
        trainer("blockwise")
    assert callable(trainer("gpt"))


def test_identity_covers_checkpoint_lineage_and_code(tmp_path, monkeypatch) -> None:
    ident = generator_identity("gpt")
    assert {"checkpoint:gpt", "code", "measuring_code", "metric_nets", "dataset"} <= set(ident)
    assert "external" not in json.dumps(ident)

    # a plugin module: its code hash follows its source
    mod = tmp_path / "my_plugin_gen.py"
    src = textwrap.dedent('''
        from scalebench.api import Axis, MethodCard
        class G:
            card = MethodCard(name="p", family="f", category="neither", S=Axis.fixed(1), K=Axis.fixed(1))
            def __init__(self, device="cpu"): pass
    ''')
    mod.write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    from scalebench import codehash

    h1 = codehash.generator_code_hash.__wrapped__("my_plugin_gen")
    mod.write_text(src + "\n# a sampler fix\n")
    assert codehash.generator_code_hash.__wrapped__("my_plugin_gen") != h1
    sys.modules.pop("my_plugin_gen", None)


def test_zoo_index_parents_enter_the_lineage(tmp_path) -> None:
    from scalebench import zoo

    meta = {"recipe": {}, "train_seconds": 0.0, "final_loss": 0.0}
    zoo.save_checkpoint("teacher", {"w": torch.ones(3)}, meta, directory=tmp_path)
    zoo.save_checkpoint("student", {"w": torch.zeros(3)}, meta, directory=tmp_path, parents=("teacher",))
    index = zoo.read_index(tmp_path)
    assert index["student"]["parents"] == ["teacher"] and len(index["teacher"]["sha256"]) == 16
    before = zoo.lineage_hash(["student"], tmp_path)
    assert set(before) == {"student", "teacher"}
    zoo.save_checkpoint("teacher", {"w": torch.full((3,), 2.0)}, meta, directory=tmp_path)  # retrain the parent
    after = zoo.lineage_hash(["student"], tmp_path)
    assert after["student"] == before["student"] and after["teacher"] != before["teacher"]
    with pytest.raises(ValueError, match="lacks"):
        zoo.save_checkpoint("bad", {"w": torch.ones(1)}, {}, directory=tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_shipped_zoo_index_matches_the_files() -> None:
    from scalebench import zoo

    index = zoo.read_index()
    for name, entry in index.items():
        assert entry["sha256"] == zoo.checkpoint_hash(name), f"{name}: index is stale; retrain or re-index"
        _, meta = zoo.load_checkpoint(name)
        assert {"recipe", "train_seconds", "final_loss"} <= set(meta), name
    from scalebench.plugins import generator_class

    # every checkpoint a family loads is shipped (jacobi loads gpt's and has none of its own)
    assert {c for f in FAMILIES for c in getattr(generator_class(f.id), "checkpoints", (f.id,))} <= set(index)


# ---------------------------------------------------------------- the general training loop

def _gan_run(seed: int = 3) -> tuple[dict, dict, object]:
    """A GAN-shaped step (two nets, two optimisers, a counter in `extra`) through the one loop."""
    from scalebench.training import Recipe, fit, make_state, optimise, seeded

    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 0.5 + 2.0
    with seeded(0):
        g = torch.nn.Linear(2, 2)
        d = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Dropout(0.1), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    recipe = Recipe(steps=60, batch_size=16, lr=1e-2, warmup=5, seed=seed, threads=1)
    state = make_state({"g": g, "d": d}, recipe, ema=("g",), extra={"seen": 0})

    def step(st, batch, gen):  # type: ignore[no-untyped-def]
        real = batch[0]
        fake = st.nets["g"](torch.randn(real.shape, generator=gen))
        d_loss = (F.softplus(-st.nets["d"](real)) + F.softplus(st.nets["d"](fake.detach()))).mean()
        optimise(st, "d", d_loss)
        g_loss = F.softplus(-st.nets["d"](fake)).mean()
        optimise(st, "g", g_loss)
        st.extra["seen"] += len(real)
        return d_loss + g_loss

    stats = fit(step, state, data, recipe, n_threads=1, log_every=0)
    return stats, {k: v.clone() for k, v in state.nets["g"].state_dict().items()}, state


def test_fit_trains_two_networks_without_global_side_effects() -> None:
    threads_before, rng_before = torch.get_num_threads(), torch.get_rng_state()
    stats, weights, state = _gan_run()
    assert torch.get_num_threads() == threads_before and torch.equal(torch.get_rng_state(), rng_before)
    assert state.extra["seen"] == 60 * 16 and math.isfinite(stats["final_loss"]) and stats["threads"] == 1
    assert stats["train_seconds"] >= 0 and stats["recipe"]["steps"] == 60
    assert not torch.equal(state.ema["g"].weight, state.nets["g"].weight)  # the EMA lags the live weights
    stats2, weights2, _ = _gan_run()
    assert stats2["final_loss"] == stats["final_loss"]
    assert all(torch.equal(weights[k], weights2[k]) for k in weights)  # bit-reproducible (dropout included)
    _, weights3, _ = _gan_run(seed=4)
    assert not torch.equal(weights["weight"], weights3["weight"])


# ---------------------------------------------------------------- the sample contract in the runner

class _Garbage(_Base):
    """Returns what `kind` says instead of the canonical form."""

    kind = ""

    def sample(self, n, budget, rng, sampler=None):  # type: ignore[no-untyped-def]
        x = self._x(n, budget, rng, sampler)
        return {"rows": x[: max(1, n - 1)], "range": x * 3 - 1, "int": (x * 16).round().long(),
                "nan": x.masked_fill(torch.arange(64).view(1, 1, 8, 8) == 5, float("nan")),
                "shape": x.view(n, 1, 64)}[self.kind]


@pytest.mark.parametrize("kind, rule", [("rows", "row count"), ("range", "range"), ("int", "floating dtype"),
                                        ("nan", "finite"), ("shape", "shape")])
def test_garbage_samples_fail_the_point_naming_the_rule(tmp_path, kind: str, rule: str) -> None:
    name = f"garbage-{kind}"
    if name not in GENERATORS:
        GENERATORS.register(name, type(name, (_Garbage,), {"kind": kind}))
    spec = parse_spec(toy_spec(metrics=["fid"], generators=[{"name": name, "K": [1]}]))
    res = run_sweep(spec, tmp_path / "run", progress=False)
    (rec,) = list(iter_records(tmp_path / "run"))
    assert res.failed == 1 and rec.status == "failed" and rec.metrics == {}
    assert f"(rule: {rule})" in rec.error and name in rec.error


def test_flops_are_cached_on_disk_across_processes(tmp_path, monkeypatch) -> None:
    """A later process (empty memo) reads FLOPs from the cache instead of importing the counter."""
    from scalebench.sweep import measure

    spec = toy_spec(generators=[{"name": "ok-double", "K": [5], "seeds": [0]}])
    run_sweep(parse_spec(spec), tmp_path / "a", progress=False)
    (first,) = list(iter_records(tmp_path / "a"))
    monkeypatch.setattr(measure, "_FLOPS", {})
    monkeypatch.setattr(measure, "count_flops", lambda *a, **k: pytest.fail("FLOPs recounted"))
    run_sweep(parse_spec({**spec, "generators": [{"name": "ok-double", "K": [5], "seeds": [1]}]}),
              tmp_path / "b", progress=False)
    (second,) = list(iter_records(tmp_path / "b"))
    assert second.status == "ok" and second.cost.flops == first.cost.flops
