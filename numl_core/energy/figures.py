"""Figures of an energy result (:class:`~numl_core.energy.result.EnergyResult`), for notebooks, papers and the
dashboard's export buttons: energy resolution and bias against true energy, angular resolution against the
true-energy range, and predicted against true energy.

Energies in GeV, angles in degrees; resolutions as defined in :mod:`numl_core.energy.metrics` (``res68``:
half the central 68 % width of (E_reco - E_true) / E_true; ``angle68``: the 68 % quantile of the opening
angle to the true neutrino direction). Every function takes the result, never a model, and returns a
:class:`matplotlib.figure.Figure` drawn in :func:`numl_core.figures.style`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from numl_core.energy.result import EnergyResult
from numl_core.figures import legend_outside, markers, new_figure, styled
from numl_core.overlays import Curve, finite_curve, result_table

#: Colours of the estimators (others take the style's cycle).
COLORS = {
    "transformer": "#1f77b4",
    "calorimetric": "#ff7f0e",
    "gbdt": "#2ca02c",
    "transformer (energy-only loss)": "#9467bd",
    "visible momentum": "#8c564b",
    "lepton or visible": "#e377c2",
}
REFERENCE_ANGLES_DEG = {15.0: r"15$^\circ$ (~3$\sigma$ $\delta_\mathrm{CP}$)", 7.0: r"7$^\circ$ (~5$\sigma$)"}
"""The angular resolutions for 3 and 5 sigma delta_CP sensitivity with sub-GeV atmospheric neutrinos
(Kelly et al., PRL 123, 081801) [degrees]."""
TRUE_ENERGY = r"true $E_\nu$ [GeV]"
PREDICTED_ENERGY = r"predicted $E_\nu$ [GeV]"
HEATMAP_COUNTS = "test events / cell"
#: y axis labels of the resolution columns.
RESOLUTION_LABELS = {
    "res68": r"res68 of $\Delta E/E_\mathrm{true}$",
    "bias": r"bias: mean $\Delta E/E_\mathrm{true}$",
}


def _style(estimator: str) -> dict[str, str]:
    return {"color": COLORS[estimator]} if estimator in COLORS else {}


@styled
def resolution_figure(result: EnergyResult) -> Figure:
    """res68 (top) and bias (bottom) of (E_reco - E_true) / E_true for every energy estimator in bins of
    true energy [GeV] on a log axis; each point spans its bin (horizontal bar)."""
    table = result.resolution_by_energy
    if table.empty:
        raise ValueError("this result holds no resolution in bins of true energy")
    fig = new_figure(7.5, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for estimator, rows in table.groupby("estimator", sort=False):
        low, high = rows["low"].to_numpy(float), rows["high"].to_numpy(float)
        centre = np.sqrt(low * high)
        span = [centre - low, high - centre]
        for ax, column in ((top, "res68"), (bottom, "bias")):
            ax.errorbar(
                centre, rows[column], xerr=span, label=estimator, **_style(estimator), **markers(len(rows))
            )
    bottom.axhline(0.0, color="black", linestyle="--", linewidth=1.0)
    top.set_xscale("log")
    top.set_ylabel(RESOLUTION_LABELS["res68"])
    bottom.set_ylabel(RESOLUTION_LABELS["bias"])
    top.set_title(r"$\Delta E = E_\mathrm{reco} - E_\mathrm{true}$ (test events)", loc="left")
    bottom.set_xlabel(TRUE_ENERGY)
    top.set_ylim(bottom=0.0)
    legend_outside(top)
    return fig


def _range_bounds(names: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper true energy [GeV] of range names such as ``"0.1-10"``."""
    bounds = np.array([[float(v) for v in str(name).split("-", 1)] for name in names])
    return bounds[:, 0], bounds[:, 1]


