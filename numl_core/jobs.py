"""Background jobs: one runner shared by every workflow.

A workflow is a function ``fn(config, progress) -> result``. :class:`JobRunner` runs it
in a background thread; the function reports through :class:`Progress` (fraction,
message, scalar metrics, log lines, intermediate artefacts) and calls
``progress.check_cancelled()`` between steps, which makes ``Job.cancel()`` take effect
within one step.

Example
-------
>>> def count(config, progress):
...     for i in range(3):
...         progress.check_cancelled()
...         progress.metric("loss", 1.0 / (i + 1), step=i)
...     return {"n": 3}
>>> runner = JobRunner(max_workers=1)
>>> job = runner.submit(count, None)
>>> job.wait(10)
'done'
>>> [r["value"] for r in job.progress.read_metrics(0)[0]]
[1.0, 0.5, 0.3333333333333333]
>>> runner.shutdown()
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from numl_core.results import Result
from numl_core.tensorboard import RunBoard

if TYPE_CHECKING:
    from numl_core.runs import RunDir

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")


class JobCancelled(Exception):
    """Raised inside a workflow by :meth:`Progress.check_cancelled` after a cancel."""


class Progress:
    """Thread-safe progress channel between a running workflow and its readers.

    Usable on its own (notebooks, tests, the CLI) or owned by a :class:`Job`.
    ``listeners`` are called as ``listener(kind, payload)`` for every report; the CLI
    uses one to drive a tqdm bar. Metrics are an append-only list that readers consume
    incrementally with :meth:`read_metrics` and a cursor.
    """

    def __init__(self, run_dir: RunDir | None = None, max_metrics: int = 200_000) -> None:
        self.run_dir = run_dir
        self.max_metrics = max_metrics
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._metrics: list[dict[str, Any]] = []
        self._metrics_dropped = 0  # records dropped from the front; cursors count from the first record
        self.released = False  # True once release() forgot the records (the run folder keeps them)
        self._log: list[str] = []
        self._artefacts: dict[str, Any] = {}
        self.fraction = 0.0
        self.message = ""
        self.listeners: list[Callable[[str, Any], None]] = []

    # -- writer side (the workflow) ------------------------------------------------
    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested."""
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if a cancel was requested."""
        if self._cancel.is_set():
            raise JobCancelled("cancelled by request")

    def update(self, fraction: float | None = None, message: str | None = None) -> None:
        """Set the completed fraction (0-1) and/or the status message."""
        with self._lock:
            if fraction is not None:
                self.fraction = min(max(float(fraction), 0.0), 1.0)
            if message is not None:
                self.message = message
        self._notify("update", (self.fraction, self.message))

    def metric(self, name: str, value: float, step: int, **tags: Any) -> None:
        """Append one scalar metric record (e.g. a loss at an epoch or iteration)."""
        record = {"name": name, "value": float(value), "step": int(step), "t": time.time(), **tags}
        with self._lock:
            self._metrics.append(record)
            if len(self._metrics) > self.max_metrics:  # the run folder keeps them all
                drop = len(self._metrics) - self.max_metrics // 2
                del self._metrics[:drop]
                self._metrics_dropped += drop
        if self.run_dir is not None:
            self.run_dir.append_metric(record)
        self._notify("metric", record)

    def log(self, message: str) -> None:
        """Append a line to the job log (and to Python logging)."""
        line = f"{time.strftime('%H:%M:%S')} {message}"
        with self._lock:
            self._log.append(line)
        log.info(message)
        self._notify("log", line)

    def artefact(self, name: str, value: Any) -> None:
        """Publish the latest version of an intermediate result (e.g. a histogram)."""
        with self._lock:
            self._artefacts[name] = value
        self._notify("artefact", name)

    # -- reader side (UI, CLI) -------------------------------------------------------
    def read_metrics(self, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Metrics appended since ``cursor``, and the new cursor (records older than the in-memory window
        of ``max_metrics`` are only in the run folder's ``metrics.jsonl``)."""
        with self._lock:
            start = max(cursor - self._metrics_dropped, 0)
            new = self._metrics[start:]
            return list(new), self._metrics_dropped + start + len(new)

    def read_log(self, cursor: int = 0) -> tuple[list[str], int]:
        """Log lines appended since ``cursor``, and the new cursor."""
        with self._lock:
            new = self._log[cursor:]
            return list(new), cursor + len(new)

    def artefacts(self) -> dict[str, Any]:
        """A snapshot of the latest artefacts."""
        with self._lock:
            return dict(self._artefacts)

    def release(self) -> None:
        """Forget the metrics, log and artefacts held in memory (a finished job's run folder has them)."""
        with self._lock:
            self._metrics_dropped += len(self._metrics)
            self._metrics, self._log, self._artefacts = [], [], {}
            self.released = True

    def request_cancel(self) -> None:
        """Ask the workflow to stop at its next check."""
        self._cancel.set()

    def _notify(self, kind: str, payload: Any) -> None:
        for listener in self.listeners:
            listener(kind, payload)

    def subrange(self, lo: float, hi: float) -> Progress:
        """A view whose fractions 0-1 map onto ``[lo, hi]`` of this progress (for sub-steps)."""
        return _SubProgress(self, lo, hi)  # type: ignore[return-value]


