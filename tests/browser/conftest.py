"""Serve the dashboard on a free loopback port and drive it with Debian's chromium.

The server is ``panel serve app/main.py --liveness`` in a subprocess with ``NUML_RUNS`` and
``NUML_DATA`` in a temporary folder; fixtures wait on ``/liveness`` before any page opens.
Fixture names differ from pytest-playwright's (``chromium``, ``make_dashboard``) so both can
be installed; tests use the :class:`Dashboard` page object the fixtures hand out.
Pages may only talk to 127.0.0.1: every other request is aborted, so the tests also show
that the dashboard works offline.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from app.context import ENV_DATA, ENV_RUNS
from app.server import CHROMIUM, CHROMIUM_ARGS, base_url, launch, wait_live

STARTUP_TIMEOUT_S = 90.0
VIEWPORT = {"width": 1400, "height": 1000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running dashboard server."""

    proc: subprocess.Popen
    port: int
    base: str
    runs_root: Path
    data_root: Path
    log_path: Path

    @property
    def app_url(self) -> str:
        return f"{self.base}/main"

    def liveness_ms(self) -> float:
        """Round-trip time of one ``/liveness`` request in milliseconds."""
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"{self.base}/liveness", timeout=10) as r:
            body = json.loads(r.read())
        assert body, "empty liveness answer"
        return (time.perf_counter() - t0) * 1e3

    def run_infos(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.runs_root.glob("*/run.json"))]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(folder: Path, prefix: str = "") -> Server:
    """Start the dashboard (``app.server.launch``) and wait until ``/liveness`` answers."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = folder / "server.log"
    with open(log_path, "wb") as log_file:
        proc = launch(
            port, prefix=prefix, runs_root=folder / "runs", data_root=folder / "data", output=log_file
        )
    server = Server(proc, port, base_url(port, prefix=prefix), folder / "runs", folder / "data", log_path)
    return _started(server)


def _started(server: Server) -> Server:
    """Wait until the server's ``/liveness`` answers; stop it and raise with its log if it does not."""
    try:
        wait_live(server.base, server.proc, STARTUP_TIMEOUT_S)
    except (RuntimeError, TimeoutError) as exc:
        server.stop()
        raise RuntimeError(f"{exc}:\n{server.log_path.read_text()}") from exc
    return server


#: A JupyterHub user's server URL, as jupyter-server-proxy hands it to the command (``{base_url}``).
HUB_USER_URL = "/user/alice/"


def jupyter_proxy_server() -> tuple[str, dict]:
    """numl's ``jupyter_serverproxy_servers`` entry point, loaded and called as jupyter-server-proxy does:
    (its name, which is the URL path, and the server process it describes)."""
    (entry,) = [
        e for e in entry_points(group="jupyter_serverproxy_servers") if e.module == "app.jupyter_proxy"
    ]
    return entry.name, entry.load()()


def start_like_jupyter_proxy(folder: Path) -> Server:
    """Call the entry point and start its command as jupyter-server-proxy does, in this process's
    environment (``{port}`` and ``{base_url}`` filled in with ``str.format``); wait until ``/liveness``
    answers. Runs and data go to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    name, spec = jupyter_proxy_server()
    port = free_port()
    fill = {"port": port, "base_url": HUB_USER_URL, "unix_socket": ""}
    command = [arg.format(**fill) for arg in spec["command"]]
    extra = {key: value.format(**fill) for key, value in spec.get("environment", {}).items()}
    stores = {ENV_RUNS: str(folder / "runs"), ENV_DATA: str(folder / "data")}
    log_path = folder / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            command,
            env={**os.environ, **stores, **extra},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}{HUB_USER_URL}{name}"
    return _started(Server(proc, port, base, folder / "runs", folder / "data", log_path))


def launch_chromium(playwright) -> Browser:  # noqa: ANN001 - playwright's sync API object
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def new_page(browser: Browser) -> Page:
    """A page in its own context (own cookies) that may only reach the loopback server."""
    context = browser.new_context(viewport=VIEWPORT)
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith("http://127.0.0.1") else route.abort()
        ),
    )
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 0.2 s until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Dashboard:
    """One browser session of the dashboard (page object): what the tests read and click."""

    wait_until = staticmethod(wait_until)

    def __init__(self, page: Page) -> None:
        self.page = page

    def open(self, url: str) -> Dashboard:
        """Load the dashboard and wait for its session token to reach the URL."""
        self.page.goto(url)
        self.page.wait_for_selector(".numl-start button")
        self.page.wait_for_url("**session=*")
        return self

    @property
    def token(self) -> str:
        match = re.search(r"session=([\w-]+)", self.page.url)
        assert match, f"no session token in {self.page.url}"
        return match.group(1)

    def text(self, css: str) -> str:
        """Visible text of the first element matching ``css`` (Playwright pierces shadow roots)."""
        return self.page.locator(css).first.inner_text()

    def state(self) -> str:
        return self.text(".numl-job-state p")

    def metric_points(self) -> int:
        """The job panel's count of metric points received by the page."""
        match = re.match(r"(\d+) metric points", self.text(".numl-metric-count p"))
        assert match, "metric readout missing"
        return int(match.group(1))

    def field(self, name: str, part: str = "input") -> Locator:
        """The ``part`` (an input, a select) of config field ``name``'s widget, found by its
        ``numl-field-NAME`` class; a field of the form's collapsed Advanced card opens the card first."""
        box = self.page.locator(f".numl-field-{name} {part}").first
        if not box.is_visible():
            self.page.locator(".numl-advanced .card-header").first.click()
            box.wait_for(state="visible", timeout=10_000)
        return box

    def set_fields(self, values: dict[str, str]) -> None:
        """Type config values into the job panel's widgets."""
        for name, value in values.items():
            box = self.field(name)
            box.fill(value)
            box.press("Enter")

    def click_tab(self, title: str) -> None:
        self.page.locator(".bk-tab", has_text=title).first.click()

    def start(self) -> None:
        self.page.locator(".numl-start button").click()

    def cancel(self) -> None:
        self.page.locator(".numl-cancel button").click()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("dashboard"))
    yield s
    s.stop()


@pytest.fixture
def serve_dashboard(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start further servers (e.g. under a prefix); all stop at teardown."""
    started: list[Server] = []

    def start(prefix: str = "") -> Server:
        started.append(start_server(tmp_path / f"server{len(started)}", prefix))
        return started[-1]

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def make_dashboard(chromium: Browser) -> Iterator[Callable[[], Dashboard]]:
    """New browser sessions (own context each), closed at teardown."""
    pages: list[Page] = []

    def make() -> Dashboard:
        pages.append(new_page(chromium))
        return Dashboard(pages[-1])

    yield make
    for p in pages:
        p.context.close()
