"""Where a number came from: package versions, git commit, host, device."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("scalebench", "torch", "torchvision", "torchmetrics", "numpy", "pandas", "scikit-learn",
            "safetensors", "plotly")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@cache
def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    return out


@cache
def git_commit(path: str | None = None) -> str:
    """HEAD of the scalebench checkout (with '+dirty' when the tree has changes), or 'unknown'.

    A copy without `.git` (a tree shipped to a GPU machine) names its commit in $SCALEBENCH_GIT_COMMIT.
    """
    if os.environ.get("SCALEBENCH_GIT_COMMIT") and path is None:
        return os.environ["SCALEBENCH_GIT_COMMIT"]
    cwd = path or str(Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def provenance(device: str) -> dict[str, object]:
    return {"versions": versions(), "git_commit": git_commit(), "host": socket.gethostname(),
            "platform": platform.platform(), "device_name": device_name(device)}
