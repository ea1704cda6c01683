"""What each block name stands for, and its body from the committed runs.

Names (the part after `generated:`):

- `methods/<family>:full` — the family's table from every full-spec run (`Run.is_full`) that holds it,
  or one line saying no committed full-spec record exists;
- `methods/<family>:other` — from every other run that holds it;
- `methods/<family>:<run>` — from that run only (e.g. `baseline-ddim-vs-ddpm-cpu`); a run given its own
  block in a doc is left out of that doc's `full` and `other` blocks;
- `…:samplers=a,b` after any of these: only those samplers (and only runs that hold all of them);
- `…:paired=a,b`: the two samplers compared point by point, paired by replicate (`paired.py`);
- `metrics:floors` — every data floor in the records (`floors.py`);
- `scalability-table:<run>` / `scalability-table:other` — the measured scalability table of a run /
  of every run without a block of its own (`scalability.py`);
- `scalability-table:floor-example` — how one committed record carries its floors (JSON);
- `likelihoods:test-nll` — every family's test NLL in the records (`likelihoods.py`).

- `scaling` — the fitted exponents, allocations, frontier and calibration (`scalebench.scaling.docs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import scalebench.docsgen.floors as floors
import scalebench.docsgen.likelihoods as likelihoods
import scalebench.docsgen.measured as measured
import scalebench.docsgen.paired as paired
import scalebench.docsgen.scalability as scalability
from scalebench.docsgen.markers import Block
from scalebench.docsgen.runs import Run
from scalebench.errors import UsageError

KEYWORDS = ("full", "other")
NO_FULL = ("No committed full-spec record of this family yet; the figures previously here came "
           "from an uncommitted run and were removed.")


@dataclass(frozen=True)
class MethodBlock:
    family: str
    selector: str  # "full", "other" or a run name
    samplers: tuple[str, ...] | None = None
    paired: tuple[str, str] | None = None

    @property
    def claims(self) -> str | None:
        """The run this block shows on its own (kept out of the doc's full/other blocks)."""
        plain = self.samplers is None and self.paired is None
        return self.selector if plain and self.selector not in KEYWORDS else None


def parse_method(name: str, where: str) -> MethodBlock:
    head, _, rest = name.partition(":")
    family = head.removeprefix("methods/")
    parts = rest.split(":") if rest else []
    if not family or not parts or len(parts) > 2 or not parts[0]:
        raise UsageError(f"{where}: block name {name!r} is not methods/<family>:<full|other|run>[:samplers=a,b|"
                         ":paired=a,b]; fix the marker")
    samplers = pair = None
    if len(parts) == 2:
        key, _, value = parts[1].partition("=")
        values = tuple(v for v in value.split(",") if v)
        if key == "samplers" and values:
            samplers = values
        elif key == "paired" and len(values) == 2:
            pair = (values[0], values[1])
        else:
            raise UsageError(f"{where}: {parts[1]!r} in block {name!r} is neither samplers=a,b nor paired=a,b; "
                             "fix the marker")
    return MethodBlock(family, parts[0], samplers, pair)


def _method_runs(block: MethodBlock, runs: list[Run], claimed: set[str]) -> list[Run]:
    need = block.samplers or block.paired
    if block.selector in KEYWORDS:
        full = block.selector == "full"
        return [r for r in runs if r.is_full == full and measured.holds(r, block.family, need)
                and (need is not None or r.name not in claimed)]
    return [r for r in runs if r.name == block.selector and measured.holds(r, block.family, need)]


def _none_text(block: MethodBlock) -> str:
    what = (f" with sampler(s) {', '.join(f'`{s}`' for s in (block.samplers or block.paired or ()))}"
            if block.samplers or block.paired else "")
    if block.selector == "full":
        if not what:
            return NO_FULL
        return (f"No committed full-spec record of `{block.family}`{what} yet; the figures "
                "previously here came from an uncommitted run and were removed.")
    if block.selector == "other":
        return f"No other committed run holds `{block.family}`{what}."
    return f"No committed record of `{block.family}`{what} in `results/{block.selector}`."


def method_body(block: MethodBlock, runs: list[Run], claimed: set[str]) -> str:
    chosen = _method_runs(block, runs, claimed)
    if not chosen and block.paired and block.selector == "full":  # the two samplers in two full runs
        a, b = block.paired
        with_a = [r for r in runs if r.is_full and measured.holds(r, block.family, (a,))]
        with_b = [r for r in runs if r.is_full and measured.holds(r, block.family, (b,))]
        if with_a and with_b:
            return paired.section_across(with_a[0], with_b[0], block.family, a, b)
    if not chosen:
        return _none_text(block)
    if block.paired:
        return "\n\n".join(paired.section(r, block.family, *block.paired) for r in chosen)
    return "\n\n".join(measured.section(r, block.family, block.samplers) for r in chosen)


def _scalability(selector: str, runs: list[Run], claimed: set[str]) -> str:
    if selector == "other":
        rest = [r for r in runs if r.name not in claimed]
        return "\n\n".join(scalability.section(r) for r in rest) or "No other committed run."
    chosen = [r for r in runs if r.name == selector]
    return scalability.section(chosen[0]) if chosen else f"No committed run `results/{selector}` with quality values."


def _scaling(root: Path | str) -> str:
    from scalebench.scaling.docs import generate

    return generate(Path(root))


def bodies(path: Path | str, blocks: list[Block], runs: list[Run], root: Path | str = ".") -> dict[str, str]:
    """{block name: its generated text} for every block of one doc; an unknown name is a UsageError."""
    where = {b.name: f"{path}:{b.line}" for b in blocks}
    methods = {b.name: parse_method(b.name, where[b.name]) for b in blocks if b.name.startswith("methods/")}
    claimed_methods: dict[str, set[str]] = {}
    for m in methods.values():
        if m.claims:
            claimed_methods.setdefault(m.family, set()).add(m.claims)
    claimed_tables = {b.name.partition(":")[2] for b in blocks if b.name.startswith("scalability-table:")}
    simple: dict[str, Callable[[], str]] = {
        "metrics:floors": lambda: floors.table(runs),
        "likelihoods:test-nll": lambda: likelihoods.table(runs),
        "scalability-table:floor-example": lambda: scalability.floor_example(runs),
        "scaling": lambda: _scaling(root),
    }
    out = {}
    for b in blocks:
        if b.name in methods:
            m = methods[b.name]
            out[b.name] = method_body(m, runs, claimed_methods.get(m.family, set()))
        elif b.name in simple:
            out[b.name] = simple[b.name]()
        elif b.name.startswith("scalability-table:") and b.name.partition(":")[2]:
            out[b.name] = _scalability(b.name.partition(":")[2], runs, claimed_tables - {"other", "floor-example"})
        else:
            raise UsageError(f"{where[b.name]}: unknown generated block {b.name!r}; known: methods/<family>:…, "
                             f"scalability-table:<run|other>, {', '.join(simple)}")
    return out
