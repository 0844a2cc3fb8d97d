"""The runs table: every stored run as one row, to sort, filter and compare.

:func:`runs_table` lists a :class:`~numl_core.runs.RunStore` with the columns of :data:`COLUMNS` (id,
workflow, action, label, state, device, duration in seconds, created, tags, note) followed by one column per
headline metric, named ``"metric: NAME"`` (see :meth:`numl_core.results.Result.headline_of`).
:func:`filter_runs` keeps the rows of one workflow, state or tag; :func:`config_diff` shows the config fields
in which two or more runs differ and :func:`headline_table` their headline metrics side by side.

Headline metrics come from ``run.json`` (written when a job saves its result); for a finished run saved
before that, they are read from the stored result fields the result type names
(:attr:`~numl_core.results.Result.HEADLINE_FIELDS`) and kept in memory, keyed by the result's modification
time, so listing the store again does not re-read them. A run whose headline cannot be read gets blanks.

>>> frame = pd.DataFrame({"id": ["a", "b"], "workflow": ["unfold", "xsec"], "state": ["done", "failed"],
...                       "tags": ["baseline, v2", "v2"]})
>>> filter_runs(frame, tag="baseline")["id"].tolist(), filter_runs(frame, state="failed")["id"].tolist()
(['a'], ['b'])
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pandas as pd

from numl_core.results import Result, finite_numbers
from numl_core.runs import DamagedRun, RunDir, RunNotes, RunStore

if TYPE_CHECKING:
    from numl_core.workflows import Workflow

log = logging.getLogger(__name__)

COLUMNS = ("id", "workflow", "action", "label", "state", "device", "duration", "created", "tags", "note")
"""The fixed columns of the runs table; ``duration`` is in seconds (blank until the run has finished)."""
METRIC_PREFIX = "metric: "
"""Headline metric ``NAME`` is the column ``METRIC_PREFIX + NAME``."""
TAG_SEPARATOR = ", "
"""How a row's tags are joined (tags hold no commas, so the join is lossless)."""
ABSENT = "(absent)"
"""How :func:`config_diff` shows a field a run's config does not have."""


class CompareError(ValueError):
    """Too few runs given to compare."""


def _time(value: Any) -> float | None:
    """A timestamp from ``run.json``, or None for a missing or malformed one (a damaged file)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e11
    return float(value) if ok else None


def _clock(value: Any) -> str:
    t = _time(value)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def duration(info: Mapping[str, Any]) -> float | None:
    """Seconds from start to finish of a finished run (0.1 s steps); None otherwise.

    >>> duration({"started_at": 10.0, "finished_at": 12.46}), duration({"started_at": 10.0})
    (2.5, None)
    """
    start, end = _time(info.get("started_at")), _time(info.get("finished_at"))
    return round(end - start, 1) if start and end and end >= start else None


def split_tags(cell: Any) -> list[str]:
    """The tags of a table cell (:data:`TAG_SEPARATOR`-joined).

    >>> split_tags("baseline, v2"), split_tags("")
    (['baseline', 'v2'], [])
    """
    return [t.strip() for t in str(cell or "").split(",") if t.strip()]


def run_row(info: Mapping[str, Any], notes: RunNotes, headline: Mapping[str, float]) -> dict[str, Any]:
    """One table row: ``run.json`` facts, the run's tags and note, and its headline metrics.

    >>> from numl_core.runs import RunNotes
    >>> row = run_row({"id": "r1", "workflow": "energy", "state": "done", "started_at": 1.0e9,
    ...                "finished_at": 1.0e9 + 4}, RunNotes(("a", "b"), "ok"), {"E res68 (CC)": 0.2})
    >>> row["duration"], row["tags"], row["metric: E res68 (CC)"]
    (4.0, 'a, b', 0.2)
    """
    row = {
        "id": str(info.get("id", "")),
        "workflow": str(info.get("workflow", "")),
        "action": str(info.get("action") or "run"),
        "label": str(info.get("label") or ""),
        "state": str(info.get("state", "")),
        "device": str(info.get("device") or ""),
        "duration": duration(info),
        "created": _clock(info.get("created_at")),
        "tags": TAG_SEPARATOR.join(notes.tags),
        "note": notes.note,
    }
    return {**row, **{METRIC_PREFIX + name: value for name, value in headline.items()}}


def _notes(run: RunDir) -> RunNotes:
    """The run's tags and note; an unreadable ``notes.json`` shows as a note saying so (and no tags)."""
    try:
        return run.read_notes()
    except (DamagedRun, OSError) as exc:
        return RunNotes((), f"(notes unreadable: {exc})")


