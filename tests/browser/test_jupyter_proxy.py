"""The dashboard started as jupyter-server-proxy starts it, used in a browser under a hub user's prefix."""

from __future__ import annotations

import pytest

from tests.browser.conftest import HUB_USER_URL, start_like_jupyter_proxy
from tests.browser.test_load import SMALL_JOB

pytestmark = pytest.mark.browser


@pytest.fixture
def proxied(tmp_path):
    server = start_like_jupyter_proxy(tmp_path)
    yield server
    server.stop()


def test_a_tiny_job_runs_to_the_end_through_the_hub_users_prefix(proxied, make_dashboard) -> None:
    dash = make_dashboard().open(proxied.base)  # the prefix without its slash, as a user may type it
    assert f"{HUB_USER_URL}numl/main?session=" in dash.page.url
    dash.set_fields(SMALL_JOB)
    dash.start()
    dash.wait_until(lambda: "done" in dash.state() or "failed" in dash.state(), 90, "the job to end")
    assert dash.state() == "state: done"
    assert [i["state"] for i in proxied.run_infos()] == ["done"]
    dash.wait_until(lambda: dash.metric_points() > 0, 30, "its metrics to reach the page")  # websocket
