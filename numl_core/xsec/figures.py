"""Figures of a cross-section result (:class:`~numl_core.xsec.result.XsecResult`, and
:class:`~numl_core.xsec.result.TransferResult` for the transfer bar chart), for notebooks, papers and the
dashboard's export buttons: the spectrum of one (E, theta) setting with both model bands, the fitted
normalisation factors, and held-out chi2 per point of transfer learning on a log axis.

Units as in :mod:`numl_core.xsec.result`: energies and energy transfer in GeV, angles in degrees, cross
sections d2sigma/dOmega domega per nucleus in nb/sr/GeV. Every function takes the result, never a model, and
returns a :class:`matplotlib.figure.Figure` drawn in :func:`numl_core.figures.style`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from numl_core.figures import legend_outside, markers, new_figure, styled
from numl_core.overlays import Curve, finite_curve, result_table
from numl_core.xsec.result import TransferResult, XsecResult
from numl_core.xsec.workflow import BOOT, CHI2_LABEL, MC

METHOD_STYLE = {
    BOOT: {"color": "#1f77b4", "label": "bootstrap ensemble"},
    MC: {"color": "#ff7f0e", "label": "MC dropout"},
}
SPLIT_MARKERS = {"train": "o", "val": "s", "test": "^"}
"""Marker of the data points of each split."""
TRANSFER_METHODS = {
    "finetuned": ("fine-tuned", "#1f77b4"),
    "scratch": ("from scratch", "#ff7f0e"),
    "scaled_base": ("scaled base model", "#7f7f7f"),
}
XSEC_LABEL = r"d$^2\sigma$/d$\Omega$d$\omega$ [nb/sr/GeV]"
OMEGA_LABEL = r"energy transfer $\omega$ [GeV]"
TRANSFER_CHI2_LABEL = f"held-out {CHI2_LABEL}"
"""y label of transfer learning's chi2 per point on each target's held-out points (dimensionless)."""


@styled
def spectrum_figure(result: XsecResult, setting: int) -> Figure:
    """d2sigma/dOmega domega [nb/sr/GeV] against the energy transfer omega [GeV] for one setting (an id of
    ``result.curves["setting"]``): each method's mean with its +-1 sigma band, the data with their errors
    divided by the fitted normalisation lambda_k of their data set (marker by split) and a dashed line at
    the quasi-elastic peak."""
    curves = result.curves[result.curves["setting"] == setting].sort_values("omega")
    if curves.empty:
        raise KeyError(f"setting {setting} is not in this result")
    points = result.points[result.points["setting"] == setting]
    fig = new_figure(8.0, 5.0)
    ax = fig.add_subplot()
    omega = curves["omega"].to_numpy(float)
    for method, style in METHOD_STYLE.items():
        if f"{method}_mean" not in curves:
            continue
        mean, spread = curves[f"{method}_mean"].to_numpy(float), curves[f"{method}_std"].to_numpy(float)
        ax.fill_between(omega, mean - spread, mean + spread, color=style["color"], alpha=0.25, linewidth=0)
        ax.plot(
            omega,
            mean,
            label=f"{style['label']} (mean $\\pm 1\\sigma$)",
            color=style["color"],
            **markers(len(omega)),
        )
    lam = points["lambda"].to_numpy(float) if "lambda" in points else np.ones(len(points))
    for split, marker in SPLIT_MARKERS.items():
        part = points["split"].to_numpy() == split
        if part.any():
            y, err = (
                points["xsec"].to_numpy(float)[part] / lam[part],
                points["error"].to_numpy(float)[part] / lam[part],
            )
            x = points["omega"].to_numpy(float)[part]
            ax.errorbar(
                x,
                y,
                err,
                linestyle="none",
                marker=marker,
                color="black",
                markersize=5,
                label=f"data / $\\lambda_k$ ({split})",
            )
    peak = float(curves["omega_qe"].iloc[0])
    ax.axvline(
        peak, color="0.4", linestyle="--", linewidth=1.0, label=f"QE peak ($\\omega$ = {peak:.3f} GeV)"
    )
    ax.set_xlabel(OMEGA_LABEL)
    ax.set_ylabel(XSEC_LABEL)
    ax.set_ylim(bottom=0.0)
    ax.set_title(str(curves["setting_label"].iloc[0]), loc="left")
    legend_outside(ax)
    return fig


@styled
def normalisations_figure(result: XsecResult) -> Figure:
    """The fitted normalisation factor lambda_k of each data set with its spread over the members, the
    prior (1 +- the experiment's normalisation uncertainty) as a grey bar behind it."""
    norms = result.normalisations
    if norms.empty:
        raise ValueError("this result holds no normalisation factors")
    x = np.arange(len(norms))
    fig = new_figure(min(max(6.0, 0.7 * len(norms) + 4.0), 12.0), 4.8)
    ax = fig.add_subplot()
    prior = norms["prior"].to_numpy(float)
    ax.bar(
        x,
        2 * prior,
        bottom=1 - prior,
        width=0.5,
        color="0.85",
        label=r"prior: 1 $\pm$ normalisation uncertainty",
    )
    ax.errorbar(
        x,
        norms["lambda"],
        norms["lambda_error"],
        linestyle="none",
        marker="o",
        color="#1f77b4",
        label=r"fitted $\lambda_k$ (spread over members)",
    )
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1.0)
    ax.set_xticks(x, norms["data_set"], rotation=20, ha="right")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_ylabel(r"normalisation factor $\lambda_k$ (dimensionless)")
    ax.set_xlabel("data set")
    legend_outside(ax)
    return fig


