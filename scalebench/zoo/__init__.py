"""Shipped checkpoints (safetensors) and the only place weights are read or written.

Weights are loaded with `safetensors` (no pickle). Each file carries its training recipe and
metrics as string metadata, and its content hash enters every grid point's identity, so a
retrained checkpoint re-runs the points measured with the old one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

ZOO_DIR = Path(__file__).resolve().parent


def checkpoint_path(name: str) -> Path:
    return ZOO_DIR / f"{name}.safetensors"


def save_checkpoint(name: str, state: dict[str, torch.Tensor], meta: dict[str, Any],
                    directory: Path | None = None) -> Path:
    """Write `<name>.safetensors` atomically (temp file + rename) with JSON-encoded metadata."""
    path = (directory or ZOO_DIR) / f"{name}.safetensors"
    tmp = path.with_suffix(".tmp")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta, sort_keys=True)})
    os.chmod(tmp, 0o644)  # safetensors writes 0600; shipped package data must be world-readable
    os.replace(tmp, path)
    return path


def load_checkpoint(name: str, device: str = "cpu", directory: Path | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load weights and metadata; a missing file names the command that makes it."""
    path = (directory or ZOO_DIR) / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} is missing; create it with `scalebench train {name}`")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    return load_file(str(path), device=device), meta


def checkpoint_hash(name: str, directory: Path | None = None) -> str:
    """Short content hash of a checkpoint file ("missing" when absent)."""
    path = (directory or ZOO_DIR) / f"{name}.safetensors"
    if not path.exists():
        return "missing"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
