"""Start the dashboard server: ``panel serve app/main.py`` in a subprocess (used by ``numl app``)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from app.context import ENV_DATA, ENV_RUNS

log = logging.getLogger(__name__)

MAIN = Path(__file__).resolve().parent / "main.py"
#: The ``panel serve --plugins`` module that sends ``/PREFIX`` to ``/PREFIX/``.
REDIRECTS = "app.redirects"
#: Debian's chromium and the headless flags the browser tests and benchmarks drive it with (root, no
#: network beyond loopback).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def websocket_origins(address: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """Origins allowed to open the app's websocket: the bound address, loopback names, ``extra``.

    A wildcard bind address adds this machine's host names (not ``*``).

    >>> websocket_origins("127.0.0.1", 5006)
    ['127.0.0.1:5006', 'localhost:5006']
    """
    hosts = [address, "localhost", "127.0.0.1"]
    if address in ("0.0.0.0", "::", ""):
        hosts = ["localhost", "127.0.0.1", socket.gethostname(), socket.getfqdn()]
    return list(dict.fromkeys([f"{h}:{port}" for h in hosts] + list(extra)))


def panel_command(
    port: int = 5006,
    address: str = "127.0.0.1",
    prefix: str = "",
    show: bool = False,
    extra_origins: Sequence[str] = (),
) -> list[str]:
    """The ``panel serve`` command line of the dashboard.

    A prefix also loads :mod:`app.redirects`, so that ``/PREFIX`` without its slash reaches the page.

    >>> panel_command(5007, prefix="/numl")[3:]  # doctest: +NORMALIZE_WHITESPACE +ELLIPSIS
    ['serve', '...main.py', '--liveness', '--address', '127.0.0.1', '--port', '5007',
     '--allow-websocket-origin', '127.0.0.1:5007', '--allow-websocket-origin', 'localhost:5007',
     '--prefix', '/numl', '--plugins', 'app.redirects']
    """
    cmd = [sys.executable, "-m", "panel", "serve", str(MAIN), "--liveness"]
    cmd += ["--address", address, "--port", str(port)]
    for origin in websocket_origins(address, port, extra_origins):
        cmd += ["--allow-websocket-origin", origin]
    if prefix.strip("/"):
        cmd += ["--prefix", "/" + prefix.strip("/"), "--plugins", REDIRECTS]
    if show:
        cmd.append("--show")
    return cmd


def launch(
    port: int = 5006,
    address: str = "127.0.0.1",
    prefix: str = "",
    show: bool = False,
    runs_root: str | Path | None = None,
    data_root: str | Path | None = None,
    extra_origins: Sequence[str] = (),
    output: IO[bytes] | None = None,
) -> subprocess.Popen:
    """Start the dashboard server in the background; ``output`` receives its log (else inherited).

    ``runs_root`` and ``data_root`` override ``$NUML_RUNS`` and ``$NUML_DATA``;
    ``extra_origins`` (``host:port``) admits a proxy in front of the server.
    """
    env = dict(os.environ)
    if runs_root is not None:
        env[ENV_RUNS] = str(Path(runs_root).resolve())
    if data_root is not None:
        env[ENV_DATA] = str(Path(data_root).resolve())
    cmd = panel_command(port, address, prefix, show, extra_origins)
    log.info("serving the dashboard at %s", base_url(port, address, prefix))
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        preexec_fn=_end_with_parent if sys.platform.startswith("linux") else None,
    )


def _end_with_parent() -> None:
    """In the child, before ``exec``: ask Linux to send SIGTERM when the parent (``numl app``) dies,
    however it dies (``kill -9`` included), so no server is left answering on the port."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def base_url(port: int, address: str = "127.0.0.1", prefix: str = "") -> str:
    """``http://ADDRESS:PORT[/PREFIX]``; a wildcard address is reached through loopback.

    >>> base_url(5006, prefix="numl/")
    'http://127.0.0.1:5006/numl'
    """
    host = "127.0.0.1" if address in ("0.0.0.0", "::", "") else address
    return f"http://{host}:{port}" + ("/" + prefix.strip("/") if prefix.strip("/") else "")


def wait_live(url: str, proc: subprocess.Popen | None = None, timeout_s: float = 90.0) -> None:
    """Wait until ``URL/liveness`` answers; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the dashboard server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/liveness", timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{url}/liveness did not answer within {timeout_s} s")


def serve(
    port: int = 5006,
    address: str = "127.0.0.1",
    prefix: str = "",
    show: bool = False,
    runs_root: str | Path | None = None,
    data_root: str | Path | None = None,
    extra_origins: Sequence[str] = (),
) -> int:
    """Run the dashboard until interrupted; return the server's exit status (see :func:`launch`)."""
    proc = launch(port, address, prefix, show, runs_root, data_root, extra_origins)

    def stop(signum: int, _frame: object) -> None:
        proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()
