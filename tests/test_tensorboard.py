"""A job's metrics written as TensorBoard event files in its run folder (``RUN/tensorboard/``), read back
with TensorBoard's own reader: the same tags, steps and values as the records numl stores, also after a
cancel and a resume; without the ``tensorboard`` package a job runs as before and writes no event file."""

from __future__ import annotations

import logging
import sys

import pytest

from numl_core import tensorboard as board
from numl_core.jobs import JobRunner
from numl_core.runs import RunStore

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

EPOCHS = 3
TAGS = {"step1_loss/train", "step1_loss/val", "change", "boot_loss/val/total", "boot_loss/val/chi2"}


def loss(session: int, iteration: int, epoch: int, split: str) -> float:
    """A loss value that tells the session, iteration, epoch and split apart (exact in float32)."""
    return 100.0 * session + 10.0 * iteration + epoch + (0.5 if split == "val" else 0.0)


def toy_training(config, progress):
    """``iterations`` iterations of EPOCHS epochs whose epoch counter restarts, checkpointed after each
    iteration; cancels itself before epoch ``cancel_at`` = (iteration, epoch); a resume starts at the
    iteration after the checkpoint, so it repeats the records of the partial one."""
    done = (progress.run_dir.load_checkpoint("toy") or {"done": 0})["done"]
    for iteration in range(done, config["iterations"]):
        for epoch in range(EPOCHS):
            if (iteration, epoch) == config.get("cancel_at"):
                progress.request_cancel()
            progress.check_cancelled()
            for split in ("train", "val"):
                value = loss(config["session"], iteration, epoch, split)
                progress.metric("step1_loss", value, step=epoch, iteration=iteration, split=split)
        progress.run_dir.save_checkpoint("toy", {"done": iteration + 1})
        progress.metric("change", 0.5**iteration, step=iteration, iteration=iteration)
    for step in range(2):
        for term in ("total", "chi2"):
            progress.metric("boot_loss", 0.25 * (step + 1), step=step, split="val", term=term)
    return {"iterations": config["iterations"]}


def expected_point(record: dict) -> tuple[str, int]:
    """The TensorBoard tag and step of a stored record: the epochs of each iteration laid end to end."""
    tag = "/".join([record["name"], *(str(record[k]) for k in ("split", "term") if k in record)])
    step = record["step"] + (EPOCHS * record["iteration"] if record["name"] == "step1_loss" else 0)
    return tag, step


def board_points(run) -> dict[tuple[str, int], float]:
    """``{(tag, step): value}`` of the run's event files as TensorBoard shows them: a step written again
    (by a resumed run) shows its last value."""
    events = event_accumulator.EventAccumulator(str(run.path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {(tag, e.step): e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag)}


def stored_points(run) -> dict[tuple[str, int], float]:
    """``{(tag, step): value}`` of the metric records numl stored in the run folder."""
    return {expected_point(r): r["value"] for r in run.read_metrics()}


@pytest.fixture
def runner():
    r = JobRunner(max_workers=1, torch_threads=1)
    yield r
    r.shutdown()


def test_a_jobs_metrics_read_back_from_its_event_files(tmp_path, runner):
    run = RunStore(tmp_path).create("toy", None)
    job = runner.submit(toy_training, {"iterations": 3, "session": 1}, run)
    assert job.wait(60) == "done", job.traceback
    events = event_accumulator.EventAccumulator(str(run.path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    assert set(events.Tags()["scalars"]) == TAGS
    assert [e.step for e in events.Scalars("step1_loss/val")] == list(range(3 * EPOCHS))
    assert [e.step for e in events.Scalars("change")] == [0, 1, 2]
    assert board_points(run) == stored_points(run)
    assert len(board_points(run)) == len(run.read_metrics()) == 3 * EPOCHS * 2 + 3 + 4
    first = events.Scalars("step1_loss/train")[0]
    stored = next(r for r in run.read_metrics() if r["name"] == "step1_loss" and r["split"] == "train")
    assert first.wall_time == pytest.approx(stored["t"], abs=1e-6)


def test_a_cancelled_then_resumed_run_keeps_its_steps(tmp_path, runner):
    run = RunStore(tmp_path).create("toy", None)
    first = runner.submit(toy_training, {"iterations": 3, "session": 1, "cancel_at": (1, 2)}, run)
    assert first.wait(60) == "cancelled"
    # closed on cancel: iteration 0 and two epochs of iteration 1 are in the file
    assert [s for tag, s in board_points(run) if tag == "step1_loss/val"] == list(range(EPOCHS + 2))

    resumed = runner.submit(toy_training, {"iterations": 3, "session": 2}, run)
    assert resumed.wait(60) == "done", resumed.traceback
    assert len(list((run.path / "tensorboard").glob("events.out.tfevents.*"))) == 2
    points = board_points(run)
    assert points == stored_points(run)
    assert sorted(s for tag, s in points if tag == "step1_loss/val") == list(range(3 * EPOCHS))
    # the repeated iteration shows the resumed session's values on the steps the first session used
    assert points[("step1_loss/val", EPOCHS)] == loss(2, 1, 0, "val")
    assert points[("step1_loss/val", 0)] == loss(1, 0, 0, "val")


def test_without_tensorboard_a_job_runs_and_writes_no_event_file(tmp_path, runner, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setattr(board, "_reported_off", False)
    store = RunStore(tmp_path)
    caplog.set_level(logging.DEBUG, logger="numl_core.tensorboard")
    for _ in range(2):
        run = store.create("toy", None)
        job = runner.submit(toy_training, {"iterations": 2, "session": 1}, run)
        assert job.wait(60) == "done", job.traceback
        assert len(run.read_metrics()) == 2 * EPOCHS * 2 + 2 + 4
        assert not (run.path / "tensorboard").exists()
    said = [r for r in caplog.records if r.name == "numl_core.tensorboard"]
    assert [(r.levelno, "numl[tensorboard]" in r.getMessage()) for r in said] == [(logging.DEBUG, True)]


def test_a_failing_event_writer_never_fails_the_job(tmp_path, runner, caplog):
    run = RunStore(tmp_path).create("toy", None)
    (run.path / "tensorboard").write_text("a file where the event folder belongs")
    with caplog.at_level(logging.WARNING, logger="numl_core.tensorboard"):
        job = runner.submit(toy_training, {"iterations": 2, "session": 1}, run)
        assert job.wait(60) == "done", job.traceback
    assert len(run.read_metrics()) == 2 * EPOCHS * 2 + 2 + 4
    assert any("event files stopped" in r.getMessage() for r in caplog.records)
