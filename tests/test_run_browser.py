"""The Runs tab on the server side, without a browser: the runs table ("All runs" by default) with its
filters, tags and notes, Delete with its confirmation, and Compare of three runs.

A tiny workflow records a few metrics per step; a step can be held by a gate, so a run stays live for as
long as a test needs it.
"""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
import panel as pn
import param
import pytest
from bokeh.document import Document

from app.components.run_browser import DEFAULT_SCOPE, RunBrowser
from app.context import AppContext, Shared, new_token
from numl_core.config import Config
from numl_core.jobs import Job
from numl_core.run_index import COLUMNS
from numl_core.workflows import Workflow

TIMEOUT = 20.0
HELD_STEPS = 9
"""A run with this many steps waits at its first step until the test releases it."""


class TinyConfig(Config):
    """Config of the test workflow."""

    steps = param.Integer(default=3, bounds=(1, 100), doc="Steps.")
    rate = param.Number(default=0.5, bounds=(0.0, 1.0), doc="A rate.")
    fail = param.Boolean(default=False, doc="Raise after the first step.")


HOLD = threading.Event()


def tiny_run(config: TinyConfig, progress: Any) -> dict[str, Any]:
    for i in range(config.steps):
        while config.steps == HELD_STEPS and not HOLD.wait(0.02):
            progress.check_cancelled()
        progress.metric("step1_loss", config.rate / (i + 1), step=i, split="train")
        progress.metric("step2_ess", 100.0 - i, step=i)
        if config.fail:
            raise RuntimeError("tiny workflow failed on purpose")
    return {"n": config.steps, "table": pd.DataFrame({"a": [1.0, 2.0]})}


TINY = Workflow("tiny", "Tiny", "A tiny test workflow.", TinyConfig, tiny_run)


@pytest.fixture
def ctx(shared: Shared) -> AppContext:
    HOLD.clear()
    yield AppContext(shared, new_token(), workflows={"tiny": TINY})
    HOLD.set()


def finished_runs(ctx: AppContext, *configs: TinyConfig) -> list[Job]:
    jobs = [ctx.submit(TINY, config) for config in configs]
    assert [j.wait(TIMEOUT) for j in jobs] == ["done"] * len(jobs)
    return jobs


def tick(browser: RunBrowser, *run_ids: str) -> None:
    """Tick runs in the browser's table by id (as a user's checkbox clicks do)."""
    ids = browser.table.value["id"].tolist()
    browser.table.selection = [ids.index(run_id) for run_id in run_ids]


def test_the_table_lists_every_run_with_its_columns_and_reopens_a_ticked_one(ctx: AppContext) -> None:
    shown: list[dict[str, Any]] = []
    browser = RunBrowser(ctx, result_views={"tiny": lambda r: shown.append(r) or pn.pane.Markdown("drawn")})
    assert browser.scope.value == DEFAULT_SCOPE == "All runs"
    jobs = finished_runs(ctx, TinyConfig(steps=2), TinyConfig(steps=3))
    cli_run = ctx.store.create("tiny", TinyConfig(steps=4))  # not this session's: a CLI run, say
    cli_run.update_info({"state": "failed", "action": "run"})
    browser.refresh()
    frame = browser.table.value
    assert list(frame.columns) == list(COLUMNS)  # the tiny workflow has no headline metrics
    assert set(frame["id"]) == {*(j.id for j in jobs), cli_run.id}
    assert set(frame.loc[frame["state"] == "done", "device"]) == {"cpu"}
    assert (frame.loc[frame["state"] == "done", "duration"] >= 0).all()
    tick(browser, jobs[0].id)
    assert len(shown) == 1 and shown[0]["n"] == 2 and isinstance(shown[0]["table"], pd.DataFrame)
    assert browser.compare_button.disabled and not browser.delete_button.disabled
    tick(browser, jobs[0].id, jobs[1].id)
    assert not browser.compare_button.disabled and "press Compare" in browser.detail[0].object
    assert not browser.notes_editor.visible  # tags and note are edited one run at a time


