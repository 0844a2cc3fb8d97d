"""The jupyter-server-proxy entry point: what it declares, and its command run as the proxy runs it."""

from __future__ import annotations

import signal
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from app.jupyter_proxy import hub_origins, setup_numl
from tests.browser.conftest import HUB_USER_URL, jupyter_proxy_server, start_like_jupyter_proxy
from tests.fixtures.aio import run_coroutine

DASHBOARD_TITLE = b"<title>numl: machine learning for neutrino physics</title>"
HUB = "https://hub.example.org/"


def test_the_entry_point_serves_the_dashboard_under_its_own_name():
    name, spec = jupyter_proxy_server()
    command = spec["command"]
    assert name == "numl" and spec["absolute_url"] is True
    assert command[command.index("--prefix") + 1] == "{base_url}" + name  # the path the proxy serves
    assert command[command.index("--port") + 1] == "{port}"
    assert spec["timeout"] >= 30  # a dashboard start takes longer than the proxy's default 5 s
    entry = spec["launcher_entry"]
    assert entry["title"] == "numl" and Path(entry["icon_path"]).read_text().lstrip().startswith("<svg")


def test_the_hubs_public_origin_is_admitted_and_a_bad_url_is_named(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", "https://hub.example.org:8443/user/alice/")
    monkeypatch.setenv("JUPYTERHUB_HOST", "")
    command = setup_numl()["command"]
    assert command[command.index("--allow-origin") + 1] == "hub.example.org:8443"
    with pytest.raises(ValueError, match="JUPYTERHUB_HOST"):
        hub_origins({"JUPYTERHUB_HOST": "hub.example.org"})


def _handshake(url: str, origin: str) -> int:
    """HTTP status of a websocket handshake from ``origin``: 101 when the server admits it."""

    async def connect() -> int:
        request = HTTPRequest(url, headers={"Origin": origin})
        try:
            connection = await websocket_connect(request, subprotocols=["bokeh", "no-token"])
        except HTTPClientError as exc:
            return exc.code
        connection.close()
        return 101

    return run_coroutine(connect())


def _children(pid: int) -> list[int]:
    """Linux: the live processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError):
            continue
        if int(ppid) == pid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads child processes from /proc")
def test_the_proxy_command_serves_the_prefix_admits_the_hub_and_ends_with_its_server(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", HUB)  # as in a hub user's Jupyter server
    server = start_like_jupyter_proxy(tmp_path)
    try:
        assert server.base.endswith(f"{HUB_USER_URL}numl")
        for url in (server.base, server.base + "/"):
            with urllib.request.urlopen(url, timeout=60) as reply:
                assert reply.status == 200 and reply.url == server.base + "/main", url
                assert DASHBOARD_TITLE in reply.read()
        ws = f"ws://127.0.0.1:{server.port}{HUB_USER_URL}numl/main/ws"
        assert _handshake(ws, HUB.rstrip("/")) == 101
        assert _handshake(ws, "https://elsewhere.example.org") == 403

        (panel,) = _children(server.proc.pid)
        assert b"panel" in Path(f"/proc/{panel}/cmdline").read_bytes()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _alive(panel) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(panel), "panel serve outlived the process the proxy started"
    finally:
        server.stop()
