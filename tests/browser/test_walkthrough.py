"""One workflow walked through in a real browser, as a user would: a tiny energy job is started and
cancelled, resumed from the Runs tab until it finishes, rerun from its job panel, and run a third time with
another seed and fewer epochs; the three runs are then compared in the Runs tab. The test reads what the
user sees there: the three runs named, the config fields that differ with each run's values, and the
overlaid metric curves and result plots (every plot drew data; one plot holds a curve of each run)."""

from __future__ import annotations

import json

import pytest
from fixtures.browser import (
    ENERGY_EPOCHS,
    compare_ticked,
    config_diff,
    every_plot_drew,
    fill_energy_form,
    open_runs_tab,
    table_state,
    tick_run,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

THIRD = {"seed": "7", "epochs": "6"}
"""What the third run changes in the form."""
RESULT_PLOT = "res68 vs true energy: transformer"
"""Title of the overlaid result plot of energy runs (numl_core.overlays.energy_curves)."""


def _wait_done(dash, what: str) -> None:  # noqa: ANN001 - the conftest's Dashboard
    dash.wait_until(lambda: "done" in dash.state(), 180, what)


def test_start_cancel_resume_rerun_and_compare_three_runs(server, make_dashboard) -> None:
    dash = make_dashboard().open(server.app_url + "?page=energy")
    page = dash.page
    fill_energy_form(dash)
    dash.start()
    dash.wait_until(lambda: dash.metric_points() > 0, 60, "the first epochs")
    dash.cancel()
    dash.wait_until(lambda: "cancelled" in dash.state(), 60, "the cancelled state")
    (first,) = [i["id"] for i in server.run_infos()]

    open_runs_tab(dash)
    dash.wait_until(lambda: table_state(page, first) == "cancelled", 30, "the cancelled run in the table")
    tick_run(page, first)
    page.locator(".numl-run-resume button").click()
    page.wait_for_url("**page=energy*")
    _wait_done(dash, "the resumed run to finish")
    assert first in dash.text(".numl-job-status p")

    page.locator(".numl-rerun button").click()
    dash.wait_until(lambda: len(server.run_infos()) == 2, 30, "the rerun's folder")
    (second,) = [i["id"] for i in server.run_infos() if i["id"] != first]
    dash.wait_until(lambda: second in dash.text(".numl-job-status p"), 30, "the rerun on the page")
    _wait_done(dash, "the rerun to finish")

    dash.set_fields(THIRD)
    dash.start()
    dash.wait_until(lambda: len(server.run_infos()) == 3, 30, "the third run's folder")
    (third,) = [i["id"] for i in server.run_infos() if i["id"] not in (first, second)]
    dash.wait_until(lambda: third in dash.text(".numl-job-status p"), 30, "the third run on the page")
    _wait_done(dash, "the third run to finish")
    ids = [first, second, third]
    infos = {i: json.loads((server.runs_root / i / "run.json").read_text()) for i in ids}
    assert [infos[i]["state"] for i in ids] == ["done"] * 3 and infos[first]["resumes"] == 1
    assert infos[second]["rerun_of"] == first

    open_runs_tab(dash)
    dash.wait_until(lambda: all(table_state(page, i) == "done" for i in ids), 30, "three finished runs")
    for run_id in ids:
        tick_run(page, run_id)
    compare = compare_ticked(dash, 3)
    heading = compare.locator("text=Comparing 3 runs").first.inner_text()
    assert all(run_id in heading for run_id in ids), heading
    columns, cells = config_diff(compare)
    assert set(columns) == set(ids)
    assert sorted(cells["field"]) == ["epochs", "seed"]
    configs = {i: json.loads((server.runs_root / i / "config.json").read_text()) for i in ids}
    assert configs[first]["epochs"] == configs[second]["epochs"] == ENERGY_EPOCHS
    assert (configs[third]["epochs"], configs[third]["seed"]) == (6, 7)
    for run_id in ids:  # each run's own epochs and seed, in the rows of the fields
        shown = dict(zip(cells["field"], cells[run_id], strict=True))
        assert shown == {"epochs": str(configs[run_id]["epochs"]), "seed": str(configs[run_id]["seed"])}

    compare.locator(".numl-compare-results").wait_for()
    compare.locator(".numl-compare-curves").wait_for()
    plots = {p["title"]: p for p in every_plot_drew(page, "the comparison")}
    assert plots[RESULT_PLOT]["drawn"] >= len(ids), plots[RESULT_PLOT]  # a res68 curve of each run
    metric_plots = [p for title, p in plots.items() if not title.startswith("res68 vs true energy")]
    assert metric_plots and max(p["drawn"] for p in metric_plots) >= len(ids)
