"""What the report page embeds besides its own HTML: plotly.js once, compressed, and the figures' JSON.

plotly.js (4.8 MB minified in plotly 7) is most of a report, so it travels gzip-compressed and
base64-encoded (2.0 MB) in a non-executed `<script type="application/octet-stream">` block; the
page's loader inflates it with the browser's `DecompressionStream` (Chromium 80, Firefox 113,
Safari 16.4) and runs it as an inline script, which the page's Content-Security-Policy already
allows. It is the plotly.js that plotly.py ships, so figures and renderer always match. Each
figure's JSON drops its template, which is the same for every chart and embedded once.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import re
from pathlib import Path

import plotly.graph_objects as go

TEMPLATE = "plotly_white"


@functools.cache
def plotly_js_gzip_b64() -> str:
    """plotly.py's own plotly.min.js, gzip-compressed (deterministic: mtime 0) and base64-encoded."""
    import plotly

    raw = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def _safe(payload: str, what: str) -> str:
    """JSON for a <script> block: < and > as \\u escapes (only strings hold them), and never '</'."""
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e")
    if re.search(r"</", payload, re.I):  # defence in depth: never let data close the block
        raise ValueError(f"{what} JSON contains '</'; refusing to embed it")
    return payload


@functools.cache
def _template() -> str:
    import plotly.io as pio

    return go.Figure(layout={"template": pio.templates[TEMPLATE]}).to_json()


def template_json() -> str:
    """The shared Plotly template every chart of the report uses, as JSON for one <script> block."""
    return _safe(json.dumps(json.loads(_template())["layout"]["template"], separators=(",", ":")), "template")


TITLE_ROOM = 40  # px of top margin a figure's own title takes


def figure_json(fig: go.Figure, what: str = "figure", drop_title: bool = False) -> str:
    """The figure's JSON without the shared template (the page's loader puts it back; a figure with another
    template keeps its own), and without its title when the page shows it as HTML (`drop_title`)."""
    d = json.loads(fig.to_json())  # plotly's encoder: numpy arrays as compact base64 typed arrays
    layout = d.setdefault("layout", {})
    if drop_title and layout.pop("title", None) is not None and "t" in layout.get("margin", {}):
        layout["margin"]["t"] = max(30, layout["margin"]["t"] - TITLE_ROOM)
    if layout.get("template") == json.loads(_template())["layout"]["template"]:
        layout.pop("template")
    return _safe(json.dumps(d, separators=(",", ":")), what)
