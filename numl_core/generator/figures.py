"""Figures of a flow-generator result (:class:`~numl_core.generator.result.GeneratorResult`), for notebooks,
papers and the dashboard's export buttons: the 1-D marginals of every sample with a flow / reference ratio
panel, the 2-D marginals of a pair of variables, and the importance weights on a log axis.

The marginals are in the box coordinates of :func:`~numl_core.generator.sampling.box_coordinates`, all
dimensionless: cos theta_mu, omega / (E_nu - m_mu) (energy transfer over its kinematic maximum), cos theta_N
and phi_N / pi; densities are normalised to unit area (per unit of the variable). Every function takes the
result, never a model, and returns a :class:`matplotlib.figure.Figure` drawn in
:func:`numl_core.figures.style`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.gridspec import SubplotSpec

from numl_core.figures import (
    legend_outside,
    log_count_histogram,
    log_scale_if_spanning,
    new_figure,
    ratio_axes,
    ratio_limits,
    stairs_with_band,
    styled,
    unity_line,
)
from numl_core.generator import sampling as smp
from numl_core.generator.result import GeneratorResult

#: Colour and legend label of each sample.
SAMPLE_STYLE = {
    "reference": {"color": "black", "label": "reference (weighted)"},
    "flow": {"color": "#1f77b4", "label": "flow (emulator)"},
    "flow_reweighted": {"color": "#2ca02c", "label": "flow, reweighted"},
    "accept_reject": {"color": "#ff7f0e", "label": "accept-reject"},
}
VARIABLE_LABELS = {
    "cos_mu": r"$\cos\theta_\mu$",
    "omega": r"$\omega/(E_\nu - m_\mu)$",
    "cos_n": r"$\cos\theta_N$",
    "phi_n": r"$\phi_N/\pi$",
}
"""Axis labels of the (dimensionless) box coordinates."""


def _style(sample: str) -> dict[str, str]:
    return SAMPLE_STYLE.get(sample, {"color": "#9467bd", "label": sample})


def _draw_marginal(fig: Figure, marginals: pd.DataFrame, variable: str, spec: SubplotSpec | None) -> None:
    """Densities of every sample of ``variable`` with their errors, and each over the reference below."""
    rows = marginals[marginals["variable"] == variable]
    if rows.empty:
        raise KeyError(f"no marginal of {variable!r}; have {sorted(marginals['variable'].unique())}")
    main, ratio = ratio_axes(fig, spec)
    for sample, part in rows.groupby("sample", sort=False):
        part = part.sort_values("low")
        edges = np.append(part["low"].to_numpy(float), part["high"].to_numpy(float)[-1])
        error = part["error"].to_numpy(float) if sample == "reference" else None
        stairs_with_band(main, edges, part["density"].to_numpy(float), error, **_style(sample))
    ratios = smp.marginal_ratios(rows)
    for sample, part in ratios.groupby("sample", sort=False):
        centre = 0.5 * (part["low"] + part["high"]).to_numpy(float)
        ratio.errorbar(
            centre,
            part["ratio"],
            part["error"],
            linestyle="none",
            marker="o",
            markersize=3,
            color=_style(sample)["color"],
        )
    unity_line(ratio)
    ratio.set_ylim(*ratio_limits(ratios["ratio"]))
    label = VARIABLE_LABELS.get(variable, variable)
    main.set_ylabel(f"density (1/N dN/d{label})")
    reference = rows.loc[rows["sample"] == "reference", "density"].to_numpy(float)
    if log_scale_if_spanning(main, reference):  # the reference decides: flow tails may reach far lower
        positive = reference[reference > 0]
        main.set_ylim(bottom=max(positive.min() / 2, positive.max() * 1e-4))
    else:
        main.set_ylim(bottom=0.0)
    ratio.set_ylabel("/ reference")
    ratio.set_xlabel(label)


@styled
def marginal_figure(result: GeneratorResult, variable: str) -> Figure:
    """One variable's normalised marginal of every sample (the reference with its error band; a log axis
    where the reference spans decades, down to at most 10^-4 of its peak) and each sample over the
    reference, with errors, in a ratio panel underneath."""
    fig = new_figure(7.5, 6.0)
    _draw_marginal(fig, result.marginals, variable, None)
    legend_outside(fig.axes[0])
    return fig


@styled
def marginals_figure(result: GeneratorResult) -> Figure:
    """:func:`marginal_figure` of every variable in a 2 x 2 grid, one legend outside the grid."""
    variables = [v for v in VARIABLE_LABELS if v in set(result.marginals["variable"])]
    if not variables:
        raise ValueError("this result holds no marginals")
    fig = new_figure(13.0, 9.5)
    grid = fig.add_gridspec(2, 2)
    for k, variable in enumerate(variables):
        _draw_marginal(fig, result.marginals, variable, grid[k // 2, k % 2])
    legend_outside(fig.axes[2] if len(variables) > 1 else fig.axes[0])
    return fig


def _grid(rows: pd.DataFrame, column: str, x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    """``column`` of 2-D marginal rows on the (y, x) grid of the edges, NaN where a cell has no row."""
    values = np.full((len(y_edges) - 1, len(x_edges) - 1), np.nan)
    i = np.searchsorted(x_edges, rows["x_low"].to_numpy(float))
    j = np.searchsorted(y_edges, rows["y_low"].to_numpy(float))
    values[j, i] = rows[column].to_numpy(float)
    return values


@styled
def marginal_2d_figure(
    result: GeneratorResult, x_variable: str, y_variable: str, sample: str = "flow"
) -> Figure:
    """A pair of variables: the reference's normalised 2-D density (log colour scale where it spans
    decades) and ``sample`` over the reference, cell by cell (colours symmetric about 1, at least 0.8 to 1.2,
    at most 0.5 to 1.5)."""
    m2 = result.marginals_2d
    rows = m2[(m2["x_variable"] == x_variable) & (m2["y_variable"] == y_variable)]
    if rows.empty:
        raise KeyError(f"no 2-D marginal of ({x_variable!r}, {y_variable!r})")
    x_edges = np.unique(np.r_[rows["x_low"].to_numpy(float), rows["x_high"].to_numpy(float)])
    y_edges = np.unique(np.r_[rows["y_low"].to_numpy(float), rows["y_high"].to_numpy(float)])
    density = _grid(rows[rows["sample"] == "reference"], "density", x_edges, y_edges)
    ratios = smp.marginal_ratios(rows)
    ratio = _grid(ratios[ratios["sample"] == sample], "ratio", x_edges, y_edges)
    fig = new_figure(12.0, 4.8)
    left, right = fig.subplots(1, 2)
    positive = density[np.isfinite(density) & (density > 0)]
    norm = (
        LogNorm(positive.min(), positive.max())
        if positive.size and positive.max() > 100 * positive.min()
        else None
    )
    shown = np.where(density > 0, density, np.nan)
    mesh = left.pcolormesh(x_edges, y_edges, shown, cmap="viridis", norm=norm)
    fig.colorbar(mesh, ax=left, label="reference density (per unit area)")
    low, high = ratio_limits(ratio, widest=(0.5, 1.5))
    half_range = max(1.0 - low, high - 1.0)
    mesh = right.pcolormesh(x_edges, y_edges, ratio, cmap="RdBu_r", vmin=1 - half_range, vmax=1 + half_range)
    fig.colorbar(mesh, ax=right, label=f"{_style(sample)['label']} / reference")
    for ax in (left, right):
        ax.set_xlabel(VARIABLE_LABELS.get(x_variable, x_variable))
        ax.set_ylabel(VARIABLE_LABELS.get(y_variable, y_variable))
    left.set_title("reference (weighted)", loc="left")
    right.set_title(f"{_style(sample)['label']} / reference", loc="left")
    return fig


@styled
def weights_figure(result: GeneratorResult) -> Figure:
    """The evaluation sample's importance weights: events per bin of log10(w / mean w), events on a log
    axis."""
    h = result.weight_histogram
    if h.empty:
        raise ValueError("this result holds no weight histogram")
    edges = np.append(h["low"].to_numpy(float), h["high"].to_numpy(float)[-1])
    counts = h["count"].to_numpy(float)
    return log_count_histogram(
        counts,
        edges,
        color="#2ca02c",
        label=f"{int(counts.sum())} flow events",
        xlabel=r"$\log_{10}(w/\langle w\rangle)$",
        ylabel="events / bin",
    )
