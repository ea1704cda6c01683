"""Declared arguments of generators and datasets: `args = { path = "...", ... }` in a spec.

A generator or dataset class that takes arguments lists them as `params: tuple[Param, ...]`;
the spec's `args` table is checked against that list before anything runs (an unknown, missing or
ill-typed key is one line naming it, exit 2), defaults are filled in, and the result enters the
point identity. A `path` parameter names local files: their *content* hash enters the identity
too, so a retrained model in the same directory re-runs its points instead of resuming stale ones.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalebench.errors import ScalebenchError

REQUIRED: Any = object()
"""Marker default of a parameter the spec must give."""

_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                       "path": (str,)}


class ArgsError(ScalebenchError, ValueError):
    """An `args` table that does not fit the declared parameters (one line: key, value, fix)."""


@dataclass(frozen=True)
class Param:
    """One declared argument: its type ("str", "int", "float", "bool" or "path"), default, help."""

    name: str
    type: str = "str"
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"Param {self.name!r}: type {self.type!r} is not one of {list(_TYPES)}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        d = "required" if self.required else f"default {self.default!r}"
        c = f", one of {list(self.choices)}" if self.choices else ""
        return f"{self.name} ({self.type}, {d}{c}){': ' + self.help if self.help else ''}"


def declared(obj: Any) -> tuple[Param, ...]:
    """The parameters a generator or dataset class declares (none by default)."""
    return tuple(getattr(obj, "params", ()) or ())


def _check_value(where: str, p: Param, v: Any) -> Any:
    ok = isinstance(v, _TYPES[p.type]) and not (p.type in ("int", "float") and isinstance(v, bool))
    if not ok:
        raise ArgsError(f"{where}: args.{p.name} = {v!r} must be a {p.type} ({p.describe()})")
    if p.choices is not None and v not in p.choices:
        close = difflib.get_close_matches(str(v), [str(c) for c in p.choices], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ArgsError(f"{where}: args.{p.name} = {v!r} is not one of {list(p.choices)}{hint}")
    if p.type == "path":
        if v == "" and p.default == "":
            return ""  # an optional path left empty (validated args read back from JSON keep it so)
        path = Path(v).expanduser()
        if not path.exists():
            raise ArgsError(f"{where}: args.{p.name} = {v!r} does not exist; give the local path of "
                            f"{p.help or 'the files'} (nothing is downloaded)")
        return str(path.resolve())
    return float(v) if p.type == "float" else v


def validate_args(where: str, params: tuple[Param, ...], args: Mapping[str, Any] | None) -> dict[str, Any]:
    """`args` checked against `params`, defaults filled in, paths made absolute; ArgsError otherwise."""
    args = dict(args or {})
    by_name = {p.name: p for p in params}
    extra = sorted(set(args) - set(by_name))
    if extra:
        if not params:
            raise ArgsError(f"{where}: takes no args, got args.{extra[0]}; remove the args table")
        close = difflib.get_close_matches(extra[0], sorted(by_name), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"declared: {[p.describe() for p in params]}"
        raise ArgsError(f"{where}: unknown argument args.{extra[0]}; {hint}")
    out: dict[str, Any] = {}
    for p in params:
        if p.name not in args:
            if p.required:
                raise ArgsError(f"{where}: missing required argument args.{p.name} ({p.describe()})")
            out[p.name] = p.default
        else:
            out[p.name] = _check_value(where, p, args[p.name])
    return out


def parse_cli_args(where: str, params: tuple[Param, ...], items: list[str]) -> dict[str, Any]:
    """`["path=models/unet", "steps=4"]` from the command line → typed, validated args."""
    by_name = {p.name: p for p in params}
    raw: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ArgsError(f"{where}: --arg {item!r} must be KEY=VALUE, e.g. --arg path=models/unet")
        p = by_name.get(key)
        kind = p.type if p else "str"
        try:
            raw[key] = {"int": int, "float": float}.get(kind, str)(text) if kind != "bool" else \
                {"true": True, "false": False}[text.lower()]
        except (ValueError, KeyError):
            raise ArgsError(f"{where}: --arg {item!r}: {text!r} is not a {kind}") from None
    return validate_args(where, params, raw)


def path_hash(path: str | Path) -> str:
    """Short sha256 of a file, or of a directory's files (relative names and contents, sorted)."""
    from scalebench.zoo import file_hash

    p = Path(path)
    if p.is_file():
        return file_hash(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(f"{f.relative_to(p).as_posix()}\0{file_hash(f)}\n".encode())
    return h.hexdigest()[:16]


def args_identity(params: tuple[Param, ...], args: Mapping[str, Any]) -> dict[str, str]:
    """The identity parts of validated args: the args themselves and the content of every path."""
    if not args:
        return {}
    parts = {"args": canonical_json(args)}
    for p in params:
        if p.type == "path" and args.get(p.name):
            parts[f"content:{p.name}"] = path_hash(args[p.name])
    return parts


def canonical_json(args: Mapping[str, Any]) -> str:
    return json.dumps(dict(args), sort_keys=True, default=str)
