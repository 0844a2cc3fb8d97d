"""Dashboard components on the server side, without a browser.

A tiny workflow whose steps are gated by events drives the job panel deterministically:
the test decides when each metric is emitted, so cursor and streaming checks do not
depend on timing.
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
import pytest
from bokeh.document import Document
from bokeh.models import LogScale, Plot, Scatter, Span

from app.components.job_panel import JobPanel, UploadBox, confine_paths, path_fields
from app.components.live_curve import (
    BOUNDARY_TAG,
    LiveCurves,
    group_records,
    plot_key,
    series_key,
    static_curves,
)
from app.components.run_browser import DEFAULT_SCOPE, SCOPES, RunBrowser
from app.context import AppContext, Settings, Shared, new_token, valid_token
from app.main import create_app, page_specs
from app.pages import unfolding
from numl_core.config import Config
from numl_core.live import LivePlots, PlotSpec
from numl_core.unfold import figures as unfold_figures
from numl_core.unfold.figures import display_edges
from numl_core.unfold.result import UnfoldResult
from numl_core.unfold.workflow import LIVE_PLOTS as UNFOLD_LIVE
from numl_core.workflows import Workflow

TIMEOUT = 20.0


class TinyConfig(Config):
    """Config of the test workflow."""

    steps = param.Integer(default=3, bounds=(1, 100), doc="Steps.")
    rate = param.Number(default=0.5, bounds=(0.0, 1.0), doc="A rate.")
    data_file = param.String(default="", doc="Optional input file.")
    fail = param.Boolean(default=False, doc="Raise after the first step.")


class Gate:
    """Lets the test release the workflow one step at a time."""

    def __init__(self) -> None:
        self.release = threading.Semaphore(0)
        self.reached = threading.Semaphore(0)

    def step(self) -> None:
        self.release.release()

    def wait_reached(self) -> None:
        assert self.reached.acquire(timeout=TIMEOUT), "workflow did not reach the next step"


GATES: dict[int, Gate] = {}


def tiny_run(config: TinyConfig, progress: Any) -> dict[str, Any]:
    gate = GATES.get(config.steps)
    for i in range(config.steps):
        if gate is not None:
            gate.reached.release()
            while not gate.release.acquire(timeout=0.02):
                progress.check_cancelled()
        progress.check_cancelled()
        progress.metric("step1_loss", 1.0 / (i + 1), step=i, iteration=0, split="train")
        progress.metric("step1_loss", 1.5 / (i + 1), step=i, iteration=0, split="val")
        progress.metric("step2_ess", 100.0 - i, step=i)
        progress.artefact("histograms", pd.DataFrame({"step": [i]}))
        progress.log(f"step {i}")
        progress.update((i + 1) / config.steps, f"step {i + 1} of {config.steps}")
        if config.fail:
            raise RuntimeError("tiny workflow failed on purpose")
    return {"n": config.steps, "table": pd.DataFrame({"a": [1.0, 2.0]}), "w": np.ones(4)}


TINY = Workflow("tiny", "Tiny", "A tiny test workflow.", TinyConfig, tiny_run)


def make_ctx(shared: Shared, token: str | None = None) -> AppContext:
    return AppContext(shared, token or new_token(), workflows={"tiny": TINY})


@pytest.fixture
def gate() -> Gate:
    g = GATES[7] = Gate()
    yield g
    for _ in range(10):
        g.step()
    GATES.pop(7, None)


def render(viewable: pn.viewable.Viewable) -> None:
    """Build the Bokeh models, as a served page would."""
    pn.panel(viewable).get_root(Document())


# -- context -------------------------------------------------------------------------------------------
def test_settings_from_env(tmp_path: Path) -> None:
    s = Settings.from_env(
        {"NUML_RUNS": str(tmp_path / "r"), "NUML_DATA": str(tmp_path / "d"), "NUML_MAX_UPLOAD_MB": "1.5"}
    )
    assert (s.runs_root, s.data_root, s.max_upload_bytes) == (tmp_path / "r", tmp_path / "d", 1_500_000)
    assert s.max_workers == 2 and s.torch_threads >= 1
    with pytest.raises(ValueError, match="NUML_MAX_UPLOAD_MB"):
        Settings.from_env({"NUML_MAX_UPLOAD_MB": "lots"})


def test_tokens_are_url_safe_and_distinct() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(valid_token(t) for t in tokens)
    assert not valid_token("../x") and not valid_token("short") and not valid_token(None)


# -- live curves -----------------------------------------------------------------------------------------
def test_records_group_into_overlaid_plots() -> None:
    records = [
        {"name": "step1_loss", "value": 1.0, "step": 0, "iteration": 0, "split": "train"},
        {"name": "step2_loss", "value": 2.0, "step": 0, "iteration": 0, "split": "val"},
        {"name": "step1_ess", "value": 3.0, "step": 0},
        {"name": "step2_ess", "value": 4.0, "step": 0},
        {"name": "ibu_ts", "value": 0.1, "step": 1, "distribution": "dpt"},
    ]
    groups = group_records(records)
    assert list(groups) == ["loss", "ess", "ibu_ts"]
    assert list(groups["loss"]) == ["step1_loss (train)", "step2_loss (val)"]
    assert list(groups["ess"]) == ["step1_ess", "step2_ess"]
    assert series_key(records[-1]) == "ibu_ts (dpt)"
    assert plot_key({"name": "omnifold_change"}) == "omnifold_change"
    assert UNFOLD_LIVE.group({"name": "omnifold_change"}) == "convergence"
    assert UNFOLD_LIVE.group({"name": "step2_n_extreme"}) is None


def test_restarting_steps_are_laid_end_to_end_across_batches() -> None:
    curves = LiveCurves()
    curves.push([{"name": "a_loss", "value": 1.0, "step": s, "iteration": 0} for s in range(3)])
    curves.push([{"name": "a_loss", "value": 1.0, "step": s, "iteration": 1} for s in range(2)])
    assert curves._buffers["loss"]["a_loss"].data["step"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_live_curves_stream_into_one_buffer_per_series() -> None:
    curves = LiveCurves()
    render(curves)
    first = [{"name": "a_loss", "value": float(i), "step": i, "split": "train"} for i in range(3)]
    assert curves.push(first) == 3
    buffers = curves._buffers["loss"]
    assert len(buffers["a_loss (train)"].data) == 3
    curves.push(
        [
            {"name": "a_loss", "value": 9.0, "step": 3, "split": "train"},
            {"name": "a_loss", "value": 8.0, "step": 3, "split": "val"},
        ]
    )
    assert len(buffers["a_loss (train)"].data) == 4 and len(buffers["a_loss (val)"].data) == 1
    assert curves.received == 5 and "5 metric points" in curves._readout.object
    curves.clear()
    assert curves.received == 0 and curves._buffers == {}


def test_prepared_series_are_drawn_once_and_then_only_streamed() -> None:
    curves = LiveCurves(group=UNFOLD_LIVE.group)
    curves.prepare(UNFOLD_LIVE.expected(None))
    render(curves)
    panes = dict(curves._panes)
    assert list(panes) == ["loss", "ess", "convergence"]
    objects = {k: p.object for k, p in panes.items()}
    curves.push(
        [
            {"name": "step2_loss", "value": 0.7, "step": 0, "iteration": 0, "split": "val"},
            {"name": "omnifold_change", "value": 0.1, "step": 0, "iteration": 0},
        ]
    )
    assert {k: p.object for k, p in curves._panes.items()} == objects  # no redraw, only streaming
    assert len(curves._buffers["loss"]["step2_loss (val)"].data) == 1
    curves.reset()
    assert curves.received == 0 and len(curves._buffers["loss"]["step2_loss (val)"].data) == 0
    assert {k: p.object for k, p in curves._panes.items()} == objects


def test_metrics_grouped_to_none_are_counted_but_not_drawn() -> None:
    curves = LiveCurves(group=UNFOLD_LIVE.group)
    curves.push(
        [{"name": "step1_finite", "value": 1.0, "step": 0}, {"name": "step1_ess", "value": 9.0, "step": 0}]
    )
    assert curves.received == 2 and list(curves._buffers) == ["ess"]


def _figure(curves: LiveCurves, plot: str) -> Any:
    """The Bokeh figure a live plot shows now."""
    return hv.render(curves._panes[plot].object)


def _marker_points(fig: Any) -> dict[str, int]:
    """Points drawn with markers, by legend label."""
    labels = {r: item.label["value"] for item in fig.legend[0].items for r in item.renderers}
    return {
        labels.get(r, "?"): len(r.data_source.data["value"])
        for r in fig.renderers
        if isinstance(getattr(r, "glyph", None), Scatter)
    }


def test_live_loss_falling_over_decades_gets_a_log_axis_and_the_legend_beside_the_data() -> None:
    curves = LiveCurves(group=UNFOLD_LIVE.group, specs=UNFOLD_LIVE)
    for split in ("train", "val"):  # two series: a legend
        curves.push(
            [
                {"name": "step1_loss", "value": v, "step": i, "split": split}
                for i, v in enumerate((4e4, 5e3, 900.0, 200.0))
            ]
        )
    fig = _figure(curves, "loss")
    assert isinstance(fig.y_scale, LogScale)
    assert fig.legend[0] in fig.right  # outside the data area
    assert fig.yaxis[0].axis_label == "weighted BCE per event"
    flat = LiveCurves()
    flat.push([{"name": "a_loss", "value": v, "step": i} for i, v in enumerate((0.7, 0.6, 0.65))])
    assert not isinstance(_figure(flat, "loss").y_scale, LogScale)


def test_live_short_series_have_markers_long_ones_do_not() -> None:
    specs = LivePlots(plots=(PlotSpec("loss", markers=True),))
    curves = LiveCurves(specs=specs)
    curves.push([{"name": "a_loss", "value": 1.0, "step": 0, "split": "val"}])
    curves.push([{"name": "a_loss", "value": 1.0 + i, "step": i, "split": "train"} for i in range(40)])
    points = _marker_points(_figure(curves, "loss"))
    assert points["a_loss (val)"] == 1  # a single point is visible
    assert points.get("a_loss (train)", 0) == 0  # 40 points: a plain line
    # a plot that does not ask for markers (long per-epoch curves) draws none: each is a redraw per update
    plain = LiveCurves()
    plain.push([{"name": "a_loss", "value": 1.0, "step": 0, "split": "val"}])
    assert not [r for r in _figure(plain, "loss").renderers if isinstance(getattr(r, "glyph", None), Scatter)]


def test_live_log_plot_with_an_all_zero_series_falls_back_to_a_linear_axis() -> None:
    curves = LiveCurves(group=UNFOLD_LIVE.group, specs=UNFOLD_LIVE)
    curves.prepare(UNFOLD_LIVE.expected(None))
    assert isinstance(_figure(curves, "convergence").y_scale, LogScale)  # declared log
    change, spread = (label.split(" (")[0] for label in UNFOLD_LIVE.expected(None)["convergence"])
    curves.push(
        [
            {"name": change, "value": 0.3, "step": 0},
            {"name": spread, "value": 0.0, "step": 0},  # one trial: no spread
        ]
    )
    fig = _figure(curves, "convergence")
    assert not isinstance(fig.y_scale, LogScale)  # the zero spread is drawn, not dropped
    assert len(_marker_points(fig)) == 2


def _boundary_steps(fig: Any) -> list[float]:
    """Steps of the dotted spans a live plot draws where an iteration starts."""
    return sorted(r.location for r in fig.center if isinstance(r, Span) and BOUNDARY_TAG in r.tags)


def test_live_loss_marks_where_each_iteration_starts() -> None:
    curves = LiveCurves(group=UNFOLD_LIVE.group, specs=UNFOLD_LIVE)
    curves.prepare(UNFOLD_LIVE.expected(None))
    for iteration in range(3):
        curves.push(
            [{"name": "step1_loss", "value": 0.6, "step": s, "iteration": iteration} for s in range(4)]
        )
    assert curves._restarts["loss"] == [4.0, 8.0]
    fig = _figure(curves, "loss")
    assert "iteration" in fig.xaxis[0].axis_label
    assert _boundary_steps(fig) == [4.0, 8.0]
    # on a served page the spans follow the job: a new iteration adds one, a new job clears them
    served = Document()
    root = curves.__panel__().get_root(served)
    figure = next(p for p in root.select({"type": Plot}) if "dotted" in (p.xaxis[0].axis_label or ""))
    curves.push([{"name": "step1_loss", "value": 0.6, "step": s, "iteration": 3} for s in range(4)])
    assert _boundary_steps(figure) == [4.0, 8.0, 12.0]
    curves.reset()
    curves.push([{"name": "step1_loss", "value": 0.6, "step": s, "iteration": 0} for s in range(4)])
    assert _boundary_steps(figure) == []
    records = [
        {"name": "a_loss", "value": 0.5, "step": s, "iteration": i} for i in range(2) for s in range(3)
    ]
    stored = hv.render(static_curves(records)[0].object)
    assert [
        list(r.data_source.data["step"]) for r in stored.renderers if type(r.glyph).__name__ == "VSpan"
    ] == [[3.0]]


# -- job panel ------------------------------------------------------------------------------------------
def test_config_widgets_are_typed_boxes_with_field_classes(shared: Shared) -> None:
    widgets = JobPanel(TINY, make_ctx(shared), config=TinyConfig()).form.widgets
    assert isinstance(widgets["steps"], pn.widgets.IntInput)
    assert isinstance(widgets["rate"], pn.widgets.FloatInput)
    assert widgets["data_file"].css_classes == ["numl-field-data_file"]
    assert path_fields(TinyConfig) == ["data_file"]


def test_job_panel_streams_metrics_with_cursors(shared: Shared, gate: Gate) -> None:
    ctx = make_ctx(shared)
    panel = JobPanel(TINY, ctx, config=TinyConfig(steps=7))
    render(panel)
    job = panel.start()
    assert job is not None and panel.start_button.disabled and not panel.cancel_button.disabled
    seen = []
    for _ in range(3):
        gate.wait_reached()
        panel.poll()
        seen.append(panel.curves.received)
        gate.step()
    gate.wait_reached()
    panel.poll()
    seen.append(panel.curves.received)
    # three metric records per released step, none read twice
    assert seen == [0, 3, 6, 9]
    assert panel._metric_cursor == 9
    panel.poll()
    assert panel.curves.received == 9
    for _ in range(4):
        gate.step()
    assert job.wait(TIMEOUT) == "done"
    panel.poll()
    assert panel.curves.received == 21 and panel.curves.counts["step2_ess"] == 7
    assert "state: **done**" in panel.state_view.object and panel.progress_bar.value == 1000
    assert not panel.start_button.disabled and panel.cancel_button.disabled
    assert "step 6" in panel.log_view.object.splitlines()[0]
    assert len(panel.result_area.objects) == 1 and "JSON" in repr(panel.result_area)
    run = ctx.store.get(job.id)
    assert run.read_info()["owner"] == ctx.token and len(run.read_metrics()) == 21
    assert run.load_result()["n"] == 7


def test_job_panel_calls_result_and_artefact_hooks(shared: Shared) -> None:
    seen_artefacts: list[dict[str, Any]] = []
    panel = JobPanel(
        TINY,
        make_ctx(shared),
        config=TinyConfig(steps=2),
        on_artefact=seen_artefacts.append,
        on_result=lambda r: pn.pane.Markdown(f"n = {r['n']}"),
    )
    job = panel.start()
    assert job.wait(TIMEOUT) == "done"
    panel.poll()
    panel.poll()
    assert len(seen_artefacts) == 1 and list(seen_artefacts[0]) == ["histograms"]
    assert panel.result_area.objects[0].object == "n = 2"


def test_cancel_stops_the_job_and_reenables_start(shared: Shared, gate: Gate) -> None:
    panel = JobPanel(TINY, make_ctx(shared), config=TinyConfig(steps=7))
    job = panel.start()
    gate.wait_reached()
    panel.cancel()
    assert panel.cancel_button.disabled and "Cancel requested" in panel.status.object
    assert job.wait(TIMEOUT) == "cancelled"
    panel.poll()
    assert "state: **cancelled**" in panel.state_view.object and not panel.start_button.disabled
    assert "Cancelled" in panel.result_area.objects[0].object


def test_failure_shows_exception_and_traceback(shared: Shared) -> None:
    panel = JobPanel(TINY, make_ctx(shared), config=TinyConfig(steps=2, fail=True))
    job = panel.start()
    assert job.wait(TIMEOUT) == "failed"
    panel.poll()
    text = repr(panel.error_area)
    assert "RuntimeError: tiny workflow failed on purpose" in panel.error_area[0][0].object
    assert "Traceback" in text and "tiny_run" in panel.error_area[0][1][0].object


def test_start_refuses_paths_outside_the_data_folder(shared: Shared) -> None:
    ctx = make_ctx(shared)
    panel = JobPanel(TINY, ctx, config=TinyConfig(data_file="../../etc/passwd"))
    assert panel.start() is None
    assert "leaves the data folder" in panel.error_area[0][0].object
    assert ctx.jobs() == []
    panel.config.data_file = "events.csv"
    job = panel.start()
    assert job.config.data_file == str(ctx.data_root.resolve() / "events.csv")
    assert panel.config.data_file == "events.csv"  # the widgets keep what was typed
    job.wait(TIMEOUT)


def test_confine_paths_validates_the_config(shared: Shared) -> None:
    cfg = TinyConfig(data_file="a.csv")
    out = confine_paths(cfg, shared.settings.data_root)
    assert out is not cfg and out.data_file.endswith("data/a.csv")


def test_upload_is_saved_inside_the_data_folder_and_size_limited(shared: Shared) -> None:
    cfg = TinyConfig()
    box = UploadBox(cfg, ["data_file"], shared.settings.data_root, max_bytes=10)
    box.store("mc.csv", "a,b\n1,2\n")
    assert Path(cfg.data_file) == shared.settings.data_root.resolve() / "uploads" / "mc.csv"
    box.store("big.csv", b"x" * 11)
    assert "Upload refused" in box.message.object and "limit is 10 B" in box.message.object
    box.store("../evil.csv", b"x")
    assert "not a plain file name" in box.message.object
    assert Path(cfg.data_file).name == "mc.csv"


def test_job_panel_shows_percent_elapsed_eta_and_device_while_a_job_runs(shared: Shared, gate: Gate) -> None:
    panel = JobPanel(TINY, make_ctx(shared), config=TinyConfig(steps=7))
    job = panel.start()
    gate.wait_reached()
    panel.poll()
    assert re.fullmatch(r"0 % · elapsed \d s · ETA —", panel.progress_text.object)  # too early to estimate
    assert panel.device_view.object == "device: CPU, 1 torch thread"  # the server gives jobs one thread
    for _ in range(3):
        gate.step()
        gate.wait_reached()
    job.started_at -= 30.0  # as if the three steps took half a minute
    panel.poll()
    text = panel.progress_text.object
    assert re.fullmatch(r"42 % · elapsed 3[0-2] s · ETA 4[0-3] s", text), (
        text
    )  # 4 of 7 steps left at 10 s each
    for _ in range(4):
        gate.step()
    assert job.wait(TIMEOUT) == "done"
    panel.poll()
    assert re.fullmatch(r"100 % · ran 3\d s", panel.progress_text.object), panel.progress_text.object
    assert job.run_dir.read_info()["device"] == "cpu"


def test_job_panel_shows_the_place_of_a_waiting_job_in_the_queue(shared: Shared, gate: Gate) -> None:
    ctx = make_ctx(shared)
    busy = [ctx.submit(TINY, TinyConfig(steps=7)) for _ in range(shared.settings.max_workers)]
    for _ in busy:
        gate.wait_reached()
    panel = JobPanel(TINY, ctx, config=TinyConfig(steps=7), restore=False)
    job = panel.start()
    assert job is not None and job.state == "queued"
    assert panel.progress_text.object == "queued (position 1)"
    assert panel.device_view.object == "device: chosen when it starts"
    for j in [*busy, job]:
        j.cancel()
    assert [j.wait(TIMEOUT) for j in [*busy, job]] == ["cancelled"] * 3


def test_job_panel_resumes_a_cancelled_run_then_reruns_it(shared: Shared, gate: Gate) -> None:
    ctx = make_ctx(shared)
    panel = JobPanel(TINY, ctx, config=TinyConfig(steps=7, rate=0.25))
    job = panel.start()
    assert panel.resume_button.disabled and panel.rerun_button.disabled  # running
    gate.wait_reached()
    panel.cancel()
    assert job.wait(TIMEOUT) == "cancelled"
    panel.poll()
    assert not panel.resume_button.disabled and not panel.rerun_button.disabled
    panel.config.rate = 0.75  # edited since: the resume continues with the run's own config
    for _ in range(7):
        gate.step()
    resumed = panel.resume()
    assert resumed is not None and resumed.id == job.id and panel.job is resumed
    assert resumed.wait(TIMEOUT) == "done"
    panel.poll()
    assert "state: **done**" in panel.state_view.object and panel.resume_button.disabled
    assert panel.config.rate == 0.25 and resumed.config.rate == 0.25
    assert job.run_dir.read_info()["resumes"] == 1 and ctx.jobs() == [resumed]
    assert [i["id"] for i in ctx.store.list()] == [job.id]  # resumed in its own folder

    for _ in range(7):
        gate.step()
    again = panel.rerun()
    assert again is not None and again.id != job.id and panel.job is again
    assert again.wait(TIMEOUT) == "done"
    info = ctx.store.get(again.id).read_info()
    assert (info["rerun_of"], info["owner"], info["state"]) == (job.id, ctx.token, "done")
    assert ctx.store.get(job.id).read_info()["state"] == "done"  # the first run is as it was


def test_job_panel_refuses_to_resume_a_done_run_and_loads_configs_into_the_form(shared: Shared) -> None:
    ctx = make_ctx(shared)
    panel = JobPanel(TINY, ctx, config=TinyConfig(steps=2))
    job = panel.start()
    assert job.wait(TIMEOUT) == "done"
    panel.poll()
    assert panel.resume_button.disabled and not panel.load_button.disabled
    assert panel.resume() is None
    assert f"run '{job.id}' is done; nothing to resume" in panel.error_area[0][0].object
    other = ctx.store.create("other", TinyConfig(steps=9))
    assert panel.rerun(other.id) is None
    assert f"run '{other.id}' is a 'other' run, not 'tiny'" in panel.error_area[0][0].object
    assert not panel.load_config(other.id) and panel.config.steps == 2
    older = ctx.store.create("tiny", TinyConfig(steps=5, rate=0.125))
    assert panel.load_config(older.id)
    assert (panel.config.steps, panel.config.rate) == (5, 0.125)
    assert panel.form.widgets["steps"].value == 5  # the form shows the loaded config
    assert older.id in panel.form_note.object and panel.job is job  # nothing started
    assert panel.load_config() and panel.config.steps == 2  # the shown job's own config


# -- sessions -------------------------------------------------------------------------------------------
def test_sessions_see_only_their_own_jobs(shared: Shared, gate: Gate) -> None:
    a, b = make_ctx(shared), make_ctx(shared)
    panel_a = JobPanel(TINY, a, config=TinyConfig(steps=7))
    job = panel_a.start()
    gate.wait_reached()
    panel_b = JobPanel(TINY, b)
    assert panel_b.job is None and b.jobs() == [] and a.jobs() == [job]
    assert a.owns(job.id) and not b.owns(job.id)
    browser_b = RunBrowser(b)
    assert browser_b.scope.value == DEFAULT_SCOPE == "All runs"
    assert browser_b.table.value.empty  # still running in another session: hidden
    for _ in range(7):
        gate.step()
    assert job.wait(TIMEOUT) == "done"
    browser_b.refresh()
    assert browser_b.table.value["id"].tolist() == [job.id]  # finished runs are shared history
    browser_b.scope.value = SCOPES[0]
    assert browser_b.table.value.empty  # but not this session's own
    browser_a = RunBrowser(a)
    assert browser_a.table.value["id"].tolist() == [job.id]
    browser_a.scope.value = SCOPES[0]
    assert browser_a.table.value["id"].tolist() == [job.id]


def test_reload_reattaches_and_closing_keeps_jobs_running(shared: Shared, gate: Gate) -> None:
    first = make_ctx(shared)
    panel = JobPanel(TINY, first, config=TinyConfig(steps=7, rate=0.25))
    job = panel.start()
    gate.wait_reached()
    first.close()
    assert first.closed and not job.progress.cancelled and not job.done
    again = make_ctx(shared, token=first.token)
    restored = JobPanel(TINY, again)
    assert restored.job is job and restored.config.rate == 0.25 and restored.config.steps == 7
    assert restored.start_button.disabled
    for _ in range(7):
        gate.step()
    assert job.wait(TIMEOUT) == "done"


# -- run browser ----------------------------------------------------------------------------------------
def test_run_browser_reattaches_a_running_job_to_its_page(shared: Shared, gate: Gate) -> None:
    ctx = make_ctx(shared)
    job = ctx.submit(TINY, TinyConfig(steps=7))
    gate.wait_reached()
    reattached: list[tuple[Any, str]] = []
    browser = RunBrowser(ctx, on_reattach=lambda j, w: reattached.append((j, w)))
    browser.table.selection = [0]
    assert browser.reattach_button.visible
    browser.reattach_selected()
    assert reattached == [(job, "tiny")]
    for _ in range(7):
        gate.step()
    job.wait(TIMEOUT)


def test_run_browser_resumes_reruns_and_opens_a_config_on_the_workflow_page(
    shared: Shared, gate: Gate
) -> None:
    ctx = make_ctx(shared)
    panel = JobPanel(TINY, ctx, config=TinyConfig(steps=2))
    opened: list[str] = []
    browser = RunBrowser(ctx, open_page=lambda wf: opened.append(wf) or ctx.job_panels.get(wf))
    job = ctx.submit(TINY, TinyConfig(steps=7, rate=0.25))
    gate.wait_reached()
    job.cancel()
    assert job.wait(TIMEOUT) == "cancelled"
    browser.refresh()
    browser.table.selection = [0]
    assert browser.run_actions.visible and not browser.resume_button.disabled
    assert browser.open_config_selected() and panel.config.rate == 0.25 and panel.config.steps == 7
    for _ in range(7):
        gate.step()
    resumed = browser.resume_selected()
    assert resumed is not None and resumed.id == job.id and panel.job is resumed
    assert resumed.wait(TIMEOUT) == "done"
    browser.refresh()
    assert browser.table.value["state"].tolist() == ["done"] and browser.resume_button.disabled
    for _ in range(7):
        gate.step()
    again = browser.rerun_selected()
    assert again is not None and panel.job is again and again.wait(TIMEOUT) == "done"
    browser.refresh()
    assert set(browser.table.value["id"]) == {job.id, again.id}
    assert opened == ["tiny", "tiny", "tiny"]
    stray = ctx.store.create("gone", TinyConfig())
    stray.update_info({"owner": ctx.token, "state": "cancelled"})
    browser.refresh()
    browser.table.selection = [browser.table.value["id"].tolist().index(stray.id)]
    assert browser.resume_selected() is None
    assert f"Cannot resume run `{stray.id}`" in browser.action_note.object and "no 'gone' page" in (
        browser.action_note.object
    )


# -- pages and the app ----------------------------------------------------------------------------------
def synthetic_unfolding_result() -> UnfoldResult:
    rng = np.random.default_rng(1)
    rows = []
    for method in ("truth", "prior", "omnifold", "ibu", "t2k"):
        edges = np.array([0.0, 0.1, 0.2, 0.4, np.inf])
        for b in range(4):
            rows.append(
                {
                    "distribution": "dpt",
                    "method": method,
                    "bin": b,
                    "low": edges[b],
                    "high": edges[b + 1],
                    "value": 100 + rng.normal(0, 5),
                    "error": 5.0,
                }
            )
        for b, (lo, hi, s_lo, s_hi) in enumerate(
            [(0.2, 0.5, -1, 0.5), (0.5, 1.0, -1, 0.5), (0.2, 0.5, 0.5, 1.0), (0.5, 1.0, 0.5, 1.0)]
        ):
            rows.append(
                {
                    "distribution": "muon_p_cos",
                    "method": method,
                    "bin": b,
                    "low": lo,
                    "high": hi,
                    "slice_low": s_lo,
                    "slice_high": s_hi,
                    "value": 50.0,
                    "error": 3.0,
                }
            )
    diagnostics = pd.DataFrame(
        [
            {
                "iteration": i,
                "step": s,
                "throw": t,
                "ess": 900.0 - i,
                "n_extreme": 0,
                "normalisation": 1.0,
                "finite": True,
            }
            for i in range(3)
            for s in (1, 2)
            for t in range(2)
        ]
    )
    chi2 = pd.DataFrame({"method": ["omnifold", "ibu", "ndof"], "dpt": [3.2, 4.1, 4.0]})
    histograms = pd.DataFrame(rows)
    t2k = histograms[histograms["distribution"] == "dpt"].assign(distribution="dpt_t2k")
    t2k_chi2 = pd.DataFrame({"distribution": "dpt_t2k", "method": ["prior", "omnifold"], "chi2": [9.0, 7.5]})
    calibration = pd.DataFrame(
        {
            "distribution": "dpt",
            "method": ["omnifold", "ibu"],
            "n_throws": 100,
            "ndof": 4,
            "dropped_bins": 0,
            "covariance": "hartlap",
            "inverse_correction": 0.94,
            "chi2": [3.2, 4.1],
            "p_value": [0.52, 0.39],
            "loo_chi2_per_ndof": [1.02, 0.97],
            "chi2_closure": [2.9, 3.8],
            "p_closure": [0.57, 0.43],
        }
    )
    iterations = pd.DataFrame(
        [
            {
                "distribution": "dpt",
                "method": m,
                "iteration": i,
                "ndof": 4,
                "chi2_truth": 30.0 / i,
                "chi2_truth_fixed": 12.0 + i,
                "change_chi2": 9.0 / i**2,
                "estimated_chi2": 20.0 / i + 2.0 * i,
            }
            for m in ("omnifold", "ibu")
            for i in (1, 2, 3)
        ]
    )
    return UnfoldResult(
        calibration=calibration,
        iterations=iterations,
        suggested_iterations={"omnifold": 2, "ibu": None},
        t2k_comparison=t2k[t2k["method"] != "ibu"],
        t2k_chi2=t2k_chi2,
        histograms=pd.DataFrame(rows),
        chi2_table=chi2,
        diagnostics=diagnostics,
        uncertainty_budget=pd.DataFrame(),
        weights=rng.lognormal(0, 0.3, 1000).astype(np.float32),
        converged_at=2,
        xsec_scale=1e-39,
        n_mc=1000,
        n_data=1000,
        seconds=1.5,
    )


def test_unfolding_result_view_renders_every_tab() -> None:
    view = unfolding.result_view(synthetic_unfolding_result())
    assert view.distribution.options == ["dpt", "muon_p_cos"]
    assert "1000 MC events" in view.summary.object
    assert "OmniFold: stop at iteration 2" in view.summary.object
    # estimates 22, 14 and 12.7 with a spread of sqrt(2 x 4) = 2.8: iterations 2 and 3 are alike
    assert "(iterations 2–3 alike within the estimate's spread)" in view.summary.object
    assert "IBU: not converged: iterate more" in view.summary.object
    for name in view.distribution.options:
        view.distribution.value = name
        render(view.plot)
        # a 2-D distribution is a grid of one pane per slice (a layout in one pane collapses in the page)
        if name == "muon_p_cos":
            assert isinstance(view.plot[0], pn.GridBox) and len(view.plot[0]) == 2
        else:
            assert isinstance(view.plot[0], pn.pane.HoloViews)
    two_d = unfolding.distribution_plot(view.result.histograms, "muon_p_cos")
    assert len(two_d) == 2  # one overlay per slice
    fig = hv.render(unfolding.distribution_plot(view.result.histograms, "dpt"))
    assert fig.xaxis[0].axis_label == "δp_T [GeV/c]"
    assert fig.yaxis[0].axis_label == "weighted events / dδp_T [1/(GeV/c)]"
    assert fig.legend[0] in fig.right
    assert hv.render(two_d[0]).xaxis[0].axis_label == "p_μ [GeV/c]"
    for i in range(len(view.tabs)):
        view.tabs.active = i
        render(view)
    t2k_tab = view.t2k_tab.objects
    assert "T2K CC0pi-Np measurement" in t2k_tab[0].object
    assert any(isinstance(part, pn.pane.HoloViews) for part in t2k_tab)
    assert t2k_tab[-1].value["chi2"].tolist() == [9.0, 7.5]
    validation = view.validation_tab.objects
    assert validation[1].value["loo_chi2_per_ndof"].tolist() == [1.02, 0.97]
    panels = [hv.render(pane.object) for pane in validation[2].objects]
    assert [p.yaxis[0].axis_label for p in panels] == [
        "χ² against the truth / ndof",
        "χ² against the truth, last iteration's covariance / ndof",
        "χ² against the truth estimated without it / ndof",
    ]
    for panel in panels:  # two methods: a line and markers each, plus the dotted line at 1
        drawn = [
            r for r in panel.renderers if hasattr(r, "data_source") and len(r.data_source.data.get("y", []))
        ]
        assert len(drawn) == 4
    downloads = view.export_tab[1].objects
    names = [
        "histograms.csv",
        "chi2.csv",
        "diagnostics.csv",
        "calibration.csv",
        "iterations.csv",
        "weights.csv",
    ]
    assert [d.filename for d in downloads] == names
    weights = pd.read_csv(downloads[5].callback())
    assert len(weights) == 1000 and list(weights.columns) == ["event", "weight"]


def _validation_tab(result: UnfoldResult) -> list[Any]:
    view = unfolding.result_view(result)
    view.tabs.active = [name.lower() for name in view.tabs._names].index("validation")  # drawn when opened
    return view.validation_tab.objects


def test_the_validation_view_leaves_out_what_it_cannot_draw() -> None:
    result = synthetic_unfolding_result()
    stored_before = replace(result, iterations=result.iterations.drop(columns="chi2_truth_fixed"))
    labels = [
        hv.render(pane.object).yaxis[0].axis_label for pane in _validation_tab(stored_before)[2].objects
    ]
    assert labels == [
        "χ² against the truth / ndof",
        "χ² against the truth estimated without it / ndof",
    ]
    assert len(unfold_figures.validation_figure(stored_before).axes) == 2
    first = result.iterations[result.iterations["iteration"] == 1]
    real_data = replace(
        result, iterations=first.assign(chi2_truth=None, chi2_truth_fixed=None, estimated_chi2=np.nan)
    )
    shown = _validation_tab(real_data)
    assert "Nothing to draw per iteration" in shown[2].object
    assert len(shown) == 3  # no export of an empty figure
    with pytest.raises(ValueError, match="nothing to draw per iteration"):
        unfold_figures.validation_figure(real_data)


def test_unfolding_live_view_shows_intermediate_histograms_then_the_result() -> None:
    result = synthetic_unfolding_result()
    live = unfolding.PAGE.artefact_view({"histograms": result.histograms})
    assert live.distribution.options == ["dpt", "muon_p_cos"] and live.result is None
    assert "still running" in live.summary.object
    live.tabs.active = 3
    assert "No χ² table yet" in live.chi2_tab[0].object
    assert unfolding.PAGE.workflow == "unfold" and unfolding.PAGE.defaults["iterations"] == 4
    done = unfolding.PAGE.result_view(result)
    assert done.result is result and "1000 MC events" in done.summary.object


def test_display_edges_close_open_and_overflow_bins() -> None:
    low, high = display_edges(np.array([-np.inf, 0.0, 1.0]), np.array([0.0, 1.0, np.inf]))
    assert low.tolist() == [-1.0, 0.0, 1.0] and high.tolist() == [0.0, 1.0, 2.0]
    low, high = display_edges(np.array([0.0, 0.5, 1.0]), np.array([0.5, 1.0, 30.0]))
    assert high.tolist() == [0.5, 1.0, 1.5]
    low, high = display_edges(np.array([0.0]), np.array([30.0]))  # a lone bin keeps its width
    assert high.tolist() == [30.0]


def test_each_registered_workflow_page_builds(shared: Shared) -> None:
    ctx = AppContext(shared, new_token())
    specs = page_specs()
    assert specs["unfold"] is unfolding.PAGE and sorted(specs) == sorted(ctx.workflows())
    template = create_app(ctx)
    tabs = template.main[0]
    names = [w.title for w in ctx.workflows().values()] + ["Runs"]
    assert list(tabs._names) == names
    assert list(ctx.job_panels) == ["unfold"]  # only the open page is built
    for i in range(len(tabs)):
        tabs.active = i
        render(tabs[i])
    assert list(ctx.job_panels) == list(ctx.workflows())


def test_result_area_is_not_redrawn_for_the_same_view(shared: Shared) -> None:
    panel = JobPanel(TINY, make_ctx(shared))
    view = unfolding.UnfoldingResults()
    panel.show_in_result_area(view)
    layout = panel.result_area[0]
    panel.show_in_result_area(view)
    assert panel.result_area[0] is layout and len(panel.result_area) == 1


def test_generic_page_for_a_workflow_without_page_module(shared: Shared) -> None:
    ctx = make_ctx(shared)
    template = create_app(ctx)
    tabs = template.main[0]
    assert list(tabs._names) == ["Tiny", "Runs"]
    panel = ctx.job_panels["tiny"]
    assert isinstance(panel, JobPanel) and pn.panel(panel) is tabs[0][0]
    render(template.main[0])


def test_opening_the_runs_page_lists_the_runs_as_they_are_now(shared: Shared) -> None:
    ctx = make_ctx(shared)
    tabs = create_app(ctx).main[0]
    (table,) = [w for w in tabs[len(tabs) - 1] if isinstance(w, pn.widgets.Tabulator)]  # the Runs page's
    assert table.value.empty
    job = ctx.submit(TINY, TinyConfig(steps=2))
    assert job.wait(TIMEOUT) == "done"
    assert table.value.empty  # no server session here: no periodic refresh
    tabs.active = len(tabs) - 1
    assert table.value[["id", "state"]].values.tolist() == [[job.id, "done"]]


def test_a_page_catches_up_from_the_run_folder_after_the_runner_released_its_job(shared: Shared) -> None:
    shared.runner.keep_finished = 0  # a busy server: every finished job leaves memory at once
    ctx = make_ctx(shared)
    panel = JobPanel(TINY, ctx, restore=False)
    job = ctx.submit(TINY, TinyConfig(steps=3))
    assert job.wait(TIMEOUT) == "done"
    assert job.progress.released and job.progress.read_metrics(0)[0] == []
    panel.attach(job)  # the page only now reads the job
    assert panel.curves.received == 9 == len(job.run_dir.read_metrics())
    assert job.result["n"] == 3  # loaded back from the run folder


def test_tables_never_show_a_nonzero_number_as_zero() -> None:
    from app.components.tables import display_frame, table

    frame = pd.DataFrame({"quantity": ["sigma [cm2]", "events", "RESS"], "value": [1.07e-38, 2.5e9, 0.99213]})
    shown, formatters = display_frame(frame, digits=4)
    assert shown["value"].tolist() == ["1.07e-38", "2.5e+09", "0.9921"]
    assert "value" not in formatters  # the strings are what the page shows
    plain, formatters = display_frame(pd.DataFrame({"chi2": [1.23456, 0.0]}), digits=4)
    assert plain["chi2"].tolist() == [1.23456, 0.0] and "chi2" in formatters
    assert table(frame).value["value"].tolist() == shown["value"].tolist()
