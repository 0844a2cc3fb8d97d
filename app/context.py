"""Process-wide and per-session state of the dashboard.

One server process holds one :class:`Shared` object: a single :class:`JobRunner` used by
every browser session (two concurrent jobs; torch gets ``cores - 1`` threads so the web
server keeps one core), one :class:`RunStore`, the data folder and the upload limit.

Each browser session gets an :class:`AppContext` with an owner token. The token lives in
the page URL (``?session=...``), so reloading the page reattaches to the jobs that session
started; other sessions never see them. Closing a session leaves its jobs running.

Tokens are issued by the server and bound to the browser that got them: with a new token the page
also receives a cookie holding the token's HMAC under a secret of the server process. A token in a
URL is accepted only together with its cookie, so a link carrying someone's token (or a token chosen
by whoever wrote the link) opens a fresh session in any other browser.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from numl_core.config import Config
from numl_core.jobs import Job, JobRunner, default_torch_threads
from numl_core.resume import rerun, resume_run
from numl_core.runs import RunStore
from numl_core.workflows import Workflow, available

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

ENV_RUNS = "NUML_RUNS"
ENV_DATA = "NUML_DATA"
ENV_MAX_UPLOAD_MB = "NUML_MAX_UPLOAD_MB"
SESSION_QUERY = "session"
COOKIE_PREFIX = "numl_"
COOKIE_MAX_AGE_S = 30 * 24 * 3600
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@dataclass(frozen=True)
class Settings:
    """Server settings; :meth:`from_env` reads them from the environment."""

    runs_root: Path
    data_root: Path
    max_upload_bytes: int = 200_000_000
    max_workers: int = 2
    torch_threads: int = field(default_factory=default_torch_threads)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """``$NUML_RUNS`` (default ``./numl-runs``), ``$NUML_DATA`` (``./numl-data``),
        ``$NUML_MAX_UPLOAD_MB`` (200 MB).

        >>> Settings.from_env({"NUML_MAX_UPLOAD_MB": "5"}).max_upload_bytes
        5000000
        """
        env = os.environ if environ is None else environ
        mb = env.get(ENV_MAX_UPLOAD_MB, "200")
        try:
            max_bytes = int(float(mb) * 1e6)
        except ValueError as exc:
            raise ValueError(f"{ENV_MAX_UPLOAD_MB}={mb!r} is not a number of megabytes") from exc
        return cls(
            runs_root=Path(env.get(ENV_RUNS, "numl-runs")).resolve(),
            data_root=Path(env.get(ENV_DATA, "numl-data")).resolve(),
            max_upload_bytes=max_bytes,
        )


@dataclass(frozen=True)
class OwnedJob:
    """A job, the workflow it runs and the session token that started it."""

    owner: str
    workflow: str
    job: Job


class Shared:
    """Per-process singletons: the job runner, the run store, and who owns which job."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runner = JobRunner(max_workers=settings.max_workers, torch_threads=settings.torch_threads)
        self.store = RunStore(settings.runs_root)
        self._secret = secrets.token_bytes(32)
        self._owned: list[OwnedJob] = []
        self._lock = threading.Lock()

    def sign(self, token: str) -> str:
        """The value of the cookie that binds ``token`` to a browser: HMAC-SHA256 under this process's
        secret."""
        return hmac.new(self._secret, token.encode("ascii"), hashlib.sha256).hexdigest()

    def accepts(self, token: str, cookies: Mapping[str, str]) -> bool:
        """True if ``token`` is well formed and ``cookies`` hold its signature (it was issued to this
        browser by this server)."""
        if not valid_token(token):
            return False
        given = str(cookies.get(COOKIE_PREFIX + token, ""))
        return hmac.compare_digest(given, self.sign(token))

    def stop_jobs_at_exit(self) -> None:
        """Cancel unfinished jobs when the server process exits.

        The interpreter waits for running job threads before it exits, so without this a
        stopped server would linger until its jobs finish. The hook runs before that wait
        (``concurrent.futures`` registers its own wait the same way).
        """
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            register(lambda: self.runner.shutdown(cancel=True, wait=False))

    def record(self, owner: str, workflow: str, job: Job) -> None:
        """Note that ``owner`` started ``job``; finished jobs the runner no longer holds are forgotten
        (their run folders list them), so the list stays as short as the runner's, and so is an earlier job
        of the same run (a resumed run is its newest job, owned by the session that resumed it)."""
        with self._lock:
            self._owned = [
                o
                for o in self._owned
                if o.job.id != job.id and (not o.job.done or self.runner.get(o.job.id) is not None)
            ]
            self._owned.append(OwnedJob(owner, workflow, job))

    def owned(self, owner: str, workflow: str | None = None) -> list[OwnedJob]:
        """Jobs started by ``owner`` (optionally of one workflow), newest first."""
        with self._lock:
            rows = [
                o for o in self._owned if o.owner == owner and (workflow is None or o.workflow == workflow)
            ]
        return rows[::-1]

    def owner_of(self, job_id: str) -> str | None:
        with self._lock:
            return next((o.owner for o in self._owned if o.job.id == job_id), None)


