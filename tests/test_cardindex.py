"""The committed card index (scalebench/zoo/cards.json) is what the registry gives, and `list` reads it
without importing torch or any family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import scalebench.cardindex as ci
from scalebench.cli import app
from scalebench.generators import GENERATORS
from scalebench.params import declared

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_index_is_what_the_registry_gives() -> None:
    committed = json.loads(ci.INDEX_PATH.read_text(encoding="utf-8"))["generators"]
    fresh = json.loads(ci.dumps(ci.build_index()))["generators"]
    for part in ("target", "card", "params", "card_source"):
        differ = sorted(n for n in fresh | committed if committed.get(n, {}).get(part) != fresh.get(n, {}).get(part))
        assert not differ, (f"the {part} of {differ} changed (a stale entry makes `scalebench list` import it): "
                            f"run `{ci.REGENERATE}` and commit scalebench/zoo/cards.json")


def test_cards_and_params_read_back_equal_the_imported_ones() -> None:
    from scalebench.adapters import ADAPTERS
    from scalebench.methods import FAMILIES

    index = ci.read_index()
    assert sorted(index) == sorted([f.id for f in FAMILIES] + list(ADAPTERS))  # every built-in, each fresh
    for name, entry in index.items():
        card, params = ci.indexed_card(entry)
        cls = GENERATORS.get(name)
        assert card == cls.card, name
        assert params == declared(cls), name
        assert entry["target"] == GENERATORS.target(name)


def test_an_entry_whose_source_changed_is_not_used(tmp_path, monkeypatch) -> None:
    """A family edited after the index was made is imported by `list` instead of read stale."""
    data = json.loads(ci.INDEX_PATH.read_text(encoding="utf-8"))
    gpt = data["generators"]["gpt"]
    gpt["card_source"] = "0" * 16
    gpt["card"]["family"] = "STALE"
    data["generators"]["diffusion"]["card"]["family"] = "INDEXED"  # fresh: shown as indexed
    path = tmp_path / "cards.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    index = ci.read_index(path)
    assert "gpt" not in index and "diffusion" in index
    monkeypatch.setattr(ci, "INDEX_PATH", path)
    out = CliRunner().invoke(app, ["list"]).output
    assert "STALE" not in out and "│ gpt " in out and "INDEXED" in out


def test_a_missing_or_broken_index_falls_back_to_importing(tmp_path) -> None:
    assert ci.read_index(tmp_path / "absent.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert ci.read_index(tmp_path / "bad.json") == {}


def test_list_imports_neither_torch_nor_a_family() -> None:
    code = ("import sys; from scalebench.cli import app; app(['list'], standalone_mode=False); "
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('scalebench.methods.') "
            "or m.startswith('scalebench.adapters.')); print('IMPORTED', bad)")
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "IMPORTED []" in out and "diffusion" in out and "transformers" in out


FAMILY = """
from dataclasses import replace
from scalebench.api import Axis, MethodCard
from scalebench.methods.base import Base

STEPS = (1, 2, 4)


def helper(x):
    return x + 1


class Gen(Base):
    card = MethodCard(name="g", family="f", category="refinement", S=Axis.fixed(), K=Axis("k", 1, STEPS))

    def sample(self, n):
        return helper(n)


class Adapter:
    card = replace(Gen.card, name="a")
"""
BASE = """
class Base:
    params = ()
"""


def test_the_card_digest_follows_the_card_not_the_rest_of_the_family(tmp_path, monkeypatch) -> None:
    root = tmp_path / "scalebench" / "methods"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    monkeypatch.setattr(ci, "PACKAGE_DIR", tmp_path / "scalebench")

    def digests(family: str = FAMILY, base: str = BASE) -> tuple[str, str]:
        (root / "fam.py").write_text(family)
        (root / "base.py").write_text(base)
        ci._parsed.cache_clear()
        return ci.card_digest("scalebench.methods.fam:Gen"), ci.card_digest("scalebench.methods.fam:Adapter")

    gen, adapter = digests()
    assert gen and adapter and gen != adapter
    assert digests(FAMILY.replace("return helper(n)", "return helper(n) * 2")) == (gen, adapter)  # sampler code
    assert digests(FAMILY.replace("return x + 1", "return x + 2")) == (gen, adapter)  # a helper the card does not use
    for edit in (FAMILY.replace('family="f"', 'family="F"'), FAMILY.replace("(1, 2, 4)", "(1, 2, 8)")):
        g, a = digests(edit)  # the card, or a constant it uses: both entries (the adapter replaces Gen's card)
        assert g != gen and a != adapter
    g, a = digests(base=BASE.replace("params = ()", "params = (1,)"))  # the base class it inherits params from
    assert g != gen
    assert ci.card_digest("scalebench.methods.fam:Missing") is None
