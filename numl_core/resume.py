"""Resume a stopped run, or start a new run from an old run's config: the checks and steps that the command
line (``numl WORKFLOW ACTION --resume RUN_ID``) and the dashboard share.

A run resumes in its own folder, with its own config, from its last checkpoint; only a run that stopped
before its end resumes (cancelled, failed, or interrupted: the process that ran it is gone). A rerun is a
new run folder with the old run's config and action; the old folder is only read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from numl_core.config import Config, ConfigError
from numl_core.runs import LIVE_STATES, RunDir, RunStore

if TYPE_CHECKING:
    from numl_core.jobs import Job, JobRunner
    from numl_core.workflows import Workflow

RESUMABLE_STATES = ("cancelled", "failed", "interrupted")
"""States of a run that stopped before its end and may resume from its checkpoints."""


class RunRefused(ConfigError):
    """A run that cannot be resumed or rerun as asked; the message names the run and what was expected."""


def check_workflow(run: RunDir, workflow: Workflow, verb: str = "resume") -> dict[str, Any]:
    """``run.json`` of ``run``; :class:`RunRefused` if the run belongs to another workflow."""
    info = run.read_info()
    owner = info.get("workflow")
    if owner != workflow.name:
        how = f"`numl {owner} {info.get('action', 'run')} --resume {run.id}` or " if verb == "resume" else ""
        raise RunRefused(
            f"run {run.id!r} is a {owner!r} run, not {workflow.name!r}: {verb} it with {how}its own page"
        )
    return info


def check_resumable(run: RunDir, workflow: Workflow, action: str) -> None:
    """Refuse, with the reason (:class:`RunRefused`), to resume a run of another workflow or action, a
    finished run, or a run that a live job is running."""
    info = check_workflow(run, workflow)
    if info.get("action", "run") != action:
        raise RunRefused(f"run {run.id!r} ran the {info.get('action')!r} action, not {action!r}")
    state = run.status()
    if state == "done":
        raise RunRefused(f"run {run.id!r} is done; nothing to resume (start a new run to train again)")
    if state in LIVE_STATES or run.is_live():
        raise RunRefused(f"run {run.id!r} is still running in another job or process")
    if state not in RESUMABLE_STATES:
        raise RunRefused(f"run {run.id!r} is {state!r}; only a {', '.join(RESUMABLE_STATES)} run resumes")


def run_config(run: RunDir, workflow: Workflow) -> Config:
    """The run's own ``config.json`` as ``workflow``'s config class (validated: a bad value is a
    :class:`~numl_core.config.ConfigError` naming the file)."""
    path = run.path / "config.json"
    if not path.exists():
        raise RunRefused(f"run {run.id!r} has no config.json (expected {path})")
    return workflow.config_cls.from_json(path)


def stored_config(store: RunStore, run_id: str, workflow: Workflow) -> Config:
    """The config of stored run ``run_id`` of ``workflow`` (e.g. to fill a form with it);
    :class:`RunRefused` for another workflow's run, :class:`FileNotFoundError` for an unknown id."""
    run = store.get(run_id)
    check_workflow(run, workflow, verb="open")
    return run_config(run, workflow)


def action_function(workflow: Workflow, action: str) -> Any:
    """The function of ``workflow``'s ``action`` (``run`` or one of ``workflow.actions``)."""
    if action == "run":
        return workflow.run
    if action not in workflow.actions:
        known = ", ".join(["run", *workflow.actions])
        raise RunRefused(f"workflow {workflow.name!r} has no action {action!r} (known: {known})")
    return workflow.actions[action]


def resume_run(
    runner: JobRunner,
    store: RunStore,
    run_id: str,
    workflow: Workflow,
    action: str | None = None,
    info: dict[str, Any] | None = None,
) -> Job:
    """Continue run ``run_id`` in ``runner``, in its own folder with its own config, from its last
    checkpoint; return the new job (its id is the run's).

    ``action``: the action the run must have run (None: whichever it ran); ``info``: values merged into its
    ``run.json`` (e.g. the dashboard session that resumed it). Raises :class:`RunRefused` for a run of
    another workflow or action, a finished or live run, :class:`FileNotFoundError` for an unknown id, and
    :class:`~numl_core.runs.RunLocked` if another job took the run meanwhile.
    """
    run = store.get(run_id)
    stored = run.read_info()
    action = action or str(stored.get("action", "run"))
    check_resumable(run, workflow, action)
    config = run_config(run, workflow)
    fn = action_function(workflow, action)
    resumes = stored.get("resumes", 0)
    values = {
        "resumes": (resumes if isinstance(resumes, int) else 0) + 1,
        "traceback": None,  # the failure it resumes from is over
        **(info or {}),
    }
    label = str(stored.get("label") or f"{workflow.name} {action}")
    return runner.submit(fn, config, run, label=label, info=values)


def rerun(
    runner: JobRunner,
    store: RunStore,
    run_id: str,
    workflow: Workflow,
    info: dict[str, Any] | None = None,
) -> Job:
    """Start a new run of ``workflow`` with run ``run_id``'s config and action, in a new folder (the old
    run is only read); return its job. ``info`` is merged into the new ``run.json``, which names the old
    run in ``rerun_of``. Raises :class:`RunRefused` for a run of another workflow or without a config."""
    old = store.get(run_id)
    stored = check_workflow(old, workflow, verb="rerun")
    action = str(stored.get("action", "run"))
    fn = action_function(workflow, action)
    config = run_config(old, workflow)  # before the new folder: a bad config makes none
    label = str(stored.get("label") or workflow.name)
    new = store.create(workflow.name, config)
    values = {"action": action, "label": label, "rerun_of": old.id, **(info or {})}
    return runner.submit(fn, config, new, label=label, info=values)
