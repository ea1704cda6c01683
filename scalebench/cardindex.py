"""The built-in generators' cards without importing them: a generated index, checked against its sources.

A card is a class attribute of its generator, and the generator's module imports torch and the
family's networks (≈ 2.5 s here), so `scalebench list` reads `scalebench/zoo/cards.json` instead:
every built-in generator's import target, card (`MethodCard.to_dict()`), declared params, and a
digest of the source its card and params are written in (`card_digest`: those assignments in the
class body, the class's bases, and whatever names they use, followed through the module; a name
imported from `scalebench.methods`, `.adapters` or `.data` brings that whole file). Two guards:

- `tests/test_cardindex.py` fails when the committed file differs from what the registry gives
  (regenerate with `python -m scalebench.cardindex --write`);
- at read time an entry whose target or digest no longer matches the source (a card edited
  without regenerating) is treated as absent, and the caller imports that generator. Edits
  elsewhere in a family (its sampler, its networks) leave the digest, and `list`'s speed, alone.

Reading imports neither torch nor any family: json, hashlib, ast and the card dataclasses.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scalebench.api import Axis, MethodCard, SamplerCard
from scalebench.params import REQUIRED, Param

PACKAGE_DIR = Path(__file__).resolve().parent
INDEX_PATH = PACKAGE_DIR / "zoo" / "cards.json"
SOURCE_PACKAGES = ("scalebench.methods", "scalebench.adapters", "scalebench.data")
"""A card that uses a name imported from these packages depends on that module's whole source."""
CARD_ATTRS = ("card", "params")
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

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _module_file(module: str) -> Path | None:
    base = PACKAGE_DIR.parent / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _defines(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
        node, ast.AnnAssign | ast.AugAssign) else []
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _imports(tree: ast.Module, module: str) -> dict[str, tuple[str, str]]:
    """Local name → (the module it refers to, the object's name there or "" for the module itself)."""
    package, out = module.rpartition(".")[0], {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            out.update({(a.asname or a.name).split(".")[0]: (a.name, "") for a in node.names})
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for a in node.names:  # `from pkg import submodule` or `from module import obj`
                sub = f"{base}.{a.name}"
                out[a.asname or a.name] = (sub, "") if _module_file(sub) else (base, a.name)
    return out


@functools.cache
def _parsed(path: Path) -> tuple[ast.Module, list[str]]:
    text = path.read_text(encoding="utf-8")
    return ast.parse(text), text.splitlines(keepends=True)


def card_digest(target: str) -> str | None:
    """Digest of the source a generator's `card` and `params` are written in (None: not found).

    The assignments in the class body and the class's bases, then every name they use, resolved in
    the class body, then the module (that definition's source joins the digest, and the names it
    uses), else through an import from `SOURCE_PACKAGES`. Another class, here or imported, joins with
    its own card digest (a base's params, an adapter's card that is gpt's replaced); any other
    imported name with its module's whole file."""
    module, _, cls_name = target.partition(":")
    path = _module_file(module)
    if path is None:
        return None
    tree, lines = _parsed(path)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name), None)
    if cls is None:
        return None
    in_class = {name: node for node in cls.body for name in _defines(node)}
    in_module = {name: node for node in tree.body for name in _defines(node)}
    imports = _imports(tree, module)
    parts, todo, seen = [], [*CARD_ATTRS, *(n for b in cls.bases for n in _loaded_names(b))], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        node = in_class.get(name) or in_module.get(name)
        if isinstance(node, ast.ClassDef) and node is not cls:  # another class: what it gives is its card
            parts.append(f":{name} {card_digest(f'{module}:{name}')}")
        elif node is not None and node is not cls:
            parts.append("".join(lines[node.lineno - 1:node.end_lineno]))  # whole lines: cheap, and enough
            todo.extend(_loaded_names(node))
        elif name in imports and imports[name][0].startswith(SOURCE_PACKAGES):
            source, obj = imports[name]
            digest = card_digest(f"{source}:{obj}") if obj else None
            if digest is None and (file := _module_file(source)) is not None:
                digest = _sha(file.read_bytes())
            parts.append(f"{source}:{obj} {digest}")
    return _sha("\n".join(sorted(parts)).encode())


def read_index(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """name → entry of every indexed generator whose card source is unchanged ({} without an index)."""
    try:
        data = json.loads((path or INDEX_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("generators", {}) if isinstance(data, dict) else {}
    return {name: e for name, e in entries.items() if card_digest(e.get("target", "")) == e.get("card_source")}


def indexed_card(entry: Mapping[str, Any]) -> tuple[MethodCard, tuple[Param, ...]]:
    return card_from_dict(entry["card"]), tuple(param_from_dict(p) for p in entry["params"])


def card_and_params(name: str, index: Mapping[str, Any] | None = None) -> tuple[MethodCard, tuple[Param, ...]]:
    """A registered generator's card and declared params: from the index when its entry is current
    and names the registered target (no import), else from the imported class (which may raise)."""
    from scalebench.generators import GENERATORS
    from scalebench.params import declared

    entry = (read_index() if index is None else index).get(name)
    if entry is not None and entry["target"] == GENERATORS.target(name):
        return indexed_card(entry)
    cls = GENERATORS.get(name)
    return cls.card, declared(cls)


# ---------------------------------------------------------------- generating (imports every generator)

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
                         "params": [param_to_dict(p) for p in declared(cls)], "card_source": card_digest(target)}
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
