"""Ten browser sessions at once, each running a small unfolding job (loopback only).

Checks that every job finishes, that each session sees only its own job and metrics, and
that the server keeps answering ``/liveness`` quickly while the jobs train.
"""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest

pytestmark = pytest.mark.browser

N_SESSIONS = 10
#: The smallest useful unfolding: one iteration, one trial, a few epochs, no throws.
SMALL_JOB = {
    "n_events": "2000",
    "iterations": "1",
    "trials": "1",
    "n_throws": "0",
    "n_bootstrap": "0",
    "epochs": "3",
    "patience": "3",
    "ibu_iterations": "2",
}
#: /liveness is answered by the server's event loop, so its latency shows how long the loop is
#: blocked (page builds, plot updates and result views are drawn there). Measured p95 while the
#: ten jobs run, on a 2-core machine shared with other work: 0.3 s at load average 2 to 5, 3 to 4 s
#: at load average 10 to 15. Blocking bugs (a plot redrawn for every new series, live plots
#: started from a button callback) gave stalls of 10 s and more.
LIVENESS_P95_BOUND_MS = 5000.0
JOBS_TIMEOUT_S = 300.0


class LivenessProbe(threading.Thread):
    """Times ``/liveness`` every 100 ms until stopped."""

    def __init__(self, server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.times_ms: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.1):
            try:
                self.times_ms.append(self.server.liveness_ms())
            except OSError:  # no answer within 10 s: the event loop was blocked
                self.times_ms.append(float("inf"))


def test_ten_sessions_run_jobs_in_isolation_and_the_server_stays_responsive(server, make_dashboard) -> None:
    sessions = [make_dashboard().open(server.app_url) for _ in range(N_SESSIONS)]
    assert len({s.token for s in sessions}) == N_SESSIONS

    probe = LivenessProbe(server)
    probe.start()
    try:
        for s in sessions:
            s.set_fields(SMALL_JOB)
            s.start()
        for s in sessions:
            s.wait_until(
                lambda s=s: "state: done" in s.state() or "failed" in s.state(),
                JOBS_TIMEOUT_S,
                "every job to finish",
            )
    finally:
        probe.halt.set()
        probe.join()

    assert [s.state() for s in sessions] == ["state: done"] * N_SESSIONS
    infos = {i["id"]: i for i in server.run_infos()}
    assert len(infos) == N_SESSIONS
    shown = {}
    for s in sessions:
        run_id = re.search(r"run (\S+)", s.text(".numl-job-status p")).group(1)
        shown[s.token] = run_id
        # the run this page shows belongs to this session, and its curves hold exactly that run's metrics
        assert infos[run_id]["owner"] == s.token and infos[run_id]["state"] == "done"
        n_metrics = len((server.runs_root / run_id / "metrics.jsonl").read_text().splitlines())
        s.wait_until(lambda s=s, n=n_metrics: s.metric_points() == n, 30, "the page to show all metrics")
    assert set(shown.values()) == set(infos)

    # the Runs page lists every finished run by default, and under "This session" a session's own only
    for s in sessions[:3]:
        s.click_tab("Runs")
        s.page.wait_for_selector(".numl-runs-table .tabulator-row")
        s.wait_until(
            lambda s=s: s.page.locator(".numl-runs-table .tabulator-row").count() == len(infos),
            30,
            "all runs",
        )
        s.page.locator(".bk-btn", has_text="This session").first.click()
        s.wait_until(
            lambda s=s: s.page.locator(".numl-runs-table .tabulator-row").count() == 1, 30, "its own run"
        )
        rows = s.page.locator(".numl-runs-table .tabulator-row").all_inner_texts()
        assert len(rows) == 1 and shown[s.token] in rows[0]

    p95 = float(np.percentile(probe.times_ms, 95))
    print(
        json.dumps(
            {
                "liveness_p50_ms": float(np.median(probe.times_ms)),
                "liveness_p95_ms": p95,
                "probes": len(probe.times_ms),
            }
        )
    )
    assert len(probe.times_ms) > 20
    assert p95 < LIVENESS_P95_BOUND_MS
