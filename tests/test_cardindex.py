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
    committed = json.loads(ci.INDEX_PATH.read_text(encoding="utf-8"))
    fresh = json.loads(ci.dumps(ci.build_index()))
    stale = {n for n in fresh["generators"] if committed["generators"].get(n, {}).get("sources")
             != fresh["generators"][n]["sources"]}
    for part in ("target", "card", "params"):
        differ = sorted(n for n in fresh["generators"] | committed["generators"]
                        if committed["generators"].get(n, {}).get(part) != fresh["generators"].get(n, {}).get(part))
        assert not differ, f"the {part} of {differ} changed: run `{ci.REGENERATE}` and commit scalebench/zoo/cards.json"
    assert not stale, (f"sources of {sorted(stale)} changed since the index was made, so `scalebench list` "
                       f"imports them (slow): run `{ci.REGENERATE}` and commit scalebench/zoo/cards.json")
    assert committed == fresh


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
    gpt["sources"]["scalebench/methods/gpt.py"] = "0" * 16
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
