import json
import os
import re
import shutil
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

from numl_core.runs import (
    NOTES_FILE,
    TRASH,
    BadNote,
    BadTag,
    DamagedRun,
    DeleteNotConfirmed,
    RunDir,
    RunLocked,
    RunNotes,
    RunStore,
    atomic_write_text,
    parse_tags,
)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    atomic_write_text(path, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_result_round_trip_without_pickle(tmp_path):
    run = RunStore(tmp_path).create("unfold", None)
    result = {
        "weights": np.arange(5.0),
        "table": pd.DataFrame({"a": [1, 2]}),
        "chi2": 1.5,
        "bad": float("nan"),
    }
    run.save_result(result)
    back = run.load_result()
    np.testing.assert_array_equal(back["weights"], result["weights"])
    pd.testing.assert_frame_equal(back["table"], result["table"])
    assert back["chi2"] == 1.5 and back["bad"] is None


def test_object_arrays_are_refused_on_load(tmp_path):
    run = RunStore(tmp_path).create("unfold", None)
    (run.path / "results").mkdir()
    np.savez(run.path / "results" / "arrays.npz", evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        run.load_result()


def test_checkpoint_round_trip_and_weights_only(tmp_path):
    run = RunStore(tmp_path).create("unfold", None)
    run.save_checkpoint("state", {"w": torch.ones(3), "iteration": 2})
    state = run.load_checkpoint("state")
    assert state["iteration"] == 2 and torch.equal(state["w"], torch.ones(3))
    assert run.load_checkpoint("missing") is None

    # an arbitrary Python object (here a Fraction) must not be unpickled
    torch.save({"x": Fraction(1, 3)}, run.checkpoint_path("evil"))
    with pytest.raises(Exception, match="[Ww]eights only"):
        run.load_checkpoint("evil")


def test_checkpoint_name_cannot_escape(tmp_path):
    run = RunDir(tmp_path / "r")
    with pytest.raises(ValueError, match="checkpoint name"):
        run.checkpoint_path("../../etc/passwd")


def test_store_lists_newest_first_and_filters(tmp_path):
    store = RunStore(tmp_path)
    a = store.create("unfold", None)
    a.update_info({"created_at": 1.0})
    b = store.create("energy", None)
    b.update_info({"created_at": 2.0})
    assert [i["id"] for i in store.list()] == [b.id, a.id]
    assert [i["id"] for i in store.list("unfold")] == [a.id]
    assert store.get(a.id).path == a.path
    info = json.loads((a.path / "run.json").read_text())
    assert info["environment"]["torch"] == torch.__version__


def test_store_get_refuses_traversal(tmp_path):
    store = RunStore(tmp_path)
    for bad in ("..", "../x", "a/b"):
        with pytest.raises(ValueError, match="invalid run id"):
            store.get(bad)
    with pytest.raises(FileNotFoundError, match="no run 'nothing'"):
        store.get("nothing")


def test_torn_metrics_line_is_skipped(tmp_path):
    run = RunStore(tmp_path).create("unfold", None)
    run.append_metric({"name": "loss", "value": 1.0, "step": 0})
    with open(run.path / "metrics.jsonl", "a") as fh:
        fh.write('{"name": "loss", "val')
    assert len(run.read_metrics()) == 1


# -- tags and notes ------------------------------------------------------------------------------
def finished_run(store: RunStore) -> RunDir:
    """A finished run with a config, metrics and a stored result."""
    run = store.create("unfold", None)
    (run.path / "config.json").write_text('{"epochs": 3}\n')
    run.append_metric({"name": "loss", "value": 1.0, "step": 0})
    run.save_result({"chi2": 1.5, "table": pd.DataFrame({"a": [1, 2]}), "w": np.arange(3.0)})
    run.update_info({"state": "done", "started_at": 10.0, "finished_at": 12.0})
    return run


def snapshot(run: RunDir) -> dict[str, bytes]:
    """Every file of a run folder except its notes and lock, by relative path."""
    skip = {NOTES_FILE, "run.lock"}
    return {
        str(p.relative_to(run.path)): p.read_bytes()
        for p in run.path.rglob("*")
        if p.is_file() and p.name not in skip
    }


def test_tags_and_note_round_trip_without_touching_the_run(tmp_path):
    store = RunStore(tmp_path)
    run = finished_run(store)
    assert run.read_notes() == RunNotes()  # a run from before tags existed
    before = snapshot(run)
    saved = run.write_notes([" baseline", "lr scan", "baseline"], "first try\nwith two lines")
    assert saved == RunNotes(("baseline", "lr scan"), "first try\nwith two lines")
    assert store.get(run.id).read_notes() == saved  # read back from disk by a fresh reader
    assert snapshot(run) == before  # config, run.json, metrics and results are untouched
    assert json.loads((run.path / NOTES_FILE).read_text()) == {
        "tags": ["baseline", "lr scan"],
        "note": "first try\nwith two lines",
    }
    assert run.write_notes([], "") == RunNotes() and run.read_notes() == RunNotes()
    assert parse_tags(" a, b c ,,") == ["a", "b c"]


@pytest.mark.parametrize(
    ("tags", "what"),
    [
        ([""], "tag 1 ('') is not valid"),
        (["ok", "a,b"], "tag 2 ('a,b') is not valid"),
        (["x" * 41], "1 to 40 characters"),
        (["two\nlines"], "without commas or line breaks"),
        ([7], "tag 1 (7) is not valid"),
        ("baseline", "a list of strings, not one string"),
        ([f"t{i}" for i in range(21)], "21 tags given"),
    ],
)
def test_bad_tags_are_refused_naming_the_run_and_the_rule(tmp_path, tags, what):
    run = finished_run(RunStore(tmp_path))
    run.write_notes(["kept"], "kept note")
    with pytest.raises(BadTag, match=re.escape(what)) as err:
        run.write_notes(tags, "new note")
    assert f"run {run.id!r}" in str(err.value)
    assert run.read_notes() == RunNotes(("kept",), "kept note")  # nothing half-written


def test_bad_notes_are_refused_and_damaged_notes_are_reported(tmp_path):
    run = finished_run(RunStore(tmp_path))
    with pytest.raises(BadNote, match=f"run {run.id!r}: the note has 10001 characters; at most 10000"):
        run.write_notes([], "x" * 10_001)
    with pytest.raises(BadNote, match="the note must be text, not int"):
        run.write_notes([], 5)
    (run.path / NOTES_FILE).write_text('["not", "an object"]')
    with pytest.raises(DamagedRun, match="not a JSON object of tags and a note"):
        run.read_notes()


# -- delete --------------------------------------------------------------------------------------
def test_delete_needs_confirmation_and_moves_the_run_to_the_trash(tmp_path):
    store = RunStore(tmp_path)
    run, other = finished_run(store), finished_run(store)
    before = snapshot(run)
    with pytest.raises(DeleteNotConfirmed, match=f"deleting run {run.id!r} needs an explicit confirmation"):
        store.delete(run.id)
    with pytest.raises(DeleteNotConfirmed):
        store.delete(run.id, confirm="yes")
    assert run.path.is_dir()
    moved = store.delete(run.id, confirm=True)
    assert moved == tmp_path / TRASH / run.id and not run.path.exists()
    assert snapshot(RunDir(moved)) == before  # everything is kept in the trash
    assert [i["id"] for i in store.list()] == [other.id]
    with pytest.raises(FileNotFoundError, match=f"no run {run.id!r}"):
        store.get(run.id)
    # a run of the same id deleted again does not overwrite the first one in the trash
    shutil.copytree(moved, run.path)
    assert store.delete(run.id, confirm=True) == tmp_path / TRASH / f"{run.id}-2"
    assert (tmp_path / TRASH / run.id / "config.json").exists()


def test_delete_refuses_a_live_run(tmp_path):
    store = RunStore(tmp_path)
    run = finished_run(store)
    lock = run.acquire_lock()  # as a job that runs it holds it
    try:
        with pytest.raises(RunLocked, match=f"run {run.id!r} is being run by a live job; cancel it"):
            store.delete(run.id, confirm=True)
        assert run.path.is_dir() and not store.trash.exists()
    finally:
        lock.release()
    store.delete(run.id, confirm=True)
    assert not run.path.exists()


def test_delete_never_reaches_outside_the_runs_root(tmp_path):
    root, outside = tmp_path / "runs", tmp_path / "elsewhere"
    store = RunStore(root)
    finished_run(store)
    outside.mkdir()
    (outside / "run.json").write_text('{"state": "done"}')
    (root / "linked").symlink_to(outside)
    for bad in ("..", "../elsewhere", "a/b", TRASH):
        with pytest.raises(ValueError, match="invalid run id"):
            store.delete(bad, confirm=True)
    with pytest.raises(ValueError, match="is not a folder inside"):
        store.delete("linked", confirm=True)
    with pytest.raises(FileNotFoundError):
        store.delete("missing", confirm=True)
    assert (outside / "run.json").exists() and (root / "linked").is_symlink()


def test_load_result_can_read_only_some_fields(tmp_path):
    run = finished_run(RunStore(tmp_path))
    assert set(run.load_result(only=("table",))) == {"chi2", "table"}
    assert set(run.load_result(only=())) == {"chi2"}
    assert set(run.load_result()) == {"chi2", "table", "w"}
