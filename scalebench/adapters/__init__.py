"""Adapters: generators that wrap another library's models, registered beside the zoo's families.

The zoo's `FAMILIES` table (`scalebench.methods`) is for families with a checkpoint and a
`train()`; an adapter has neither — it loads whatever local model its `path` argument names —
so it gets this second small table, which `scalebench.registry` registers after the families.
Nothing here imports the wrapped library: each adapter imports it when a model is loaded.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from scalebench.errors import ScalebenchError

ADAPTERS: dict[str, str] = {
    "transformers": "scalebench.adapters.transformers:TransformersGenerator",
    "diffusers": "scalebench.adapters.diffusers:DiffusersGenerator",
}
"""Generator name → "module:class" of each adapter."""


class AdapterError(ScalebenchError, ValueError):
    """A model an adapter cannot load or use (one line naming the path or value and the fix)."""


def require(module: str, extra: str) -> ModuleType:
    """Import an optional library, or one line saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise AdapterError(f"{module} is not installed ({e}); pip install 'scalebench[{extra}]'") from None
