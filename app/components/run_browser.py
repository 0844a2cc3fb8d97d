"""The run browser: list stored runs, inspect one, compare two, reattach to a running one, and resume,
rerun or open the config of one on its workflow's page.

Runs are read from the :class:`~numl_core.runs.RunStore` on disk, so runs from earlier
server processes, the CLI and notebooks appear too. Results are reloaded with
:meth:`RunDir.load_result` (no retraining). By default the list shows this session's runs;
"All runs" adds every stored run except jobs that another live session is still running.
Resume, Rerun and "Open config in form" hand the ticked run to its workflow page's job panel
(:meth:`~app.components.job_panel.JobPanel.resume` and friends), which shows the job or the reason it was
refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd
import panel as pn

from app.components.job_panel import error_view, result_summary
from app.components.live_curve import plot_key, series_key, static_curves
from numl_core.jobs import FINAL_STATES, Job
from numl_core.resume import RESUMABLE_STATES
from numl_core.runs import RunDir

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

COLUMNS = ["id", "workflow", "label", "state", "created", "started", "finished", "seconds"]
SCOPES = ("This session", "All runs")


def _time(value: Any) -> float | None:
    """A timestamp from ``run.json``, or None for a missing or malformed one (a damaged file)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e11
    return float(value) if ok else None