_shared: Shared | None = None
_shared_lock = threading.Lock()


def shared() -> Shared:
    """The process-wide :class:`Shared`, created from the environment on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Shared(Settings.from_env())
            _shared.stop_jobs_at_exit()
            log.info(
                "numl dashboard: runs in %s, data in %s",
                _shared.settings.runs_root,
                _shared.settings.data_root,
            )
        return _shared


def new_token() -> str:
    """A fresh, URL-safe session token (24 characters)."""
    return secrets.token_urlsafe(18)


def valid_token(text: str | None) -> bool:
    """True for tokens of the form :func:`new_token` makes (and similar URL-safe ones)."""
    return bool(text) and bool(_TOKEN.match(text))


class AppContext:
    """What one browser session needs: the shared services and its own owner token.

    Components register themselves in :attr:`job_panels` (by workflow name) so the run
    browser can reattach a job to the page that shows that workflow. ``workflows``
    replaces the entry-point registry (notebooks, tests).
    """

    def __init__(self, shared: Shared, token: str, workflows: Mapping[str, Workflow] | None = None) -> None:
        if not valid_token(token):
            raise ValueError(f"invalid session token {token!r}")
        self.shared = shared
        self.token = token
        self.job_panels: dict[str, Any] = {}
        self.closed = False
        self._workflows = dict(workflows) if workflows is not None else None
        self._on_close: list[Callable[[], None]] = []

    @property
    def runner(self) -> JobRunner:
        return self.shared.runner

    @property
    def store(self) -> RunStore:
        return self.shared.store

    @property
    def settings(self) -> Settings:
        return self.shared.settings

    @property
    def data_root(self) -> Path:
        return self.shared.settings.data_root

    def workflows(self) -> dict[str, Workflow]:
        """The workflows given to the constructor, else the registered ones (looked up once)."""
        if self._workflows is None:
            self._workflows = available()
        return self._workflows

    @property
    def upload_folder(self) -> str:
        """This session's folder name under the data folder's ``uploads`` (derived from, not equal to,
        its token)."""
        return hashlib.sha256(self.token.encode("ascii")).hexdigest()[:16]

    def submit(self, workflow: Workflow, config: Config, label: str = "", action: str = "run") -> Job:
        """Create a run directory owned by this session and queue ``workflow.run`` (or the named
        ``action`` of ``workflow.actions``) on it."""
        fn = workflow.run if action == "run" else workflow.actions[action]
        run = self.store.create(workflow.name, config)
        run.update_info({"owner": self.token, "label": label or workflow.name, "action": action})
        job = self.runner.submit(fn, config, run, label or workflow.name)
        self.shared.record(self.token, workflow.name, job)
        return job

    def resume(self, workflow: Workflow, run_id: str) -> Job:
        """Resume stored run ``run_id`` of ``workflow`` from its checkpoints, as a job of this session
        (:func:`numl_core.resume.resume_run`, whose errors it raises)."""
        job = resume_run(self.runner, self.store, run_id, workflow, info={"owner": self.token})
        self.shared.record(self.token, workflow.name, job)
        return job

    def rerun(self, workflow: Workflow, run_id: str) -> Job:
        """Start a new run of this session with stored run ``run_id``'s config and action
        (:func:`numl_core.resume.rerun`, whose errors it raises)."""
        job = rerun(self.runner, self.store, run_id, workflow, info={"owner": self.token})
        self.shared.record(self.token, workflow.name, job)
        return job

    def jobs(self, workflow: str | None = None) -> list[Job]:
        """This session's jobs (optionally of one workflow), newest first."""
        return [o.job for o in self.shared.owned(self.token, workflow)]

    def workflow_of(self, job: Job) -> str | None:
        """Name of the workflow of one of this session's jobs; None if not ours."""
        return next((o.workflow for o in self.shared.owned(self.token) if o.job is job), None)

    def owns(self, job_id: str) -> bool:
        return self.shared.owner_of(job_id) == self.token

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the session ends (stop polling and the like)."""
        self._on_close.append(callback)

    def close(self) -> None:
        """Release this session's callbacks; its jobs keep running."""
        if self.closed:
            return
        self.closed = True
        for callback in self._on_close:
            try:
                callback()
            except Exception:  # a failing cleanup must not stop the others
                log.exception("session cleanup callback failed")
        self._on_close.clear()
        self.job_panels.clear()

    @classmethod
    def for_session(cls) -> AppContext:
        """The context of the current Panel session.

        Reads ``?session=TOKEN`` from the request; without a valid one, makes a token and
        writes it into the URL so that a reload finds the same jobs.
        """
        import panel as pn

        raw = pn.state.session_args.get(SESSION_QUERY, [b""])[0]
        token = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
        state = shared()
        if not state.accepts(token, pn.state.cookies or {}):
            token = new_token()
            _bind_to_browser(token, state.sign(token))
        ctx = cls(state, token)
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(lambda _session_context: ctx.close())
        return ctx


