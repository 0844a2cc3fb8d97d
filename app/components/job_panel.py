"""The generic job panel: a workflow's config form (:class:`~app.components.config_form.ConfigForm`),
Start/Cancel, live progress, and Resume, Rerun and Load config for the run it shows (or a stored run the
Runs tab hands it).

Any registered workflow gets this panel for free. A page may pass ``on_result(result) ->
Viewable`` (shown when the job is done) and ``on_artefact(artefacts)`` (called whenever the
job publishes a new intermediate artefact). While a job runs, a periodic callback (every
``period_ms``) reads new metrics, log lines and artefacts from the job's
:class:`~numl_core.jobs.Progress` with cursors and streams them to the page; nothing ever
waits for the job. The progress line (percent, elapsed, ETA, place in the queue) and the device line
come from :mod:`numl_core.progress_text` and :func:`numl_core.device.describe_device`.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import panel as pn
import param

from app.components.config_form import ConfigForm
from app.components.live_curve import LiveCurves
from numl_core.config import Config
from numl_core.device import describe_device
from numl_core.jobs import Job
from numl_core.paths import UnsafePathError, UploadTooLarge, safe_path, save_upload
from numl_core.progress_text import progress_line
from numl_core.results import Result
from numl_core.resume import RESUMABLE_STATES, stored_config
from numl_core.runs import RunLocked
from numl_core.workflows import Workflow

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

#: String fields whose name ends like this hold a path typed by the user.
PATH_SUFFIXES = ("_file", "_path", "_dir", "_folder")
LOG_LINES_SHOWN = 400
UPLOAD_FOLDER = "uploads"


def path_fields(config_cls: type[Config]) -> list[str]:
    """Fields of ``config_cls`` that hold file or folder paths."""
    out = []
    for name in config_cls.field_names():
        p = config_cls.param[name]
        if isinstance(p, param.Path) or (isinstance(p, param.String) and name.endswith(PATH_SUFFIXES)):
            out.append(name)
    return out


def confine_paths(config: Config, root: Any, trusted: Collection[str] = ()) -> Config:
    """A validated copy of ``config`` with every non-empty path field resolved inside ``root``, except
    the fields named in ``trusted`` (set by the server itself, e.g. a file in a run folder).

    Raises :class:`~numl_core.paths.UnsafePathError` for a path that leaves ``root`` and
    :class:`~numl_core.config.ConfigError` for an invalid config.
    """
    changes = {}
    for name in path_fields(type(config)):
        value = getattr(config, name)
        if value and name not in trusted:
            changes[name] = str(safe_path(root, value))
    return config.copy(**changes)


def result_summary(result: Any) -> pn.viewable.Viewable:
    """A generic view of a result (a :class:`~numl_core.results.Result` or a dict): scalars as JSON,
    tables, array shapes."""
    if isinstance(result, Result):
        result = result.to_dict()
    if not isinstance(result, dict):
        return pn.pane.Str(repr(result))
    scalars, parts = {}, []
    for key, value in result.items():
        if isinstance(value, pd.DataFrame):
            parts.append(pn.pane.Markdown(f"**{key}** ({len(value)} rows)"))
            parts.append(
                pn.widgets.Tabulator(
                    value,
                    disabled=True,
                    show_index=False,
                    pagination="local",
                    page_size=15,
                    sizing_mode="stretch_width",
                )
            )
        elif isinstance(value, np.ndarray):
            parts.append(pn.pane.Markdown(f"**{key}**: array of shape {value.shape}, {value.dtype}"))
        else:
            scalars[key] = value
    if scalars:
        parts.insert(0, pn.pane.JSON(scalars, depth=2, sizing_mode="stretch_width"))
    return pn.Column(*parts, sizing_mode="stretch_width")


def error_view(title: str, detail: str = "") -> pn.viewable.Viewable:
    """An error: a red headline and, if given, the traceback in a scrollable box."""
    parts: list[Any] = [pn.pane.Alert(title, alert_type="danger", sizing_mode="stretch_width")]
    if detail:
        parts.append(
            pn.Card(
                pn.pane.Str(detail, styles={"font-size": "12px"}),
                title="Traceback",
                collapsed=False,
                sizing_mode="stretch_width",
                max_height=320,
                scroll=True,
            )
        )
    return pn.Column(*parts, sizing_mode="stretch_width", css_classes=["numl-job-error"])


class UploadBox(pn.viewable.Viewer):
    """Upload a data file into ``<data root>/uploads/<session>`` and put its path into a config field.

    Each browser session uploads into its own folder; an upload never overwrites a file."""

    def __init__(
        self,
        config: Config,
        fields: Sequence[str],
        data_root: Any,
        max_bytes: int,
        folder: str = UPLOAD_FOLDER,
    ) -> None:
        super().__init__()
        self.config = config
        self.data_root = data_root
        self.folder = folder
        self.max_bytes = max_bytes
        self.field = pn.widgets.Select(
            label="Upload into", options=list(fields), value=fields[0], visible=len(fields) > 1
        )
        self.dropper = pn.widgets.FileDropper(
            max_file_size=f"{max(1, max_bytes // 1_000_000)}MB",
            accepted_filetypes=[".csv", ".parquet", ".root", ".json"],
            layout="compact",
            sizing_mode="stretch_width",
        )
        self.message = pn.pane.Markdown("", css_classes=["numl-upload-message"])
        self.dropper.param.watch(self._on_upload, "value")
        self._layout = pn.Column(
            pn.pane.Markdown(f"Upload a file (up to {max_bytes / 1e6:.0f} MB)"),
            self.field,
            self.dropper,
            self.message,
            sizing_mode="stretch_width",
        )

    def store(self, filename: str, data: bytes | str) -> None:
        """Save one uploaded file and point the selected field at it."""
        try:
            path = save_upload(self.data_root, filename, data, self.max_bytes, folder=self.folder)
        except (UnsafePathError, UploadTooLarge) as exc:
            self.message.object = f"**Upload refused:** {exc}"
            return
        setattr(self.config, self.field.value, str(path))
        renamed = f" (a file `{filename}` exists; nothing was overwritten)" if path.name != filename else ""
        self.message.object = f"Saved `{path.name}`{renamed}; `{self.field.value}` now points to it."

    def _on_upload(self, event: param.parameterized.Event) -> None:
        for filename, data in (event.new or {}).items():
            self.store(filename, data)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


class JobPanel(pn.viewable.Viewer):
    """Config widgets, Start/Cancel, progress, log, live metric curves and the result of one workflow.

    ``metric_group`` maps a metric record to the plot it is drawn in (see
    :func:`~app.components.live_curve.plot_key`); ``expected_series(config)`` names the plots
    and series a job will report, so they are drawn once, with the page, and later jobs only
    stream into them; ``extra_controls`` go
    below the essential fields of the config form, which leaves out the ``custom_fields`` those controls
    edit themselves.
    With ``restore`` the panel shows this session's newest job of the workflow at once;
    a page whose callbacks need the panel itself passes False and calls :meth:`restore`.
    """

    def __init__(
        self,
        workflow: Workflow,
        ctx: AppContext,
        *,
        config: Config | None = None,
        on_result: Callable[[dict[str, Any]], pn.viewable.Viewable | None] | None = None,
        on_artefact: Callable[[dict[str, Any]], None] | None = None,
        extra_controls: Sequence[pn.viewable.Viewable] = (),
        custom_fields: Collection[str] = (),
        metric_group: Callable[[dict[str, Any]], str | None] | None = None,
        expected_series: Callable[[Config], Mapping[str, Sequence[str]]] | None = None,
        period_ms: int = 500,
        restore: bool = True,
    ) -> None:
        super().__init__()
        self.workflow = workflow
        self.ctx = ctx
        self.config = config if config is not None else workflow.config_cls()
        self.on_result = on_result
        self.on_finish: list[Callable[[Job], None]] = []
        """Called with each job this panel shows when it ends (done, failed or cancelled)."""
        self.on_artefact = on_artefact
        self.period_ms = period_ms
        plots = workflow.live_plots
        self.expected_series = expected_series if expected_series is not None else plots.expected
        metric_group = metric_group if metric_group is not None else plots.group
        self.job: Job | None = None
        self._poll_lock = threading.Lock()
        self._reset_cursors()
        self._callback: Any = None
        self._form_error: pn.viewable.Viewable | None = None

        self.curves = LiveCurves(group=metric_group, specs=plots)
        self.curves.prepare(self.expected_series(self.config))
        self._layout = pn.Column(
            pn.pane.Markdown(f"## {workflow.title}\n{workflow.description}", sizing_mode="stretch_width"),
            pn.Row(
                self._controls(extra_controls, custom_fields), self._monitor(), sizing_mode="stretch_width"
            ),
            self.result_area,
            sizing_mode="stretch_width",
        )
        ctx.job_panels[workflow.name] = self
        if _in_server_session():
            # one callback for the panel's lifetime, started once the page is loaded and connected
            # (Panel defers a start requested earlier, or from a button callback, to a later tick)
            self._callback = pn.state.add_periodic_callback(self.poll, period=period_ms, start=False)
            pn.state.onload(self._callback.start)
        ctx.on_close(self.stop_polling)
        if restore:
            self.restore()

    def _controls(
        self, extra_controls: Sequence[pn.viewable.Viewable], custom_fields: Collection[str]
    ) -> pn.Column:
        """Start/Cancel, the run label, the config form (with the extra controls) and an upload box for
        path fields. The form grows with its content (no scroll box, which would cut dropdowns off)."""
        self.form = ConfigForm(
            self.config,
            hidden=custom_fields,
            extra=extra_controls,
            filename=f"numl-{self.workflow.name}-config.json",
            report=self._form_report,
        )
        self.label_input = pn.widgets.TextInput(label="Run label", placeholder=self.workflow.name, width=280)
        self.start_button = pn.widgets.Button(
            label="Start", color="primary", width=130, css_classes=["numl-start"]
        )
        self.cancel_button = pn.widgets.Button(
            label="Cancel", color="danger", width=130, disabled=True, css_classes=["numl-cancel"]
        )
        self.resume_button = pn.widgets.Button(
            label="Resume", width=84, disabled=True, css_classes=["numl-resume"]
        )
        self.rerun_button = pn.widgets.Button(
            label="Rerun", width=84, disabled=True, css_classes=["numl-rerun"]
        )
        self.load_button = pn.widgets.Button(
            label="Load config", width=96, disabled=True, css_classes=["numl-load-config"]
        )
        self.form_note = pn.pane.Markdown("", css_classes=["numl-form-note"], width=300)
        self.start_button.on_click(lambda _event: self.start())
        self.cancel_button.on_click(lambda _event: self.cancel())
        self.resume_button.on_click(lambda _event: self.resume())
        self.rerun_button.on_click(lambda _event: self.rerun())
        self.load_button.on_click(lambda _event: self.load_config())
        settings: list[Any] = [self.form]
        uploads = path_fields(type(self.config))
        if uploads:
            limit = self.ctx.settings.max_upload_bytes
            folder = f"{UPLOAD_FOLDER}/{self.ctx.upload_folder}"
            settings.append(UploadBox(self.config, uploads, self.ctx.data_root, limit, folder))
        return pn.Column(
            pn.Row(self.start_button, self.cancel_button),
            pn.Row(self.resume_button, self.rerun_button, self.load_button),
            self.form_note,
            self.label_input,
            pn.Column(*settings, width=320, css_classes=["numl-config"]),
            width=320,
        )

    def _form_report(self, message: str, error: bool) -> None:
        """A note of the config form goes under the buttons; its error into the error area (replacing an
        earlier form error, which a later note clears)."""
        if error:
            self._form_error = error_view(message)
            self.error_area[:] = [self._form_error]
            return
        self.form_note.object = message
        if self._form_error is not None and self._form_error in self.error_area.objects:
            self.error_area.remove(self._form_error)
        self._form_error = None

    def _monitor(self) -> pn.Column:
        """State, progress bar, status, errors, live curves and the log of the shown job."""
        self.state_view = pn.pane.Markdown("state: idle", css_classes=["numl-job-state"], width=170)
        self.progress_bar = pn.indicators.Progress(
            value=0, max=1000, sizing_mode="stretch_width", margin=(18, 10)
        )
        self.status = pn.pane.Markdown("No job started in this session.", css_classes=["numl-job-status"])
        self.progress_text = pn.pane.Markdown("", css_classes=["numl-job-progress"])
        self.device_view = pn.pane.Markdown("", css_classes=["numl-job-device"])
        self.error_area = pn.Column(sizing_mode="stretch_width")
        self.log_view = pn.pane.Str(
            "", css_classes=["numl-job-log"], sizing_mode="stretch_width", styles={"font-size": "12px"}
        )
        self.result_area = pn.Column(
            pn.pane.Markdown("*Results appear here when a job finishes.*"),
            sizing_mode="stretch_width",
            css_classes=["numl-result"],
        )
        log_card = pn.Card(
            self.log_view,
            title="Log (newest first)",
            collapsed=True,
            sizing_mode="stretch_width",
            max_height=260,
            scroll=True,
        )
        return pn.Column(
            pn.Row(self.state_view, self.progress_bar, sizing_mode="stretch_width"),
            pn.Row(self.progress_text, self.device_view, sizing_mode="stretch_width"),
            self.status,
            self.error_area,
            self.curves,
            log_card,
            sizing_mode="stretch_width",
        )

    # -- actions ---------------------------------------------------------------------------
    def restore(self) -> None:
        """Show this session's newest job of the workflow, if any (after a page reload)."""
        own = self.ctx.jobs(self.workflow.name)
        if own:
            self.attach(own[0], restore_config=True)

    def start(
        self,
        action: str = "run",
        config: Config | None = None,
        label: str = "",
        trusted: Collection[str] = (),
    ) -> Job | None:
        """Validate the config (the form's, or ``config``), confine its paths to the data folder (all but
        the ``trusted`` fields, which the page set itself) and submit the workflow's ``action`` (``run``
        or one of ``workflow.actions``).

        Returns the job, or None (with the reason shown) if the config is refused or a
        job of this panel is still running.
        """
        if self.job is not None and not self.job.done:
            return None
        try:
            config = confine_paths(config if config is not None else self.config, self.ctx.data_root, trusted)
        except (ValueError, OSError) as exc:
            self.error_area[:] = [error_view(f"**Invalid configuration:** {exc}")]
            return None
        job = self.ctx.submit(self.workflow, config, label or self.label_input.value.strip(), action)
        self.attach(job)
        return job

    def cancel(self) -> None:
        """Ask the running job to stop at its next check."""
        if self.job is not None and not self.job.done:
            self.job.cancel()
            self.cancel_button.disabled = True
            self._set(self.status, f"Cancel requested for run `{self.job.id}` ...")

    def resume(self, run_id: str | None = None) -> Job | None:
        """Resume the shown job's run (or stored run ``run_id``) from its last checkpoint, in its own folder
        with its own config, and show it. Returns the job, or None with the reason shown."""
        return self._start_from(run_id, "resume", self.ctx.resume)

    def rerun(self, run_id: str | None = None) -> Job | None:
        """Start a new run with the config and action of the shown job's run (or of stored run ``run_id``)
        and show it; the old run is left as it is. Returns the job, or None with the reason shown."""
        return self._start_from(run_id, "rerun", self.ctx.rerun)

    def _start_from(self, run_id: str | None, verb: str, start: Callable[[Workflow, str], Job]) -> Job | None:
        target = run_id or (self.job.id if self.job is not None else None)
        if target is None:
            self.error_area[:] = [error_view(f"**Nothing to {verb}:** no run is shown on this page")]
            return None
        if self.job is not None and not self.job.done:
            self.error_area[:] = [
                error_view(
                    f"**Cannot {verb} run `{target}`:** run `{self.job.id}` is still running on this page; "
                    "cancel it or wait for it to end"
                )
            ]
            return None
        try:
            job = start(self.workflow, target)
        except (ValueError, OSError, RunLocked) as exc:  # RunRefused, an unknown id, a damaged run.json
            self.error_area[:] = [error_view(f"**Cannot {verb} run `{target}`:** {exc}")]
            return None
        self.form_note.object = ""
        self.attach(job, restore_config=True)
        return job

    def load_config(self, run_id: str | None = None) -> bool:
        """Fill the form with the config of the shown job (or of stored run ``run_id``), to edit and Start
        as a new run. True when loaded; False with the reason shown."""
        target = run_id or (self.job.id if self.job is not None else None)
        if target is None:
            self.error_area[:] = [error_view("**Nothing to load:** no run is shown on this page")]
            return False
        try:
            if run_id is None:
                config = self.job.config
            else:
                config = stored_config(self.ctx.store, run_id, self.workflow)
            if not isinstance(config, type(self.config)):
                raise ValueError(f"expected a {type(self.config).__name__}, found {type(config).__name__}")
        except (ValueError, OSError) as exc:
            self.error_area[:] = [error_view(f"**Cannot load the config of run `{target}`:** {exc}")]
            return False
        self.config.param.update(**config.to_dict())
        self.form_note.object = f"Config of run `{target}` loaded; Start makes a new run with it."
        return True

    def attach(self, job: Job, restore_config: bool = False) -> None:
        """Show ``job`` in this panel (a new job, or a reattached one after a reload)."""
        with self._poll_lock:
            self.job = job
            self._reset_cursors()
            self.curves.reset()
            if self.expected_series is not None:
                self.curves.prepare(self.expected_series(job.config))
            self.log_view.object = ""
            self.error_area.clear()
            self.result_area[:] = [pn.pane.Markdown("*Results appear here when the job finishes.*")]
            if restore_config and isinstance(job.config, type(self.config)):
                self.config.param.update(**job.config.to_dict())
            self._poll()

    def stop_polling(self) -> None:
        """Stop the periodic updates (the session ends)."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    # -- periodic update -------------------------------------------------------------------
    def poll(self) -> None:
        """Move new metrics, log lines, artefacts and the state of the job onto the page.

        With a threaded server a poll may still run when the next one is due; that one
        is skipped, so no metric is read twice.
        """
        if not self._poll_lock.acquire(blocking=False):
            return
        try:
            self._poll()
        finally:
            self._poll_lock.release()

    def _poll(self) -> None:
        job = self.job
        if job is None or self._outcome_shown:
            return
        done = job.done  # read first: once done, everything below is complete
        records, self._metric_cursor = self._read_metrics(job)
        if records:
            self.curves.push(records)
        lines, self._log_cursor = job.progress.read_log(self._log_cursor)
        if lines:
            self._log_lines = (self._log_lines + lines)[-LOG_LINES_SHOWN:]
            self.log_view.object = "\n".join(reversed(self._log_lines))
        self._show_state(job)
        if self.on_artefact is not None:
            artefacts = job.progress.artefacts()
            ids = {k: id(v) for k, v in artefacts.items()}
            if ids != self._artefact_ids:
                self._artefact_ids = ids
                self._guarded(lambda: self.on_artefact(artefacts), "showing an intermediate result")
        if done:
            self._outcome_shown = True
            self._show_outcome(job)

    def _read_metrics(self, job: Job) -> tuple[list[dict[str, Any]], int]:
        """New metric records: from the job's memory, or from its run folder once the runner released a
        finished job (a busy server forgets old jobs' records while a page may still be catching up)."""
        if job.progress.released and job.run_dir is not None:
            stored = job.run_dir.read_metrics()
            return stored[self._metric_cursor :], max(len(stored), self._metric_cursor)
        return job.progress.read_metrics(self._metric_cursor)

    def _show_state(self, job: Job) -> None:
        running = not job.done
        self.curves.sync_readout()
        self._set(self.state_view, f"state: **{job.state}**")
        value = int(round(job.progress.fraction * 1000))
        if self.progress_bar.value != value:
            self.progress_bar.value = value
        elapsed = (job.finished_at or time.time()) - job.started_at if job.started_at else None
        position = self.ctx.runner.queue_position(job.id) if job.state == "queued" else None
        self._set(self.progress_text, progress_line(job.state, job.progress.fraction, elapsed, position))
        device = describe_device(job.device, job.torch_threads) if job.device else "chosen when it starts"
        self._set(self.device_view, f"device: {device}")
        message = f" · {job.progress.message}" if job.progress.message else ""
        if not (running and job.progress.cancelled):
            self._set(self.status, f"run `{job.id}`{message}")
        self.start_button.disabled = running
        self.cancel_button.disabled = not running or job.progress.cancelled
        self.resume_button.disabled = not (job.state in RESUMABLE_STATES and job.run_dir is not None)
        self.rerun_button.disabled = running or job.run_dir is None
        self.load_button.disabled = False

    def _show_outcome(self, job: Job) -> None:
        for callback in self.on_finish:
            self._guarded(lambda callback=callback: callback(job), "reporting the end of the job")
        if job.state == "done":

            def show() -> None:
                view = self.on_result(job.result) if self.on_result is not None else None
                view = view if view is not None else result_summary(job.result)
                self.show_in_result_area(view)

            self._guarded(show, "showing the result")
        elif job.state == "failed":
            self.error_area[:] = [error_view(f"**Job failed:** {job.summary()['error']}", job.traceback)]
        elif job.state == "cancelled":
            self.result_area[:] = [
                pn.pane.Markdown(
                    "*Cancelled. Checkpoints are kept in the run folder: Resume continues from the last.*"
                )
            ]

    def show_in_result_area(self, view: Any) -> None:
        """Put ``view`` in the result area, unless it is already there (no redraw)."""
        shown = self.result_area.objects
        if not (len(shown) == 1 and shown[0] is pn.panel(view)):
            self.result_area[:] = [view]

    def _guarded(self, fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except Exception as exc:  # a broken view must not stop the live updates
            log.exception("error while %s", what)
            self.error_area[:] = [
                error_view(f"**Error while {what}:** {type(exc).__name__}: {exc}", traceback.format_exc())
            ]

    def _reset_cursors(self) -> None:
        self._metric_cursor = 0
        self._log_cursor = 0
        self._log_lines: list[str] = []
        self._artefact_ids: dict[str, int] = {}
        self._outcome_shown = False

    @staticmethod
    def _set(pane: pn.pane.Markdown, text: str) -> None:
        if pane.object != text:
            pane.object = text

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def _in_server_session() -> bool:
    return pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
