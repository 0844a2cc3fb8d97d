"""How responsive the dashboard server stays while an unfolding job trains on the CPU.

The benchmark serves the app on a free loopback port (runs in a temporary folder), starts an
unfolding job from Debian's chromium and, while it trains, measures:

- ``ui_latency_p50_ms`` / ``ui_latency_p95_ms``: Bokeh document round trips (the websocket
  request/reply every widget interaction goes through) of a second session, every 100 ms;
- ``live_updates_per_s``: how often the page's metric readout changed per second (the job
  panel polls every 500 ms, so 2/s is the ceiling) and ``metric_points_per_s`` reaching it;
- ``liveness_*``: ``/liveness`` answer times (the server's event loop);
- ``page_load_*``: browser page loads (navigation until the config widgets are shown), idle
  and while the job runs.

The round-trip client turns off Nagle's algorithm on its socket (as browsers do), so the numbers
are the server's. ``ui_latency_idle_p50_ms`` is the same measure before the job starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

#: A modest CPU training job (tens of seconds on 2 cores): long enough to measure while it runs.
JOB = {
    "n_events": "100000",
    "iterations": "5",
    "trials": "2",
    "n_throws": "0",
    "n_bootstrap": "0",
    "epochs": "30",
    "patience": "30",
    "batch_size": "1024",
}
QUICK_JOB = {**JOB, "n_events": "40000", "iterations": "3", "trials": "1", "epochs": "20", "patience": "20"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


class _Sampler(threading.Thread):
    """Calls ``measure() -> ms`` every ``period_s`` in its own thread until stopped."""

    def __init__(self, measure: Any, period_s: float = 0.1, setup: Any = None) -> None:
        super().__init__(daemon=True)
        self.measure, self.period_s, self.setup = measure, period_s, setup
        self.samples: list[float] = []
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            state = self.setup() if self.setup is not None else None
            while not self.halt.wait(self.period_s):
                self.samples.append(self.measure(state))
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def take(self) -> list[float]:
        """The samples so far, and start afresh."""
        out, self.samples = self.samples, []
        return out


def _liveness_ms(url: str) -> Any:
    import urllib.request

    def measure(_state: Any) -> float:
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{url}/liveness", timeout=10) as reply:
                reply.read()
        except OSError:
            return float("inf")
        return (time.perf_counter() - t0) * 1e3

    return measure


def _bokeh_session(app_url: str) -> Any:
    """A Bokeh client session of the app (a second user), opened in the sampler's thread."""
    import holoviews.plotting.bokeh  # noqa: F401  (model types the client must know)
    import panel.models
    import panel.models.file_dropper
    import panel.models.tabulator  # noqa: F401
    from bokeh.client import pull_session

    asyncio.set_event_loop(asyncio.new_event_loop())
    session = pull_session(url=app_url)
    stream = getattr(getattr(session._connection, "_socket", None), "_socket", None)
    if stream is not None and getattr(stream, "stream", None) is not None:
        stream.stream.set_nodelay(True)  # measure the server, not the client's Nagle delay
    return session


def _roundtrip_ms(session: Any) -> float:
    t0 = time.perf_counter()
    session.force_roundtrip()
    return (time.perf_counter() - t0) * 1e3


def run(quick: bool) -> dict[str, Any]:
    """Serve the app, train an unfolding job from the browser, return the latency figures."""
    from playwright.sync_api import sync_playwright

    from app.server import CHROMIUM, CHROMIUM_ARGS, base_url, launch, wait_live

    job = QUICK_JOB if quick else JOB
    window_s = 30.0 if quick else 90.0
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "server.log", "wb") as server_log:
        port = _free_port()
        proc = launch(port, runs_root=Path(tmp) / "runs", data_root=Path(tmp) / "data", output=server_log)
        base = base_url(port)
        app_url = f"{base}/main"
        try:
            wait_live(base, proc)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                result = _measure(browser, base, app_url, job, window_s, quick)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    result.update({"job": job, "cpu_count": os.cpu_count(), "quick": quick})
    return result


