"""Figures of an unfolding result (:class:`~numl_core.unfold.result.UnfoldResult`), for notebooks, papers and
the dashboard's export buttons: the unfolded distributions with a ratio-to-truth panel, the T2K overlay with
a ratio-to-T2K panel, OmniFold's weight diagnostics and the final weights.

Histogram contents (weighted events, or 1e-38 cm^2 per CH nucleon for the T2K overlay) are drawn as cross
sections per unit of the variable: ``value * xsec_scale / 1e-38 / bin width`` in
10^-38 cm^2 / (unit of the variable) / nucleon. Every function takes the result, never a model, and returns
a :class:`matplotlib.figure.Figure` drawn in :func:`numl_core.figures.style`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from numl_core.data.binning import BINNINGS
from numl_core.figures import (
    integer_ticks,
    legend_outside,
    log_count_histogram,
    log_scale_if_spanning,
    markers,
    new_figure,
    ratio_axes,
    ratio_limits,
    stairs_with_band,
    steps,
    styled,
    unity_line,
)
from numl_core.overlays import Curve, finite_curve, result_table
from numl_core.unfold.compare import T2K_UNIT_CM2
from numl_core.unfold.result import UnfoldResult
from numl_core.unfold.validation import validation_curves

XSEC_UNIT = r"$10^{-38}$ cm$^2$"
"""The cross-section unit of the y axes."""
METHOD_STYLE = {
    "truth": {"color": "black", "label": "truth (fake data)"},
    "prior": {"color": "0.5", "label": "prior (MC)", "linestyle": "--"},
    "omnifold": {"color": "#1f77b4", "label": "OmniFold"},
    "ibu": {"color": "#ff7f0e", "label": "IBU"},
    "t2k": {"color": "#b2182b", "label": "T2K data"},
}
BANDED = ("omnifold", "ibu")
"""Methods drawn with their error band."""
#: Axis symbols of the binning variables (mathtext); a variable not listed is shown by its name.
SYMBOLS = {
    "dpt": r"$\delta p_\mathrm{T}$",
    "dalphat": r"$\delta\alpha_\mathrm{T}$",
    "dphit": r"$\delta\phi_\mathrm{T}$",
    "mu_p": r"$p_\mu$",
    "mu_cos": r"$\cos\theta_\mu$",
}
DIAGNOSTICS = {
    "ess": "effective sample size [events]",
    "normalisation": "mean weight (normalisation)",
    "n_extreme": "events with extreme weights (mean)",
}
"""The weight diagnostics drawn, with their axis labels."""


def display_edges(low: np.ndarray, high: np.ndarray, max_ratio: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges for drawing: open (infinite) or very wide end bins are cut to one typical width.

    A bin wider than ``max_ratio`` times the median width (an overflow bin such as
    p in [1.5, 30] GeV/c) would squeeze all other bins into a corner.

    >>> display_edges(np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, np.inf]))
    (array([0., 1., 2.]), array([1., 2., 3.]))
    """
    low, high = np.asarray(low, float).copy(), np.asarray(high, float).copy()
    widths = high - low
    finite = widths[np.isfinite(widths) & (widths > 0)]
    typical = float(np.median(finite)) if finite.size else 1.0
    too_wide = ~np.isfinite(widths) | (widths > max_ratio * typical)
    if too_wide.all():
        too_wide = ~np.isfinite(widths)
    for i in np.flatnonzero(too_wide):
        if np.isfinite(low[i]):
            high[i] = low[i] + typical
        else:
            low[i] = high[i] - typical
    return low, high


