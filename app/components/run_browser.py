"""The run browser: a sortable, filterable table of stored runs; inspect, tag, annotate, delete and compare
them, reattach to a running one, and resume, rerun or open the config of one on its workflow's page.

Runs are read from the :class:`~numl_core.runs.RunStore` on disk, so runs from earlier server processes, the
CLI and notebooks appear too; the table is :func:`numl_core.run_index.runs_table` (workflow, state, device,
duration, tags, note and the headline metrics of each run). By default it shows "All runs": every stored run
except jobs that another live session is still running; "This session" shows the runs this browser session
started. Results are reloaded with :meth:`RunDir.load_result` (no retraining).

Ticking one run shows it, with its tags and note to edit; ticking two or more and pressing Compare shows
the config fields in which they differ, their metric curves overlaid (each labelled by its run id) and, for
runs of one workflow, their headline metrics side by side and, for finished runs of a workflow that declares
one (its ``result_overlay``), their result curves overlaid. Delete asks for a second
click ("Really delete") before it moves the ticked runs' folders to the runs root's ``.trash``
(:meth:`RunStore.delete`). Resume, Rerun and "Open config in form" hand the ticked run to its workflow
page's job panel (:meth:`~app.components.job_panel.JobPanel.resume` and friends), which shows the job or the
reason it was refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter

from app.components.job_panel import error_view, result_summary
from app.components.live_curve import (
    group_records,
    plot_key,
    plot_pane,
    series_key,
    static_curves,
    static_overlay,
)
from app.components.plots import overlay_plot
from numl_core.jobs import FINAL_STATES, Job
from numl_core.overlays import run_overlays
from numl_core.resume import RESUMABLE_STATES
from numl_core.run_index import (
    COLUMNS,
    config_diff,
    filter_runs,
    headline_metrics,
    headline_table,
    metric_columns,
    runs_table,
    split_tags,
)
from numl_core.runs import TRASH, BadNote, BadTag, DamagedRun, RunDir, RunLocked, parse_tags
from numl_core.workflows import available as available_workflows

if TYPE_CHECKING:
    from app.context import AppContext

log = logging.getLogger(__name__)

SCOPES = ("This session", "All runs")
DEFAULT_SCOPE = SCOPES[1]
MAX_COMPARE = 8
"""The most runs one comparison shows (their curves share each plot)."""
ANY = ""
"""The value of a filter that keeps every run."""
NUMBER = NumberFormatter(format="0.[0000]")
HINT = "*Tick one run to inspect it, or two or more and press Compare.*"
#: The browser redraws the Runs page each time it is opened and drops table rows sent while it draws: rows
#: sent within this time of the opening are sent once more after it (without, a run that finished just
#: then stayed "running" on the page in a browser test).
REDRAW_DELAY_MS = 1500


def _choices(label: str, values: list[str], current: str) -> dict[str, str]:
    """Options of a filter: "any ..." and the values present (plus the current one, so it is not lost)."""
    present = sorted({v for v in values if v} | ({current} if current else set()))
    return {f"any {label}": ANY, **{v: v for v in present}}


class RunBrowser(pn.viewable.Viewer):
    """Table of runs plus a detail view of the selected run (one) or a comparison (two or more).

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
        self._all = runs_table(ctx.store, {}, [])
        self._shown: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # ticked ids and their states
        self._comparing = False  # Compare was pressed for the ticked runs
        self._refreshing = False
        self._opened_at = float("-inf")  # when the page was last opened (time.monotonic)
        self._redraw_pending = False
        self._pending_delete: list[str] = []
        self._make_filters()
        self._make_actions()
        self._make_notes_editor()
        self.table = pn.widgets.Tabulator(
            self._all,
            selectable="checkbox",
            disabled=True,
            show_index=False,
            pagination="local",
            page_size=12,
            sizing_mode="stretch_width",
            css_classes=["numl-runs-table"],
        )
        self.detail = pn.Column(pn.pane.Markdown(HINT), sizing_mode="stretch_width")
        self.table.param.watch(lambda _e: self.show_selection(), "selection")
        self._layout = pn.Column(
            pn.pane.Markdown(f"## Runs\nStored in `{ctx.store.root}`."),
            pn.Row(self.scope, self.workflow_filter, self.state_filter, self.tag_filter, self.refresh_button),
            self.table,
            self.reattach_button,
            self.run_actions,
            self.selection_actions,
            self.delete_confirm,
            self.action_note,
            self.notes_editor,
            self.detail,
            sizing_mode="stretch_width",
        )
        self.refresh()
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            callback = pn.state.add_periodic_callback(self.refresh, period=period_ms, start=False)
            pn.state.onload(callback.start)
            ctx.on_close(callback.stop)

    # -- widgets -------------------------------------------------------------------------------
    def _make_filters(self) -> None:
        """The scope buttons, the workflow, state and tag filters and Refresh."""
        self.scope = pn.widgets.RadioButtonGroup(options=list(SCOPES), value=DEFAULT_SCOPE, color="light")
        self.workflow_filter = self._filter("workflow")
        self.state_filter = self._filter("state")
        self.tag_filter = self._filter("tag")
        self.refresh_button = pn.widgets.Button(label="Refresh", width=100)
        self.scope.param.watch(lambda _e: self.refresh(), "value")
        self.refresh_button.on_click(lambda _e: self.refresh())

    def _filter(self, label: str) -> pn.widgets.Select:
        select = pn.widgets.Select(
            options=_choices(label, [], ANY), value=ANY, width=180, css_classes=[f"numl-runs-filter-{label}"]
        )
        select.param.watch(lambda _e: self.refresh(), "value")
        return select

    def _make_actions(self) -> None:
        """Buttons for the ticked runs: reattach, resume, rerun, open config; compare and delete."""
        self.reattach_button = _button(
            "Show running job on its page",
            "numl-reattach",
            self.reattach_selected,
            color="primary",
            visible=False,
        )
        self.resume_button = _button("Resume", "numl-run-resume", self.resume_selected)
        self.rerun_button = _button("Rerun", "numl-run-rerun", self.rerun_selected)
        self.open_config_button = _button(
            "Open config in form", "numl-run-open-config", self.open_config_selected
        )
        self.run_actions = pn.Row(
            self.resume_button, self.rerun_button, self.open_config_button, visible=False
        )
        self.compare_button = _button(
            "Compare", "numl-run-compare", self.compare_selected, color="primary", disabled=True
        )
        self.delete_button = _button("Delete…", "numl-run-delete", self.ask_delete, disabled=True)
        self.selection_actions = pn.Row(self.compare_button, self.delete_button)
        self.delete_question = pn.pane.Markdown("", css_classes=["numl-run-delete-question"])
        self.really_delete_button = _button(
            "Really delete", "numl-run-really-delete", self.delete_confirmed, color="danger"
        )
        self.keep_button = _button("Keep them", "numl-run-keep", self.cancel_delete)
        self.delete_confirm = pn.Row(
            self.delete_question, self.really_delete_button, self.keep_button, visible=False
        )
        self.action_note = pn.pane.Markdown("", css_classes=["numl-run-action-note"])

    def _make_notes_editor(self) -> None:
        """Tags and note of the one ticked run, with Save."""
        self.tags_input = pn.widgets.TextInput(
            label="Tags (comma-separated)", placeholder="baseline, lr scan", css_classes=["numl-run-tags"]
        )
        self.note_input = pn.widgets.TextAreaInput(
            label="Note", height=80, sizing_mode="stretch_width", css_classes=["numl-run-note"]
        )
        self.save_notes_button = _button("Save tags and note", "numl-run-save-notes", self.save_notes)
        self.notes_editor = pn.Column(
            pn.Row(self.tags_input, self.save_notes_button),
            self.note_input,
            visible=False,
            sizing_mode="stretch_width",
        )

    # -- listing -------------------------------------------------------------------------------
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

    def opened(self) -> None:
        """The page was opened: show the rows as they are now (not at the next periodic refresh)."""
        self._opened_at = time.monotonic()
        self.refresh()

    def _redraw_after_drawing(self) -> None:
        """Rows sent while the browser still draws the page it just opened are dropped there: if the page
        opened less than :data:`REDRAW_DELAY_MS` ago, send the rows once more after that (in a server
        session; once, however many refreshes fall in the window)."""
        drawing = time.monotonic() - self._opened_at < REDRAW_DELAY_MS / 1000
        session = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
        if drawing and session and not self._redraw_pending:
            self._redraw_pending = True

            def redraw() -> None:
                self._redraw_pending = False
                self.refresh(resend=True)

            pn.state.add_periodic_callback(redraw, period=REDRAW_DELAY_MS, count=1)

    def refresh(self, resend: bool = False) -> None:
        """Re-read the run store, update the filters' choices and show the rows they keep; the ticked runs
        stay ticked (by run id). Unchanged rows are not sent to the browser again unless ``resend`` (the
        browser may have dropped them: :meth:`_redraw_after_drawing`)."""
        self._all = runs_table(self.ctx.store, self.ctx.workflows(), self.visible_runs())
        self._update_choices()
        frame = filter_runs(
            self._all, self.workflow_filter.value, self.state_filter.value, self.tag_filter.value
        )
        if frame.equals(self.table.value) and not resend:
            return
        selected = set(self.selected_ids())
        self._refreshing = True  # the table's own selection updates in between are not the user's
        try:
            self.table.formatters = {c: NUMBER for c in ["duration", *metric_columns(frame)]}
            self.table.value = frame
            self.table.selection = [i for i, rid in enumerate(frame["id"]) if rid in selected]
        finally:
            self._refreshing = False
        self._redraw_after_drawing()
        self.show_selection()

    def _update_choices(self) -> None:
        """Offer the workflows, states and tags of the runs in scope in the filters."""
        tags = [t for cell in self._all["tags"] for t in split_tags(cell)]
        for select, label, values in (
            (self.workflow_filter, "workflow", self._all["workflow"].tolist()),
            (self.state_filter, "state", self._all["state"].tolist()),
            (self.tag_filter, "tag", tags),
        ):
            options = _choices(label, values, select.value)
            if options != select.options:
                select.options = options

    def selected_ids(self) -> list[str]:
        ids = self.table.value["id"].tolist()
        return [ids[i] for i in self.table.selection if i < len(ids)]

    # -- detail views --------------------------------------------------------------------------
    def show_selection(self) -> None:
        """Show the one ticked run (and its tags and note), or offer Compare for several. A refresh that
        leaves the ticked runs and their states as they were keeps the view (and any unsaved typing)."""
        if self._refreshing:
            return
        ids = tuple(self.selected_ids())
        states = tuple(self.table.value.set_index("id").loc[list(ids), "state"]) if ids else ()
        if set(ids) != set(self._shown[0]):
            self._comparing = False
            self.cancel_delete()
            self.action_note.object = ""
            self._load_notes(list(ids))
        elif dict(zip(ids, states, strict=True)) == dict(zip(*self._shown, strict=True)):
            return  # the same runs in the same states, perhaps in another order (the rows were sorted)
        self._shown = (ids, states)
        self.reattach_button.visible = len(ids) == 1 and self._own_active_job(ids[0]) is not None
        self._enable_run_actions()
        if len(ids) == 1:
            self.detail[:] = [self.run_view(ids[0])]
        elif ids and self._comparing:
            self.detail[:] = [self.compare_view(list(ids))]
        elif ids:
            self.detail[:] = [pn.pane.Markdown(f"*{len(ids)} runs ticked: press Compare to compare them.*")]
        else:
            self.detail[:] = [pn.pane.Markdown(HINT)]

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

    # -- compare -------------------------------------------------------------------------------
    def compare_selected(self) -> bool:
        """Show the comparison of the ticked runs (2 to :data:`MAX_COMPARE`); True when shown."""
        ids = self.selected_ids()
        if not 2 <= len(ids) <= MAX_COMPARE:
            self.action_note.object = f"**Tick 2 to {MAX_COMPARE} runs to compare them** ({len(ids)} ticked)."
            return False
        self.action_note.object = ""
        self._comparing = True
        self.detail[:] = [self.compare_view(ids)]
        return True

    def compare_view(self, ids: list[str]) -> pn.viewable.Viewable:
        """The config fields in which runs ``ids`` differ (one column per run), their metric curves overlaid
        (labelled by run id) and, for runs of one workflow, their headline metrics side by side."""
        try:
            runs = [self._run(run_id) for run_id in ids]
            infos = [run.read_info() for run in runs]
            diff = config_diff({run.id: _config(run) for run in runs})
            records = [{**r, "run": run.id} for run in runs for r in run.read_metrics()]
        except (OSError, ValueError) as exc:
            return error_view(f"**Cannot compare {', '.join(ids)}:** {exc}")
        listed = ", ".join(f"`{run_id}`" for run_id in ids)
        return pn.Column(
            pn.pane.Markdown(f"### Comparing {len(ids)} runs: {listed}"),
            pn.pane.Markdown(f"**{len(diff)} config field(s) differ**" + ("" if len(diff) else ": none.")),
            _table(diff, "numl-config-diff"),
            self._headline_view(runs, infos),
            compare_results(runs, infos),
            compare_curves(records),
            sizing_mode="stretch_width",
            css_classes=["numl-compare"],
        )

    def _headline_view(self, runs: list[RunDir], infos: list[dict[str, Any]]) -> pn.viewable.Viewable:
        """Headline metrics side by side for runs of one workflow; a note otherwise."""
        workflows = {str(i.get("workflow")) for i in infos}
        if len(workflows) > 1:
            return pn.pane.Markdown(
                f"*Runs of different workflows ({', '.join(sorted(workflows))}): no common headline metrics.*"
            )
        known = self.ctx.workflows()
        heads = {run.id: headline_metrics(run, info, known) for run, info in zip(runs, infos, strict=True)}
        frame = headline_table(heads)
        if frame.empty:
            return pn.pane.Markdown("*No headline metrics recorded for these runs.*")
        return pn.Column(
            pn.pane.Markdown("**Headline metrics**"),
            _table(frame, "numl-compare-headline", formatters={rid: NUMBER for rid in heads}),
            sizing_mode="stretch_width",
        )

    # -- tags and note -------------------------------------------------------------------------
    def _load_notes(self, ids: list[str]) -> None:
        """Fill the tags and note editor with the one ticked run's (hidden unless exactly one is ticked)."""
        self.notes_editor.visible = len(ids) == 1
        if len(ids) != 1:
            return
        try:
            notes = self._run(ids[0]).read_notes()
            self.tags_input.value, self.note_input.value = ", ".join(notes.tags), notes.note
        except (DamagedRun, OSError, ValueError) as exc:
            self.tags_input.value, self.note_input.value = "", ""
            self.action_note.object = f"**Cannot read the tags and note of `{ids[0]}`:** {exc}"

    def save_notes(self) -> bool:
        """Store the editor's tags and note in the one ticked run's folder; True when saved, else the
        reason is shown (a bad tag names the tag and the rule)."""
        ids = self.selected_ids()
        if len(ids) != 1:
            return False
        try:
            saved = self._run(ids[0]).write_notes(parse_tags(self.tags_input.value), self.note_input.value)
        except (BadTag, BadNote, OSError, ValueError) as exc:
            self.action_note.object = f"**Not saved:** {exc}"
            return False
        self.tags_input.value = ", ".join(saved.tags)
        self.refresh()
        self.action_note.object = f"Saved the tags and note of `{ids[0]}`."
        return True

    # -- delete --------------------------------------------------------------------------------
    def ask_delete(self) -> None:
        """First step of Delete: name the ticked runs and ask for "Really delete"."""
        ids = self.selected_ids()
        if not ids:
            return
        self._pending_delete = ids
        listed = ", ".join(f"`{run_id}`" for run_id in ids)
        where = f"their folders move to `{TRASH}` in the runs folder"
        self.delete_question.object = f"**Really delete {len(ids)} run(s)?** {listed}: {where}."
        self.delete_confirm.visible = True

    def cancel_delete(self) -> None:
        """Forget a pending Delete (Keep them, or the ticked runs changed)."""
        self._pending_delete = []
        self.delete_confirm.visible = False

    def delete_confirmed(self) -> list[str]:
        """Second step of Delete: delete the runs named in the question; the ids deleted. Live runs and
        runs that are gone are reported, not deleted."""
        pending, deleted, refused = self._pending_delete, [], []
        self.cancel_delete()
        for run_id in pending:
            try:
                self.ctx.store.delete(run_id, confirm=True)
                deleted.append(run_id)
            except (RunLocked, OSError, ValueError) as exc:
                refused.append(f"`{run_id}`: {exc}")
        self.refresh()
        parts = [f"Deleted {len(deleted)} run(s) (moved to `{TRASH}`)."] if deleted else []
        self.action_note.object = " ".join(parts + [f"**Not deleted:** {r}" for r in refused])
        return deleted

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
        n = len(self.selected_ids())
        self.compare_button.disabled = not 2 <= n <= MAX_COMPARE
        self.delete_button.disabled = n == 0
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


