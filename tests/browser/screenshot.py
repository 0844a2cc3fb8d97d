"""Screenshots of the dashboard for the README and the docs.

Usage: ``python tests/browser/screenshot.py [OUT.png]`` (default ``assets/dashboard.png``) serves the app
on a free loopback port with runs in a temporary folder, runs a small unfolding job in Debian's chromium
until it is done, and saves the page.

``python tests/browser/screenshot.py --all`` also saves each workflow's result view after a small run
(the tiny configs of ``tests/browser/test_result_views.py``; the unfolding one from the same showcase job
as the page) as ``assets/result_WORKFLOW.png``, cropped to the result area under the job panel.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

log = logging.getLogger("screenshot")
REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
#: Enough events and iterations for readable curves and distributions in about a minute on 2 cores.
SHOWCASE = {
    "n_events": "20000",
    "iterations": "3",
    "trials": "1",
    "n_throws": "4",
    "n_bootstrap": "0",
    "epochs": "10",
    "batch_size": "512",
}
#: Workflows whose result view ``--all`` saves, besides the unfolding one, in this order.
OTHER_WORKFLOWS = ("energy", "generator", "uncertainty", "xsec")
#: The result tab to show where the first one is not a drawn plot: energy opens on a table.
RESULT_TAB = {"energy": "Resolution vs energy"}
#: Tall enough that the result area fits without scrolling, which would put the fixed header over it.
RESULT_VIEWPORT = {"width": 1400, "height": 3000}
RESULT = ".numl-result"
"""The job panel's result area (app/components/job_panel.py), which shows a finished run's result view."""


def _import_test_helpers() -> None:
    """Put tests/ and tests/browser/ on the path, so that the browser tests' helpers import."""
    here = Path(__file__).resolve().parent
    for folder in (here, here.parent):  # tests/browser/conftest.py before tests/conftest.py
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
        sys.path.append(str(folder))


@contextmanager
def _browser_session() -> Iterator[tuple[object, object]]:
    """A served dashboard (runs in a temporary folder) and chromium: (server, browser)."""
    _import_test_helpers()
    from conftest import launch_chromium, start_server  # the browser tests' helpers

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p)
                try:
                    yield server, browser
                finally:
                    browser.close()
        finally:
            server.stop()
            log.info("server log:\n%s", server.log_path.read_text()[-2000:])


def _wait_done(dash, server, what: str, timeout_s: float) -> None:  # noqa: ANN001 - conftest's types
    dash.wait_until(lambda: "done" in dash.state() or "failed" in dash.state(), timeout_s, what)
    if "failed" in dash.state():
        raise RuntimeError(f"{what} failed; see {server.log_path}")


def _run_showcase(server, browser, timeout_s: float):  # noqa: ANN001, ANN202 - conftest's types
    """Open the dashboard, run the showcase unfolding job until it is done; the Dashboard."""
    from conftest import Dashboard, new_page

    page = new_page(browser)
    page.set_viewport_size({"width": 1400, "height": 1620})
    dash = Dashboard(page).open(server.app_url)
    dash.set_fields(SHOWCASE)
    dash.start()
    _wait_done(dash, server, "the showcase job", timeout_s)
    page.wait_for_selector(".numl-unfold-results")
    page.locator(".numl-config").first.evaluate("el => { el.scrollTop = 0; }")
    page.wait_for_timeout(1500)  # let Bokeh finish drawing
    return dash


def _save_page(page: Page, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    return out


def _save_result(dash, out: Path, tab: str | None = None, timeout_s: float = 60.0) -> Path:  # noqa: ANN001
    """Crop the visible page's result area (its ``tab`` open, if given) into ``out`` once a plot in it has
    drawn something."""
    from fixtures.browser import drew_something  # the browser tests' check of a drawn canvas

    page = dash.page
    area = page.locator(f"{RESULT}:visible").first
    if tab is not None:
        area.locator(".bk-tab", has_text=tab).first.click()
    area.locator("canvas").first.wait_for(state="visible", timeout=timeout_s * 1000)

    def drawn() -> bool:
        canvases = [c for c in area.locator("canvas").all() if c.is_visible()]
        sized = [c for c in canvases if (b := c.bounding_box()) and b["width"] > 20 and b["height"] > 20]
        return any(drew_something(c.screenshot()) for c in sized)

    dash.wait_until(drawn, timeout_s, f"a drawn plot for {out.name}")
    page.wait_for_timeout(1500)  # let the other plots of the view finish drawing
    out.parent.mkdir(parents=True, exist_ok=True)
    area.screenshot(path=str(out))
    return out


def _run_workflow(server, browser, name: str, timeout_s: float):  # noqa: ANN001, ANN202 - conftest's types
    """Open ``name``'s page, import its tiny config as a JSON file and run it until it is done."""
    from conftest import Dashboard, new_page
    from test_result_views import TINY

    page = new_page(browser)
    page.set_viewport_size(RESULT_VIEWPORT)
    dash = Dashboard(page).open(f"{server.app_url}?page={name}")
    upload = dash.page.locator(".numl-import-json input[type=file]").first
    upload.set_input_files(
        files=[
            {
                "name": f"{name}.json",
                "mimeType": "application/json",
                "buffer": json.dumps(TINY[name]).encode(),
            }
        ]
    )
    imported = dash.page.locator(f"text=Imported {name}.json")  # the form's note (Markdown, no backticks)
    dash.wait_until(lambda: imported.count() > 0, 30, "the import")
    dash.start()
    _wait_done(dash, server, f"the {name} job", timeout_s)
    return dash


def take(out: Path, timeout_s: float = 600.0) -> Path:
    """Run the showcase job in the browser and write the screenshot to ``out``."""
    with _browser_session() as (server, browser):
        return _save_page(_run_showcase(server, browser, timeout_s).page, out)


def take_all(folder: Path = ASSETS, timeout_s: float = 600.0) -> list[Path]:
    """``dashboard.png`` and ``result_WORKFLOW.png`` of every workflow, in ``folder``."""
    written = []
    with _browser_session() as (server, browser):
        dash = _run_showcase(server, browser, timeout_s)
        written.append(_save_page(dash.page, folder / "dashboard.png"))
        dash.page.set_viewport_size(RESULT_VIEWPORT)
        written.append(_save_result(dash, folder / "result_unfold.png"))
        dash.page.context.close()
        for name in OTHER_WORKFLOWS:
            dash = _run_workflow(server, browser, name, timeout_s)
            written.append(_save_result(dash, folder / f"result_{name}.png", RESULT_TAB.get(name)))
            dash.page.context.close()
            log.info("wrote %s", written[-1])
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", nargs="?", type=Path, help="the page screenshot (default assets/dashboard.png)"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="also each workflow's result view, as assets/result_WORKFLOW.png (OUT: their folder)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.all:
        for path in take_all(args.out or ASSETS):
            log.info("wrote %s (%d kB)", path, path.stat().st_size // 1000)
    else:
        log.info("wrote %s", take(args.out or ASSETS / "dashboard.png"))


if __name__ == "__main__":
    main()
