"""The runs table of numl_core.run_index: columns, headline metrics (recorded when a result is saved, or
read back from an older run's stored result), filters and the comparison of several runs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from numl_core.energy.result import EnergyResult
from numl_core.generator.result import GeneratorResult
from numl_core.results import Result
from numl_core.run_index import (
    ABSENT,
    COLUMNS,
    CompareError,
    config_diff,
    filter_runs,
    headline_metrics,
    headline_table,
    runs_table,
)
from numl_core.runs import RunDir, RunStore
from numl_core.uncertainty.result import UncertaintyResult
from numl_core.unfold.result import UnfoldResult
from numl_core.workflows import Workflow
from numl_core.xsec.result import TransferResult, XsecResult


@dataclass
class FitResult(Result):
    """A small result type with a headline."""

    table: pd.DataFrame
    chi2: float = 0.0

    HEADLINE_FIELDS = ("table",)

    @classmethod
    def headline_of(cls, values):
        return {"chi2/ndof": values.get("chi2"), "rows": len(values["table"]), "nothing": float("nan")}


FIT = Workflow("fit", "Fit", "A fit.", Result, lambda c, p: None, results=(FitResult,))


def make_run(store: RunStore, workflow: str, **info) -> RunDir:
    run = store.create(workflow, None)
    run.update_info(info)
    return run


def test_a_saved_result_records_its_headline_in_run_json(tmp_path):
    run = make_run(RunStore(tmp_path), "fit")
    FitResult(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), chi2=1.25).save(run)
    info = run.read_info()
    assert info["result_type"] == "FitResult"
    assert info["headline"] == {"chi2/ndof": 1.25, "rows": 3.0}  # NaN left out


@dataclass
class BrokenHeadline(Result):
    value: float = 1.0

    @classmethod
    def headline_of(cls, values):
        raise KeyError("summary")


def test_a_headline_that_cannot_be_computed_never_costs_the_result(tmp_path, caplog):
    run = make_run(RunStore(tmp_path), "fit")
    BrokenHeadline(2.5).save(run)
    assert run.load_result() == {"value": 2.5}
    assert run.read_info()["result_type"] == "BrokenHeadline" and "headline" not in run.read_info()
    assert f"no headline metrics for {run.id}: KeyError" in caplog.text


def test_the_table_has_the_run_facts_tags_notes_and_headline_columns(tmp_path):
    store = RunStore(tmp_path)
    old = make_run(store, "fit", created_at=time.time() - 60, state="failed", label="first", device="cpu")
    new = make_run(store, "fit", state="done", action="run", started_at=100.0, finished_at=107.25)
    FitResult(pd.DataFrame({"a": [1.0]}), chi2=0.5).save(new)
    new.write_notes(["baseline", "v2"], "the reference")
    frame = runs_table(store, {"fit": FIT})
    assert list(frame.columns) == [*COLUMNS, "metric: chi2/ndof", "metric: rows"]
    assert frame["id"].tolist() == [new.id, old.id]  # newest first
    row = frame.iloc[0].to_dict()
    assert (row["workflow"], row["state"], row["duration"]) == ("fit", "done", 7.2)
    assert (row["tags"], row["note"], row["metric: chi2/ndof"]) == ("baseline, v2", "the reference", 0.5)
    row = frame.iloc[1].to_dict()
    assert (row["label"], row["device"], row["action"], row["tags"]) == ("first", "cpu", "run", "")
    assert np.isnan(row["duration"]) and np.isnan(row["metric: chi2/ndof"])
    (new.path / "notes.json").write_text("{broken")
    assert runs_table(store, {"fit": FIT}).iloc[0]["note"].startswith("(notes unreadable: ")
    assert list(runs_table(RunStore(tmp_path / "empty"), {})) == list(COLUMNS)


def test_an_old_runs_headline_is_read_from_its_stored_result(tmp_path):
    store = RunStore(tmp_path)
    run = make_run(store, "fit", state="done")
    run.save_result({"table": pd.DataFrame({"a": [1.0, 2.0]}), "chi2": 2.0})  # as saved before headlines
    assert "headline" not in run.read_info()
    info = store.list()[0]
    assert headline_metrics(run, info, {"fit": FIT}) == {"chi2/ndof": 2.0, "rows": 2.0}
    assert headline_metrics(run, info, {}) == {}  # an unknown workflow: blank
    broken = make_run(store, "fit", state="done")
    broken.save_result({"chi2": 1.0})  # the field the headline needs is missing: blank, no error
    assert headline_metrics(broken, store.get(broken.id).read_info(), {"fit": FIT}) == {}
    unfinished = make_run(store, "fit", state="failed")
    assert headline_metrics(unfinished, unfinished.read_info(), {"fit": FIT}) == {}


def stored_headline(tmp_path, cls: type[Result], values: dict) -> dict[str, float]:
    """The headline of ``values`` saved as a run's result and read back as an old run's would be."""
    run = RunStore(tmp_path).create("x", None)
    run.save_result(values)
    return cls.stored_headline(run)


def test_each_workflow_names_its_headline_metrics(tmp_path):
    chi2 = pd.DataFrame(
        {
            "fake_data": "f",
            "method": ["omnifold", "ibu", "ndof"],
            "dpt": [3.0, 6.0, 4.0],
            "pmu": [3.0, 2.0, 4.0],
        }
    )
    diagnostics = pd.DataFrame(
        {
            "iteration": [0, 1, 1, 1],
            "step": [2, 1, 2, 2],
            "throw": [0, 0, 0, 1],
            "ess": [9.0, 5.0, 80.0, 60.0],
        }
    )
    unfold = stored_headline(tmp_path / "u", UnfoldResult, {"chi2_table": chi2, "diagnostics": diagnostics})
    assert unfold == {"OmniFold chi2/ndof": 0.75, "IBU chi2/ndof": 1.0, "ESS": 70.0}
    energy = {"energy_res68_transformer_cc": 0.21, "angle_res68_deg_transformer": None, "best_val_loss": 0.4}
    assert stored_headline(tmp_path / "e", EnergyResult, energy) == {
        "E res68 (CC)": 0.21,
        "best val loss": 0.4,
    }
    summary = pd.DataFrame({"metric": ["ress", "unweighting_efficiency", "x"], "value": [0.8, 0.1, 5.0]})
    assert stored_headline(tmp_path / "g", GeneratorResult, {"summary": summary}) == {
        "RESS": 0.8,
        "unweighting eff": 0.1,
    }
    metrics = pd.DataFrame({"model": ["gaussian", "flow"], "c2st": [0.7, 0.52]})
    assert stored_headline(tmp_path / "n", UncertaintyResult, {"metrics": metrics}) == {
        "C2ST flow": 0.52,
        "C2ST Gaussian": 0.7,
    }
    transfer = pd.DataFrame({"nucleus": ["Al", "Fe"], "finetuned": [1.0, 2.0], "scratch": [3.0, 5.0]})
    fit = {"summary": {"boot": {"chi2_test": 1.1, "coverage_1sigma": 0.7}, "mc": {"chi2_test": 1.4}}}
    assert stored_headline(tmp_path / "x", XsecResult, {**fit, "transfer": transfer}) == {
        "chi2/pt test (boot)": 1.1,
        "chi2/pt test (mc)": 1.4,
        "coverage 1sigma (boot)": 0.7,
        "fine-tuned chi2/pt": 1.5,
        "scratch chi2/pt": 4.0,
    }
    assert stored_headline(tmp_path / "t", TransferResult, {"transfer": transfer})["scratch chi2/pt"] == 4.0


def test_filters_keep_one_workflow_state_or_tag_and_drop_empty_metric_columns(tmp_path):
    store = RunStore(tmp_path)
    a = make_run(store, "fit", state="done", created_at=3.0)
    FitResult(pd.DataFrame({"a": [1.0]}), chi2=0.5).save(a)
    a.write_notes(["baseline", "v2"])
    b = make_run(store, "other", state="failed", created_at=2.0)
    b.write_notes(["v2"])
    c = make_run(store, "fit", state="failed", created_at=1.0)
    c.write_notes(["v20"])
    frame = runs_table(store, {"fit": FIT})
    assert filter_runs(frame)["id"].tolist() == [a.id, b.id, c.id]
    assert filter_runs(frame, workflow="fit")["id"].tolist() == [a.id, c.id]
    assert filter_runs(frame, state="failed")["id"].tolist() == [b.id, c.id]
    assert filter_runs(frame, tag="v2")["id"].tolist() == [a.id, b.id]  # whole tags only, not "v20"
    only_b = filter_runs(frame, workflow="other", tag="v2")
    assert only_b["id"].tolist() == [b.id] and list(only_b.columns) == list(COLUMNS)
    assert filter_runs(frame, workflow="fit", state="done", tag="baseline")["metric: chi2/ndof"].tolist() == [
        0.5
    ]


def test_config_diff_of_three_runs_keeps_only_the_fields_that_differ():
    configs = {
        "r1": {"epochs": 5, "lr": 0.001, "layers": [64, 64], "seed": 1, "name": "a"},
        "r2": {"epochs": 5, "lr": 0.001, "layers": [64, 64], "seed": 2, "name": "a"},
        "r3": {"epochs": 5, "lr": 0.001, "layers": [64, 32], "seed": 1, "name": "a", "extra": True},
    }
    diff = config_diff(configs)
    assert list(diff.columns) == ["field", "r1", "r2", "r3"]
    assert diff.to_dict("records") == [
        {"field": "layers", "r1": "[64, 64]", "r2": "[64, 64]", "r3": "[64, 32]"},
        {"field": "seed", "r1": "1", "r2": "2", "r3": "1"},
        {"field": "extra", "r1": ABSENT, "r2": ABSENT, "r3": "true"},
    ]
    assert config_diff({"r1": {"x": 1}, "r2": {"x": 1}}).empty
    assert config_diff({"r1": None, "r2": {"x": 1}})["r1"].tolist() == [ABSENT]
    with pytest.raises(CompareError, match=r"at least two runs, got 1: \['r1'\]"):
        config_diff({"r1": {"x": 1}})


def test_headline_table_puts_runs_side_by_side():
    frame = headline_table({"r1": {"ESS": 10.0, "chi2/ndof": 1.5}, "r2": {"chi2/ndof": 0.9}})
    assert frame["metric"].tolist() == ["ESS", "chi2/ndof"]
    assert frame["r2"].tolist()[1] == 0.9 and np.isnan(frame["r2"].tolist()[0])
    assert json.dumps(list(frame.columns)) == '["metric", "r1", "r2"]'