def _open(browser: Any, url: str) -> tuple[Any, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route(
        "**/*", lambda r: r.continue_() if r.request.url.startswith("http://127.0.0.1") else r.abort()
    )
    page = context.new_page()
    page.set_default_timeout(120_000)
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(".numl-start button")
    return page, (time.perf_counter() - t0) * 1e3


def _readout(page: Any) -> str:
    return page.locator(".numl-metric-count p").first.inner_text()


def _state(page: Any) -> str:
    return page.locator(".numl-job-state p").first.inner_text()


def _measure(
    browser: Any, base: str, app_url: str, job: dict[str, str], window_s: float, quick: bool
) -> dict[str, Any]:
    idle_loads = []
    for _ in range(2 if quick else 3):
        idle_page, ms = _open(browser, app_url)
        idle_loads.append(ms)
        idle_page.context.close()
    liveness = _Sampler(_liveness_ms(base))
    roundtrips = _Sampler(_roundtrip_ms, setup=lambda: _bokeh_session(app_url))
    liveness.start()
    roundtrips.start()
    deadline = time.perf_counter() + 60.0
    while len(roundtrips.samples) < 20 and time.perf_counter() < deadline and roundtrips.error is None:
        time.sleep(0.1)  # the second session connects, then 20 idle round trips
    idle_rt, idle_live = roundtrips.take(), liveness.take()

    page, _ = _open(browser, app_url)
    for name, value in job.items():
        box = page.locator(f".numl-field-{name} input").first
        if not box.is_visible():  # a field of the config form's collapsed Advanced card
            page.locator(".numl-advanced .card-header").first.click()
        box.fill(value)
        box.press("Enter")
    page.locator(".numl-start button").click()
    deadline = time.perf_counter() + 60.0
    while "idle" in _state(page) and time.perf_counter() < deadline:
        time.sleep(0.05)
    t_start = time.perf_counter()
    changes: list[tuple[float, int]] = []
    last_text, busy_loads, next_load = "", [], t_start + 5.0
    state = ""
    while time.perf_counter() - t_start < window_s:
        text = _readout(page)
        if text != last_text:
            last_text = text
            match = re.match(r"(\d+) metric points", text)
            changes.append((time.perf_counter(), int(match.group(1)) if match else 0))
        state = _state(page)
        if "running" not in state and "queued" not in state:
            break
        if time.perf_counter() > next_load and len(busy_loads) < (1 if quick else 3):
            other, ms = _open(browser, app_url)
            busy_loads.append(ms)
            other.context.close()
            next_load = time.perf_counter() + 10.0
        time.sleep(0.05)
    busy_seconds = time.perf_counter() - t_start
    liveness.halt.set()
    roundtrips.halt.set()
    liveness.join()
    roundtrips.join()
    if roundtrips.error is not None:
        raise RuntimeError(f"Bokeh client session failed: {roundtrips.error!r}")
    if "running" in state:
        page.locator(".numl-cancel button").click()

    streaming = [c for c in changes if c[1] > 0]
    span = streaming[-1][0] - streaming[0][0] if len(streaming) > 1 else 0.0
    updates_per_s = (len(streaming) - 1) / span if span > 0 else float("nan")
    points_per_s = (streaming[-1][1] - streaming[0][1]) / span if span > 0 else float("nan")
    rt50, rt95 = _percentiles(roundtrips.samples)
    lv50, lv95 = _percentiles(liveness.samples)
    return {
        "ui_latency_p50_ms": rt50,
        "ui_latency_p95_ms": rt95,
        "live_updates_per_s": updates_per_s,
        "metric_points_per_s": points_per_s,
        "ui_latency_idle_p50_ms": _percentiles(idle_rt)[0],
        "liveness_p50_ms": lv50,
        "liveness_p95_ms": lv95,
        "liveness_idle_p50_ms": _percentiles(idle_live)[0],
        "page_load_idle_ms": float(np.median(idle_loads)),
        "page_load_busy_ms": float(np.median(busy_loads)) if busy_loads else float("nan"),
        "roundtrip_samples": len(roundtrips.samples),
        "measured_s": busy_seconds,
        "job_state_at_end": state.replace("state: ", ""),
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller job, shorter window")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run(args.quick), indent=2))
