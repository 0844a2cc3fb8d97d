"""The dashboard in a real browser: pages, a live unfolding job, cancel, reload, URL prefix."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

#: Few events, but small batches and many epochs: the job is still training when the test cancels it.
TINY_UNFOLDING = {
    "n_events": "4000",
    "iterations": "2",
    "trials": "1",
    "n_throws": "0",
    "n_bootstrap": "0",
    "batch_size": "64",
    "epochs": "200",
    "patience": "100",
}


def test_every_page_opens_and_the_url_keeps_session_and_page(server, make_dashboard) -> None:
    dash = make_dashboard().open(server.base + "/")
    token = dash.token
    tabs = [t.strip() for t in dash.page.locator(".bk-tab").all_inner_texts()]
    assert tabs[0] == "Unfolding" and tabs[-1] == "Runs"
    assert dash.page.locator(".numl-field-sample select").count() == 1  # the config widgets
    dash.click_tab("Runs")
    dash.page.wait_for_selector(".numl-runs-table")
    dash.page.wait_for_url("**page=runs*")
    dash.page.reload()
    dash.page.wait_for_selector(".numl-runs-table")  # the Runs page is open again
    assert dash.token == token


def test_unfolding_job_streams_its_loss_curve_and_cancels(server, make_dashboard) -> None:
    dash = make_dashboard().open(server.app_url)
    dash.set_fields(TINY_UNFOLDING)
    dash.start()
    dash.wait_until(lambda: "running" in dash.state(), 60, "the job to run")
    dash.wait_until(lambda: dash.metric_points() > 0, 120, "the first metric points")
    first = dash.metric_points()
    dash.wait_until(lambda: dash.metric_points() >= first + 4, 120, "the loss curve to grow")
    assert "step1_loss (train)" in dash.text(".numl-metric-count p")
    assert dash.page.locator("canvas").count() > 0  # Bokeh draws the curves on canvases

    dash.cancel()
    dash.wait_until(lambda: "cancelled" in dash.state(), 60, "the cancelled state")
    assert not dash.page.locator(".numl-start button").is_disabled()
    infos = server.run_infos()
    assert [i["state"] for i in infos] == ["cancelled"] and infos[0]["workflow"] == "unfold"

    # a reload (same ?session=) reattaches to the job and its curves
    points = dash.metric_points()
    dash.page.reload()
    dash.page.wait_for_selector(".numl-start button")
    dash.wait_until(lambda: "cancelled" in dash.state(), 60, "the reattached job")
    assert dash.metric_points() == points
    assert dash.page.locator(".numl-field-n_events input").input_value() == "4000"

    # another browser session does not see it
    other = make_dashboard().open(server.app_url)
    assert "No job started" in other.text(".numl-job-status p")
    assert other.token != dash.token


def test_dashboard_works_under_a_url_prefix(serve_dashboard, make_dashboard) -> None:
    prefixed = serve_dashboard(prefix="/numl")
    assert prefixed.base.endswith("/numl")
    dash = make_dashboard().open(prefixed.base + "/main")
    assert "/numl/main?session=" in dash.page.url
    dash.click_tab("Runs")
    dash.page.wait_for_selector(".numl-runs-table")  # drawn on demand: the websocket works
    assert prefixed.liveness_ms() < 5_000


def test_stopping_the_server_cancels_its_running_jobs(serve_dashboard, make_dashboard) -> None:
    server = serve_dashboard()
    dash = make_dashboard().open(server.app_url)
    dash.set_fields(TINY_UNFOLDING)
    dash.start()
    dash.wait_until(lambda: "running" in dash.state(), 60, "the job to run")
    server.proc.terminate()
    assert server.proc.wait(timeout=60) is not None  # it does not wait for the job to finish
    assert [i["state"] for i in server.run_infos()] == ["cancelled"]


def test_a_link_with_another_sessions_token_opens_a_fresh_session(server, make_dashboard) -> None:
    owner = make_dashboard().open(server.app_url)
    token = owner.token
    owner.page.reload()
    owner.page.wait_for_selector(".numl-start button")
    assert owner.token == token  # the browser that got the token keeps it

    for link in (f"{server.app_url}?session={token}", f"{server.app_url}?session={'a' * 20}"):
        intruder = make_dashboard().open(link)
        given = link.rsplit("=", 1)[1]
        intruder.wait_until(lambda d=intruder, g=given: d.token != g, 60, "a fresh token in the URL")
        assert "No job started in this session" in intruder.text(".numl-job-status p")
