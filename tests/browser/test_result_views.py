"""Every result view of every workflow draws something, opened from the Runs page in a real browser.

A tiny finished run of each workflow is written into the server's run store; the test ticks it in the
Runs table and opens each tab of its result. A tab passes when it shows a plot or a table, and EVERY plot it
shows (each Bokeh plot of a grid, an overlay's legend included in its plot) has an element and a frame of
non-zero size and glyphs with data (:func:`fixtures.browser.every_plot_drew`): one blank plot in a grid
fails the tab. That tables print no non-zero number as 0 is checked on the table helper itself
(``tests/test_app_components.py``).
"""

from __future__ import annotations

import time

import pytest
from fixtures.browser import every_plot_drew
from fixtures.energy import ENERGY_TINY
from fixtures.generator import GENERATOR_TINY
from fixtures.uncertainty import UNCERTAINTY_TINY
from fixtures.unfold import UNFOLD_TINY
from fixtures.xsec import XSEC_TINY

from numl_core import workflows
from numl_core.jobs import Progress
from numl_core.runs import RunStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TINY = {
    "unfold": UNFOLD_TINY,
    "energy": ENERGY_TINY,
    "generator": GENERATOR_TINY,
    "uncertainty": {**UNCERTAINTY_TINY, "observation": ", ".join(["0.1"] * 6)},
    "xsec": {**XSEC_TINY, "with_transfer": True},
}
RUN_TABS = ("Metrics", "Config", "Info")
"""Tabs every run has besides its result; Config and Info are JSON, not plots."""
CONTROL_TABS = {"Export": "download buttons", "Observation": "a form to score observations"}
"""Result tabs that hold controls rather than a view; they must still open."""


@pytest.fixture(scope="module")
def finished_runs(server) -> dict[str, str]:
    """One finished tiny run per workflow in the server's store: {workflow: run id}."""
    store, ids = RunStore(server.runs_root), {}
    for name, values in TINY.items():
        wf = workflows.get(name)
        config = wf.config_cls(**values)
        run = store.create(name, config)
        wf.run(config, Progress(run)).save(run)
        run.update_info({"state": "done"})
        ids[name] = run.id
    return ids


def _check_tab(page, title: str) -> None:  # noqa: ANN001 - playwright's sync Page
    """The open tab shows a plot or a table, and every plot it shows drew data in a frame of non-zero size."""
    tables = [t for t in page.locator(".tabulator").all() if t.is_visible()]
    plots = every_plot_drew(page, f"tab {title!r}", at_least_one=len(tables) <= 1)
    assert plots or len(tables) > 1, f"tab {title!r} shows neither a plot nor a table"


def test_every_result_tab_of_every_workflow_draws(server, make_dashboard, finished_runs) -> None:
    dash = make_dashboard().open(server.app_url)
    page = dash.page
    dash.click_tab("Runs")
    page.wait_for_selector(".numl-runs-table")
    page.locator(".bk-btn", has_text="All runs").first.click()
    dash.wait_until(lambda: page.locator(".numl-runs-table .tabulator-row").count() == len(TINY), 30, "runs")
    before = set(page.locator(".bk-tab").all_inner_texts())
    checked: dict[str, list[str]] = {}
    for name, run_id in finished_runs.items():
        row = page.locator(".numl-runs-table .tabulator-row", has_text=run_id)
        row.locator("input[type=checkbox]").first.click()
        page.wait_for_selector(f"text=Run {run_id}: done")
        dash.wait_until(lambda: page.locator(".bk-tab", has_text="Result").count() > 0, 60, "the result")
        titles = [t for t in page.locator(".bk-tab").all_inner_texts() if t not in before]
        result_tabs = [t for t in titles if t not in (*RUN_TABS, "Result")]
        assert result_tabs, f"{name}: the result has no tabs ({titles})"
        for title in result_tabs:
            page.locator(".bk-tab", has_text=title).last.click()
            time.sleep(1.5)  # Bokeh lays the newly shown plots out
            if title not in CONTROL_TABS:
                _check_tab(page, f"{name}: {title}")
                checked.setdefault(name, []).append(title)
        row.locator("input[type=checkbox]").first.click()  # untick before the next run
        page.wait_for_selector("text=Tick one run to inspect it")
    assert set(checked) == set(TINY) and sum(map(len, checked.values())) >= 15