class _SubProgress:
    """Delegates everything to a parent :class:`Progress` but rescales ``update`` fractions."""

    def __init__(self, parent: Progress, lo: float, hi: float) -> None:
        self._parent, self._lo, self._hi = parent, lo, hi

    def update(self, fraction: float | None = None, message: str | None = None) -> None:
        scaled = None if fraction is None else self._lo + (self._hi - self._lo) * fraction
        self._parent.update(scaled, message)

    def subrange(self, lo: float, hi: float) -> Progress:
        span = self._hi - self._lo
        return self._parent.subrange(self._lo + span * lo, self._lo + span * hi)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parent, name)


class Job:
    """One submitted workflow run: id, state, progress, result or error."""

    def __init__(
        self, fn: Callable[[Any, Progress], Any], config: Any, run_dir: RunDir | None, label: str = ""
    ) -> None:
        self.id = run_dir.id if run_dir is not None else uuid.uuid4().hex[:12]
        self.fn = fn
        self.config = config
        self.label = label or getattr(fn, "__name__", "job")
        self.run_dir = run_dir
        self.progress = Progress(run_dir)
        self.state = "queued"
        self._result: Any = None
        self.on_finish: Callable[[Job], None] | None = None
        self.error: BaseException | None = None
        self.traceback = ""
        self.submitted_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.device: str | None = None  # resolved when the job starts: "cpu", "cuda", "cuda:1", "mps"
        self.torch_threads: int | None = None  # torch's intra-op threads while it runs
        self._done = threading.Event()
        self._lock: Any = None  # the run folder's lock, taken by JobRunner.submit
        self._board: RunBoard | None = None  # the run's TensorBoard event file, while it runs

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def result(self) -> Any:
        """The workflow's result; once the job was released from memory, loaded back from its run folder."""
        if self.progress.released and self.state == "done" and self.run_dir is not None:
            from numl_core import workflows

            name = self.run_dir.read_info().get("workflow")
            known = workflows.available()
            return known[name].load_result(self.run_dir) if name in known else self.run_dir.load_result()
        return self._result

    @result.setter
    def result(self, value: Any) -> None:
        self._result = value

    def release(self) -> None:
        """Drop the result, metrics, log and artefacts from memory (only for a finished job with a run
        folder, which holds them all)."""
        if self.done and self.run_dir is not None:
            self._result = None
            self.progress.release()

    def cancel(self) -> None:
        """Request cancellation; a queued job is cancelled before it starts."""
        self.progress.request_cancel()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the job ends (or ``timeout`` s pass); return its state."""
        self._done.wait(timeout)
        return self.state

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description used by the run browser and ``run.json``."""
        return {
            "id": self.id,
            "label": self.label,
            "state": self.state,
            "fraction": self.progress.fraction,
            "message": self.progress.message,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "device": self.device,
            "torch_threads": self.torch_threads,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
        }

    def _run(self, torch_threads: int | None) -> None:
        if self.progress.cancelled:
            self._finish("cancelled")
            return
        import torch

        from numl_core.device import config_device

        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        self.device = config_device(self.config)
        self.torch_threads = torch.get_num_threads()
        self.state = "running"
        self.started_at = time.time()
        self._write_info()
        self._board = RunBoard.attach(self.run_dir, self.progress)
        try:
            result = self.fn(self.config, self.progress)
            if self.run_dir is not None and result is not None:
                if isinstance(result, Result):
                    result.save(self.run_dir)
                else:
                    self.run_dir.save_result(result)
            self.result = result
            self.progress.update(1.0, "done")
            self._finish("done")
        except JobCancelled:
            self.progress.log("cancelled; checkpoints kept for resume")
            self._finish("cancelled")
        except BaseException as exc:  # noqa: BLE001 - a job must never take the runner down
            self.error = exc
            self.traceback = traceback.format_exc()
            self.progress.log(f"failed: {type(exc).__name__}: {exc}")
            self._finish("failed")

    def _finish(self, state: str) -> None:
        self.state = state
        self.finished_at = time.time()
        try:
            if self._board is not None:
                self._board.close()
            if self.run_dir is not None:
                self.run_dir.compact_metrics()
            self._write_info()
        finally:
            if self._lock is not None:
                self._lock.release()
            self._done.set()
            if self.on_finish is not None:
                self.on_finish(self)

    def _write_info(self) -> None:
        if self.run_dir is not None:
            info = self.summary()
            if self.traceback:
                info["traceback"] = self.traceback
            self.run_dir.update_info(info)