@styled
def angular_resolution_figure(result: EnergyResult) -> Figure:
    """angle68 [degrees] of every direction estimator on all test events in each true-energy range, drawn
    at the range's upper edge [GeV] on a log axis (the ranges all start at the sample's lowest energy), with
    the 15 and 7 degree reference lines (:data:`REFERENCE_ANGLES_DEG`)."""
    ranges = result.resolution_by_range
    if ranges.empty or "angle68" not in ranges:
        raise ValueError("this result holds no angular resolution per energy range")
    rows = ranges[(ranges["grouping"] == "all") & ranges["angle68"].notna()]
    if rows.empty:
        raise ValueError("this result holds no direction estimator")
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    lowest = float(_range_bounds(rows["energy_range"])[0].min())
    for estimator, part in rows.groupby("estimator", sort=False):
        high = _range_bounds(part["energy_range"])[1]
        order = np.argsort(high)
        angle = part["angle68"].to_numpy()[order]
        ax.plot(high[order], angle, label=estimator, **_style(estimator), **markers(len(part)))
    for angle, text in REFERENCE_ANGLES_DEG.items():
        ax.axhline(angle, color="0.4", linestyle=":", linewidth=1.2, label=text)
    ax.set_xscale("log")
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(rf"upper edge of the true-$E_\nu$ range from {lowest:g} GeV [GeV]")
    ax.set_ylabel("angle68 to the true direction [degrees]")
    legend_outside(ax)
    return fig


@styled
def energy_heatmap_figure(result: EnergyResult) -> Figure:
    """The transformer's predicted against true energy [GeV], test events per log-spaced cell on a log
    colour scale, with the diagonal E_pred = E_true."""
    counts = np.asarray(result.heatmap_counts, float)
    edges = np.asarray(result.heatmap_edges, float)
    if counts.size == 0 or counts.sum() <= 0:
        raise ValueError("this result holds no predicted-against-true histogram")
    fig = new_figure(7.0, 5.6)
    ax = fig.add_subplot()
    shown = np.where(counts > 0, counts, np.nan).T  # counts are [true, predicted]; rows of the mesh are y
    mesh = ax.pcolormesh(edges, edges, shown, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(counts.max(), 2)))
    ax.plot(edges[[0, -1]], edges[[0, -1]], color="0.3", linestyle="--", linewidth=1.0, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(TRUE_ENERGY)
    ax.set_ylabel(PREDICTED_ENERGY)
    fig.colorbar(mesh, ax=ax, label=HEATMAP_COUNTS)
    return fig


def heatmap_table(result: EnergyResult) -> pd.DataFrame:
    """The numbers behind :func:`energy_heatmap_figure`: one row per cell, ``true_low``, ``true_high``,
    ``pred_low``, ``pred_high`` [GeV] and ``events``."""
    edges = np.asarray(result.heatmap_edges, float)
    counts = np.asarray(result.heatmap_counts, float)
    i, j = np.meshgrid(np.arange(counts.shape[0]), np.arange(counts.shape[1]), indexing="ij")
    return pd.DataFrame(
        {
            "true_low": edges[i.ravel()],
            "true_high": edges[i.ravel() + 1],
            "pred_low": edges[j.ravel()],
            "pred_high": edges[j.ravel() + 1],
            "events": counts.ravel(),
        }
    )


# -- overlays of compared runs -----------------------------------------------------------------------
def result_curves(values: Mapping[str, Any]) -> list[Curve]:
    """res68 of (E_reco - E_true) / E_true of each estimator of ``resolution_by_energy`` against the true
    energy [GeV] (the geometric centre of each bin), on a log energy axis."""
    table = result_table(values, "resolution_by_energy")
    if table is None:
        return []
    return [
        finite_curve(
            f"res68 vs true energy: {estimator}",
            np.sqrt(rows["low"].to_numpy(float) * rows["high"].to_numpy(float)),
            rows["res68"].to_numpy(float),
            xlabel=TRUE_ENERGY,
            ylabel=RESOLUTION_LABELS["res68"],
            logx=True,
        )
        for estimator, rows in table.groupby("estimator", sort=False)
    ]
