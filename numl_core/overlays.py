"""Result curves to overlay across runs: what the Runs tab draws, besides the metric curves, when it compares
runs of one workflow (and what a notebook can plot to compare runs).

Each workflow with a natural overlay declares one :class:`ResultOverlay`: the stored result fields it reads
(a cheap partial read with :meth:`~numl_core.runs.RunDir.load_result`) and a selection that turns one run's
fields into :class:`Curve` objects, one per plot. :func:`overlays` groups the curves of several runs by plot.
Axis labels are the mathtext labels of the workflow's export figures (``numl_core/<workflow>/figures.py``),
so a page shows them with :func:`numl_core.figures.plain_text`.

- unfolding: OmniFold's unfolded histogram of each distribution, weighted events per unit of the variable
  (per bin for a 2-D distribution, by flat bin index);
- energy: res68 of (E_reco - E_true) / E_true of each estimator against true energy [GeV], log x;
- xsec: the bootstrap ensemble's mean d2sigma/dOmega domega [nb/sr/GeV] against omega [GeV] for the first
  :data:`MAX_SETTINGS` (E, theta) settings.

>>> table = pd.DataFrame({"estimator": "transformer", "low": [0.1, 1.0], "high": [1.0, 10.0],
...                       "res68": [0.2, 0.1]})
>>> (curve,) = energy_curves({"resolution_by_energy": table})
>>> curve.plot, curve.x.round(3).tolist(), curve.y.tolist(), curve.logx
('res68 vs true energy: transformer', [0.316, 3.162], [0.2, 0.1], True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from numl_core.energy import figures as energy_figures
from numl_core.figures import spans_decades, steps
from numl_core.unfold import figures as unfold_figures
from numl_core.xsec import figures as xsec_figures

MAX_SETTINGS = 4
"""The most (E, theta) settings of a cross-section fit whose model curves are overlaid."""
FLAT_BIN = "bin (flat index over the slices)"
"""x label of a 2-D unfolded distribution drawn by flat bin index."""
EVENTS_PER_BIN = "weighted events / bin"
"""y label of a 2-D unfolded distribution."""


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
    """A workflow's overlay: the result ``fields`` it reads and ``select(values)``, its curves from a
    result's fields by name (``values`` holds at least the scalars and ``fields``)."""

    fields: tuple[str, ...]
    select: Callable[[Mapping[str, Any]], list[Curve]]


def _finite(plot: str, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> Curve:
    keep = np.isfinite(x) & np.isfinite(y)
    return Curve(plot, np.asarray(x, float)[keep], np.asarray(y, float)[keep], **kwargs)


def _table(values: Mapping[str, Any], name: str) -> pd.DataFrame | None:
    table = values.get(name)
    return table if isinstance(table, pd.DataFrame) and not table.empty else None


def unfold_curves(values: Mapping[str, Any]) -> list[Curve]:
    """OmniFold's unfolded histogram of each distribution of ``histograms``: weighted events per unit of the
    variable over its bins (open end bins cut to a typical width, as the result view draws them), or for a
    2-D distribution weighted events per bin by flat bin index."""
    histograms = _table(values, "histograms")
    if histograms is None:
        return []
    curves = []
    omnifold = histograms[histograms["method"] == "omnifold"]
    for distribution, rows in omnifold.groupby("distribution", sort=False):
        rows = rows.sort_values("bin")
        plot = f"{distribution}: OmniFold unfolded"
        two_d = "slice_low" in rows and rows["slice_low"].notna().any()
        if two_d:
            x, y = steps(np.arange(len(rows)), np.arange(1, len(rows) + 1), rows["value"].to_numpy(float))
            curves.append(_finite(plot, x, y, xlabel=FLAT_BIN, ylabel=EVENTS_PER_BIN, steps=True))
            continue
        shown_low, shown_high, density, _ = unfold_figures.per_unit(rows)
        x, y = steps(shown_low, shown_high, density)
        labels = {
            "xlabel": unfold_figures.variable_label(distribution),
            "ylabel": unfold_figures.events_density_label(distribution),
        }
        curves.append(_finite(plot, x, y, steps=True, **labels))
    return curves


def energy_curves(values: Mapping[str, Any]) -> list[Curve]:
    """res68 of (E_reco - E_true) / E_true of each estimator of ``resolution_by_energy`` against the true
    energy [GeV] (the geometric centre of each bin), on a log energy axis."""
    table = _table(values, "resolution_by_energy")
    if table is None:
        return []
    return [
        _finite(
            f"res68 vs true energy: {estimator}",
            np.sqrt(rows["low"].to_numpy(float) * rows["high"].to_numpy(float)),
            rows["res68"].to_numpy(float),
            xlabel=energy_figures.TRUE_ENERGY,
            ylabel=energy_figures.RESOLUTION_LABELS["res68"],
            logx=True,
        )
        for estimator, rows in table.groupby("estimator", sort=False)
    ]


def xsec_curves(values: Mapping[str, Any]) -> list[Curve]:
    """The bootstrap ensemble's mean d2sigma/dOmega domega [nb/sr/GeV] against omega [GeV] of the first
    :data:`MAX_SETTINGS` settings of ``curves``, one plot per setting (named by its label, so that runs on
    other nuclei or settings do not share a plot)."""
    table = _table(values, "curves")
    if table is None or "boot_mean" not in table:
        return []
    settings = list(dict.fromkeys(table["setting"]))[:MAX_SETTINGS]
    curves = []
    for setting in settings:
        rows = table[table["setting"] == setting].sort_values("omega")
        curves.append(
            _finite(
                f"{rows['setting_label'].iloc[0]}: bootstrap ensemble mean",
                rows["omega"].to_numpy(float),
                rows["boot_mean"].to_numpy(float),
                xlabel=xsec_figures.OMEGA_LABEL,
                ylabel=xsec_figures.XSEC_LABEL,
            )
        )
    return curves


RESULT_OVERLAYS: dict[str, ResultOverlay] = {
    "unfold": ResultOverlay(("histograms",), unfold_curves),
    "energy": ResultOverlay(("resolution_by_energy",), energy_curves),
    "xsec": ResultOverlay(("curves",), xsec_curves),
}
"""The result overlay of each workflow that has one."""


def overlays(curves_by_run: Mapping[str, Sequence[Curve]]) -> list[Overlay]:
    """The curves of several runs (``{run id: curves}``) grouped into one :class:`Overlay` per plot, in the
    order the plots first appear; curves without a point are left out.

    >>> a = Curve("p", np.array([1.0, 2.0]), np.array([1.0, 1e3]), "x", "y")
    >>> (plot,) = overlays({"r1": [a], "r2": [a]})
    >>> sorted(plot.curves), plot.logy
    (['r1', 'r2'], True)
    """
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


def run_overlays(workflow: str, runs: Sequence[Any]) -> list[Overlay]:
    """The result overlays of finished runs (:class:`~numl_core.runs.RunDir`) of ``workflow``, each read
    partially (the declared fields); ``[]`` for a workflow without one."""
    spec = RESULT_OVERLAYS.get(workflow)
    if spec is None:
        return []
    return overlays({run.id: spec.select(run.load_result(only=spec.fields)) for run in runs})