@styled
def transfer_figure(result: XsecResult | TransferResult) -> Figure:
    """chi2 per point on each target nucleus's held-out points of the fine-tuned model, one trained from
    scratch and the base model scaled by A / A_base, as grouped bars on a log axis."""
    transfer = result.transfer
    if transfer is None or transfer.empty:
        raise ValueError("this result holds no transfer learning")
    nuclei = list(transfer["nucleus"])
    width = 0.8 / len(TRANSFER_METHODS)
    fig = new_figure(max(6.0, 1.5 * len(nuclei) + 4.0), 4.8)
    ax = fig.add_subplot()
    for k, (column, (label, color)) in enumerate(TRANSFER_METHODS.items()):
        if column in transfer:
            chi2 = transfer[column].to_numpy(float)
            ax.bar(np.arange(len(nuclei)) + (k - 1) * width, chi2, width=width, color=color, label=label)
    ax.set_yscale("log")  # chi2 per point from ~1 to thousands: its scale matters, not its differences
    positive = transfer[[c for c in TRANSFER_METHODS if c in transfer]].to_numpy(float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    ax.set_ylim(bottom=min(0.5, 0.5 * positive.min()) if positive.size else 0.5)  # bars start below chi2 = 1
    ax.set_xticks(np.arange(len(nuclei)), nuclei)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(f"target nucleus (base model: {result.base_nucleus})")
    ax.set_ylabel(TRANSFER_CHI2_LABEL)
    legend_outside(ax)
    return fig


# -- overlays of compared runs -----------------------------------------------------------------------
MAX_SETTINGS = 4
"""The most (E, theta) settings of a cross-section fit whose model curves are overlaid."""


def result_curves(values: Mapping[str, Any]) -> list[Curve]:
    """The bootstrap ensemble's mean d2sigma/dOmega domega [nb/sr/GeV] against omega [GeV] of the first
    :data:`MAX_SETTINGS` settings of ``curves``, one plot per setting (named by its label, so that runs on
    other nuclei or settings do not share a plot)."""
    table = result_table(values, "curves")
    if table is None or "boot_mean" not in table:
        return []
    settings = list(dict.fromkeys(table["setting"]))[:MAX_SETTINGS]
    curves = []
    for setting in settings:
        rows = table[table["setting"] == setting].sort_values("omega")
        curves.append(
            finite_curve(
                f"{rows['setting_label'].iloc[0]}: bootstrap ensemble mean",
                rows["omega"].to_numpy(float),
                rows["boot_mean"].to_numpy(float),
                xlabel=OMEGA_LABEL,
                ylabel=XSEC_LABEL,
            )
        )
    return curves
