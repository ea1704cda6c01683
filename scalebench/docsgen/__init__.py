"""Docs that cannot drift from the records: `python -m scalebench.docsgen [--check]` (`make docs`).

Every measured table of the docs sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`
and is rewritten from the committed runs under `results/` (`runs.py`); the text outside the markers
is never touched (`markers.py`). What each NAME stands for is in `blocks.py`. `--check` writes nothing
and exits 1 naming every block whose text differs from what the records give (the test
`tests/test_docs_generated.py` runs it), so a doc cannot keep a figure the records do not hold.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scalebench.errors import ScalebenchError, UsageError


@dataclass
class DocResult:
    """One doc with generated blocks: its text now, the text the records give, and the blocks that differ."""

    path: Path
    old: str
    new: str
    changed: list[str] = field(default_factory=list)


def read(path: Path) -> str:
    """A doc's text exactly as stored (no newline translation: what is outside the markers stays byte for byte)."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def doc_paths(root: Path) -> list[Path]:
    """The Markdown files that may hold generated blocks: docs/**/*.md and README.md."""
    paths = sorted((root / "docs").rglob("*.md")) + ([root / "README.md"] if (root / "README.md").is_file() else [])
    return [p for p in paths if any(m in read(p) for m in ("<!-- generated:", "<!-- /generated:"))]


def generate(root: Path | str = ".") -> list[DocResult]:
    """Every doc's generated text from the committed runs under `root` (nothing is written)."""
    from scalebench.docsgen.blocks import bodies
    from scalebench.docsgen.markers import body, find_blocks, splice
    from scalebench.docsgen.runs import discover

    root = Path(root)
    if not (root / "docs").is_dir():
        raise UsageError(f"no docs/ in {root.resolve()}; run it in the repository root (or pass --root DIR)")
    runs = discover(root)
    out = []
    for path in doc_paths(root):
        old = read(path)
        rel = path.relative_to(root)
        blocks = find_blocks(old, rel)
        texts = {name: body(text) for name, text in bodies(rel, blocks, runs, root).items()}
        new = splice(old, blocks, texts)
        changed = [b.name for b in blocks if b.name in texts and old[b.start:b.end] != texts[b.name]]
        out.append(DocResult(rel, old, new, changed))
    return out


def run(root: Path | str = ".", check: bool = False) -> int:
    """Rewrite the generated blocks under `root` (or, with `check`, only report the ones that differ).

    Exit code: 0 done / up to date, 1 `check` found a block that differs, 2 bad input (one line on stderr).
    What a `scalebench docs` command calls.
    """
    try:
        results = generate(root)
    except ScalebenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stale = [(r, name) for r in results for name in r.changed]
    if check:
        for r, name in stale:
            print(f"{r.path}: generated block {name!r} differs from the committed records; run `make docs`")
        return 1 if stale else 0
    from scalebench.atomic import atomic_write_text

    for r in results:
        if r.new != r.old:
            atomic_write_text(Path(root) / r.path, r.new)
            print(f"{r.path}: rewrote {', '.join(r.changed)}")
    print(f"{len(results)} docs with generated blocks, {len(stale)} block(s) rewritten")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m scalebench.docsgen [--check] [--root DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m scalebench.docsgen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated block differs")
    parser.add_argument("--root", default=".", help="the repository root (holds docs/ and results/)")
    args = parser.parse_args(argv)
    return run(args.root, args.check)
