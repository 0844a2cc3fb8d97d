"""A run killed with SIGKILL in the middle of training lists as interrupted, resumes from its last
checkpoint, and ends with the metrics and results of a run that was never interrupted (same seed, CPU):
no metric record twice, none missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from numl_core.cli import main
from numl_core.runs import RunStore

CONFIG = {
    "n_events": 6000,
    "epochs": 8,
    "patience": 0,
    "d_model": 16,
    "nhead": 2,
    "num_layers": 1,
    "dim_feedforward": 32,
    "batch_size": 64,
    "baselines": False,
    "export": False,
    "device": "cpu",
}


def _epochs_done(run_dir) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = {json.loads(x).get("step") for x in path.read_text().splitlines() if x.endswith("}")}
    return len(steps)


def _metric_table(records: list[dict]) -> pd.DataFrame:
    keys = sorted({k for r in records for k in r} - {"t", "value"})
    frame = pd.DataFrame(records).drop(columns="t")
    return frame.sort_values(keys).reset_index(drop=True)


def _whole_then_killed(tmp_path, workflow: str, values: dict, started) -> tuple[Path, Path, str]:
    """Run ``workflow`` once to the end (runs folder ``whole``), then again in a subprocess killed with
    SIGKILL as soon as ``started(run_dir)`` is true (runs folder ``cut``); the killed run's id."""
    config = tmp_path / f"{workflow}.json"
    config.write_text(json.dumps(values))
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    done = CliRunner().invoke(main, [workflow, "run", "--config", str(config), "--out", str(whole)])
    assert done.exit_code == 0, done.output
    cmd = [sys.executable, "-m", "numl_core.cli", workflow, "run", "--config", str(config), "--out", str(cut)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        runs = list(cut.glob("*/run.json"))
        if runs and started(runs[0].parent):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed: make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    (info,) = RunStore(cut).list()
    assert info["state"] == "interrupted"
    return whole, cut, info["id"]


@pytest.mark.slow
def test_a_killed_energy_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole, cut, run_id = _whole_then_killed(tmp_path, "energy", CONFIG, lambda d: _epochs_done(d) >= 3)
    info = {"id": run_id}
    assert 3 <= _epochs_done(cut / info["id"]) < CONFIG["epochs"]

    resumed = CliRunner().invoke(main, ["energy", "run", "--resume", info["id"], "--out", str(cut)])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed after epoch" in resumed.output
    (whole_info,) = RunStore(whole).list()
    a, b = RunStore(whole).get(whole_info["id"]), RunStore(cut).get(info["id"])
    ma, mb = _metric_table(a.read_metrics()), _metric_table(b.read_metrics())
    assert len(mb) == len(ma) and not mb.drop(columns="value").duplicated().any()
    pd.testing.assert_frame_equal(ma.drop(columns="value"), mb.drop(columns="value"))
    np.testing.assert_allclose(mb["value"], ma["value"], rtol=1e-5)
    ra, rb = a.load_result(), b.load_result()
    np.testing.assert_allclose(
        rb["resolution"]["res68"].to_numpy(float), ra["resolution"]["res68"].to_numpy(float), rtol=1e-5
    )
    assert b.status() == "done"


UNFOLD = {
    "n_events": 20000,
    "iterations": 4,
    "trials": 1,
    "n_throws": 0,
    "n_bootstrap": 0,
    "epochs": 4,
    "hidden_units": 16,
    "batch_size": 500,
    "distributions": ["dpt"],
    "stop_on_convergence": False,
    "run_ibu": False,
    "device": "cpu",
}


def _iterations_started(run_dir) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    records = [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]
    return len({r["iteration"] for r in records if "iteration" in r})


@pytest.mark.slow
def test_a_killed_unfolding_resumes_without_repeating_the_partial_iterations_metrics(tmp_path):
    # killed once the third iteration is under way
    whole, cut, run_id = _whole_then_killed(tmp_path, "unfold", UNFOLD, lambda d: _iterations_started(d) >= 3)
    info = {"id": run_id}

    resumed = CliRunner().invoke(main, ["unfold", "run", "--resume", info["id"], "--out", str(cut)])
    assert resumed.exit_code == 0, resumed.output
    (whole_info,) = RunStore(whole).list()
    ma = _metric_table(RunStore(whole).get(whole_info["id"]).read_metrics())
    mb = _metric_table(RunStore(cut).get(info["id"]).read_metrics())
    assert not mb.drop(columns="value").duplicated().any()
    pd.testing.assert_frame_equal(ma.drop(columns="value"), mb.drop(columns="value"))
    lines = (cut / info["id"] / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(mb)  # the file itself holds each record once
