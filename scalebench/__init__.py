"""scalebench: measured inference-time scaling curves (sequence steps S × refinement steps K)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
