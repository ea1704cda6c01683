"""The sweep specs that ship inside the package, and the one rule that turns a SPEC argument into a file.

The specs are package data (found with importlib.resources), so `scalebench run quick` works from any
directory and from an installed wheel, not only in a clone. Every command that takes a spec
(`run`, `ab`, `history backfill`, `load_spec` itself) goes through `resolve_spec`:

1. a file at the given path wins (your own `quick.toml` in the current directory is yours);
2. a bare name (`quick`, or `quick.toml` with no directory part) names a shipped spec;
3. a bare name that is no shipped spec is one line listing the shipped ones (exit 2);
4. anything else is returned as a path, and `load_spec` says what is wrong with it.

No torch, no scalebench imports beyond the error types: `ab` and the CLI resolve names cheaply.
"""

from __future__ import annotations

import difflib
from importlib.resources import files
from pathlib import Path

from scalebench.errors import UsageError

DEFAULT = "quick"
"""What `scalebench run` with no argument runs (into ./results/quick)."""
SUFFIX = ".toml"


def shipped() -> dict[str, Path]:
    """Name → file of every shipped spec, sorted by name."""
    root = Path(str(files(__name__)))
    return {p.name[: -len(SUFFIX)]: p for p in sorted(root.glob(f"*{SUFFIX}"))}


def _bare_name(spec: str) -> str | None:
    """`quick` or `quick.toml` → `quick`; None when the argument has a directory part or another suffix."""
    p = Path(spec)
    if not spec or len(p.parts) != 1 or p.name != spec or p.suffix not in ("", SUFFIX):
        return None
    return p.name[: -len(SUFFIX)] if p.suffix == SUFFIX else p.name


def unknown_name(name: str) -> UsageError:
    names = list(shipped())
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return UsageError(f"spec {name!r} is neither a file nor a shipped spec{hint}; shipped specs: "
                      f"{', '.join(names)}; or pass the path of a TOML file")


def resolve_spec(spec: str | Path, root: Path | None = None) -> Path:
    """The spec file that `spec` names (a path, else a shipped name); `root`: also try paths under it
    (`ab` run from a subdirectory of its repository)."""
    p = Path(spec)
    if p.is_file():
        return p
    if root is not None and not p.is_absolute() and (root / p).is_file():
        return root / p
    name = _bare_name(str(spec))
    if name is None:
        return p
    found = shipped().get(name)
    if found is not None:
        return found
    if p.suffix == "" and not p.exists():
        raise unknown_name(name)
    return p


def label(path: Path) -> str:
    """How a spec is named in errors and manifests: a shipped one as `scalebench/specs/<name>.toml`
    wherever the package is installed (no site-packages path in a record), any other as given."""
    try:
        real = path.resolve()
    except OSError:
        return str(path)
    for name, f in shipped().items():
        if f.resolve() == real:
            return f"scalebench/specs/{name}{SUFFIX}"
    return str(path)
