"""Static PNGs of the report's charts via kaleido 1.x and a local Chromium, with no network.

kaleido 1.x drives a Chromium through choreographer, which finds one on PATH (`chromium`,
`google-chrome`, …) or at `BROWSER_PATH`. We resolve the browser ourselves so the error
names the fix, hand kaleido plotly.py's own plotly.min.js (a file:// URL), and turn MathJax
off — kaleido would otherwise put MathJax's CDN URL in its page.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


class BrowserNotFound(FileNotFoundError):
    """No Chromium to render with; the message says how to install one."""


def find_chromium() -> str:
    """Path of a Chromium: $SCALEBENCH_CHROMIUM, $BROWSER_PATH, then PATH (chromium first)."""
    for env in ("SCALEBENCH_CHROMIUM", "BROWSER_PATH"):
        p = os.environ.get(env)
        if p:
            if Path(p).is_file() and os.access(p, os.X_OK):
                return p
            raise BrowserNotFound(f"${env}={p!r} is not an executable; point it at chromium or unset it")
    for name in CANDIDATES:
        p = shutil.which(name)
        if p:
            return p
    raise BrowserNotFound("no Chromium found for PNG export; install one (Debian/Ubuntu: `apt-get install -y "
                          "chromium`) or set BROWSER_PATH=/path/to/chrome")


def write_pngs(figures: Mapping[str, go.Figure], out_dir: Path, scale: float = 2.0) -> list[Path]:
    """Write `<name>.png` for each figure into `out_dir` in one browser session."""
    import kaleido
    import plotly

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not figures:
        return []
    browser = find_chromium()
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    specs, paths = [], []
    for name, fig in figures.items():
        path = out_dir / f"{name}.png"
        layout = fig.layout
        specs.append({"fig": fig.to_dict(), "path": path,
                      "opts": {"format": "png", "scale": scale, "width": layout.width or 900,
                               "height": layout.height or 460}})
        paths.append(path)
    kaleido.write_fig_from_object_sync(specs, kopts={"path": browser, "plotlyjs": plotly_js.as_uri(),
                                                     "mathjax": False}, cancel_on_error=True)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"kaleido did not write {missing[0]}")
    return paths
