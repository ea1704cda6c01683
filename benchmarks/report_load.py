"""How fast the quick run's HTML report opens in headless Chromium, against the 2 s goal (issue 28).

    flock /tmp/scalebench-cpu.lock .venv/bin/python benchmarks/report_load.py [--reps 7] [--run results/baseline-quick-cpu]

Writes the report once, then opens it `--reps` times, each in a fresh page of one browser: seconds from
navigation to `window.scalebenchReady` (plotly.js running and the first screen's charts drawn), median
and spread. The browser test only checks that the page opens at all within a generous bound (a busy
machine must not fail it); the goal is judged here, on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

GOAL_S = 2.0
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--run", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "baseline-quick-cpu")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from scalebench.report.html import write_report

    with tempfile.TemporaryDirectory() as tmp:
        index = write_report([args.run], Path(tmp) / "report")
        url, size = index.resolve().as_uri(), index.stat().st_size
        loads = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                for _ in range(args.reps):
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    t0 = time.perf_counter()
                    page.goto(url, wait_until="load")
                    page.evaluate("window.scalebenchReady")
                    loads.append(time.perf_counter() - t0)
                    page.close()
            finally:
                browser.close()
    med = statistics.median(loads)
    print(f"report of {args.run} ({size / 1e6:.2f} MB): opened in {med:.2f} s median "
          f"(min {min(loads):.2f}, max {max(loads):.2f}, {args.reps} opens); goal ≤ {GOAL_S:g} s: "
          f"{'met' if med <= GOAL_S else 'NOT met'} ({med / GOAL_S:.2f}× the goal)")


if __name__ == "__main__":
    main()
