"""Cancel, resume and rerun in a real browser: a tiny energy job is started and cancelled on its page, resumed
from the Runs tab (it continues in its own run folder), and rerun from its page as a new run; the test reads
what a user sees: the job panel's state, progress and device lines and the states in the Runs table."""

from __future__ import annotations

import json
import re

import pytest
from fixtures.browser import ENERGY_EPOCHS, fill_energy_form, open_runs_tab, table_state, wait_for_table_state

pytestmark = pytest.mark.browser


def test_a_cancelled_job_resumes_from_the_runs_tab_and_reruns_as_a_new_run(server, make_dashboard) -> None:
    dash = make_dashboard().open(server.app_url + "?page=energy")
    page = dash.page
    fill_energy_form(dash)
    dash.start()
    dash.wait_until(lambda: "running" in dash.state(), 60, "the job to run")
    dash.wait_until(lambda: dash.metric_points() > 0, 60, "the first epochs")
    progress = dash.text(".numl-job-progress p")
    assert re.fullmatch(r"\d+ % · elapsed \d+ s · ETA (—|\d.*)", progress), progress
    assert dash.text(".numl-job-device p").startswith("device: CPU, ")
    dash.cancel()
    dash.wait_until(lambda: "cancelled" in dash.state(), 60, "the cancelled state")
    assert not page.locator(".numl-resume button").is_disabled()
    (info,) = server.run_infos()
    run_id, metrics = info["id"], server.runs_root / info["id"] / "metrics.jsonl"
    epochs_at_cancel = {json.loads(line)["step"] for line in metrics.read_text().splitlines()}
    assert 0 < len(epochs_at_cancel) < ENERGY_EPOCHS

    open_runs_tab(dash)
    wait_for_table_state(dash, server, run_id, "cancelled", 30)
    row = page.locator(".numl-runs-table .tabulator-row", has_text=run_id)
    row.locator("input[type=checkbox]").first.click()
    page.locator(".numl-run-resume button").click()
    page.wait_for_url("**page=energy*")  # the job panel of the run's page shows the resumed job
    dash.wait_until(lambda: "done" in dash.state(), 120, "the resumed job to finish")
    assert run_id in dash.text(".numl-job-status p") and dash.text(".numl-job-progress p").startswith("100 %")
    info = json.loads((server.runs_root / run_id / "run.json").read_text())
    assert (info["state"], info["resumes"]) == ("done", 1)
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert {r["step"] for r in records} == set(range(ENERGY_EPOCHS))
    first_epoch = [r["t"] for r in records if r["step"] == 0]
    assert max(first_epoch) < info["started_at"]  # continued from its checkpoint: epoch 0 was not redone

    page.locator(".numl-rerun button").click()
    dash.wait_until(lambda: len(server.run_infos()) == 2, 30, "a new run folder")
    new_id = next(i["id"] for i in server.run_infos() if i["id"] != run_id)
    dash.wait_until(lambda: new_id in dash.text(".numl-job-status p"), 30, "the new run on the page")
    dash.wait_until(lambda: "done" in dash.state(), 120, "the rerun to finish")

    open_runs_tab(dash)
    wait_for_table_state(dash, server, new_id, "done", 30)
    assert table_state(page, run_id) == "done"
    assert page.locator(".numl-runs-table .tabulator-row").count() == 2