def _bind_to_browser(token: str, signature: str) -> None:
    """Put ``token`` into the page URL and its signature into a cookie of this browser, once the page
    has loaded, and again for thirty seconds whenever the URL lacks it: the browser reports its own URL once
    on connecting, which may arrive after the first update and undo it.

    The browser writes both itself when the page is ready, so the token reaches the address bar even when
    Panel's Location model holds its URL update back (it waits for a document that is idle, and now and then
    waited for good, leaving a link's foreign token in the URL); the server's updates keep the Location model
    in step."""
    import panel as pn
    from bokeh.events import DocumentReady
    from bokeh.models import CustomJS

    cookie = f"{COOKIE_PREFIX}{token}={signature}; path=/; max-age={COOKIE_MAX_AGE_S}; SameSite=Strict"
    if pn.state.curdoc is not None:
        code = (
            f"document.cookie = {cookie!r};"
            "const url = new URL(window.location.href);"
            f"if (url.searchParams.get({SESSION_QUERY!r}) !== {token!r}) {{"
            f"  url.searchParams.set({SESSION_QUERY!r}, {token!r});"
            "  window.history.replaceState(window.history.state, '', url.toString());"
            "}"
        )
        pn.state.curdoc.js_on_event(DocumentReady, CustomJS(code=code))

    def write_token() -> None:
        location = pn.state.location
        if location is None:
            return

        def ensure() -> None:  # the browser's first report of its URL may arrive after the update
            if location.query_params.get(SESSION_QUERY) != token:
                location.update_query(**{SESSION_QUERY: token})

        ensure()
        pn.state.add_periodic_callback(ensure, period=500, count=60)

    pn.state.onload(write_token)
