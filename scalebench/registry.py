"""One generic registry: names, aliases, lazy "module:attr" targets, "did you mean" errors.

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

log = logging.getLogger(__name__)

T = TypeVar("T")


class RegistryError(KeyError):
    """Unknown name; the message names it and suggests the closest known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it a plain line
        return str(self.args[0])


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


def _builtin_registries() -> tuple[Registry[Any], Registry[Any]]:
    """GENERATORS and TRAINERS, derived from the one table of families (no second edit), plus the
    adapters (`scalebench.adapters.ADAPTERS`: generators over another library's models, no trainer)."""
    from scalebench.adapters import ADAPTERS
    from scalebench.methods import FAMILIES, METRIC_NETS

    generators: Registry[Any] = Registry("generator", entry_point_group="scalebench.generators")
    trainers: Registry[Any] = Registry("trainable model")
    for fam in FAMILIES:
        generators.register(fam.id, fam.target, aliases=fam.aliases)
        trainers.register(fam.id, f"{fam.module}:train")
    for name, target in METRIC_NETS.items():
        trainers.register(name, target)
    for name, target in ADAPTERS.items():
        generators.register(name, target)
    return generators, trainers


GENERATORS, TRAINERS = _builtin_registries()
"""GENERATORS: every generator the harness can sweep (classes with `card` and `__init__(device)`);
TRAINERS: `scalebench train NAME` → `train(recipe=None, out_dir=None) -> Path`."""


def load_generator(name: str, device: str = "cpu", replicate: str = "", **args: Any) -> Any:
    """Instantiate a registered generator on `device` (this loads its weights); `args` are its
    declared parameters (`scalebench.params`), already validated by the caller.

    `replicate` (a zoo checkpoint `<base>-rN`) is loaded wherever the generator loads `<base>`
    (`zoo.substitute`), so every family takes replicates without an argument of its own; a
    generator that did not load `<base>` while being built cannot, and says so."""
    cls = GENERATORS.get(name)
    if not replicate:
        return cls(device=device, **args)
    from scalebench.zoo import replicate_base, substitute

    base = replicate_base(replicate)
    with substitute(base, replicate) as used:
        gen = cls(device=device, **args)
    if base not in used:
        raise ValueError(f"{name} did not load checkpoint {base!r} while being built, so it cannot sample "
                         f"replicate {replicate!r}; remove replicates from its spec entry")
    return gen


def default_checkpoint(name: str) -> str:
    """The checkpoint a generator loads by default (its first `checkpoints`), else its own name:
    the `replicate` of its points that name none. A generator that no longer imports: its name."""
    try:
        loads = getattr(GENERATORS.get(name), "checkpoints", ()) or ()
    except Exception:  # noqa: BLE001 — an uninstalled or broken plugin still has results to show
        loads = ()
    return str(loads[0]) if loads else name
