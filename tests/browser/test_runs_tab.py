"""The Runs tab in a real browser: sort, filter by tag, tick three runs and compare them.

Three tiny energy runs are made with the CLI's code path (``numl energy run --set ...``) into the server's
runs folder before the page opens, and tagged ``sweep``; a fourth run without the tag stands beside them.
These runs belong to no browser session, so the table lists them because "All runs" is its default view.
The test reads what a user sees: the rows in the order the table shows them, the config fields that differ
and that every overlaid plot drew data.
"""

from __future__ import annotations

import json

import pytest
from fixtures.browser import every_plot_drew, open_runs_tab

from numl_core import workflows
from numl_core.cli import run_workflow
from numl_core.runs import RunStore

pytestmark = pytest.mark.browser

#: Energy runs of well under a second each; they differ in seed and epochs.
TINY_ENERGY = (
    "n_events=700",
    "d_model=16",
    "nhead=2",
    "num_layers=1",
    "dim_feedforward=32",
    "batch_size=128",
)
SWEEP = ((1, 2), (2, 3), (3, 4))
"""(seed, epochs) of the three compared runs."""
METRIC = "metric: E res68 (CC)"
ROWS = ".numl-runs-table .tabulator-row"


@pytest.fixture(scope="module")
def sweep(server) -> list[str]:
    """Ids of three finished tiny energy runs tagged ``sweep`` in the server's store (plus an untagged
    failed run); made as ``numl energy run --seed S --set epochs=E ...`` makes them."""
    store, wf = RunStore(server.runs_root), workflows.get("energy")
    for seed, epochs in SWEEP:
        run_workflow(
            wf, "run", None, "cpu", seed, str(server.runs_root), None, (*TINY_ENERGY, f"epochs={epochs}")
        )
    ids = [info["id"] for info in store.list()]
    for run_id in ids:
        store.get(run_id).write_notes(["sweep"], "seed and epochs scan")
    other = store.create("energy", wf.config_cls(device="cpu"))
    other.update_info({"state": "failed", "action": "run"})
    return ids


def shown_ids(page) -> list[str]:  # noqa: ANN001 - playwright's sync Page
    """Run ids in the order the Runs table shows them."""
    return [t.strip() for t in page.locator(f"{ROWS} .tabulator-cell[tabulator-field=id]").all_inner_texts()]


def test_sort_filter_by_tag_and_compare_three_runs(server, make_dashboard, sweep) -> None:
    headline = {i: json.loads((server.runs_root / i / "run.json").read_text())["headline"] for i in sweep}
    by_resolution = sorted(sweep, key=lambda i: headline[i]["E res68 (CC)"])
    dash = make_dashboard().open(server.app_url)
    page = dash.page
    open_runs_tab(dash)
    dash.wait_until(lambda: page.locator(ROWS).count() == 4, 30, "all four runs under 'All runs'")

    page.locator(".numl-runs-filter-tag select").select_option(label="sweep")
    dash.wait_until(lambda: set(shown_ids(page)) == set(sweep), 30, "the three runs tagged 'sweep'")
    header = page.locator(f'.numl-runs-table .tabulator-col[tabulator-field="{METRIC}"] .tabulator-col-title')
    header.click()
    dash.wait_until(lambda: shown_ids(page) in (by_resolution, by_resolution[::-1]), 30, "rows sorted")
    first = shown_ids(page)
    header.click()
    dash.wait_until(lambda: shown_ids(page) == first[::-1], 30, "rows sorted the other way")

    for run_id in shown_ids(page):
        page.locator(ROWS, has_text=run_id).locator("input[type=checkbox]").first.click()
    compare = page.locator(".numl-run-compare button")
    dash.wait_until(lambda: not compare.is_disabled(), 30, "Compare to be enabled")
    compare.click()
    page.wait_for_selector("text=Comparing 3 runs")
    diff = page.locator(".numl-config-diff")
    columns = [t.strip() for t in diff.locator(".tabulator-col-title").all_inner_texts() if t.strip()]
    assert columns[0] == "field" and set(columns[1:]) == set(sweep), columns
    fields = {t.strip() for t in diff.locator(".tabulator-cell[tabulator-field=field]").all_inner_texts()}
    assert fields == {"epochs", "seed"}
    configs = {i: json.loads((server.runs_root / i / "config.json").read_text()) for i in sweep}
    for run_id, config in configs.items():  # each run's own values, in its own column
        cells = diff.locator(f'.tabulator-cell[tabulator-field="{run_id}"]').all_inner_texts()
        assert sorted(c.strip() for c in cells) == sorted([str(config["epochs"]), str(config["seed"])])
    assert page.locator(".numl-compare-headline").count() == 1  # one workflow: headline side by side
    page.locator(".numl-compare-curves").wait_for()
    plots = every_plot_drew(page, "the comparison")
    assert max(p["drawn"] for p in plots) >= len(sweep)  # one plot holds a drawn series of each run
