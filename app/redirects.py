"""A ``panel serve --plugins`` module: ``/PREFIX`` (no trailing slash) redirects to ``/PREFIX/``.

Under ``--prefix /numl`` Panel's root handler answers both ``/numl`` and ``/numl/`` with the relative
redirect ``./main``. A browser resolves it against the URL's last ``/``: from ``/numl/`` it reaches
``/numl/main``, but from ``/numl`` it reaches ``/main``, outside the prefix, where the server has nothing
(404). The route below sends ``/numl`` to ``/numl/`` first. Bokeh puts the prefix in front of every
plugin route, so the empty pattern matches exactly ``/PREFIX``; :func:`app.server.panel_command` loads
this module only when a prefix is set.
"""

from __future__ import annotations

from tornado.web import HTTPError, RequestHandler, addslash


class AddSlash(RequestHandler):
    """Redirects ``/PREFIX?QUERY`` to ``/PREFIX/?QUERY`` (tornado's ``addslash``, GET and HEAD)."""

    @addslash
    def get(self) -> None:
        raise HTTPError(404)  # not reached: the route only matches the path without its slash

    head = get


ROUTES = [("", AddSlash, {})]
