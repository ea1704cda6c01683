"""One generic registry: names, aliases, lazy "module:attr" targets, "did you mean" errors.

Generic on purpose: it imports nothing of the project but `errors`; `scalebench.generators`
builds the registries of generators and trainers from the families and adapters tables.

Generators are registered by target string so that listing them imports nothing heavy until
asked. Third-party packages add their own through the `scalebench.generators` entry-point
group (name = generator name, value = "module:attr"), in the style of lm-evaluation-harness.

A generator target resolves to a class (or factory) with a `card` attribute (a MethodCard)
that is called as `target(device=..., **args)` to load weights and return a Generator; `args`
are the spec's, validated against the class's declared `params` (see `scalebench.params`).
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from scalebench.errors import RegistryError

log = logging.getLogger(__name__)

T = TypeVar("T")


def resolve_target(target: str) -> Any:
    """Import "package.module:attr" (attr may be dotted)."""
    if ":" not in target:
        raise ValueError(f"target {target!r} is not of the form 'module:attr'")
    mod_name, attr = target.split(":", 1)
    obj: Any = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Name → lazily imported object, with aliases and an optional entry-point group."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.group = entry_point_group
        self._targets: dict[str, str | T] = {}
        self._aliases: dict[str, str] = {}
        self._loaded: dict[str, T] = {}
        self._entry_points_read = False

    def register(self, name: str, target: str | T, aliases: tuple[str, ...] = ()) -> None:
        if name in self._targets or name in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._targets[name] = target
        for a in aliases:
            self._aliases[a] = name

    def _read_entry_points(self) -> None:
        if self._entry_points_read or self.group is None:
            return
        self._entry_points_read = True
        for ep in entry_points(group=self.group):
            if ep.name in self._targets:
                log.warning("%s %r from entry point %s shadows nothing; skipped", self.kind, ep.name, ep.value)
                continue
            self._targets[ep.name] = ep.value

    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(self._targets)

    def aliases_of(self, name: str) -> tuple[str, ...]:
        return tuple(sorted(a for a, n in self._aliases.items() if n == name))

    def canonical(self, name: str) -> str:
        self._read_entry_points()
        if name in self._targets:
            return name
        if name in self._aliases:
            return self._aliases[name]
        known = list(self._targets) + list(self._aliases)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(
            f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self._targets))})"
        )

    def target(self, name: str) -> str:
        t = self._targets[self.canonical(name)]
        return t if isinstance(t, str) else f"{getattr(t, '__module__', '?')}:{getattr(t, '__qualname__', '?')}"

    def get(self, name: str) -> T:
        key = self.canonical(name)
        if key not in self._loaded:
            t = self._targets[key]
            self._loaded[key] = resolve_target(t) if isinstance(t, str) else t
        return self._loaded[key]

    def __contains__(self, name: str) -> bool:
        try:
            self.canonical(name)
        except RegistryError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
