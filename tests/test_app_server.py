"""``numl app`` and the ``panel serve`` process it starts live and die together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from app.server import base_url, wait_live
from tests.browser.conftest import free_port


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