def per_unit(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 1-D histogram's drawn edges (:func:`display_edges`) and its value and error per unit of the
    variable, sorted by bin: divided by the true bin width where it is finite, by the drawn width of open
    bins. Rows without ``error`` get zero errors.

    >>> rows = pd.DataFrame({"low": [0.0, 1.0], "high": [1.0, np.inf], "value": [4.0, 2.0]})
    >>> [a.tolist() for a in per_unit(rows)]
    [[0.0, 1.0], [1.0, 2.0], [4.0, 2.0], [0.0, 0.0]]
    """
    rows = rows.sort_values("low")
    true_low, true_high = rows["low"].to_numpy(float), rows["high"].to_numpy(float)
    low, high = display_edges(true_low, true_high)
    true_width = true_high - true_low
    width = np.where(np.isfinite(true_width) & (true_width > 0), true_width, high - low)
    error = np.nan_to_num(rows["error"].to_numpy(float)) if "error" in rows else np.zeros(len(rows))
    return low, high, rows["value"].to_numpy(float) / width, error / width


def _axis(distribution: str) -> tuple[str, str, str | None]:
    """Symbol and unit of a distribution's (first) variable, and the symbol of the slicing variable of a 2-D
    distribution (None for 1-D; its unit is taken to be dimensionless, as cos theta_mu is)."""
    binning = BINNINGS.get(distribution)
    if binning is None:
        return distribution, "", None
    symbols = [SYMBOLS.get(v, label) for v, label in zip(binning.variables, binning.labels, strict=True)]
    return symbols[0], binning.units[0], symbols[1] if binning.ndim == 2 else None


def _per_unit(unit: str) -> str:
    """``/(GeV/c)`` style denominator of a unit ('' when dimensionless)."""
    if not unit:
        return ""
    return f"/({unit})" if "/" in unit else f"/{unit}"


def variable_label(distribution: str) -> str:
    """The x axis label of a distribution: its (first) variable and unit (mathtext), e.g. ``δp_T [GeV/c]``."""
    symbol, unit, _ = _axis(distribution)
    return f"{symbol} [{unit}]" if unit else symbol


def events_density_label(distribution: str) -> str:
    """The y axis label of weighted event counts per unit of a distribution's (first) variable."""
    symbol, unit, _ = _axis(distribution)
    return f"weighted events / d{symbol}" + (
        f" [1/({unit})]" if "/" in unit else f" [1/{unit}]" if unit else ""
    )


def cross_section_label(distribution: str) -> str:
    """The y axis label of a 1-D distribution as a cross section per unit of its variable (mathtext), e.g.
    ``dσ/dδp_T [10⁻³⁸ cm²/(GeV/c)/nucleon]``."""
    symbol, unit, _ = _axis(distribution)
    return rf"d$\sigma$/d{symbol} [{XSEC_UNIT}{_per_unit(unit)}/nucleon]"


#: Axis labels of the final-weights histogram (:func:`weights_figure`, and the page's).
WEIGHTS_XLABEL = r"$\log_{10}$(final weight)"
WEIGHTS_YLABEL = "MC events / bin"


def _rows(table: pd.DataFrame, distribution: str) -> pd.DataFrame:
    rows = table[table["distribution"] == distribution]
    if rows.empty:
        raise KeyError(f"no histograms for {distribution!r}; have {sorted(table['distribution'].unique())}")
    return rows


def _cross_section(
    rows: pd.DataFrame, scale: float, two_d: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drawn edges, and value and error per unit of the variable(s) in 10^-38 cm^2, sorted by bin.

    ``scale`` turns a bin's content into 10^-38 cm^2 per nucleon; 2-D bins are drawn by flat index and
    divided by their area."""
    if not two_d:
        low, high, value, error = per_unit(rows)
        return np.append(low, high[-1]), value * scale, error * scale
    rows = rows.sort_values("bin")
    width = (rows["high"] - rows["low"]).to_numpy(float) * (rows["slice_high"] - rows["slice_low"]).to_numpy(
        float
    )
    value = rows["value"].to_numpy(float) * scale / width
    error = np.nan_to_num(rows["error"].to_numpy(float)) * scale / width
    return np.arange(len(rows) + 1, dtype=float), value, error


def _draw_methods(
    main: Axes,
    ratio: Axes,
    rows: pd.DataFrame,
    reference: str,
    scale: float,
    two_d: bool,
    labels: dict[str, str],
) -> None:
    """Each method on ``main`` and over ``reference`` on ``ratio``; the reference's own relative error is the
    grey band around 1. ``labels`` replace the legend labels of :data:`METHOD_STYLE` by method."""
    ref_edges, ref_value, ref_error = _cross_section(rows[rows["method"] == reference], scale, two_d)
    safe_ref = np.where(ref_value > 0, ref_value, np.nan)
    ratio.stairs(
        1 + ref_error / safe_ref,
        ref_edges,
        baseline=1 - ref_error / safe_ref,
        fill=True,
        color="0.85",
        label=f"{METHOD_STYLE[reference]['label']} uncertainty",
    )
    shown: list[np.ndarray] = [np.ones(1)]
    for method in [m for m in METHOD_STYLE if m in set(rows["method"])]:
        edges, value, error = _cross_section(rows[rows["method"] == method], scale, two_d)
        style = {**METHOD_STYLE[method], "label": labels.get(method, METHOD_STYLE[method]["label"])}
        if method == "t2k":
            centre = 0.5 * (edges[:-1] + edges[1:])
            main.errorbar(centre, value, error, linestyle="none", **markers(len(value)), **style)
            continue
        stairs_with_band(main, edges, value, error if method in BANDED else None, **style)
        if method != reference and len(value) == len(ref_value):
            over = value / safe_ref
            band = error / safe_ref if method in BANDED else None
            stairs_with_band(ratio, edges, over, band, **{**style, "label": None})
            shown.append(over)
    unity_line(ratio)
    ratio.set_ylim(*ratio_limits(np.concatenate(shown)))


def _comparison_figure(
    rows: pd.DataFrame,
    distribution: str,
    reference: str,
    scale: float,
    title: str,
    labels: dict[str, str] | None = None,
) -> Figure:
    """Distributions per unit of the variable over a ratio panel against ``reference``."""
    symbol, unit, slicing = _axis(distribution)
    two_d = slicing is not None
    fig = new_figure(7.5, 6.0)
    main, ratio = ratio_axes(fig)
    _draw_methods(main, ratio, rows, reference, scale, two_d, labels or {})
    if two_d:
        slices = rows[rows["method"] == reference].sort_values("bin")["slice_low"].to_numpy()
        for boundary in np.flatnonzero(np.diff(slices)) + 1:
            for ax in (main, ratio):
                ax.axvline(boundary, color="0.7", linestyle=":", linewidth=1.0)
        per_unit = f"[{XSEC_UNIT}{_per_unit(unit)}/nucleon]"
        main.set_ylabel(rf"d$^2\sigma$/(d{symbol} d{slicing})" + f"\n{per_unit}")
        ratio.set_xlabel(f"bin ({symbol} [{unit}] in slices of {slicing})")
    else:
        main.set_ylabel(cross_section_label(distribution))
        ratio.set_xlabel(variable_label(distribution))
    values = np.concatenate([_cross_section(g, scale, two_d)[1] for _, g in rows.groupby("method")])
    log_scale_if_spanning(main, values)
    ratio.set_ylabel(f"/ {METHOD_STYLE[reference]['label'].split(' (')[0]}")
    main.set_title(title, loc="left")
    legend_outside(main)
    legend_outside(ratio)
    return fig


@styled
def unfolded_figure(result: UnfoldResult, distribution: str) -> Figure:
    """One distribution of :attr:`~numl_core.unfold.result.UnfoldResult.histograms`: truth, prior, OmniFold
    and IBU (with error bands) as dsigma/dx in 10^-38 cm^2 / (unit of x) / nucleon, and each over the
    truth in a ratio panel underneath. 2-D distributions are drawn by flat bin index, divided by the bin
    area, with dotted lines between the slices and a log y axis where they span decades."""
    rows = _rows(result.histograms, distribution)
    scale = result.xsec_scale / T2K_UNIT_CM2
    return _comparison_figure(rows, distribution, "truth", scale, f"{distribution}: unfolded vs truth")


@styled
def t2k_figure(result: UnfoldResult, distribution: str = "dpt_t2k") -> Figure:
    """The T2K CC0pi-Np STV measurement of one variable (``dpt_t2k``, ``dalphat_t2k``, ``dphit_t2k``) with
    the prior, the fake data's truth and OmniFold in its phase space and binning, in
    10^-38 cm^2 / (unit) / CH nucleon, each over T2K in a ratio panel; the legend gives each chi2 against
    T2K."""
    rows = _rows(result.t2k_comparison, distribution)
    chi2 = result.t2k_chi2[result.t2k_chi2["distribution"] == distribution]
    labels = {
        row.method: f"{METHOD_STYLE[row.method]['label']}: $\\chi^2$ = {row.chi2:.1f}/{int(row.ndof)}"
        for row in chi2.itertuples()
        if row.method in METHOD_STYLE
    }
    title = f"{distribution}: T2K CC0$\\pi$-Np (PRD 98, 032003)"
    return _comparison_figure(rows, distribution, "t2k", 1.0, title, labels)


@styled
def diagnostics_figure(result: UnfoldResult) -> Figure:
    """OmniFold's weight diagnostics (:data:`DIAGNOSTICS`: ESS, normalisation, extreme weights) against the
    iteration, one series per step, averaged over the throws; ESS on a log axis where it spans decades."""
    diagnostics = result.diagnostics
    columns = [c for c in DIAGNOSTICS if c in diagnostics]
    if diagnostics.empty or not columns:
        raise ValueError("this result holds no weight diagnostics")
    keys = [c for c in ("iteration", "step") if c in diagnostics]
    mean = diagnostics.groupby(keys)[columns].mean().reset_index()
    fig = new_figure(4.0 * len(columns) + 1.5, 4.0)
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    for ax, column in zip(axes, columns, strict=True):
        groups = mean.groupby("step") if "step" in mean else [(None, mean)]
        for step, part in groups:
            label = f"step {step}" if step is not None else column
            ax.plot(part["iteration"], part[column], label=label, **markers(len(part)))
        ax.set_xlabel("OmniFold iteration")
        integer_ticks(ax)
        ax.set_ylabel(DIAGNOSTICS[column])
        if column == "ess":
            log_scale_if_spanning(ax, mean[column])
    legend_outside(axes[-1])
    return fig


@styled
def weights_figure(result: UnfoldResult, bins: int = 60) -> Figure:
    """Histogram of log10 of the MC's positive final per-event weights (prior x push), events on a log
    axis."""
    w = np.asarray(result.weights, float)
    positive = w[np.isfinite(w) & (w > 0)]
    if positive.size == 0:
        raise ValueError("this result holds no positive weights")
    counts, edges = np.histogram(np.log10(positive), bins=bins)
    return log_count_histogram(
        counts,
        edges,
        color="#1f77b4",
        label=f"{positive.size} of {w.size} MC events",
        xlabel=WEIGHTS_XLABEL,
        ylabel=WEIGHTS_YLABEL,
    )


#: The Validation view's panels: (column of :func:`validation_curves`, y label).
VALIDATION_PANELS = (
    ("bias_per_ndof", r"$\chi^2$ against the truth / ndof"),
    ("bias_fixed_per_ndof", r"$\chi^2$ against the truth, last iteration's covariance / ndof"),
    ("estimated_per_ndof", r"$\chi^2$ against the truth estimated without it / ndof"),
)


def validation_panels(curves: pd.DataFrame) -> list[tuple[str, str]]:
    """The :data:`VALIDATION_PANELS` with something to draw in ``curves`` (real data have no truth; results
    stored before the fixed-metric bias was kept have none of it)."""
    return [(column, label) for column, label in VALIDATION_PANELS if curves[column].notna().any()]


@styled
def validation_figure(result: UnfoldResult) -> Figure:
    """Bias and the stopping rule per iteration, one panel each of :func:`validation_panels`: chi2 against
    the truth per ndof with each iteration's covariance and with the last iteration's (one metric for
    all iterations, so it falls only where the result moves towards the truth), and the latter estimated
    from the data and throws alone (``estimated_chi2`` of
    :func:`~numl_core.unfold.validation.iteration_rows`), whose summed minimum is the suggested
    iteration; one line per distribution, solid OmniFold, dashed IBU, a dotted line at 1."""
    if result.iterations.empty:
        raise ValueError("this result holds no per-iteration validation")
    curves = validation_curves(result.iterations)
    panels = validation_panels(curves)
    if not panels:
        raise ValueError("nothing to draw per iteration: no truth and a single iteration")
    fig = new_figure(1.0 + 4.8 * len(panels), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    colours = {d: f"C{k}" for k, d in enumerate(dict.fromkeys(curves["distribution"]))}
    for ax, (column, ylabel) in zip(axes, panels, strict=True):
        for (method, distribution), part in curves.groupby(["method", "distribution"], sort=False):
            ax.plot(
                part["iteration"],
                part[column],
                ls="-" if method == "omnifold" else "--",
                color=colours[distribution],
                label=f"{METHOD_STYLE.get(method, {}).get('label', method)}: {variable_label(distribution)}",
                **markers(len(part)),
            )
        ax.axhline(1.0, color="0.4", ls=":", lw=1)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        integer_ticks(ax)
        log_scale_if_spanning(ax, curves[column].dropna())
    legend_outside(axes[-1], fontsize="small")
    return fig


# -- overlays of compared runs -----------------------------------------------------------------------
FLAT_BIN = "bin (flat index over the slices)"
"""x label of a 2-D unfolded distribution drawn by flat bin index."""
EVENTS_PER_BIN = "weighted events / bin"
"""y label of a 2-D unfolded distribution."""


def result_curves(values: Mapping[str, Any]) -> list[Curve]:
    """OmniFold's unfolded histogram of each distribution of ``histograms``: weighted events per unit of the
    variable over its bins (open end bins cut to a typical width, as the result view draws them), or for a
    2-D distribution weighted events per bin by flat bin index."""
    histograms = result_table(values, "histograms")
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
            curves.append(finite_curve(plot, x, y, xlabel=FLAT_BIN, ylabel=EVENTS_PER_BIN, steps=True))
            continue
        shown_low, shown_high, density, _ = per_unit(rows)
        x, y = steps(shown_low, shown_high, density)
        labels = {
            "xlabel": variable_label(distribution),
            "ylabel": events_density_label(distribution),
        }
        curves.append(finite_curve(plot, x, y, steps=True, **labels))
    return curves