def default_torch_threads() -> int:
    """Leave one core to the web server: ``cores - 1``, at least 1."""
    return max(1, (os.cpu_count() or 1) - 1)


class JobRunner:
    """Runs jobs in a bounded pool of background threads.

    ``max_workers`` bounds concurrent jobs (others queue); ``torch_threads`` caps
    torch's intra-op threads while jobs run so the server stays responsive.
    """

    def __init__(
        self, max_workers: int = 1, torch_threads: int | None = None, keep_finished: int = 16
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self.keep_finished = keep_finished
        self.torch_threads = default_torch_threads() if torch_threads is None else torch_threads
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="numl-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(
        self,
        fn: Callable[[Any, Progress], Any],
        config: Any,
        run_dir: RunDir | None = None,
        label: str = "",
        info: dict[str, Any] | None = None,
    ) -> Job:
        """Queue ``fn(config, progress)``; return its :class:`Job` at once. ``info`` is merged into the run
        folder's ``run.json`` once the job holds the folder's lock (so no other job writes it meanwhile)."""
        job = Job(fn, config, run_dir, label)
        job.on_finish = self._forget_old
        # held from submission to the end: a queued or running job's folder is live for every reader
        job._lock = run_dir.acquire_lock() if run_dir is not None else None
        if run_dir is not None and info:
            try:
                run_dir.update_info(info)
            except BaseException:
                job._lock.release()
                raise
        with self._lock:
            self._jobs[job.id] = job
        job._write_info()
        self._pool.submit(job._run, self.torch_threads)
        return job

    def _forget_old(self, finished: Job) -> None:
        """Keep the ``keep_finished`` newest finished jobs in memory; release and forget older ones
        that have a run folder (everything they made is there)."""
        with self._lock:
            done = [j for j in self._jobs.values() if j.done and j.run_dir is not None]
            done.sort(key=lambda j: j.finished_at or 0.0)
            old = done[: max(len(done) - self.keep_finished, 0)]
            for job in old:
                del self._jobs[job.id]
        for job in old:
            job.release()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def active(self) -> list[Job]:
        return [j for j in self.jobs() if not j.done]

    def queue_position(self, job_id: str) -> int | None:
        """Place of a waiting job among the waiting ones (1: it starts next, once one of the
        ``max_workers`` running jobs ends); None for a job that is not waiting (running, finished,
        cancelled before it started, or unknown)."""
        waiting = [j for j in self.jobs() if j.state == "queued" and not j.progress.cancelled]
        waiting.sort(key=lambda j: j.submitted_at)  # the pool starts jobs in the order they came
        ids = [j.id for j in waiting]
        return ids.index(job_id) + 1 if job_id in ids else None

    def shutdown(self, cancel: bool = True, wait: bool = True) -> None:
        """Stop the pool, cancelling unfinished jobs unless ``cancel`` is False."""
        if cancel:
            for job in self.jobs():
                job.cancel()
        self._pool.shutdown(wait=wait)
