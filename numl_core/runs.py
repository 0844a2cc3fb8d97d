"""Run directories: one folder per job, written atomically.

Layout of a run directory::

    <root>/<run id>/
        config.json      the workflow config (exact JSON round-trip)
        run.json         state, timings, versions, workflow name, action, and the device the job ran on
                         ("device": "cpu", "cuda", ...; "torch_threads"); a resumed run counts "resumes",
                         a rerun names its original in "rerun_of"; a saved result adds its "result_type"
                         and its "headline" metrics ({name: number}, see numl_core.results)
        run.lock         held (flock) by the process that runs it; a run whose lock is free is not live
        metrics.jsonl    one JSON record per metric, append-only
        notes.json       the user's tags and free-text note ({"tags": [...], "note": "..."}); optional,
                         editable at any time, never written by a job
        checkpoints/     torch state dicts (``NAME.pt``), loaded with ``weights_only=True``
        results/         arrays (``arrays.npz``), tables (``NAME.parquet``), scalars (``scalars.json``)

Every file except the append-only metrics log is written to a temporary file in the
same folder and renamed into place, so a crash or cancel never leaves a half-written file.

A process that runs a job holds an exclusive ``flock`` on ``run.lock`` for the job's life; the kernel
releases it when the process ends, however it ends. So a run whose ``run.json`` says ``running`` or
``queued`` but whose lock is free was left behind by a process that is gone: it lists as
``interrupted`` and can be resumed, and no two processes (or two jobs) ever run the same folder.

Tags and notes live in their own file, so editing them never races a job writing ``run.json`` and never
touches a run's results. Deleting a run (:meth:`RunStore.delete`) needs an explicit confirmation and moves
its folder into ``<root>/.trash/`` with one rename: the run leaves every listing at once, nothing outside
the runs root is touched, and until ``.trash`` is emptied by hand a run is restored by moving its folder
back into the root.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

DEFAULT_ROOT_ENV = "NUML_RUNS"
LIVE_STATES = ("queued", "running")
"""States in which ``run.json`` claims a live owner; without one the run is ``interrupted``."""

_RUN_ID = re.compile(r"^[A-Za-z0-9_.-]+$")

NOTES_FILE = "notes.json"
TRASH = ".trash"
"""The folder inside the runs root that deleted runs are moved to."""
MAX_TAG_CHARS = 40
MAX_TAGS = 20
MAX_NOTE_CHARS = 10_000
TAG_RULE = (
    f"a tag is 1 to {MAX_TAG_CHARS} characters without commas or line breaks, at most {MAX_TAGS} per run"
)


def default_runs_root() -> Path:
    """``$NUML_RUNS`` if set, else ``./numl-runs``."""
    return Path(os.environ.get(DEFAULT_ROOT_ENV, "numl-runs")).resolve()


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file next to ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write text atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (NaN/inf are written as null)."""
    atomic_write_text(path, json.dumps(_json_safe(obj), indent=2) + "\n")


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if np.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return obj


