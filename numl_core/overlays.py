"""Result curves to overlay across runs: what the Runs tab draws, besides the metric curves, when it compares
runs of one workflow (and what a notebook can plot to compare runs).

A workflow with a natural overlay declares a :class:`ResultOverlay` on its workflow
(``Workflow.result_overlay``): the stored result fields it reads (a cheap partial read with
:meth:`~numl_core.runs.RunDir.load_result`) and the function, in its ``figures`` module, that turns one
run's fields into :class:`Curve` objects, one per plot. :func:`overlays` groups the curves of several runs
by plot. Axis labels are the mathtext labels of the workflow's export figures, so a page shows them with
:func:`numl_core.figures.plain_text`.

>>> a = Curve("p", np.array([1.0, 2.0]), np.array([1.0, 1e3]), "x", "y")
>>> (plot,) = overlays({"r1": [a], "r2": [a]})
>>> sorted(plot.curves), plot.logy
(['r1', 'r2'], True)
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from numl_core.figures import spans_decades


@dataclass(frozen=True)
class Curve:
    """One run's curve in one plot: ``x``, ``y`` (finite points only), the plot's ``plot`` title, mathtext
    axis labels with units, log axes, and whether x, y are histogram steps (no markers)."""

    plot: str
    x: np.ndarray
    y: np.ndarray
    xlabel: str
    ylabel: str
    logx: bool = False
    steps: bool = False


@dataclass(frozen=True)
class Overlay:
    """One plot of compared runs: ``curves`` maps a run id to its :class:`Curve`; ``logy`` when the values
    of all runs are positive and span more than two decades."""

    plot: str
    xlabel: str
    ylabel: str
    curves: dict[str, Curve]
    logx: bool = False
    logy: bool = False
    steps: bool = False


@dataclass(frozen=True)
class ResultOverlay:
    """A workflow's overlay: the result ``fields`` it reads and ``select``, the ``"module:function"`` that
    turns a result's fields by name (at least the scalars and ``fields``) into its curves. The function is
    imported when first used, so a workflow module can name its figures module without importing it."""

    fields: tuple[str, ...]
    select: str

    def curves(self, values: Mapping[str, Any]) -> list[Curve]:
        """The curves of one run's result ``values``."""
        module, _, name = self.select.partition(":")
        return getattr(importlib.import_module(module), name)(values)


def finite_curve(plot: str, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> Curve:
    """A :class:`Curve` of the finite points of ``x``, ``y``."""
    keep = np.isfinite(x) & np.isfinite(y)
    return Curve(plot, np.asarray(x, float)[keep], np.asarray(y, float)[keep], **kwargs)


def result_table(values: Mapping[str, Any], name: str) -> pd.DataFrame | None:
    """The result table ``name`` of ``values``, None when it is missing or empty."""
    table = values.get(name)
    return table if isinstance(table, pd.DataFrame) and not table.empty else None


def overlays(curves_by_run: Mapping[str, Sequence[Curve]]) -> list[Overlay]:
    """The curves of several runs (``{run id: curves}``) grouped into one :class:`Overlay` per plot, in the
    order the plots first appear; curves without a point are left out."""
    grouped: dict[str, dict[str, Curve]] = {}
    for run_id, curves in curves_by_run.items():
        for curve in curves:
            if curve.x.size:
                grouped.setdefault(curve.plot, {})[run_id] = curve
    out = []
    for plot, curves in grouped.items():
        first = next(iter(curves.values()))
        y = np.concatenate([c.y for c in curves.values()])
        logy = bool((y > 0).all()) and spans_decades(y)
        out.append(Overlay(plot, first.xlabel, first.ylabel, curves, first.logx, logy, first.steps))
    return out


def run_overlays(spec: ResultOverlay | None, runs: Sequence[Any]) -> list[Overlay]:
    """The result overlays of finished runs (:class:`~numl_core.runs.RunDir`) of a workflow whose overlay is
    ``spec`` (its ``result_overlay``), each run read partially (the declared fields); ``[]`` without one."""
    if spec is None:
        return []
    return overlays({run.id: spec.curves(run.load_result(only=spec.fields)) for run in runs})
