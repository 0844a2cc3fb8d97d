"""The dashboard as a jupyter-server-proxy server: a "numl" tile in a JupyterHub user's launcher.

``pip install numl`` registers :func:`setup_numl` under the ``jupyter_serverproxy_servers`` entry
point group. jupyter-server-proxy (installed by the hub, not by numl) calls it when the user's
Jupyter server starts, serves the dashboard at ``{base_url}numl/`` and starts ``numl app`` on a free
loopback port the first time that URL is opened, with the Jupyter server's own Python and environment.
Set-up and settings: docs/dashboard.md#jupyterhub-eg-an-elastic-analysis-facility.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

#: The entry point's name: jupyter-server-proxy serves the dashboard at ``{base_url}NAME/``.
NAME = "numl"
#: The launcher tile's icon: the dashboard's own logo (``assets/`` next to ``app/``, as in ``app.main``).
ICON = Path(__file__).resolve().parents[1] / "assets" / "logo.svg"
#: Seconds jupyter-server-proxy waits for the first answer of a starting dashboard (its default is 5;
#: importing torch and the workflows on a busy node takes longer).
STARTUP_TIMEOUT_S = 120
#: Variables JupyterHub sets in a user's server: its public URL, the hub's host with subdomains.
HUB_URL_VARIABLES = ("JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_HOST")


def hub_origins(env: Mapping[str, str] = os.environ) -> list[str]:
    """``host[:port]`` of the hub's public URLs: the origin the user's browser opens the websocket from.

    >>> hub_origins({"JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/user/alice/"})
    ['hub.example.org']
    >>> hub_origins({"JUPYTERHUB_PUBLIC_URL": "", "JUPYTERHUB_HOST": "https://hub.example.org:8443"})
    ['hub.example.org:8443']
    """
    origins = []
    for name in HUB_URL_VARIABLES:
        value = env.get(name, "").strip()
        if not value:
            continue
        host = urlsplit(value).netloc
        if not host:
            raise ValueError(f"${name} is {value!r}, not a URL with a host such as https://hub.example.org/")
        origins.append(host)
    return list(dict.fromkeys(origins))


def setup_numl() -> dict:
    """The server process jupyter-server-proxy runs (it fills in ``{port}`` and ``{base_url}``).

    ``absolute_url``: the dashboard gets the full path ``{base_url}numl/...`` and knows it as its prefix.
    The hub's own origin is admitted for the websocket; ``$NUML_ALLOW_ORIGINS`` reaches ``numl app``
    through the environment it inherits.
    """
    command = [sys.executable, "-m", "numl_core.cli", "app", "--port", "{port}"]
    command += ["--prefix", "{base_url}" + NAME]
    for origin in hub_origins():
        command += ["--allow-origin", origin]
    return {
        "command": command,
        "timeout": STARTUP_TIMEOUT_S,
        "absolute_url": True,
        "new_browser_tab": True,
        "launcher_entry": {"title": "numl", "icon_path": str(ICON)},
    }