def test_compare_shows_the_differing_fields_and_overlaid_curves_of_three_runs(ctx: AppContext) -> None:
    browser = RunBrowser(ctx)
    jobs = finished_runs(ctx, TinyConfig(steps=2), TinyConfig(steps=3), TinyConfig(steps=4, rate=0.25))
    browser.refresh()
    tick(browser, jobs[0].id)
    assert not browser.compare_selected() and "Tick 2 to 8 runs" in browser.action_note.object
    tick(browser, *(j.id for j in jobs))
    assert browser.compare_selected()
    view = browser.detail[0]
    assert "Comparing 3 runs" in view[0].object and "2 config field(s) differ" in view[1].object
    assert view[2].value.to_dict("records") == [
        {"field": "steps", jobs[0].id: "2", jobs[1].id: "3", jobs[2].id: "4"},
        {"field": "rate", jobs[0].id: "0.5", jobs[1].id: "0.5", jobs[2].id: "0.25"},
    ]
    assert "No headline metrics" in view[3].object  # the tiny workflow declares none
    assert not view[4].visible  # the tiny workflow declares no result overlay
    labels = [curve.label for pane in view[5] for curve in pane.object]
    for job in jobs:  # each run's curves are in the overlaid plots, labelled by its run id
        assert f"{job.id}: step1_loss (train)" in labels and f"{job.id}: step2_ess" in labels
    pn.panel(view).get_root(Document())  # the Bokeh models build, as a served page would
    browser.refresh()
    assert browser.detail[0] is view  # a refresh that changes nothing keeps the comparison
    tick(browser, *(j.id for j in reversed(jobs)))  # the same runs, in another order (rows sorted)
    assert "Comparing 3 runs" in browser.detail[0][0].object
    tick(browser, jobs[0].id, jobs[1].id)  # other runs ticked: Compare has to be pressed again
    assert "press Compare" in browser.detail[0].object


def test_tags_and_notes_are_saved_validated_and_filtered_on(ctx: AppContext) -> None:
    browser = RunBrowser(ctx)
    first, second = finished_runs(ctx, TinyConfig(steps=2), TinyConfig(steps=3))
    failed = ctx.submit(TINY, TinyConfig(steps=2, fail=True))
    assert failed.wait(TIMEOUT) == "failed"
    browser.refresh()
    tick(browser, first.id)
    assert browser.notes_editor.visible and browser.tags_input.value == ""
    browser.tags_input.value, browser.note_input.value = "baseline, lr scan", "the reference run"
    assert browser.save_notes() and "Saved" in browser.action_note.object
    assert ctx.store.get(first.id).read_notes().tags == ("baseline", "lr scan")
    row = browser.table.value.set_index("id").loc[first.id]
    assert (row["tags"], row["note"]) == ("baseline, lr scan", "the reference run")
    assert browser.selected_ids() == [first.id]  # still ticked after the table was refreshed
    assert list(browser.tag_filter.options.values()) == ["", "baseline", "lr scan"]

    browser.note_input.value = "x" * 20_000
    assert not browser.save_notes()
    assert f"run '{first.id}'" in browser.action_note.object and "at most 10000" in browser.action_note.object
    browser.tags_input.value, browser.note_input.value = "ok, " + "y" * 41, "short"
    assert not browser.save_notes() and "1 to 40 characters" in browser.action_note.object
    assert ctx.store.get(first.id).read_notes().note == "the reference run"  # nothing half-saved

    browser.tag_filter.value = "baseline"
    assert browser.table.value["id"].tolist() == [first.id]
    browser.tag_filter.value = ""
    browser.state_filter.value = "failed"
    assert browser.table.value["id"].tolist() == [failed.id]
    browser.state_filter.value = ""
    browser.workflow_filter.value = "tiny"
    assert set(browser.table.value["id"]) == {first.id, second.id, failed.id}


def test_delete_needs_the_second_click_and_refuses_a_live_run(ctx: AppContext) -> None:
    browser = RunBrowser(ctx)
    (done,) = finished_runs(ctx, TinyConfig(steps=2))
    live = ctx.submit(TINY, TinyConfig(steps=HELD_STEPS))
    browser.refresh()
    tick(browser, done.id)
    browser.ask_delete()
    assert browser.delete_confirm.visible and done.id in browser.delete_question.object
    assert (ctx.store.root / done.id).is_dir()  # nothing happens before the second click
    browser.cancel_delete()
    assert not browser.delete_confirm.visible and browser.delete_confirmed() == []
    assert (ctx.store.root / done.id).is_dir()

    tick(browser, done.id, live.id)
    browser.ask_delete()
    assert browser.delete_confirmed() == [done.id]
    assert not (ctx.store.root / done.id).exists() and (ctx.store.trash / done.id / "config.json").exists()
    assert f"run '{live.id}' is being run by a live job" in browser.action_note.object
    assert browser.table.value["id"].tolist() == [live.id]
    HOLD.set()
    assert live.wait(TIMEOUT) == "done"
