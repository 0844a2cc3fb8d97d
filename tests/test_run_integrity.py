"""Run folders keep their integrity: one live job per folder, dead runs list as interrupted, a damaged
``run.json`` lists as damaged without hiding the others, resumes are refused where they would damage a
run, and finished jobs leave memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from numl_core.cli import main
from numl_core.jobs import JobRunner, Progress
from numl_core.runs import RunLocked, RunStore
from numl_core.unfold.workflow import UnfoldingConfig


def _resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _slow(config, progress):
    for i in range(400):
        progress.check_cancelled()
        time.sleep(0.01)
        progress.metric("loss", 1.0 / (i + 1), step=i)
    return {"n": 1}


# -- locks and liveness ------------------------------------------------------------------------------
def test_a_queued_or_running_job_holds_its_folder(tmp_path):
    store, runner = RunStore(tmp_path), JobRunner(max_workers=1)
    run = store.create("unfold", None)
    job = runner.submit(_slow, None, run)
    assert run.is_live() and run.status() in ("queued", "running")
    with pytest.raises(RunLocked, match=run.id):
        run.acquire_lock()
    job.cancel()
    assert job.wait(10) == "cancelled"
    assert not run.is_live() and run.status() == "cancelled"
    runner.shutdown()


def test_a_second_job_on_the_same_folder_is_refused(tmp_path):
    store, runner = RunStore(tmp_path), JobRunner(max_workers=2)
    run = store.create("unfold", None)
    first = runner.submit(_slow, None, run)
    with pytest.raises(RunLocked):
        runner.submit(_slow, None, store.get(run.id))
    first.cancel()
    first.wait(10)
    runner.shutdown()


def test_a_killed_process_leaves_an_interrupted_run(tmp_path):
    script = textwrap.dedent(
        f"""
        import time
        from numl_core.jobs import JobRunner
        from numl_core.runs import RunStore

        def forever(config, progress):
            while True:
                progress.check_cancelled()
                time.sleep(0.05)

        run = RunStore({str(tmp_path)!r}).create("energy", None)
        JobRunner().submit(forever, None, run)
        print(run.id, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    store = RunStore(tmp_path)
    deadline = time.time() + 20
    while store.get(run_id).read_info().get("state") != "running" and time.time() < deadline:
        time.sleep(0.05)
    assert store.list()[0]["state"] == "running"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert store.get(run_id).read_info()["state"] == "running"  # what the dead process left
    assert [i["state"] for i in store.list()] == ["interrupted"]
    assert store.get(run_id).status() == "interrupted"


@pytest.mark.parametrize(
    "content",
    [b"[1, 2, 3]", b"\xff\xfe not utf-8", b'{"id": "x", "created_at": "yesterday", "state": "done"}', b"{"],
)
def test_a_damaged_run_json_lists_as_damaged_and_hides_nothing(tmp_path, content):
    store = RunStore(tmp_path)
    good = store.create("unfold", None)
    good.update_info({"state": "done"})
    bad = store.create("energy", None)
    (bad.path / "run.json").write_bytes(content)
    listed = {i["id"]: i for i in store.list()}
    assert listed[good.id]["state"] == "done"
    if content.startswith(b'{"id"'):  # readable, only its date is odd: listed as it is, sorted last
        assert store.list()[-1]["id"] == "x"
    else:
        assert listed[bad.id]["state"] == "damaged" and "run.json" in listed[bad.id]["error"]
    result = CliRunner().invoke(main, ["runs", "list", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert good.id in result.output


# -- resume refusals ---------------------------------------------------------------------------------
def _finished_run(tmp_path: Path, workflow: str = "unfold", state: str = "done") -> str:
    run = RunStore(tmp_path).create(workflow, UnfoldingConfig(device="cpu"))
    run.update_info({"state": state, "action": "run"})
    (run.path / "results").mkdir()
    (run.path / "results" / "scalars.json").write_text("{}")
    return run.id


def test_resuming_another_workflows_run_is_refused_and_changes_nothing(tmp_path):
    run_id = _finished_run(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / run_id).rglob("*") if p.is_file()}
    result = CliRunner().invoke(main, ["energy", "run", "--resume", run_id, "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert f"run {run_id!r} is a 'unfold' run, not 'energy'" in result.output
    after = {p.name: p.read_bytes() for p in (tmp_path / run_id).rglob("*") if p.is_file()}
    assert after == before


def test_resuming_a_finished_run_is_refused_and_it_stays_done(tmp_path):
    run_id = _finished_run(tmp_path)
    result = CliRunner().invoke(main, ["unfold", "run", "--resume", run_id, "--out", str(tmp_path)])
    assert result.exit_code != 0 and "is done; nothing to resume" in result.output
    assert RunStore(tmp_path).get(run_id).read_info()["state"] == "done"


def test_resume_with_a_different_config_is_refused_before_anything_runs(tmp_path):
    run_id = _finished_run(tmp_path, state="cancelled")
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps({"iterations": 7}))
    result = CliRunner().invoke(
        main, ["unfold", "run", "--resume", run_id, "--config", str(changed), "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "differs from run" in result.output and "iterations" in result.output
    assert RunStore(tmp_path).get(run_id).read_info()["state"] == "cancelled"


def test_an_unavailable_device_is_refused_before_a_run_folder_is_made(tmp_path):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(main, ["unfold", "run", "--device", "mps", "--out", str(runs)])
    assert result.exit_code != 0 and "UnfoldingConfig.device" in result.output and "mps" in result.output
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["epochs"], "expected FIELD=VALUE"),
        (["no_such=1"], "no field(s) ['no_such']"),
        (["epochs=true"], "boolean"),
    ],
)
def test_bad_set_overrides_are_named_errors(tmp_path, items, message):
    args = ["unfold", "run", "--out", str(tmp_path)]
    for item in items:
        args += ["--set", item]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


# -- memory ------------------------------------------------------------------------------------------
def _big(config, progress):
    progress.metric("loss", 1.0, step=0)
    return {"weights": np.full(1_000_000, float(config))}  # 8 MB


def test_finished_jobs_leave_memory_and_their_results_load_back(tmp_path):
    store, runner = RunStore(tmp_path), JobRunner(max_workers=1, keep_finished=4)
    jobs = []
    for i in range(100):
        jobs.append(runner.submit(_big, i, store.create("test", None)))
        jobs[-1].wait(30)
        if i == 19:
            baseline = _resident_mb()
    grown = _resident_mb() - baseline
    assert all(j.state == "done" for j in jobs)
    assert len(runner.jobs()) == 4
    # 80 more 8 MB results: kept in memory they would add 640 MB
    assert grown < 60, f"resident memory grew by {grown:.0f} MB over 80 jobs"
    assert jobs[0].result["weights"][0] == 0.0 and jobs[0].progress.read_metrics(0)[0] == []
    runner.shutdown()


def test_metrics_kept_in_memory_are_bounded_and_cursors_stay_exact():
    progress = Progress(max_metrics=10)
    seen, cursor = [], 0
    for i in range(25):
        progress.metric("loss", float(i), step=i)
        new, cursor = progress.read_metrics(cursor)
        seen += [r["step"] for r in new]
    assert seen == list(range(25))
    assert len(progress.read_metrics(0)[0]) <= 10


# -- metrics of resumed runs -------------------------------------------------------------------------
def test_metrics_repeated_after_a_resume_replace_the_first_ones(tmp_path):
    run = RunStore(tmp_path).create("unfold", None)
    for step in range(3):  # iteration 0 done, iteration 1 interrupted after 3 epochs
        run.append_metric({"name": "loss", "value": 1.0 + step, "step": step, "iteration": 1, "t": 1.0})
    for step in range(5):  # resumed from the end of iteration 0: iteration 1 again, all 5 epochs
        run.append_metric({"name": "loss", "value": 2.0 + step, "step": step, "iteration": 1, "t": 2.0})
    records = run.read_metrics()
    assert [(r["step"], r["value"]) for r in records] == [(s, 2.0 + s) for s in range(5)]
    run.compact_metrics()
    assert len((run.path / "metrics.jsonl").read_text().splitlines()) == 5
    assert run.read_metrics() == records


def test_a_finished_job_leaves_a_compact_metrics_file(tmp_path):
    store, runner = RunStore(tmp_path), JobRunner()
    run = store.create("test", None)
    for step in range(4):
        run.append_metric({"name": "loss", "value": -1.0, "step": step})

    def again(config, progress):
        for step in range(4):
            progress.metric("loss", float(step), step=step)
        return {"ok": 1}

    assert runner.submit(again, None, run).wait(30) == "done"
    lines = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["value"] for r in lines] == [0.0, 1.0, 2.0, 3.0]
    runner.shutdown()


def test_the_runs_tab_lists_damaged_and_odd_runs(tmp_path):
    from numl_core.run_index import runs_table

    store = RunStore(tmp_path)
    good = store.create("unfold", None)
    good.update_info({"state": "done", "started_at": 10.0, "finished_at": 12.0})
    odd = store.create("energy", None)
    odd.update_info({"created_at": "yesterday", "started_at": "noon", "finished_at": [1], "label": 5})
    (store.create("xsec", None).path / "run.json").write_bytes(b"\xff")
    frame = runs_table(store, {})
    assert len(frame) == 3 and set(frame["state"]) >= {"done", "damaged"}
    assert frame.loc[frame["id"] == good.id, "duration"].item() == 2.0
    assert frame.loc[frame["id"] == odd.id, "created"].item() == ""


def test_resuming_a_run_that_is_still_running_is_refused(tmp_path):
    store, runner = RunStore(tmp_path), JobRunner()
    run = store.create("unfold", UnfoldingConfig(device="cpu"))
    run.update_info({"action": "run"})
    job = runner.submit(_slow, None, run)
    result = CliRunner().invoke(main, ["unfold", "run", "--resume", run.id, "--out", str(tmp_path)])
    assert result.exit_code != 0 and "is still running in another job or process" in result.output
    job.cancel()
    assert job.wait(10) == "cancelled"
    runner.shutdown()