def _button(label: str, css: str, action: Callable[[], Any], **kwargs: Any) -> pn.widgets.Button:
    """A button with CSS class ``css`` that calls ``action()`` when clicked."""
    button = pn.widgets.Button(label=label, css_classes=[css], **kwargs)
    button.on_click(lambda _event: action())
    return button


def _config(run: RunDir) -> dict[str, Any] | None:
    """A run's stored config, or None for a run without one."""
    return run.read_config_dict() if (run.path / "config.json").exists() else None


def _run_series(record: dict[str, Any]) -> str:
    """The label of a compared run's series: its run id, then the series."""
    return f"{record['run']}: {series_key({k: v for k, v in record.items() if k != 'run'})}"


def compare_curves(records: list[dict[str, Any]]) -> pn.viewable.Viewable:
    """The metric curves of compared runs (records tagged with their ``run``), one full-width plot per
    metric with every run's series overlaid, each labelled by run id; a plot grows with its legend."""
    groups = group_records(records, plot_key, _run_series)
    if not groups:
        return pn.pane.Markdown("No metrics recorded.")
    panes = [
        plot_pane(static_overlay(series, plot, max(300, 28 * len(series) + 100)))
        for plot, series in groups.items()
    ]
    return pn.Column(*panes, sizing_mode="stretch_width", css_classes=["numl-compare-curves"])


