"""Screenshot of the dashboard after a small unfolding run, for the README.

Usage: ``python tests/browser/screenshot.py [OUT.png]`` (default ``assets/dashboard.png``).
Serves the app on a free loopback port with runs in a temporary folder, runs a small
unfolding job in Debian's chromium until it is done, and saves the page.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

log = logging.getLogger("screenshot")
REPO = Path(__file__).resolve().parents[2]
#: Enough events and iterations for readable curves and distributions in about a minute on 2 cores.
SHOWCASE = {
    "n_events": "20000",
    "iterations": "3",
    "trials": "1",
    "n_throws": "4",
    "n_bootstrap": "4",
    "epochs": "10",
    "batch_size": "512",
}


def take(out: Path, timeout_s: float = 600.0) -> Path:
    """Run the showcase job in the browser and write the screenshot to ``out``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import Dashboard, launch_chromium, new_page, start_server  # the browser tests' helpers

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p)
                page = new_page(browser)
                page.set_viewport_size({"width": 1400, "height": 1620})
                dash = Dashboard(page).open(server.app_url)
                dash.set_fields(SHOWCASE)
                dash.start()
                dash.wait_until(
                    lambda: "done" in dash.state() or "failed" in dash.state(), timeout_s, "the job"
                )
                if "failed" in dash.state():
                    raise RuntimeError(f"showcase job failed; see {server.log_path}")
                page.wait_for_selector(".numl-unfold-results")
                page.locator(".numl-config").first.evaluate("el => { el.scrollTop = 0; }")
                page.wait_for_timeout(1500)  # let Bokeh finish drawing
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            server.stop()
            log.info("server log:\n%s", server.log_path.read_text()[-2000:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=REPO / "assets" / "dashboard.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    log.info("wrote %s", take(args.out))


if __name__ == "__main__":
    main()
