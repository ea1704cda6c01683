"""The HTML report in a real headless Chromium: renders offline, no errors, the table as derived.

Needs /usr/bin/chromium (`make test` installs Debian's `chromium` through `make browser`) and the
Python `playwright` package (dev extra; no `playwright install` — we drive the system Chromium).
Missing either is a test FAILURE, not a skip: the report's promise is that it works in a browser.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from scalebench.report.charts import FLOOR_NAME
from scalebench.report.table import scalability_table
from scalebench.report.tablefmt import table_display
from scalebench.results import load_results
from tests.report_fixtures import EMOJI, XSS, synthetic_zoo

CHROMIUM = os.environ.get("SCALEBENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
LAYOUT = """() => {
  const top = sel => document.querySelector(sel).getBoundingClientRect().top + window.scrollY;
  const colour = kind => getComputedStyle(document.querySelector('td.v-' + kind)).color;
  const blocks = Array.from(document.body.children).filter(e => e.tagName !== 'SCRIPT' && !e.id.startsWith('js-plotly'));
  return {
    tableTop: top('#scalability-table'), firstChartTop: top('div.plotly-chart'),
    provenanceTop: top('details#provenance'), provenanceOpen: document.querySelector('details#provenance').open,
    lastBlock: blocks[blocks.length - 1].id, text: document.body.innerText,
    verdictColours: {yes: colour('yes'), worse: colour('worse'), floor: colour('floor')},
    qualityAxis: document.getElementById('chart-quality_vs_K')._fullLayout.yaxis.type,
  };
}"""
ALL_RENDERED = """() => {
  const divs = Array.from(document.querySelectorAll('div.plotly-chart'));
  return divs.length > 0 && divs.every(d => d.querySelector('.main-svg'));
}"""


def _require_browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: the report's browser test needs it. Run `make browser` "
                    "(as root or with sudo: installs Debian's chromium), `apt-get install -y chromium`, "
                    "or set SCALEBENCH_CHROMIUM.", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Python package `playwright` is missing: `pip install -e '.[dev]'` (no `playwright install` "
                    "needed; the test uses the system Chromium)", pytrace=False)
    return sync_playwright


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from scalebench.report.html import write_report

    root = tmp_path_factory.mktemp("browser")
    run = synthetic_zoo(root / "data")
    index = write_report([run], root / "out", cards={})
    return run, index


def test_report_renders_offline_in_chromium(report, tmp_path):
    sync_playwright = _require_browser()
    run, index = report
    url = index.resolve().as_uri()
    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            t0 = time.perf_counter()
            page.goto(url, wait_until="load")
            page.wait_for_function(ALL_RENDERED, timeout=15_000)
            load_s = time.perf_counter() - t0
            charts = page.eval_on_selector_all(
                "div.plotly-chart", "ds => ds.map(d => [d.dataset.chart, d.querySelectorAll('.main-svg').length])")
            chart_errors = page.evaluate("window.scalebenchChartErrors")
            header = page.eval_on_selector_all("#scalability-table thead th", "ths => ths.map(t => t.textContent)")
            rows = page.eval_on_selector_all(
                "#scalability-table tbody tr:not(.group)",
                "trs => trs.map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent))")
            legend = page.eval_on_selector_all(".legendtext", "es => es.map(e => e.textContent)")
            scripts = page.evaluate("document.querySelectorAll('script:not([type=\"application/json\"])').length")
            layout = page.evaluate(LAYOUT)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()

    assert not console_errors, console_errors
    assert not page_errors, page_errors
    assert not dialogs, f"a user string ran as script: {dialogs}"
    assert [u for u in requests if u != url] == [], "the report made network/file requests"
    assert len(charts) >= 8 and all(n >= 1 for _, n in charts), charts
    assert chart_errors == []
    expected = table_display(scalability_table(load_results(run), cards={}))
    assert header == list(expected.columns)
    assert rows == expected.values.tolist()
    assert XSS in " ".join(legend)  # Plotly shows the escaped name literally
    assert scripts == 2  # plotly.js + the loader; no injected <script>
    # top-down: the table, then the charts; provenance is the last block and starts collapsed
    assert layout["tableTop"] < layout["firstChartTop"] < layout["provenanceTop"]
    assert layout["provenanceOpen"] is False and layout["lastBlock"] == "provenance"
    assert not EMOJI.search(layout["text"]), EMOJI.findall(layout["text"])
    colours = layout["verdictColours"]  # coloured marks: green / red / amber, not emoji glyphs
    assert colours["yes"] == "rgb(23, 107, 29)" and colours["worse"] == "rgb(136, 0, 0)"
    assert colours["floor"] == "rgb(11, 90, 122)"
    assert layout["qualityAxis"] == "log"  # FID ~80 → ~0.6 in the zoo
    assert FLOOR_NAME in legend
    assert load_s < 15


def test_png_export_with_kaleido(tmp_path):
    _require_browser()
    import numpy as np
    import plotly.graph_objects as go

    from scalebench.report.charts import sample_grid
    from scalebench.report.images import write_pngs

    figs = {"line": go.Figure(go.Scatter(x=[1, 2, 4], y=[3, 2, 1], name=XSS)),
            "grid": sample_grid({"a": np.random.default_rng(0).random((16, 1, 8, 8))})}
    paths = write_pngs(figs, tmp_path / "png", scale=1)
    assert [p.name for p in paths] == ["line.png", "grid.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000
