import threading
import time

import pytest

from numl_core.jobs import JobRunner, Progress
from numl_core.runs import RunStore


def slow_steps(config, progress):
    for i in range(config["steps"]):
        progress.check_cancelled()
        progress.metric("loss", 1.0 / (i + 1), step=i, split="train")
        progress.update((i + 1) / config["steps"], f"step {i}")
        time.sleep(config.get("sleep", 0.0))
    return {"steps": config["steps"]}


def failing(config, progress):
    progress.log("about to fail")
    raise RuntimeError("boom in step 3")


@pytest.fixture
def runner():
    r = JobRunner(max_workers=2, torch_threads=1)
    yield r
    r.shutdown()


def test_job_runs_to_done_with_metrics(runner):
    job = runner.submit(slow_steps, {"steps": 5})
    assert job.wait(10) == "done"
    assert job.result == {"steps": 5}
    records, cursor = job.progress.read_metrics(0)
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4]
    assert records[0]["split"] == "train"
    assert cursor == 5 and job.progress.read_metrics(cursor) == ([], 5)
    assert job.progress.fraction == 1.0


def test_incremental_cursor_reads_see_every_record_once(runner):
    job = runner.submit(slow_steps, {"steps": 40, "sleep": 0.005})
    seen, cursor = [], 0
    while not job.done:
        new, cursor = job.progress.read_metrics(cursor)
        seen += new
        time.sleep(0.01)
    new, cursor = job.progress.read_metrics(cursor)
    seen += new
    assert [r["step"] for r in seen] == list(range(40))


def test_cancel_takes_effect_within_one_step(runner):
    job = runner.submit(slow_steps, {"steps": 1000, "sleep": 0.02})
    while job.progress.read_metrics(0)[1] < 3:
        time.sleep(0.01)
    job.cancel()
    assert job.wait(5) == "cancelled"
    n = job.progress.read_metrics(0)[1]
    time.sleep(0.1)
    assert job.progress.read_metrics(0)[1] == n  # nothing more after the cancel
    assert n < 1000


def test_failure_keeps_exception_and_traceback(runner):
    job = runner.submit(failing, {})
    assert job.wait(10) == "failed"
    assert isinstance(job.error, RuntimeError)
    assert "boom in step 3" in job.traceback and "failing" in job.traceback
    assert any("about to fail" in line for line in job.progress.read_log(0)[0])


def test_concurrency_limit_queues_jobs():
    runner = JobRunner(max_workers=1, torch_threads=1)
    try:
        first = runner.submit(slow_steps, {"steps": 20, "sleep": 0.02})
        second = runner.submit(slow_steps, {"steps": 1})
        time.sleep(0.1)
        assert first.state == "running" and second.state == "queued"
        assert second.wait(10) == "done" and first.done
    finally:
        runner.shutdown()


def test_cancelled_while_queued_never_runs():
    runner = JobRunner(max_workers=1, torch_threads=1)
    try:
        first = runner.submit(slow_steps, {"steps": 10, "sleep": 0.02})
        second = runner.submit(slow_steps, {"steps": 1})
        second.cancel()
        first.wait(10)
        assert second.wait(10) == "cancelled" and second.started_at is None
    finally:
        runner.shutdown()


def test_job_with_run_dir_writes_metrics_result_and_state(tmp_path, runner):
    store = RunStore(tmp_path)
    run = store.create("demo", None)
    job = runner.submit(slow_steps, {"steps": 3}, run_dir=run)
    assert job.wait(10) == "done"
    assert [r["step"] for r in run.read_metrics()] == [0, 1, 2]
    assert run.read_info()["state"] == "done"
    assert run.load_result()["steps"] == 3
    assert store.list("demo")[0]["id"] == run.id


def test_progress_is_thread_safe():
    progress = Progress()

    def writer(k):
        for i in range(500):
            progress.metric(f"m{k}", i, step=i)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records, cursor = progress.read_metrics(0)
    assert cursor == 2000
    for k in range(4):
        assert [r["step"] for r in records if r["name"] == f"m{k}"] == list(range(500))


def test_torch_threads_are_capped(runner):
    import torch

    def threads(config, progress):
        return {"threads": torch.get_num_threads()}

    job = runner.submit(threads, None)
    job.wait(10)
    assert job.result["threads"] == 1


def test_subrange_rescales_fraction_and_shares_metrics():
    progress = Progress()
    sub = progress.subrange(0.5, 1.0).subrange(0.0, 0.5)
    sub.update(0.5, "half of the first half of the second half")
    assert progress.fraction == 0.625
    sub.metric("loss", 1.0, step=0)
    assert progress.read_metrics(0)[1] == 1
    progress.request_cancel()
    assert sub.cancelled


def test_a_job_records_the_device_and_torch_threads_it_ran_with(tmp_path, runner):
    class Cfg(dict):
        device = "cpu"

    run = RunStore(tmp_path).create("demo", None)
    job = runner.submit(slow_steps, Cfg(steps=2), run_dir=run)
    assert job.wait(10) == "done"
    assert (job.device, job.torch_threads) == ("cpu", 1)
    info = run.read_info()
    assert (info["device"], info["torch_threads"]) == ("cpu", 1)


def test_queue_position_counts_the_waiting_jobs_in_order():
    gate = threading.Event()

    def blocked(config, progress):
        while not gate.wait(0.01):
            progress.check_cancelled()

    runner = JobRunner(max_workers=1, torch_threads=1)
    try:
        first = runner.submit(blocked, None)
        waiting = [runner.submit(slow_steps, {"steps": 1}) for _ in range(3)]
        deadline = time.monotonic() + 10
        while first.state != "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.queue_position(first.id) is None  # running, not waiting
        assert [runner.queue_position(j.id) for j in waiting] == [1, 2, 3]
        assert waiting[0].device is None  # chosen when it starts
        waiting[0].cancel()
        assert [runner.queue_position(j.id) for j in waiting] == [None, 1, 2]
        assert runner.queue_position("no-such-job") is None
        gate.set()
        assert [j.wait(10) for j in waiting] == ["cancelled", "done", "done"]
        assert runner.queue_position(waiting[2].id) is None
    finally:
        gate.set()
        runner.shutdown()
