"""The workflow registry.

Each workflow declares one :class:`Workflow` object and registers it under the
``numl.workflows`` entry-point group in ``pyproject.toml``; the CLI and the dashboard
discover workflows from there, so a third-party package can add its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from numl_core.config import Config
from numl_core.jobs import Progress
from numl_core.live import LivePlots
from numl_core.overlays import ResultOverlay
from numl_core.results import Result

if TYPE_CHECKING:
    from numl_core.runs import RunDir

ENTRY_POINT_GROUP = "numl.workflows"
#: numl's own workflows in the order pages and commands list them; others follow by name.
BUILTIN_ORDER = ("unfold", "energy", "generator", "uncertainty", "xsec")


@dataclass(frozen=True)
class Workflow:
    """A named workflow: its config class and its ``run(config, progress) -> Result`` function.

    ``actions`` holds further named functions of the same signature (e.g. ``sample``
    for a generator) that the CLI exposes as ``numl NAME ACTION``; ``live_plots`` declares the
    metric plots its jobs report; ``results`` lists the :class:`~numl_core.results.Result` types its
    actions return (the first is ``run``'s), so a stored run loads back as its type; ``cli_options`` gives
    an action command-line flags for config fields (``{"score": {"--run": "score_run"}}``).
    """

    name: str
    title: str
    description: str
    config_cls: type[Config]
    run: Callable[[Any, Progress], Any]
    actions: dict[str, Callable[[Any, Progress], Any]] = field(default_factory=dict)
    live_plots: LivePlots = field(default_factory=LivePlots)
    results: tuple[type[Result], ...] = ()
    cli_options: dict[str, dict[str, str]] = field(default_factory=dict)
    result_overlay: ResultOverlay | None = None

    def load_result(self, run_dir: RunDir) -> Any:
        """The result stored in ``run_dir``: its declared type (``run.json``'s ``result_type``, else the
        first of :attr:`results`), or the plain dict for a workflow that declares none."""
        if not self.results:
            return run_dir.load_result()
        name = run_dir.read_info().get("result_type")
        cls = next((c for c in self.results if c.__name__ == name), self.results[0])
        return cls.load(run_dir)


def available() -> dict[str, Workflow]:
    """All registered workflows by name: numl's own in :data:`BUILTIN_ORDER`, then the others by name."""
    found: dict[str, Workflow] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        wf = ep.load()
        if not isinstance(wf, Workflow):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a numl Workflow")
        found[wf.name] = wf

    def rank(name: str) -> tuple[int, str]:
        return (BUILTIN_ORDER.index(name) if name in BUILTIN_ORDER else len(BUILTIN_ORDER), name)

    return {name: found[name] for name in sorted(found, key=rank)}


def get(name: str) -> Workflow:
    """One workflow by name, with the known names in the error."""
    wfs = available()
    if name not in wfs:
        raise KeyError(f"unknown workflow {name!r}; known: {', '.join(wfs) or 'none installed'}")
    return wfs[name]
