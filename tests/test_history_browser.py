"""The history site in a real headless Chromium: offline, no console error, no request, charts drawn.

Same habits as tests/test_report_browser.py: the system Chromium through the Python `playwright`
package; a missing browser is a failure, not a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scalebench.history.site import build_site
from scalebench.history.synthetic import Noise, write_store
from tests.test_report_browser import ARGS, CHROMIUM, _require_browser

XSS = "<script>alert(1)</script>"
ALL_DRAWN = """() => {
  const divs = Array.from(document.querySelectorAll(SEL));
  return divs.length > 0 && divs.every(d => d.getAttribute('data-drawn') === '1' && d.querySelector('.main-svg'));
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("history-browser")
    store = root / "store"
    shas = write_store(store, 20, Noise(0.03, (0.05,)), seed=3, step_at=10, step=0.3)
    # a hostile commit subject and spec name reach the page only escaped
    entry = next((store / "synthetic-cpu" / shas[-1]).iterdir()) / "entry.json"
    entry.write_text(entry.read_text().replace("synthetic commit 19", XSS.replace('"', "'")))
    index, points = build_site(store, root / "site", reports=1)
    return index, points, shas


def _open(page, url, console_errors, page_errors, requests, dialogs):
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url, wait_until="load")


def test_history_site_renders_offline_in_chromium(site, tmp_path):
    sync_playwright = _require_browser()
    index, points, shas = site
    url = index.resolve().as_uri()
    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    stepped = next(p for p in points if p.findings)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _open(page, url, console_errors, page_errors, requests, dialogs)
            page.wait_for_function(ALL_DRAWN.replace("SEL", "'div.plotly-chart.eager'"), timeout=15_000)
            # open one panel through the index link: its charts draw on demand
            page.click(f'#index a[href="#p-{stepped.key}"]')
            sel = f"'#p-{stepped.key} div.plotly-chart'"
            page.wait_for_function(ALL_DRAWN.replace("SEL", sel), timeout=15_000)
            panel_open = page.evaluate(f"document.getElementById('p-{stepped.key}').open")
            traces = page.evaluate(f"document.getElementById('chart-lat-{stepped.key}').data.length")
            hover = page.evaluate(f"document.getElementById('chart-lat-{stepped.key}').data[2].customdata[10]")
            findings = page.eval_on_selector_all("#findings tbody tr",
                                                 "trs => trs.map(tr => tr.querySelectorAll('td')[7].textContent)")
            rows = page.eval_on_selector_all("#index tbody tr", "trs => trs.length")
            sparks = page.eval_on_selector_all("#index svg.spark polyline", "ps => ps.length")
            errors = page.evaluate("window.scalebenchChartErrors")
            scripts = page.evaluate("document.querySelectorAll('script:not([type=\"application/json\"])').length")
            text = page.evaluate("document.body.innerText")
            page.screenshot(path=str(tmp_path / "history.png"), full_page=False)
        finally:
            browser.close()
    assert not console_errors, console_errors
    assert not page_errors, page_errors
    assert not dialogs, f"a user string ran as script: {dialogs}"
    assert [u for u in requests if u != url] == [], "the site made network/file requests"
    assert errors == []
    assert panel_open and traces == 3  # p90, p10 (band), median
    assert hover[0] == shas[10] and hover[1].startswith("2026-01-01T10:00")  # hover names the commit and date
    assert findings == [f"{shas[9][:10]}..{shas[10][:10]}"]  # the commit range of the planted step
    assert rows == len(points) and sparks == len(points)
    assert scripts == 2  # plotly.js + the loader: no injected script
    assert XSS in text  # shown literally in the commits table


def test_history_site_links_the_latest_report(site):
    index, points, shas = site
    html = index.read_text(encoding="utf-8")
    rel = f"reports/synthetic-cpu/{shas[-1]}/ci-speed/index.html"
    assert (index.parent / rel).is_file()
    assert f'href="{rel}"' in html
    import plotly

    js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    assert html.count(js[:200]) == 1  # plotly.js inlined once
    assert "<script>alert" not in html
