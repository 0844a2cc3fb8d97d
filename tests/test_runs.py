import json
import os
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

from numl_core.runs import RunDir, RunStore, atomic_write_text


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
