"""Metrics as TensorBoard event files, next to ``metrics.jsonl`` in each run folder.

With the optional ``tensorboard`` package installed (``pip install numl[tensorboard]``), every metric record
a job stores in its run folder is also written as a TensorBoard scalar under ``RUN/tensorboard/``, so
``tensorboard --logdir RUNS`` shows numl runs next to a user's other work. Without the package nothing is
written and jobs run as before; a writer that fails stops writing for its job and never fails the job.

A record's tag is its name, then the values of its label tags (``split``, ``term``, ``model``, ...: every
tag that is not a counter, see :data:`numl_core.live.COUNTER_KEYS`) in the order of their keys:

>>> board_tag({"name": "boot_loss", "value": 0.5, "step": 3, "split": "val", "term": "chi2"})
'boot_loss/val/chi2'
>>> board_tag({"name": "step1_loss", "value": 0.7, "step": 3, "iteration": 2, "split": "val"})
'step1_loss/val'

The step is the record's step. TensorBoard keeps one point per step of a tag and drops the points past a
step that comes again, so a counter that restarts within a tag (each OmniFold iteration counts its epochs
from 0) is laid end to end, as the dashboard draws it (see :class:`StepChains`); the records a resumed run
repeats land on the steps they had, and replace those points as they replace the stored records.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from numl_core.live import COUNTER_KEYS, Record

if TYPE_CHECKING:
    from numl_core.jobs import Progress
    from numl_core.runs import RunDir

log = logging.getLogger(__name__)

EVENTS_DIR = "tensorboard"
"""The folder of a run that holds its event files."""

_NOT_TAGS = frozenset({"name", "value", "step", "t"})
_UNSAFE = re.compile(r"[\s/\\]+")
_EVENT_FILE = re.compile(r"^events\.out\.tfevents\.(\d+)\.")
_reported_off = False


def board_tag(record: Record) -> str:
    """The TensorBoard tag of a metric record: its name and label values, joined by ``/``."""
    labels = [_part(record[k]) for k in sorted(record) if k not in COUNTER_KEYS]
    return "/".join([_part(record["name"]), *labels])


def _part(value: Any) -> str:
    """One piece of a tag: spaces and slashes become ``_`` (a slash would add a level)."""
    return _UNSAFE.sub("_", str(value)) or "_"


def _segment(record: Record) -> tuple[tuple[str, str], ...]:
    """The counter tags of a record (``iteration``, ``trial``, ...): what tells its segment of a tag."""
    return tuple(sorted((k, str(v)) for k, v in record.items() if k in COUNTER_KEYS and k not in _NOT_TAGS))


class StepChains:
    """TensorBoard tags and steps of metric records, in the order they come.

    The records of one tag that share their counter tags form a segment (one OmniFold iteration of a
    loss). A segment gets its offset when its first record comes: 0 if its step is past the tag's last
    step, else one past the last step. Every later record of the segment keeps that offset, so a resumed
    run whose chains saw the stored records first puts each repeated record on the step it had.

    >>> chains = StepChains()
    >>> [chains.place({"name": "loss", "step": s, "iteration": i})[1] for i in (0, 1) for s in (0, 1, 2)]
    [0, 1, 2, 3, 4, 5]
    >>> chains.place({"name": "loss", "step": 1, "iteration": 0}), chains.place({"name": "ess", "step": 4})
    (('loss', 1), ('ess', 4))
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._offsets: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}

    def place(self, record: Record) -> tuple[str, int]:
        """The tag and the TensorBoard step of ``record`` (and remember them for the next records)."""
        tag, step = board_tag(record), int(record["step"])
        segment = (tag, _segment(record))
        if segment not in self._offsets:
            last = self._last.get(tag)
            self._offsets[segment] = 0 if last is None or step > last else last + 1 - step
        board_step = step + self._offsets[segment]
        self._last[tag] = board_step
        return tag, board_step


def summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or None when the ``tensorboard`` package is missing or
    does not import (said once per process: at debug level when it is not installed, else as a warning)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as exc:  # noqa: BLE001 - a broken install only turns the event files off
        _report_off(exc)
        return None
    return SummaryWriter


def _report_off(exc: Exception) -> None:
    global _reported_off
    if _reported_off:
        return
    _reported_off = True
    missing = isinstance(exc, ModuleNotFoundError) and "tensorboard" in str(exc.name)
    if missing:
        log.debug("no TensorBoard event files: install numl[tensorboard] to write them")
    else:
        log.warning(
            "no TensorBoard event files: tensorboard does not import (%s: %s)", type(exc).__name__, exc
        )


def wait_past_earlier_files(folder: Path) -> None:
    """Wait until the clock is past the second in the name of the newest event file in ``folder``.

    TensorBoard reads a run's event files in the order of their names, which start with the second the
    file was made in (then the host, the process id and a counter, which need not sort in time). A resumed
    run's file must sort after the files of its earlier sessions, so that its repeated steps replace theirs.
    """
    names = (_EVENT_FILE.match(p.name) for p in Path(folder).glob("events.out.tfevents.*"))
    seconds = [int(m.group(1)) for m in names if m]
    if seconds:
        time.sleep(max(max(seconds) + 1 - time.time(), 0.0))


class RunBoard:
    """Writes the metric records of one job into its run folder's ``tensorboard/`` folder.

    A listener of the job's :class:`~numl_core.jobs.Progress` (see :meth:`attach`); the event file is made
    at the first record and flushed after each one, so it holds what ``metrics.jsonl`` holds, even after a
    kill. Every session of a run (its first run, each resume) writes a file of its own.
    """

    def __init__(self, folder: Path, writer_class: Any, chains: StepChains | None = None) -> None:
        self.folder = Path(folder)
        self._writer_class = writer_class
        self._chains = chains if chains is not None else StepChains()
        self._writer: Any = None
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, run_dir: RunDir | None, progress: Progress) -> RunBoard | None:
        """A board listening to ``progress`` for the run ``run_dir``; None without a run folder or without
        tensorboard. The metrics the run already stored (it is resumed) set the steps the new ones get."""
        if run_dir is None:
            return None
        writer_class = summary_writer_class()
        if writer_class is None:
            return None
        try:
            chains = StepChains()
            for record in run_dir.read_metrics():
                chains.place(record)
        except Exception as exc:  # noqa: BLE001 - the event files must never fail a job
            log.warning("run %s: no TensorBoard event files (%s: %s)", run_dir.id, type(exc).__name__, exc)
            return None
        board = cls(run_dir.path / EVENTS_DIR, writer_class, chains)
        progress.listeners.append(board)
        return board

    def __call__(self, kind: str, payload: Any) -> None:
        """The progress listener: write each metric record."""
        if kind == "metric":
            self.add(payload)

    def add(self, record: Record) -> None:
        """Write one metric record as a scalar and flush it; after an error, stop writing (with a warning)."""
        with self._lock:
            if self._closed:
                return
            try:
                tag, step = self._chains.place(record)
                if self._writer is None:
                    wait_past_earlier_files(self.folder)
                    self._writer = self._writer_class(log_dir=str(self.folder))
                self._writer.add_scalar(tag, float(record["value"]), step, walltime=record.get("t"))
                self._writer.flush()
            except Exception as exc:  # noqa: BLE001 - the event files must never fail a job
                log.warning(
                    "%s: TensorBoard event files stopped (%s: %s)", self.folder, type(exc).__name__, exc
                )
                self._close_writer()

    def close(self) -> None:
        """Flush and close the event file (idempotent; never raises)."""
        with self._lock:
            self._close_writer()

    def _close_writer(self) -> None:
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except Exception as exc:  # noqa: BLE001
            log.warning(
                "%s: closing the TensorBoard event file failed (%s: %s)", self.folder, type(exc).__name__, exc
            )
