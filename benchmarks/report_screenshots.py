"""The README's report screenshots, from a run's report, in headless Chromium.

    .venv/bin/python benchmarks/report_screenshots.py results/baseline-quick-cpu

Writes the run's report to a temp dir, then docs/img/report-quick.png (the first 1400 × 1100 of
the page: the summary grid) and docs/img/report-quick-charts.png (the FID vs K small multiples).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from scalebench.report.html import write_report

    with tempfile.TemporaryDirectory() as tmp:
        index = write_report([args.run], Path(tmp) / "report")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(index.resolve().as_uri())
            page.wait_for_timeout(2000)
            page.screenshot(path=str(args.out / "report-quick.png"))
            chart = page.locator("#chart-quality_vs_K")
            chart.scroll_into_view_if_needed()
            page.wait_for_timeout(1500)
            chart.screenshot(path=str(args.out / "report-quick-charts.png"))
            browser.close()
    print(f"wrote {args.out / 'report-quick.png'}, {args.out / 'report-quick-charts.png'}")


if __name__ == "__main__":
    main()
