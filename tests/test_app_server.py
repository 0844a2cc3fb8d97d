"""``numl app`` and the ``panel serve`` process it starts live and die together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from app.server import REDIRECTS, base_url, panel_command, wait_live
from tests.browser.conftest import free_port, start_server
from tests.fixtures.aio import run_coroutine

#: The ``<title>`` of the dashboard's page (``app.main.create_app``).
DASHBOARD_TITLE = b"<title>numl: machine learning for neutrino physics</title>"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/liveness", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_killing_numl_app_stops_its_server(tmp_path, how):
    port = free_port()
    cmd = [sys.executable, "-m", "numl_core.cli", "app", "--port", str(port)]
    cmd += ["--runs", str(tmp_path / "runs"), "--data", str(tmp_path / "data")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = base_url(port)
    try:
        wait_live(url, proc, timeout_s=120)
        os.kill(proc.pid, how)
        proc.wait(30)
        deadline = time.monotonic() + 30
        while _answers(url) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not _answers(url), f"the server still answers on port {port} after {how.name} of numl app"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_numl_app_passes_allowed_origins_from_options_and_the_environment(monkeypatch):
    from click.testing import CliRunner

    import app.server
    from numl_core.cli import main

    seen = {}

    def fake_serve(port, address, prefix, show, runs_root, data_root, extra_origins=()):
        seen["origins"] = list(extra_origins)
        return 0

    monkeypatch.setattr(app.server, "serve", fake_serve)
    monkeypatch.setenv("NUML_ALLOW_ORIGINS", "lab.example.org, ")
    args = ["app", "--allow-origin", "hub.example.org", "--allow-origin", "hub.example.org:8443"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert seen["origins"] == ["hub.example.org", "hub.example.org:8443", "lab.example.org"]
    command = app.server.panel_command(5006, extra_origins=seen["origins"])
    assert command.count("--allow-websocket-origin") == 5 and "hub.example.org:8443" in command


def test_a_prefix_loads_the_redirect_plugin_and_no_prefix_does_not():
    assert panel_command(5006, prefix="/numl/")[-4:] == ["--prefix", "/numl", "--plugins", REDIRECTS]
    assert "--plugins" not in panel_command(5006)


def test_the_redirect_plugin_adds_the_slash_and_keeps_the_query():

    from tornado.httpclient import AsyncHTTPClient
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets
    from tornado.web import Application

    from app.redirects import ROUTES

    async def fetch(path: str):
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(Application([("/numl" + pattern, *rest) for pattern, *rest in ROUTES]))
        server.add_sockets(sockets)
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}{path}"
        try:
            return await AsyncHTTPClient().fetch(url, follow_redirects=False, raise_error=False)
        finally:
            server.stop()

    reply = run_coroutine(fetch("/numl?session=abc"))
    assert reply.code == 301 and reply.headers["Location"] == "/numl/?session=abc"
    assert run_coroutine(fetch("/numl/")).code == 404  # the route is the prefix alone


@pytest.mark.slow
def test_the_prefix_with_and_without_its_slash_opens_the_dashboard(tmp_path):
    server = start_server(tmp_path, prefix="/numl")
    try:
        for url in (server.base, server.base + "/"):
            with urllib.request.urlopen(url, timeout=60) as reply:
                assert reply.status == 200, url
                assert reply.url == server.base + "/main", f"{url} led to {reply.url}"
                assert DASHBOARD_TITLE in reply.read()
    finally:
        server.stop()
