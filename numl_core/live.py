"""Live plots that a workflow declares: which plot each metric record is drawn in, the series a job
will report (drawn once when it starts) and each plot's axes.

Metric records are the dicts of :meth:`numl_core.jobs.Progress.metric`: ``name``, ``value``, ``step``,
``t`` plus tags. A workflow builds the names it reports and the series labels it declares with the same
functions, so renaming a metric is a change in one place; the dashboard draws whatever is declared.

>>> plots = LivePlots(plots=(PlotSpec("loss", "training loss", ylabel="loss", logy=True),))
>>> plots.spec("loss").logy, plots.spec("other").title
(True, 'other')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Record keys that are not series labels: the value itself, its step, and counters.
COUNTER_KEYS = frozenset({"name", "value", "step", "t", "iteration", "epoch", "trial", "throw", "batch"})
Record = dict[str, Any]
_STEP_PREFIX = re.compile(r"^step\d+_")


def plot_key(record: Record) -> str:
    """The default plot of a record: ``"loss"`` for every ``*_loss``; ``stepN_X`` shares plot ``X``.

    >>> plot_key({"name": "step2_loss"}), plot_key({"name": "step1_ess"}), plot_key({"name": "chi2"})
    ('loss', 'ess', 'chi2')
    """
    name = str(record["name"])
    if name == "loss" or name.endswith("_loss"):
        return "loss"
    return _STEP_PREFIX.sub("", name) or name


def series_key(record: Record) -> str:
    """The series label: the name plus any non-counter tags.

    >>> series_key({"name": "step1_loss", "value": 0.6, "step": 3, "iteration": 1, "split": "val"})
    'step1_loss (val)'
    """
    tags = [f"{record[k]}" for k in sorted(record) if k not in COUNTER_KEYS]
    return f"{record['name']} ({', '.join(tags)})" if tags else str(record["name"])


def series(name: str, **tags: Any) -> str:
    """The label of the series that records named ``name`` with ``tags`` form (see :func:`series_key`).

    >>> series("boot_loss", split="val", term="chi2")
    'boot_loss (val, chi2)'
    """
    return series_key({"name": name, **tags})


@dataclass(frozen=True)
class PlotSpec:
    """One live plot: ``key`` (what :attr:`LivePlots.group` returns), its title and axis labels with
    units, whether its y axis is logarithmic, whether its series get ``markers`` (a plot of one point
    per iteration or round, where a series of one point is otherwise invisible) and whether dotted
    ``boundaries`` mark where a step counter restarts (epochs of successive iterations laid end to end).
    Markers and boundaries cost the server a redraw per update, so only plots that need them ask."""

    key: str
    title: str = ""
    xlabel: str = "step"
    ylabel: str = "value"
    logy: bool = False
    markers: bool = False
    boundaries: bool = False


def _no_series(config: Any) -> dict[str, list[str]]:
    return {}


@dataclass(frozen=True)
class LivePlots:
    """A workflow's live plots.

    ``group(record)`` names the plot a metric record is drawn in (None: not drawn); ``expected(config)``
    maps each plot to the series labels a job with ``config`` will report; ``plots`` gives their axes.
    """

    group: Callable[[Record], str | None] = plot_key
    expected: Callable[[Any], Mapping[str, Sequence[str]]] = _no_series
    plots: tuple[PlotSpec, ...] = ()

    def spec(self, key: str) -> PlotSpec:
        """The declared spec of plot ``key``, or a plain one titled ``key``."""
        for plot in self.plots:
            if plot.key == key:
                return plot
        return PlotSpec(key, key)
