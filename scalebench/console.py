"""The rich consoles every command prints through (one place decides the width)."""

from __future__ import annotations

import os
import sys

from rich.console import Console

# Logs and CI output are not terminals: give tables room instead of rich's 80-column default.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)
