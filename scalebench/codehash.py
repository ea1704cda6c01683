"""Code-version component of a point's identity: a hash of the source files that draw or judge samples.

A sampler fix must not silently keep stale points on resume, so a point's identity includes
(a) the sources of the generator's module and of every module it imports, transitively,
inside the packages that hold sampling code (`scalebench.methods`, `scalebench.data`, and a
plugin's own top-level package), found by reading import statements (nothing is executed);
and (b) the sources of the measuring and metric code (`scalebench.metrics`, `timing.py`,
`sweep/measure.py`, `samples.py`). Training code is not included: it reaches samples only
through a checkpoint, whose content hash is part of the identity already.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from pathlib import Path

SAMPLING_PACKAGES = ("scalebench.methods", "scalebench.data")
MEASURING_MODULES = ("scalebench.timing", "scalebench.sweep.measure", "scalebench.samples")
METRIC_PACKAGE = "scalebench.metrics"


def _origin(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


@functools.cache
def _imports(path: Path, module: str) -> frozenset[str]:
    """Absolute names of the modules imported anywhere in `path` (lazy imports included); each file
    is parsed once per process (every generator's closure shares the nets and data modules)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return frozenset(out)


def module_closure(root: str, packages: tuple[str, ...]) -> dict[str, Path]:
    """`root` and every module it imports transitively whose name lies in `packages`."""
    seen: dict[str, Path] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _origin(name)
        if path is None:
            continue
        seen[name] = path
        for imp in _imports(path, name):
            if any(imp == p or imp.startswith(p + ".") for p in packages) and imp not in seen:
                todo.append(imp)
    return seen


def _digest(files: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode())
        h.update(files[name].read_bytes())
    return h.hexdigest()[:12]


@functools.cache
def generator_code_hash(module: str) -> str:
    """Hash of the generator's module and the sampling code it imports (plugin packages included)."""
    top = module.split(".")[0]
    packages = SAMPLING_PACKAGES if top == "scalebench" else (*SAMPLING_PACKAGES, top)
    return _digest(module_closure(module, packages))


def _package_files(package: str) -> dict[str, Path]:
    """{module name: path} of every source file directly in `package` ({} when it is not found)."""
    init = _origin(package)
    if init is None:
        return {}
    return {f"{package}.{f.stem}": f for f in sorted(init.parent.glob("*.py"))}


@functools.cache
def measuring_code_hash() -> str:
    """Hash of the code that times, checks and scores samples."""
    files = {m: path for m in MEASURING_MODULES if (path := _origin(m)) is not None}
    return _digest({**files, **_package_files(METRIC_PACKAGE)})


@functools.cache
def metric_code_hash() -> str:
    """Hash of the metric code and the datasets' code: what a data floor depends on besides its data
    and models (timing and the measuring loop are not, so editing them keeps the shipped floors)."""
    return _digest({**_package_files(METRIC_PACKAGE), **_package_files("scalebench.data")})


@functools.cache
def module_hash(module: str) -> str:
    """Hash of one module's source ("" when it is not a source file)."""
    path = _origin(module)
    return _digest({module: path}) if path is not None else ""