def compare_results(runs: list[RunDir], infos: list[dict[str, Any]]) -> pn.viewable.Viewable:
    """The result curves of finished runs of one workflow overlaid, one full-width plot each
    (:func:`numl_core.overlays.run_overlays`); nothing for other runs or a workflow without an overlay."""
    workflows = {str(i.get("workflow")) for i in infos}
    done = [run for run, info in zip(runs, infos, strict=True) if info.get("state") == "done"]
    if len(workflows) != 1 or len(done) < 2:
        return pn.Column(visible=False)
    try:
        workflow = available_workflows().get(workflows.pop())
        plots = run_overlays(workflow.result_overlay if workflow else None, done)
    except Exception as exc:  # a broken stored result must not break the comparison
        log.exception("cannot overlay the results of %s", [run.id for run in done])
        return error_view(f"**Cannot overlay the results:** {type(exc).__name__}: {exc}")
    if not plots:
        return pn.Column(visible=False)
    return pn.Column(
        pn.pane.Markdown(f"**Results of the {len(done)} finished runs overlaid**"),
        *[plot_pane(overlay_plot(plot)) for plot in plots],
        sizing_mode="stretch_width",
        css_classes=["numl-compare-results"],
    )


def _table(frame: pd.DataFrame, css: str, **kwargs: Any) -> pn.widgets.Tabulator:
    return pn.widgets.Tabulator(
        frame,
        disabled=True,
        show_index=False,
        sizing_mode="stretch_width",
        css_classes=[css],
        pagination="local",
        page_size=12,
        **kwargs,
    )


__all__ = ["COLUMNS", "DEFAULT_SCOPE", "MAX_COMPARE", "SCOPES", "RunBrowser"]