def _clock(t: Any) -> str:
    t = _time(t)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def runs_frame(infos: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run (``run.json`` contents), newest first, with readable times.

    >>> runs_frame([{"id": "r1", "workflow": "unfold", "state": "done", "started_at": 10.0,
    ...              "finished_at": 12.5}])[["id", "state", "seconds"]].to_dict("records")
    [{'id': 'r1', 'state': 'done', 'seconds': 2.5}]
    """
    rows = []
    for info in infos:
        start, end = _time(info.get("started_at")), _time(info.get("finished_at"))
        rows.append(
            {
                "id": str(info.get("id", "")),
                "workflow": str(info.get("workflow", "")),
                "label": str(info.get("label", "")),
                "state": str(info.get("state", "")),
                "created": _clock(info.get("created_at")),
                "started": _clock(start),
                "finished": _clock(end),
                "seconds": round(end - start, 1) if start and end else None,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def config_diff(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """Fields of two configs side by side, differing fields first.

    >>> config_diff({"x": 1, "y": 2}, {"x": 1, "y": 3})[["field", "differs"]].to_dict("records")
    [{'field': 'y', 'differs': True}, {'field': 'x', 'differs': False}]
    """
    fields = list(dict.fromkeys([*a, *b]))
    rows = [
        {
            "field": f,
            names[0]: str(a.get(f, "")),
            names[1]: str(b.get(f, "")),
            "differs": a.get(f) != b.get(f),
        }
        for f in fields
    ]
    frame = pd.DataFrame(rows, columns=["field", *names, "differs"])
    return frame.sort_values("differs", ascending=False, kind="stable").reset_index(drop=True)


class RunBrowser(pn.viewable.Viewer):
    """Table of runs plus a detail view of the selected run (one) or a comparison (two).

    ``result_views`` maps a workflow name to a function drawing its result dict; others get
    a generic summary. ``on_reattach(job, workflow)`` shows a running job of this session on
    its workflow's page; ``open_page(workflow)`` opens a workflow's page and returns its job panel (None
    without one), to which Resume, Rerun and "Open config in form" hand the ticked run.
    """

    def __init__(
        self,
        ctx: AppContext,
        result_views: Mapping[str, Callable[[dict[str, Any]], pn.viewable.Viewable]] | None = None,
        on_reattach: Callable[[Job, str], None] | None = None,
        period_ms: int = 3000,
        open_page: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.result_views = dict(result_views or {})
        self.on_reattach = on_reattach
        self.open_page = open_page
        self.scope = pn.widgets.RadioButtonGroup(options=list(SCOPES), value=SCOPES[0], color="light")
        self.refresh_button = pn.widgets.Button(label="Refresh", width=100)
        self.reattach_button = pn.widgets.Button(
            label="Show running job on its page",
            color="primary",
            visible=False,
            css_classes=["numl-reattach"],
        )
        self.resume_button = pn.widgets.Button(label="Resume", css_classes=["numl-run-resume"])
        self.rerun_button = pn.widgets.Button(label="Rerun", css_classes=["numl-run-rerun"])
        self.open_config_button = pn.widgets.Button(
            label="Open config in form", css_classes=["numl-run-open-config"]
        )
        self.run_actions = pn.Row(
            self.resume_button, self.rerun_button, self.open_config_button, visible=False
        )
        self.action_note = pn.pane.Markdown("", css_classes=["numl-run-action-note"])
        self.table = pn.widgets.Tabulator(
            runs_frame([]),
            selectable="checkbox",
            disabled=True,
            show_index=False,
            pagination="local",
            page_size=12,
            sizing_mode="stretch_width",
            css_classes=["numl-runs-table"],
        )
        self.detail = pn.Column(
            pn.pane.Markdown("*Tick one run to inspect it, or two to compare them.*"),
            sizing_mode="stretch_width",
        )
        self.scope.param.watch(lambda _e: self.refresh(), "value")
        self.refresh_button.on_click(lambda _e: self.refresh())
        self.reattach_button.on_click(lambda _e: self.reattach_selected())
        self.resume_button.on_click(lambda _e: self.resume_selected())
        self.rerun_button.on_click(lambda _e: self.rerun_selected())
        self.open_config_button.on_click(lambda _e: self.open_config_selected())
        self.table.param.watch(lambda _e: self.show_selection(), "selection")
        self._layout = pn.Column(
            pn.pane.Markdown(f"## Runs\nStored in `{ctx.store.root}`."),
            pn.Row(self.scope, self.refresh_button),
            self.table,
            self.reattach_button,
            self.run_actions,
            self.action_note,
            self.detail,
            sizing_mode="stretch_width",
        )
        self.refresh()
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            callback = pn.state.add_periodic_callback(self.refresh, period=period_ms, start=False)
            pn.state.onload(callback.start)
            ctx.on_close(callback.stop)

    # -- listing -----------------------------------------------------------------------------
    def visible_runs(self) -> list[dict[str, Any]]:
        """``run.json`` of the runs this session may see in the current scope."""
        infos = self.ctx.store.list()
        if self.scope.value == SCOPES[0]:
            return [i for i in infos if i.get("owner") == self.ctx.token]
        return [i for i in infos if not self._live_elsewhere(i)]

    def _live_elsewhere(self, info: dict[str, Any]) -> bool:
        owner = self.ctx.shared.owner_of(str(info.get("id")))
        job = self.ctx.runner.get(str(info.get("id")))
        return owner not in (None, self.ctx.token) and job is not None and not job.done

    def refresh(self) -> None:
        """Re-read the run store; keep the selection by run id."""
        frame = runs_frame(self.visible_runs())
        if frame.equals(self.table.value):
            return
        selected = set(self.selected_ids())
        self.table.value = frame
        self.table.selection = [i for i, rid in enumerate(frame["id"]) if rid in selected]
        self._enable_run_actions()

    def selected_ids(self) -> list[str]:
        ids = self.table.value["id"].tolist()
        return [ids[i] for i in self.table.selection if i < len(ids)]

    # -- detail views ------------------------------------------------------------------------
    def show_selection(self) -> None:
        ids = self.selected_ids()
        self.reattach_button.visible = len(ids) == 1 and self._own_active_job(ids[0]) is not None
        self.action_note.object = ""
        self._enable_run_actions()
        if len(ids) == 1:
            self.detail[:] = [self.run_view(ids[0])]
        elif len(ids) == 2:
            self.detail[:] = [self.compare_view(ids[0], ids[1])]
        elif ids:
            self.detail[:] = [pn.pane.Markdown("*Tick at most two runs to compare them.*")]
        else:
            self.detail[:] = [pn.pane.Markdown("*Tick one run to inspect it, or two to compare them.*")]

    def _run(self, run_id: str) -> RunDir:
        return self.ctx.store.get(run_id)

    def run_view(self, run_id: str) -> pn.viewable.Viewable:
        """Config, info, metric curves and (for finished runs) the reloaded result of one run."""
        try:
            run = self._run(run_id)
            info = run.read_info()
            config = run.read_config_dict() if (run.path / "config.json").exists() else {}
            metrics = run.read_metrics()
        except (OSError, ValueError) as exc:
            return error_view(f"**Cannot read run {run_id}:** {exc}")
        info_shown = {k: v for k, v in info.items() if k not in ("traceback", "owner")}
        tabs = pn.Tabs(
            ("Metrics", static_curves(metrics)),
            ("Config", pn.pane.JSON(config, depth=2, sizing_mode="stretch_width")),
            ("Info", pn.pane.JSON(info_shown, depth=2, sizing_mode="stretch_width")),
            dynamic=True,
            sizing_mode="stretch_width",
        )
        if info.get("traceback"):
            tabs.insert(0, ("Error", error_view(f"**Failed:** {info.get('error')}", info["traceback"])))
        if info.get("state") == "done":
            tabs.insert(0, ("Result", self.result_view(run, info.get("workflow", ""))))
            tabs.active = 0
        return pn.Column(
            pn.pane.Markdown(f"### Run `{run_id}`: {info.get('state')}"), tabs, sizing_mode="stretch_width"
        )

    def result_view(self, run: RunDir, workflow: str) -> pn.viewable.Viewable:
        """The stored result, drawn by the workflow's own view when it has one."""
        try:
            wf = self.ctx.workflows().get(workflow)
            result = wf.load_result(run) if wf is not None else run.load_result()
            view = self.result_views.get(workflow, result_summary)
            return view(result)
        except Exception as exc:  # a broken stored result must not break the browser
            log.exception("cannot show result of %s", run.id)
            return error_view(f"**Cannot show the result of {run.id}:** {type(exc).__name__}: {exc}")

    def compare_view(self, a: str, b: str) -> pn.viewable.Viewable:
        """Config differences and overlaid metric curves of two runs."""
        try:
            ra, rb = self._run(a), self._run(b)
            diff = config_diff(ra.read_config_dict(), rb.read_config_dict(), ("A", "B"))
            records = [{**r, "run": "A"} for r in ra.read_metrics()] + [
                {**r, "run": "B"} for r in rb.read_metrics()
            ]
        except (OSError, ValueError) as exc:
            return error_view(f"**Cannot compare {a} and {b}:** {exc}")
        n_diff = int(diff["differs"].sum())
        return pn.Column(
            pn.pane.Markdown(f"### A = `{a}`, B = `{b}`: {n_diff} config field(s) differ"),
            pn.widgets.Tabulator(
                diff,
                disabled=True,
                show_index=False,
                sizing_mode="stretch_width",
                css_classes=["numl-config-diff"],
                pagination="local",
                page_size=12,
            ),
            static_curves(records, group=plot_key, label=lambda r: f"{r['run']}: {series_key(_untagged(r))}"),
            sizing_mode="stretch_width",
        )

    # -- reattach ------------------------------------------------------------------------------
    def _own_active_job(self, run_id: str) -> Job | None:
        job = self.ctx.runner.get(run_id)
        if job is None or job.state in FINAL_STATES or not self.ctx.owns(run_id):
            return None
        return job

    def reattach_selected(self) -> None:
        """Show the selected running job (of this session) on its workflow page."""
        ids = self.selected_ids()
        job = self._own_active_job(ids[0]) if len(ids) == 1 else None
        if job is None or self.on_reattach is None:
            return
        workflow = self.ctx.workflow_of(job)
        if workflow is not None:
            self.on_reattach(job, workflow)

    # -- resume, rerun, open config ------------------------------------------------------------
    def selected_run(self) -> tuple[str, str, str] | None:
        """``(id, workflow, state)`` of the one ticked run; None unless exactly one is ticked."""
        ids = self.selected_ids()
        if len(ids) != 1:
            return None
        row = self.table.value.loc[self.table.value["id"] == ids[0]].iloc[0]
        return ids[0], str(row["workflow"]), str(row["state"])

    def _enable_run_actions(self) -> None:
        selected = self.selected_run()
        self.run_actions.visible = selected is not None and self.open_page is not None
        if selected is not None:
            state = selected[2]
            self.resume_button.disabled = state not in RESUMABLE_STATES
            self.rerun_button.disabled = self.open_config_button.disabled = state == "damaged"

    def resume_selected(self) -> Job | None:
        """Resume the ticked run from its checkpoints on its workflow's page; the job, or None."""
        return self._on_page("resume", lambda panel, run_id: panel.resume(run_id))

    def rerun_selected(self) -> Job | None:
        """Start a new run with the ticked run's config on its workflow's page; the job, or None."""
        return self._on_page("rerun", lambda panel, run_id: panel.rerun(run_id))

    def open_config_selected(self) -> bool:
        """Fill the ticked run's workflow page's form with its config; True when loaded."""
        return bool(self._on_page("open the config of", lambda panel, run_id: panel.load_config(run_id)))

    def _on_page(self, verb: str, act: Callable[[Any, str], Any]) -> Any:
        """Open the ticked run's workflow page and ``act(job_panel, run_id)`` there (where it shows its
        outcome); a workflow without a page is reported here."""
        selected = self.selected_run()
        if selected is None or self.open_page is None:
            return None
        run_id, workflow, _state = selected
        panel = self.open_page(workflow)
        if panel is None:
            self.action_note.object = (
                f"**Cannot {verb} run `{run_id}`:** this dashboard has no {workflow!r} page"
            )
            return None
        outcome = act(panel, run_id)
        self.refresh()
        return outcome

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def _untagged(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "run"}
