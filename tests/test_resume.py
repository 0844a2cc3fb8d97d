"""Resume and rerun through the job runner (``numl_core.resume``), as the dashboard does them: a cancelled
run continues from its checkpoint in its own folder; a finished run, a run of another workflow or action and
a live run are refused with the run named; a rerun is a new run folder with the old config."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import param
import pytest

from numl_core.config import Config
from numl_core.jobs import JobRunner
from numl_core.resume import RunRefused, rerun, resume_run, stored_config
from numl_core.runs import RunStore
from numl_core.workflows import Workflow

TIMEOUT = 20.0


class CountConfig(Config):
    """Config of a workflow that counts steps and keeps a checkpoint after each."""

    steps = param.Integer(default=6, bounds=(1, 100), doc="Steps to count.")
    device = param.String(default="cpu", doc="Torch device.")


STOP_AFTER: dict[str, threading.Event] = {}
"""Run id -> an event set while the test wants the run to stop (cancel itself) after its third step."""


def count(config: CountConfig, progress: Any) -> dict[str, Any]:
    run = progress.run_dir
    start = (run.load_checkpoint("count") or {"next": 0})["next"]
    progress.log(f"starting at step {start}")
    for step in range(start, config.steps):
        progress.check_cancelled()
        progress.metric("loss", 1.0 / (step + 1), step=step)
        run.save_checkpoint("count", {"next": step + 1})
        progress.update((step + 1) / config.steps, f"step {step + 1} of {config.steps}")
        stop = STOP_AFTER.get(run.id)
        if step == 2 and stop is not None and stop.is_set():
            progress.request_cancel()
    return {"counted": config.steps, "started_at_step": start}


COUNT = Workflow("count", "Count", "Counts steps.", CountConfig, count, actions={"again": count})
OTHER = Workflow("other", "Other", "Another workflow.", CountConfig, count)


@pytest.fixture
def runner() -> JobRunner:
    r = JobRunner(max_workers=1, torch_threads=1)
    yield r
    r.shutdown()


def cancelled_run(store: RunStore, runner: JobRunner, steps: int = 6) -> str:
    """A run of COUNT that cancelled itself after its third step (checkpoint: next step 3)."""
    config = CountConfig(steps=steps)
    run = store.create("count", config)
    STOP_AFTER[run.id] = threading.Event()
    STOP_AFTER[run.id].set()
    job = runner.submit(count, config, run, label="counting", info={"action": "run"})
    assert job.wait(TIMEOUT) == "cancelled"
    STOP_AFTER[run.id].clear()
    return run.id


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_cancelled_run_resumes_to_done_and_its_metrics_continue(tmp_path: Path, runner: JobRunner) -> None:
    store = RunStore(tmp_path)
    run_id = cancelled_run(store, runner)
    run = store.get(run_id)
    assert [r["step"] for r in run.read_metrics()] == [0, 1, 2]

    job = resume_run(runner, store, run_id, COUNT, info={"owner": "me"})
    assert job.id == run_id and job.wait(TIMEOUT) == "done"
    assert job.result == {"counted": 6, "started_at_step": 3}  # from the checkpoint, not from 0
    assert [r["step"] for r in run.read_metrics()] == [0, 1, 2, 3, 4, 5]  # each step once
    assert [r["step"] for r in job.progress.read_metrics(0)[0]] == [3, 4, 5]
    info = run.read_info()
    assert (info["state"], info["resumes"], info["owner"], info["label"]) == ("done", 1, "me", "counting")
    assert [i["id"] for i in store.list()] == [run_id]  # no new folder


def test_resuming_a_done_run_is_refused_and_changes_nothing(tmp_path: Path, runner: JobRunner) -> None:
    store = RunStore(tmp_path)
    run_id = cancelled_run(store, runner)
    assert resume_run(runner, store, run_id, COUNT).wait(TIMEOUT) == "done"
    before = files(tmp_path / run_id)
    with pytest.raises(RunRefused, match=f"run '{run_id}' is done; nothing to resume"):
        resume_run(runner, store, run_id, COUNT)
    assert files(tmp_path / run_id) == before


def test_resuming_a_run_of_another_workflow_or_action_is_refused(tmp_path: Path, runner: JobRunner) -> None:
    store = RunStore(tmp_path)
    run_id = cancelled_run(store, runner)
    before = files(tmp_path / run_id)
    with pytest.raises(RunRefused, match=f"run '{run_id}' is a 'count' run, not 'other'"):
        resume_run(runner, store, run_id, OTHER)
    with pytest.raises(RunRefused, match=f"run '{run_id}' ran the 'run' action, not 'again'"):
        resume_run(runner, store, run_id, COUNT, action="again")
    with pytest.raises(RunRefused, match=f"run '{run_id}' is a 'count' run, not 'other'"):
        rerun(runner, store, run_id, OTHER)
    with pytest.raises(FileNotFoundError, match="no run 'nope'"):
        resume_run(runner, store, "nope", COUNT)
    assert files(tmp_path / run_id) == before and len(store.list()) == 1


def test_resuming_a_live_run_is_refused(tmp_path: Path, runner: JobRunner) -> None:
    store = RunStore(tmp_path)
    run = store.create("count", CountConfig())
    lock = run.acquire_lock()  # another process (or job) runs it
    run.update_info({"state": "running", "action": "run"})
    try:
        with pytest.raises(RunRefused, match=f"run '{run.id}' is still running"):
            resume_run(runner, store, run.id, COUNT)
    finally:
        lock.release()
    assert store.list()[0]["state"] == "interrupted"  # its process is gone: now it resumes
    assert resume_run(runner, store, run.id, COUNT).wait(TIMEOUT) == "done"


def test_rerun_is_a_new_run_with_the_old_config_and_leaves_the_old_one(
    tmp_path: Path, runner: JobRunner
) -> None:
    store = RunStore(tmp_path)
    run_id = cancelled_run(store, runner, steps=5)
    before = files(tmp_path / run_id)
    job = rerun(runner, store, run_id, COUNT, info={"owner": "me"})
    assert job.id != run_id and job.wait(TIMEOUT) == "done"
    assert job.result == {"counted": 5, "started_at_step": 0}  # its own folder: no checkpoint to start from
    new = store.get(job.id).read_info()
    assert (new["rerun_of"], new["action"], new["label"], new["owner"]) == (run_id, "run", "counting", "me")
    assert store.get(job.id).read_config_dict() == store.get(run_id).read_config_dict()
    assert files(tmp_path / run_id) == before  # the old run is only read
    assert stored_config(store, run_id, COUNT).steps == 5


def test_a_run_without_config_is_refused_by_name(tmp_path: Path, runner: JobRunner) -> None:
    store = RunStore(tmp_path)
    run = store.create("count", None)
    run.update_info({"state": "cancelled", "action": "run"})
    with pytest.raises(RunRefused, match=f"run '{run.id}' has no config.json"):
        rerun(runner, store, run.id, COUNT)
    with pytest.raises(RunRefused, match=f"run '{run.id}' has no config.json"):
        resume_run(runner, store, run.id, COUNT)
    assert len(store.list()) == 1
