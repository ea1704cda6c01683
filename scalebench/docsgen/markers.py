"""Generated blocks inside hand-written Markdown: find them, and splice new bodies in.

A block is the lines between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`, each marker
alone on its line. Only the text strictly between the two markers is ever replaced, so everything
outside them (the markers included) stays byte for byte. A marker quoted inside a line of prose is
not a marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scalebench.errors import UsageError

OPEN = re.compile(r"^<!-- generated:(?P<name>\S+) -->[ \t]*\r?$", re.M)
CLOSE = re.compile(r"^<!-- /generated:(?P<name>\S+) -->[ \t]*\r?$", re.M)


@dataclass(frozen=True)
class Block:
    """One generated block of a doc: its name and where its body lies (`text[start:end]`)."""

    name: str
    start: int  # just after the opening marker's line break
    end: int  # at the start of the closing marker's line
    line: int  # the opening marker's line number (1-based), for messages


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def find_blocks(text: str, path: Path | str = "<doc>") -> list[Block]:
    """The doc's blocks in order; an unclosed, unopened, nested or repeated marker is a UsageError naming
    the file and line."""
    events = sorted([(m.start(), "open", m) for m in OPEN.finditer(text)]
                    + [(m.start(), "close", m) for m in CLOSE.finditer(text)], key=lambda e: e[0])
    blocks: list[Block] = []
    current: re.Match[str] | None = None
    for pos, kind, m in events:
        name = m.group("name")
        if kind == "open":
            if current is not None:
                raise UsageError(f"{path}:{_line(text, pos)}: block {name!r} opens inside block "
                                 f"{current.group('name')!r}; close that one first (<!-- /generated:NAME -->)")
            current = m
            continue
        if current is None or current.group("name") != name:
            raise UsageError(f"{path}:{_line(text, pos)}: closing marker of {name!r} without its opening marker "
                             f"<!-- generated:{name} -->; add it or remove this line")
        body_start = text.find("\n", current.end())
        blocks.append(Block(name, current.end() if body_start < 0 else body_start + 1, pos,
                            _line(text, current.start())))
        current = None
    if current is not None:
        raise UsageError(f"{path}:{_line(text, current.start())}: block {current.group('name')!r} is never closed; "
                         f"add <!-- /generated:{current.group('name')} --> on its own line")
    seen: set[str] = set()
    for b in blocks:
        if b.name in seen:
            raise UsageError(f"{path}:{b.line}: block {b.name!r} appears twice; give each block its own name")
        seen.add(b.name)
    return blocks


def body(text: str) -> str:
    """How a generated body sits between its markers: its own lines, one blank line either side."""
    return "\n" + text.strip("\n") + "\n\n"


def splice(text: str, blocks: list[Block], bodies: dict[str, str]) -> str:
    """`text` with each block's body replaced by `bodies[name]` (blocks not named are left as they are)."""
    out, pos = [], 0
    for b in blocks:
        if b.name not in bodies:
            continue
        out += [text[pos:b.start], bodies[b.name]]
        pos = b.end
    out.append(text[pos:])
    return "".join(out)


def outside(text: str, blocks: list[Block]) -> str:
    """The doc with every block's body removed: what generation must never change."""
    return splice(text, blocks, {b.name: "" for b in blocks})