def runs_table(
    store: RunStore,
    workflows: Mapping[str, Workflow] | None = None,
    infos: Sequence[Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """The runs table of ``store`` (or of ``infos``, entries of :meth:`RunStore.list`), newest first.

    ``workflows`` (name to :class:`~numl_core.workflows.Workflow`) tells which result type a finished run
    holds, to read the headline of a run saved before headlines went into ``run.json``; by default the
    installed workflows, loaded only when such a run is listed.
    """
    infos = store.list() if infos is None else infos
    rows = []
    for info in infos:
        run = RunDir(store.root / str(info.get("id", "")))
        rows.append(run_row(info, _notes(run), headline_metrics(run, info, workflows)))
    frame = pd.DataFrame(rows, columns=list(COLUMNS)) if not rows else pd.DataFrame(rows)
    metrics = [c for c in frame.columns if c not in COLUMNS]
    return frame[[*COLUMNS, *metrics]]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The headline metric columns of a runs table."""
    return [c for c in frame.columns if str(c).startswith(METRIC_PREFIX)]


def filter_runs(
    frame: pd.DataFrame, workflow: str | None = None, state: str | None = None, tag: str | None = None
) -> pd.DataFrame:
    """The rows of a runs table of ``workflow``, in ``state`` and carrying ``tag`` (None: any), with the
    metric columns no kept row fills left out."""
    keep = pd.Series(True, index=frame.index)
    if workflow:
        keep &= frame["workflow"] == workflow
    if state:
        keep &= frame["state"] == state
    if tag:
        keep &= frame["tags"].map(lambda cell: tag in split_tags(cell))
    kept = frame[keep].reset_index(drop=True)
    empty = [c for c in metric_columns(kept) if kept[c].isna().all()]
    return kept.drop(columns=empty)


# -- headline metrics ----------------------------------------------------------------------------
def headline_metrics(
    run: RunDir, info: Mapping[str, Any], workflows: Mapping[str, Workflow] | None = None
) -> dict[str, float]:
    """The run's headline metrics: ``run.json``'s, else (a finished run saved before they were recorded)
    read from its stored result; ``{}`` when there are none or they cannot be read."""
    stored = info.get("headline")
    if isinstance(stored, Mapping):
        return finite_numbers(stored)
    scalars = run.path / "results" / "scalars.json"
    if info.get("state") != "done" or not scalars.exists():
        return {}
    cls = result_type(info, workflows)
    return {} if cls is None else dict(_stored_headline(str(run.path), scalars.stat().st_mtime_ns, cls))


def result_type(
    info: Mapping[str, Any], workflows: Mapping[str, Workflow] | None = None
) -> type[Result] | None:
    """The result type a run's ``run.json`` names (``result_type``, else its workflow's first), or None."""
    if workflows is None:
        from numl_core.workflows import available

        workflows = available()
    wf = workflows.get(str(info.get("workflow")))
    if wf is None or not wf.results:
        return None
    name = info.get("result_type")
    return next((c for c in wf.results if c.__name__ == name), wf.results[0])


@lru_cache(maxsize=4096)
def _stored_headline(path: str, mtime_ns: int, cls: type[Result]) -> tuple[tuple[str, float], ...]:
    """:meth:`Result.stored_headline` of the run at ``path`` (cached per result modification time)."""
    try:
        return tuple(cls.stored_headline(RunDir(path)).items())
    except Exception as exc:  # an old or damaged result must not break the table: its metrics stay blank
        log.warning("no headline metrics for %s: %s: %s", path, type(exc).__name__, exc)
        return ()


# -- comparing runs ------------------------------------------------------------------------------
def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def config_diff(configs: Mapping[str, Mapping[str, Any] | None]) -> pd.DataFrame:
    """The config fields in which the runs differ: ``field`` and one column per run (its value as text, or
    :data:`ABSENT`); fields all runs share are left out. ``configs`` maps run ids to configs (None: a run
    without a stored config). :class:`CompareError` for fewer than two runs.

    >>> config_diff({"r1": {"x": 1, "y": 2}, "r2": {"x": 1, "y": 3}, "r3": {"x": 1}}).to_dict("records")
    [{'field': 'y', 'r1': '2', 'r2': '3', 'r3': '(absent)'}]
    """
    if len(configs) < 2:
        raise CompareError(f"comparing needs at least two runs, got {len(configs)}: {list(configs)}")
    configs = {run_id: dict(config or {}) for run_id, config in configs.items()}
    fields = list(dict.fromkeys(f for config in configs.values() for f in config))
    missing = object()
    rows = []
    for field in fields:
        values = [config.get(field, missing) for config in configs.values()]
        if any(v is missing or v != values[0] for v in values[1:]) or values[0] is missing:
            shown = [ABSENT if v is missing else _shown(v) for v in values]
            rows.append({"field": field, **dict(zip(configs, shown, strict=True))})
    return pd.DataFrame(rows, columns=["field", *configs])


def headline_table(headlines: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Headline metrics of several runs side by side: ``metric`` and one column per run (NaN where a run
    has no such metric).

    >>> headline_table({"r1": {"chi2/ndof": 1.2}, "r2": {"chi2/ndof": 0.9}}).to_dict("records")
    [{'metric': 'chi2/ndof', 'r1': 1.2, 'r2': 0.9}]
    """
    names = list(dict.fromkeys(name for h in headlines.values() for name in h))
    rows = [{"metric": n, **{rid: h.get(n, float("nan")) for rid, h in headlines.items()}} for n in names]
    return pd.DataFrame(rows, columns=["metric", *headlines])
