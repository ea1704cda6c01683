"""The built-in generators' cards without importing them: a generated index, checked against its sources.

A card is a class attribute of its generator, and the generator's module imports torch and the
family's networks (≈ 2.5 s here), so `scalebench list` reads `scalebench/zoo/cards.json` instead:
every built-in generator's import target, card (`MethodCard.to_dict()`), declared params, and the
sha256 of each source file its card can depend on (its module and what it imports inside
`scalebench.methods` and `.adapters`). Two guards keep it honest:

- `tests/test_cardindex.py` fails when the committed file differs from what the registry gives
  (regenerate with `python -m scalebench.cardindex --write`);
- at read time an entry whose target changed or any of whose source files changed (a family
  edited without regenerating) is treated as absent, and the caller imports that generator.

Reading imports neither torch nor any family: only json, hashlib and the card dataclasses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scalebench.api import Axis, MethodCard, SamplerCard
from scalebench.params import REQUIRED, Param

PACKAGE_DIR = Path(__file__).resolve().parent
INDEX_PATH = PACKAGE_DIR / "zoo" / "cards.json"
SOURCE_PACKAGES = ("scalebench.methods", "scalebench.adapters")
"""Packages whose modules, when a generator's module imports them, can shape its card (the data
package is left out: it shapes samples, not cards, and the test still compares every card in full)."""
REGENERATE = "python -m scalebench.cardindex --write"


# ---------------------------------------------------------------- (de)serialising a card

def _axis(d: Mapping[str, Any] | None) -> Axis | None:
    if d is None:
        return None
    values = d.get("values")
    return Axis(**{**d, "values": tuple(values) if values is not None else None})


def card_from_dict(d: Mapping[str, Any]) -> MethodCard:
    """The MethodCard that `MethodCard.to_dict()` (dataclasses.asdict) wrote."""
    samplers = {name: SamplerCard(**{**s, "S": _axis(s.get("S")), "K": _axis(s.get("K"))})
                for name, s in (d.get("sampler_cards") or {}).items()}
    return MethodCard(**{**d, "S": _axis(d["S"]), "K": _axis(d["K"]), "samplers": tuple(d["samplers"]),
                         "sampler_cards": samplers})


def param_to_dict(p: Param) -> dict[str, Any]:
    return {"name": p.name, "type": p.type, "required": p.required, "default": None if p.required else p.default,
            "help": p.help, "choices": list(p.choices) if p.choices is not None else None}


def param_from_dict(d: Mapping[str, Any]) -> Param:
    return Param(name=d["name"], type=d["type"], default=REQUIRED if d["required"] else d["default"],
                 help=d["help"], choices=tuple(d["choices"]) if d["choices"] is not None else None)


# ---------------------------------------------------------------- reading

def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def _fresh(entry: Mapping[str, Any]) -> bool:
    return all(_sha(PACKAGE_DIR.parent / rel) == digest for rel, digest in entry.get("sources", {}).items())


def read_index(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """name → entry of every indexed generator whose sources are unchanged ({} without an index)."""
    try:
        data = json.loads((path or INDEX_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("generators", {}) if isinstance(data, dict) else {}
    return {name: e for name, e in entries.items() if _fresh(e)}


def indexed_card(entry: Mapping[str, Any]) -> tuple[MethodCard, tuple[Param, ...]]:
    return card_from_dict(entry["card"]), tuple(param_from_dict(p) for p in entry["params"])


# ---------------------------------------------------------------- generating (imports every generator)

def _sources(module: str) -> dict[str, str]:
    from scalebench.codehash import module_closure

    files = module_closure(module, SOURCE_PACKAGES)  # the module itself included
    return {path.resolve().relative_to(PACKAGE_DIR.parent).as_posix(): _sha(path) or ""
            for path in sorted(files.values())}


def build_index() -> dict[str, Any]:
    """The index as the registry gives it now: every built-in generator (families, adapters)."""
    from scalebench.adapters import ADAPTERS
    from scalebench.generators import GENERATORS
    from scalebench.methods import FAMILIES
    from scalebench.params import declared

    entries = {}
    for name in sorted([f.id for f in FAMILIES] + list(ADAPTERS)):
        cls = GENERATORS.get(name)
        target = GENERATORS.target(name)
        entries[name] = {"target": target, "card": cls.card.to_dict(),
                         "params": [param_to_dict(p) for p in declared(cls)],
                         "sources": _sources(target.split(":")[0])}
    return {"about": f"generated from the registered cards by `{REGENERATE}`; "
                     "tests/test_cardindex.py fails when it differs", "generators": entries}


def dumps(index: Mapping[str, Any]) -> str:
    return json.dumps(index, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description="check or rewrite scalebench/zoo/cards.json")
    ap.add_argument("--write", action="store_true", help="rewrite the index from the registered cards")
    args = ap.parse_args()
    text = dumps(build_index())
    if args.write:
        from scalebench.atomic import atomic_write_text

        atomic_write_text(INDEX_PATH, text)
        print(f"wrote {INDEX_PATH}")
    elif INDEX_PATH.read_text(encoding="utf-8") != text:
        raise SystemExit(f"{INDEX_PATH} is stale; run `{REGENERATE}`")


if __name__ == "__main__":
    main()