def environment_info() -> dict[str, Any]:
    """Versions and machine facts stored with every run and benchmark."""
    import torch

    from numl_core import __version__

    return {
        "numl": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


class DamagedRun(ValueError):
    """A run folder whose ``run.json`` cannot be read."""


class RunLocked(RuntimeError):
    """The run is being run by a live job (another process, or another job of this one)."""


class BadTag(ValueError):
    """A tag that is empty, too long, or holds a comma or a line break (or too many tags)."""


class BadNote(ValueError):
    """A note that is not text or is longer than :data:`MAX_NOTE_CHARS`."""


class DeleteNotConfirmed(RuntimeError):
    """:meth:`RunStore.delete` was called without ``confirm=True``."""


@dataclass(frozen=True)
class RunNotes:
    """A run's tags (short strings, in the order given, no repeats) and free-text note."""

    tags: tuple[str, ...] = ()
    note: str = ""


def parse_tags(text: str) -> list[str]:
    """Tags typed as one comma-separated line; blanks around and between commas are dropped.

    >>> parse_tags(" baseline, lr scan ,, v2 ")
    ['baseline', 'lr scan', 'v2']
    """
    return [t.strip() for t in str(text).split(",") if t.strip()]


def check_tags(run_id: str, tags: Iterable[Any]) -> tuple[str, ...]:
    """The tags stripped and without repeats, or :class:`BadTag` naming the run and the tag.

    >>> check_tags("r1", ["a", " b ", "a"])
    ('a', 'b')
    """
    if isinstance(tags, str):
        raise BadTag(f"run {run_id!r}: tags must be a list of strings, not one string ({tags!r})")
    out: list[str] = []
    for i, tag in enumerate(tags, 1):
        text = tag.strip() if isinstance(tag, str) else None
        if not text or len(text) > MAX_TAG_CHARS or "," in text or any(ord(c) < 32 for c in text):
            raise BadTag(f"run {run_id!r}: tag {i} ({tag!r}) is not valid; {TAG_RULE}")
        if text not in out:
            out.append(text)
    if len(out) > MAX_TAGS:
        raise BadTag(f"run {run_id!r}: {len(out)} tags given; {TAG_RULE}")
    return tuple(out)


def check_note(run_id: str, note: Any) -> str:
    """The note, or :class:`BadNote` naming the run: text of at most :data:`MAX_NOTE_CHARS` characters."""
    if not isinstance(note, str):
        raise BadNote(f"run {run_id!r}: the note must be text, not {type(note).__name__}")
    if len(note) > MAX_NOTE_CHARS:
        raise BadNote(f"run {run_id!r}: the note has {len(note)} characters; at most {MAX_NOTE_CHARS}")
    return note


class RunLock:
    """An exclusive ``flock`` on ``run.lock``; released by :meth:`release` or by the process's end."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, run: RunDir) -> RunLock:
        path = run.path / "run.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(f"run {run.id!r} is being run by a live job ({path} is locked)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        """Unlock (idempotent)."""
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class RunDir:
    """One run's folder; see the module docstring for its layout."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.id = self.path.name
        self._metrics_lock = threading.Lock()

    # -- config and info ---------------------------------------------------------------
    @property
    def info_path(self) -> Path:
        return self.path / "run.json"

    def read_info(self) -> dict[str, Any]:
        """Contents of ``run.json`` (empty if missing); :class:`DamagedRun` if it is not a JSON object."""
        if not self.info_path.exists():
            return {}
        try:
            info = json.loads(self.info_path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DamagedRun(f"{self.info_path}: not valid UTF-8 JSON ({exc})") from exc
        if not isinstance(info, dict):
            raise DamagedRun(f"{self.info_path}: expected a JSON object, found {type(info).__name__}")
        return info

    # -- the lock held by the process that runs the job ---------------------------------
    def acquire_lock(self) -> RunLock:
        """Take the run's lock for this process, or raise :class:`RunLocked` if a live job holds it."""
        return RunLock.acquire(self)

    def is_live(self) -> bool:
        """True while some process (this one included) holds the run's lock."""
        try:
            RunLock.acquire(self).release()
        except RunLocked:
            return True
        return False

    def status(self) -> str:
        """The run's state as it is now: ``run.json``'s, but ``interrupted`` for a queued or running
        run that no live process holds."""
        state = str(self.read_info().get("state", "unknown"))
        if state in LIVE_STATES and not self.is_live():
            return "interrupted"
        return state

    def update_info(self, values: dict[str, Any]) -> None:
        """Merge ``values`` into ``run.json`` atomically."""
        info = self.read_info()
        info.update(values)
        atomic_write_json(self.info_path, info)

    def write_config(self, config: Any) -> None:
        atomic_write_text(self.path / "config.json", config.to_json() + "\n")

    def read_config_dict(self) -> dict[str, Any]:
        return json.loads((self.path / "config.json").read_text())

    # -- tags and note -------------------------------------------------------------------
    def read_notes(self) -> RunNotes:
        """The run's tags and note (none for a run without ``notes.json``); :class:`DamagedRun` if the
        file cannot be read as tags and a note."""
        path = self.path / NOTES_FILE
        if not path.exists():
            return RunNotes()
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
            return RunNotes(
                check_tags(self.id, data.get("tags", [])), check_note(self.id, data.get("note", ""))
            )
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, ValueError) as exc:
            raise DamagedRun(f"{path}: not a JSON object of tags and a note ({exc})") from exc

    def write_notes(self, tags: Iterable[str], note: str = "") -> RunNotes:
        """Replace the run's tags and note (validated: :class:`BadTag`, :class:`BadNote`), atomically; the
        run's state, config, metrics and results are not touched, so a finished or running run can be
        tagged."""
        notes = RunNotes(check_tags(self.id, tags), check_note(self.id, note))
        atomic_write_json(self.path / NOTES_FILE, {"tags": list(notes.tags), "note": notes.note})
        return notes

    # -- metrics -------------------------------------------------------------------------
    def append_metric(self, record: dict[str, Any]) -> None:
        """Append one record to ``metrics.jsonl`` (one line, flushed)."""
        line = json.dumps(_json_safe(record)) + "\n"
        with self._metrics_lock, open(self.path / "metrics.jsonl", "a") as fh:
            fh.write(line)

    def read_metrics(self) -> list[dict[str, Any]]:
        """All metric records, one per (name, step, tags); a torn line (crash mid-write) is skipped.

        A run resumed from a checkpoint repeats the records it made after that checkpoint (the epochs
        of a partial iteration, say): the repeat replaces the first record, so a resumed run's
        metrics continue exactly where its checkpoint is, without duplicates or gaps.
        """
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        latest: dict[str, dict[str, Any]] = {}
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            key = json.dumps({k: v for k, v in record.items() if k not in ("value", "t")}, sort_keys=True)
            latest.pop(key, None)
            latest[key] = record
        return list(latest.values())

    def compact_metrics(self) -> None:
        """Rewrite ``metrics.jsonl`` as :meth:`read_metrics` reads it (atomically)."""
        if (self.path / "metrics.jsonl").exists():
            lines = "".join(json.dumps(_json_safe(r)) + "\n" for r in self.read_metrics())
            with self._metrics_lock:
                atomic_write_text(self.path / "metrics.jsonl", lines)

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint_path(self, name: str) -> Path:
        if not _RUN_ID.match(name):
            raise ValueError(f"checkpoint name {name!r} may use letters, digits, '_', '.', '-' only")
        return self.path / "checkpoints" / f"{name}.pt"

    def save_checkpoint(self, name: str, state: dict[str, Any]) -> Path:
        """Save a dict of tensors / plain values with ``torch.save``, atomically."""
        import torch

        path = self.checkpoint_path(name)
        with atomic_open(path, "wb") as fh:
            torch.save(state, fh)
        return path

    def load_checkpoint(self, name: str) -> dict[str, Any] | None:
        """Load a checkpoint with ``weights_only=True`` (no arbitrary unpickling); None if absent."""
        import torch

        path = self.checkpoint_path(name)
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    # -- results -------------------------------------------------------------------------
    def save_result(self, result: dict[str, Any]) -> None:
        """Save a result dict: arrays to npz, DataFrames to parquet, the rest to JSON."""
        if not isinstance(result, dict):
            raise TypeError(f"a workflow result must be a dict, got {type(result).__name__}")
        res = self.path / "results"
        arrays = {k: np.asarray(v) for k, v in result.items() if isinstance(v, np.ndarray)}
        tables = {k: v for k, v in result.items() if isinstance(v, pd.DataFrame)}
        scalars = {k: v for k, v in result.items() if k not in arrays and k not in tables}
        if arrays:
            with atomic_open(res / "arrays.npz", "wb") as fh:
                np.savez_compressed(fh, **arrays)
        for k, df in tables.items():
            if not _RUN_ID.match(k):
                raise ValueError(f"result table name {k!r} is not a valid file name")
            with atomic_open(res / f"{k}.parquet", "wb") as fh:
                df.to_parquet(fh, index=False)
        atomic_write_json(res / "scalars.json", scalars)

    def load_result(self, only: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Reload a saved result (no pickles: ``allow_pickle=False``); with ``only``, its scalars and just
        the arrays and tables named there (a cheap partial read)."""
        res = self.path / "results"
        if not res.exists():
            raise FileNotFoundError(
                f"{self.path}: run has no results (state: {self.read_info().get('state')})"
            )
        wanted = (lambda name: True) if only is None else (lambda name: name in only)
        out: dict[str, Any] = {}
        if (res / "scalars.json").exists():
            out.update(json.loads((res / "scalars.json").read_text()))
        if (res / "arrays.npz").exists() and (only is None or only):
            with np.load(res / "arrays.npz", allow_pickle=False) as z:
                out.update({k: z[k] for k in z.files if wanted(k)})
        for p in sorted(res.glob("*.parquet")):
            if wanted(p.stem):
                out[p.stem] = pd.read_parquet(p)
        return out


class RunStore:
    """All run directories under one root folder."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).resolve() if root is not None else default_runs_root()

    def create(self, workflow: str, config: Any) -> RunDir:
        """Make a new run directory with its config and a queued ``run.json``."""
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{workflow}-{uuid.uuid4().hex[:6]}"
        run = RunDir(self.root / run_id)
        run.path.mkdir(parents=True)
        if config is not None:
            run.write_config(config)
        run.update_info(
            {
                "id": run_id,
                "workflow": workflow,
                "state": "queued",
                "created_at": time.time(),
                "environment": environment_info(),
            }
        )
        return run

    def get(self, run_id: str) -> RunDir:
        """An existing run by id; ids with path separators or '..' are refused."""
        if not _RUN_ID.match(run_id) or run_id in {".", "..", TRASH}:
            raise ValueError(f"invalid run id {run_id!r}")
        run = RunDir(self.root / run_id)
        if not run.info_path.exists():
            raise FileNotFoundError(f"no run {run_id!r} in {self.root}")
        return run

    @property
    def trash(self) -> Path:
        """Where deleted runs go: ``<root>/.trash``."""
        return self.root / TRASH

    def delete(self, run_id: str, confirm: bool = False) -> Path:
        """Delete run ``run_id``: move its folder into :attr:`trash` with one rename; return its new path.

        Refused unless ``confirm`` is True (:class:`DeleteNotConfirmed`), for a run a live job holds
        (:class:`RunLocked`; the lock is held during the move, so no job can start on it meanwhile), and for
        an id that is not a run folder directly inside the root (``ValueError``, ``FileNotFoundError``).
        """
        if confirm is not True:
            raise DeleteNotConfirmed(f"deleting run {run_id!r} needs an explicit confirmation (confirm=True)")
        run = self.get(run_id)
        if run.path.is_symlink() or run.path.resolve().parent != self.root:
            raise ValueError(f"run {run_id!r} is not a folder inside {self.root}; numl deletes only those")
        try:
            lock = run.acquire_lock()
        except RunLocked:
            raise RunLocked(f"run {run_id!r} is being run by a live job; cancel it before deleting") from None
        try:
            target = self._trash_slot(run_id)
            os.rename(run.path, target)
        finally:
            lock.release()
        return target

    def _trash_slot(self, run_id: str) -> Path:
        """A free path for ``run_id`` in the trash (``ID``, else ``ID-2``, ``ID-3``...)."""
        self.trash.mkdir(exist_ok=True)
        target, n = self.trash / run_id, 1
        while target.exists():
            n += 1
            target = self.trash / f"{run_id}-{n}"
        return target

    def list(self, workflow: str | None = None) -> list[dict[str, Any]]:
        """``run.json`` of every run, newest first, optionally for one workflow.

        ``state`` is the run's state as it is now (:meth:`RunDir.status`: a dead ``running`` run is
        ``interrupted``); a run whose ``run.json`` cannot be read lists as ``damaged`` with the reason
        in ``error``, and never hides the others.
        """
        if not self.root.exists():
            return []
        infos = [self._entry(p) for p in self.root.iterdir() if (p / "run.json").exists()]
        infos = [i for i in infos if workflow is None or i.get("workflow") == workflow]
        return sorted(infos, key=_created_at, reverse=True)

    @staticmethod
    def _entry(path: Path) -> dict[str, Any]:
        run = RunDir(path)
        try:
            info = run.read_info()
            if info.get("state") in LIVE_STATES:
                info["state"] = run.status()
        except (DamagedRun, OSError) as exc:
            return {"id": path.name, "workflow": "?", "state": "damaged", "error": str(exc)}
        info["id"] = str(info.get("id") or path.name)
        return info


def _created_at(info: dict[str, Any]) -> float:
    value = info.get("created_at", 0)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
