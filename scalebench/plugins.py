"""Loading generator classes so that a broken third-party plugin is named, not a traceback.

A plugin (an entry point of the `scalebench.generators` group) is someone else's code: its
import may raise anything or even call `sys.exit`. When a sweep needs it, that is the user's
to fix (a `PluginError` naming the plugin, exit 2); when it is not needed (`--only gpt`) it
is never imported; `scalebench list` shows it as broken and lists the rest. A built-in
generator that fails to import is a bug in scalebench and keeps its traceback.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from scalebench.errors import PluginError
from scalebench.generators import GENERATORS


def plugin_targets() -> dict[str, str]:
    """Entry-point name → "module:attr" of the installed generator plugins."""
    if GENERATORS.group is None:
        return {}
    return {ep.name: ep.value for ep in entry_points(group=GENERATORS.group)}


def describe_failure(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"it called sys.exit({e.code!r}) while being imported"
    return f"{type(e).__name__}: {e}".strip().rstrip(":")


def generator_class(name: str) -> Any:
    """The class registered as `name` (imports it); a plugin that cannot load → PluginError."""
    key = GENERATORS.canonical(name)  # unknown names raise RegistryError with did-you-mean
    try:
        return GENERATORS.get(key)
    except (Exception, SystemExit) as e:  # noqa: BLE001 — a plugin may raise anything, even SystemExit
        plugins = plugin_targets()
        if key not in plugins or GENERATORS.target(key) != plugins[key]:
            raise  # a built-in generator: a bug, keep the traceback
        raise PluginError(f"generator plugin {key!r} ({plugins[key]}) cannot be imported: {describe_failure(e)}; "
                          "fix or uninstall that package, or leave it out (e.g. --only)") from e
