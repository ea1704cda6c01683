"""Shipped checkpoints (safetensors), their index, and the only place weights are read or written.

Weights are loaded with `safetensors` (no pickle). Each file carries its training recipe,
wall time and final loss as string metadata. `index.json` beside them records, per
checkpoint, its file, content hash and **parents** (the checkpoints it was built from: a
distilled student names its teacher), so `lineage_hash` — which enters every grid point's
identity — changes when a checkpoint *or any ancestor* is retrained.

**Replicates.** `<name>-r<N>` is the checkpoint `<name>` trained again with the same recipe and
training seed `recipe.seed + N` (`scalebench train <name> --replicate N`); its index entry adds
`replicate_of` and `seed`. Generators name their checkpoint in code, so a replicate reaches them
through `substitute(base, replicate)`: inside that block every load or save of `base` reads or
writes the replicate instead — one mechanism for every family, no per-class argument.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from scalebench.atomic import atomic_write, atomic_write_text

ZOO_DIR = Path(__file__).resolve().parent
INDEX = "index.json"
META_REQUIRED = ("train_seconds", "final_loss", "recipe")
"""Every shipped checkpoint says how it was made: recipe, wall time and final training loss."""


REPLICATE = re.compile(r"(?P<base>.+)-r(?P<n>[1-9][0-9]*)")
"""A replicate's name: the shipped checkpoint's name, "-r", the replicate number (≥ 1)."""

_SUBSTITUTES: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("zoo_substitutes", default=None)
_USED: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("zoo_substitutes_used", default=None)
_EXCLUSIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("zoo_substitutes_exclusive", default=False)


def replicate_name(base: str, n: int) -> str:
    """The checkpoint name of replicate `n` of `base` (n = 0 is `base` itself)."""
    if n < 0:
        raise ValueError(f"replicate number {n} must be ≥ 0")
    return f"{base}-r{n}" if n else base


def replicate_base(name: str, directory: Path | None = None) -> str:
    """The shipped checkpoint a checkpoint replicates (its index's `replicate_of`), else the name itself."""
    return read_index(directory).get(name, {}).get("replicate_of") or name


@contextlib.contextmanager
def substitute(base: str, replicate: str, exclusive: bool = False) -> Iterator[set[str]]:
    """Within the block, loading or saving checkpoint `base` uses `replicate` instead.

    Yields the set of substituted names actually loaded or saved, so a caller can check that the
    code it ran did read the replicate (a generator that loads its weights lazily, after the block,
    would otherwise silently sample the shipped checkpoint). `exclusive`: saving any checkpoint
    that is not substituted raises before writing (training a replicate never overwrites another)."""
    used: set[str] = set()
    t1 = _SUBSTITUTES.set({**(_SUBSTITUTES.get() or {}), base: replicate})
    t2 = _USED.set(used)
    t3 = _EXCLUSIVE.set(exclusive or _EXCLUSIVE.get())
    try:
        yield used
    finally:
        _EXCLUSIVE.reset(t3)
        _USED.reset(t2)
        _SUBSTITUTES.reset(t1)


def _resolve(name: str) -> str:
    """`name`, or the replicate substituted for it by an enclosing `substitute` block."""
    sub = (_SUBSTITUTES.get() or {}).get(name)
    if sub is None:
        return name
    used = _USED.get()
    if used is not None:
        used.add(name)
    return sub


def checkpoint_path(name: str, directory: Path | None = None) -> Path:
    return (directory or ZOO_DIR) / f"{name}.safetensors"


def read_index(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """name → {file, sha256, parents, size_bytes}; {} when there is no index yet."""
    path = (directory or ZOO_DIR) / INDEX
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def save_checkpoint(name: str, state: dict[str, torch.Tensor], meta: dict[str, Any],
                    directory: Path | None = None, parents: Sequence[str] = ()) -> Path:
    """Write `<name>.safetensors` atomically with JSON metadata and record it in the index.

    `meta` must hold `recipe`, `train_seconds` and `final_loss`; `parents` names the
    checkpoints (in the same directory) this one was built from.
    """
    missing = [k for k in META_REQUIRED if k not in meta]
    if missing:
        raise ValueError(f"checkpoint {name!r}: metadata lacks {missing}; pass fit()'s stats into meta")
    base, name = name, _resolve(name)
    if name == base and _EXCLUSIVE.get():
        raise RuntimeError(f"checkpoint {base!r} is not the replicate being trained; nothing written")
    replica = {"replicate_of": base, "seed": (meta.get("recipe") or {}).get("seed")} if name != base else {}
    directory = directory or ZOO_DIR
    path = checkpoint_path(name, directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    meta = {**meta, "parents": list(parents), **replica}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta, sort_keys=True, default=str)})
        os.chmod(tmp, 0o644)  # safetensors writes 0600; shipped package data must be world-readable

    atomic_write(path, write)
    _file_hash.cache_clear()
    index = read_index(directory)
    index[name] = {"file": path.name, "sha256": file_hash(path), "parents": list(parents),
                   "size_bytes": path.stat().st_size, **replica}
    atomic_write_text(directory / INDEX, json.dumps(index, indent=2, sort_keys=True) + "\n")
    return path


def load_checkpoint(name: str, device: str = "cpu", directory: Path | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load weights and metadata (of the replicate, inside `substitute`); a missing file names the
    command that makes it."""
    name = _resolve(name)
    path = checkpoint_path(name, directory)
    if not path.exists():
        m = REPLICATE.fullmatch(name)
        how = f"scalebench train {m['base']} --replicate {m['n']}" if m else f"scalebench train {name}"
        raise FileNotFoundError(f"checkpoint {path} is missing; create it with `{how}`")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    return load_file(str(path), device=device), meta


def load_module(name: str, build: Callable[[dict[str, Any]], torch.nn.Module], device: str | torch.device = "cpu",
                directory: Path | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build a network from a checkpoint's metadata, load its weights, freeze it for inference.

    `build(meta)` returns the untrained module (its config comes from the metadata, so a
    checkpoint trained with another width still loads). Strict loading: a key mismatch is an error.
    """
    state, meta = load_checkpoint(name, "cpu", directory)
    net = build(meta)
    net.load_state_dict(state)
    net = net.to(device).eval()
    net.requires_grad_(False)
    return net, meta


def file_hash(path: Path) -> str:
    """Short sha256 of a file's bytes, memoised per process by (path, mtime, size): a file rewritten
    in place (a retrained model in the user's directory) is hashed again."""
    st = Path(path).stat()
    return _file_hash(Path(path), st.st_mtime_ns, st.st_size)


@functools.cache
def _file_hash(path: Path, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def checkpoint_hash(name: str, directory: Path | None = None) -> str:
    """Short content hash of a checkpoint file ("missing" when absent)."""
    path = checkpoint_path(name, directory)
    return file_hash(path) if path.exists() else "missing"


def lineage(name: str, directory: Path | None = None) -> dict[str, str]:
    """{checkpoint: content hash} for `name` and all its ancestors (from the index)."""
    index = read_index(directory)
    out: dict[str, str] = {}
    todo = [name]
    while todo:
        n = todo.pop()
        if n in out:
            continue
        out[n] = checkpoint_hash(n, directory)
        todo.extend(index.get(n, {}).get("parents", []))
    return dict(sorted(out.items()))


def lineage_hash(names: Sequence[str], directory: Path | None = None) -> dict[str, str]:
    """Hashes of every checkpoint in `names` and of their ancestors, for point identity."""
    out: dict[str, str] = {}
    for n in names:
        out.update(lineage(n, directory))
    return dict(sorted(out.items()))
