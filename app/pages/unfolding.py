"""The unfolding page: OmniFold vs IBU, their error bands against truth, diagnostics, chi2, export.

The live plots (losses, ESS, convergence, IBU's test statistic) are declared by the workflow and
drawn by the generic job panel; this module adds the result views. A view takes the
:class:`~numl_core.unfold.result.UnfoldResult` of the ``unfold`` workflow (or a running job's
intermediate ``histograms`` artefact), so the same views show a finished job, a run reopened
from disk, or a result built in a notebook.

Histogram tables are in long format: ``distribution, method, bin, low, high, value, error``
(plus ``slice_low, slice_high`` of the second variable of 2-D distributions); values are
drawn per unit of the variable (value / bin width).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn

from app.components.export import export_row, table_download
from app.components.page import PageSpec
from app.components.plots import layout_grid, plot_pane, use_bokeh
from app.components.tables import table
from numl_core.figures import plain_text, spans_decades, steps
from numl_core.unfold import figures
from numl_core.unfold.config import UnfoldingConfig
from numl_core.unfold.figures import DIAGNOSTICS, events_density_label, per_unit, variable_label
from numl_core.unfold.result import UnfoldResult
from numl_core.unfold.validation import equally_good_iterations, validation_curves

#: Smaller than the workflow's defaults so that a run from the dashboard takes about a minute on a laptop.
APP_DEFAULTS = UnfoldingConfig.preset_values("quick look")
METHOD_STYLE = {
    "truth": {"color": "black", "line_dash": "solid", "label": "truth"},
    "prior": {"color": "#888888", "line_dash": "dashed", "label": "prior (MC)"},
    "omnifold": {"color": "#1f77b4", "line_dash": "solid", "label": "OmniFold"},
    "ibu": {"color": "#ff7f0e", "line_dash": "solid", "label": "IBU"},
}
DATA_METHODS = {"t2k": {"color": "#b2182b", "label": "T2K data"}}
BANDED = ("omnifold", "ibu")
TABS = ("Distributions", "T2K data", "Weight diagnostics", "χ²", "Validation", "Export")
DISTRIBUTIONS_TAB, DIAGNOSTICS_TAB = 0, 2
PLOT_HEIGHT = 320
#: Width of each plot in a layout of several (responsive sizing does not work inside HoloViews layouts).
SMALL_WIDTH = 420
#: The tables offered as CSV files, by result field.
EXPORTS = {
    "histograms": "histograms.csv",
    "chi2_table": "chi2.csv",
    "diagnostics": "diagnostics.csv",
    "calibration": "calibration.csv",
    "iterations": "iterations.csv",
}


# -- pure plotting helpers -------------------------------------------------------------------------
def method_elements(rows: pd.DataFrame, method: str, xlabel: str) -> list[Any]:
    """HoloViews elements of one method in one (slice of a) distribution."""
    low, high, y, err = per_unit(rows)
    if method in DATA_METHODS:
        style = DATA_METHODS[method]
        centre = 0.5 * (low + high)
        return [
            hv.ErrorBars((centre, y, err), xlabel, ["y", "yerr"]).opts(color=style["color"]),
            hv.Scatter((centre, y), xlabel, "y", label=style["label"]).opts(color=style["color"], size=6),
        ]
    style = METHOD_STYLE.get(method, {"color": "#2ca02c", "line_dash": "dotted", "label": method})
    x, ys = steps(low, high, y)
    out = []
    if method in BANDED:
        _, lo = steps(low, high, y - err)
        _, hi = steps(low, high, y + err)
        out.append(
            hv.Area((x, lo, hi), xlabel, ["y", "y2"]).opts(
                color=style["color"], alpha=0.25, line_alpha=0, show_legend=False
            )
        )
    out.append(
        hv.Curve((x, ys), xlabel, "y", label=style["label"]).opts(
            color=style["color"], line_dash=style["line_dash"], line_width=2
        )
    )
    return out


def _method_order(methods: Any) -> list[str]:
    known = [*METHOD_STYLE, *DATA_METHODS]
    return [m for m in known if m in set(methods)] + sorted(set(methods) - set(known))


def distribution_plot(histograms: pd.DataFrame, distribution: str, ylabel: str | None = None) -> Any:
    """All methods of one distribution: an overlay (1-D) or a layout of overlays, one per slice (2-D), on a
    log y axis when the drawn values (per unit of the variable) span more than two decades. ``ylabel``
    (mathtext) replaces the weighted-events label (``cross_section_label`` for the T2K comparison)."""
    use_bokeh()
    rows = histograms[histograms["distribution"] == distribution]
    if rows.empty:
        raise KeyError(
            f"no histograms for {distribution!r}; have {sorted(histograms['distribution'].unique())}"
        )
    frame = {
        "responsive": True,
        "height": PLOT_HEIGHT,
        "show_grid": True,
        "xlabel": plain_text(variable_label(distribution)),
        "ylabel": plain_text(ylabel or events_density_label(distribution)),
        "logy": spans_decades(per_unit(rows)[2]),
    }
    two_d = "slice_low" in rows and rows["slice_low"].notna().any()
    if not two_d:
        elements = [
            e
            for m in _method_order(rows["method"])
            for e in method_elements(rows[rows["method"] == m], m, distribution)
        ]
        return hv.Overlay(elements).opts(title=distribution, legend_position="right", **frame)
    panels = []
    for i, ((lo, hi), part) in enumerate(rows.groupby(["slice_low", "slice_high"], sort=True)):
        elements = [
            e
            for m in _method_order(part["method"])
            for e in method_elements(part[part["method"] == m], m, distribution)
        ]
        panels.append(
            hv.Overlay(elements).opts(
                title=f"{distribution}: slice [{lo:g}, {hi:g})",
                show_legend=i == 0,
                legend_position="top_right",
                **{**frame, "responsive": False, "width": SMALL_WIDTH, "height": 240},
            )
        )
    return hv.Layout(panels).cols(3).opts(shared_axes=False)


def diagnostics_plot(diagnostics: pd.DataFrame) -> Any:
    """Each diagnostic (ESS, normalisation, extreme weights ...) against iteration, one curve per step.

    Values are averaged over throws (the ``throw`` column) where present.
    """
    use_bokeh()
    if diagnostics.empty or "iteration" not in diagnostics:
        return hv.Overlay([]).opts(title="no diagnostics")
    keys = [c for c in ("iteration", "step") if c in diagnostics]
    numeric = [
        c
        for c in diagnostics.select_dtypes(include=["number", "bool"]).columns
        if c not in ("iteration", "step", "throw")
    ]
    mean = diagnostics.groupby(keys)[numeric].mean(numeric_only=False).reset_index()
    plots = []
    for column in numeric:
        if "step" in mean:
            curves = [
                hv.Curve((g["iteration"], g[column].astype(float)), "iteration", column, label=f"step {s}")
                for s, g in mean.groupby("step")
            ]
        else:
            curves = [hv.Curve((mean["iteration"], mean[column].astype(float)), "iteration", column)]
        label = DIAGNOSTICS.get(column, column.replace("_", " "))
        plots.append(
            hv.Overlay(curves).opts(
                title=label,
                ylabel=label,
                width=SMALL_WIDTH,
                height=220,
                show_grid=True,
                legend_position="right",
            )
        )
    return hv.Layout(plots).cols(2).opts(shared_axes=False)


def _plots_view(plots: Any, ncols: int) -> pn.viewable.Viewable:
    """A HoloViews layout as a grid of single-plot panes (:func:`~app.components.plots.layout_grid`: the
    Bokeh grid plot of a layout collapses to frames of no width in the dashboard), anything else as one
    pane."""
    return layout_grid(plots, ncols) if isinstance(plots, hv.Layout) else plot_pane(plots)


def validation_plot(curves: pd.DataFrame, shown: list[tuple[str, str]]) -> pn.GridBox:
    """Bias per iteration and its estimate without the truth (``curves`` of
    :func:`~numl_core.unfold.validation.validation_curves`), the ``shown`` panels
    (:func:`~numl_core.unfold.figures.validation_panels`) of
    :func:`~numl_core.unfold.figures.validation_figure`: one line per method and distribution (dashed
    IBU), a dotted line at 1."""
    use_bokeh()
    panels = []
    for column, ylabel in shown:
        elements: list[Any] = []
        for (method, name), part in curves.groupby(["method", "distribution"], sort=False):
            label = f"{figures.METHOD_STYLE[method]['label']}: {plain_text(variable_label(name))}"
            data = (part["iteration"], part[column])
            dash = "solid" if method == "omnifold" else "dashed"
            elements += [
                hv.Curve(data, "iteration", "y", label=label).opts(line_dash=dash, line_width=2),
                hv.Scatter(data, "iteration", "y", label=label).opts(size=6),
            ]
        values = curves[column].dropna()
        panels.append(
            hv.Overlay([*elements, hv.HLine(1.0).opts(color="gray", line_dash="dotted")]).opts(
                xlabel="iteration",
                ylabel=plain_text(ylabel),
                logy=bool(len(values) and spans_decades(values)),
                responsive=True,
                height=320,
                show_grid=True,
                legend_position="right",
            )
        )
    return layout_grid(hv.Layout(panels), ncols=1)


def weights_plot(weights: np.ndarray, bins: int = 60) -> hv.Histogram:
    """Histogram of log10 of the positive final per-event weights, MC events per bin on a log axis when the
    counts span more than two decades (the export figure's is always log)."""
    use_bokeh()
    w = np.asarray(weights, float)
    positive = w[np.isfinite(w) & (w > 0)]
    counts, edges = np.histogram(np.log10(positive) if positive.size else [], bins=bins)
    title = f"final weights: {positive.size} positive of {w.size}"
    return hv.Histogram((edges, counts), kdims=["log10_weight"], vdims=["events"]).opts(
        title=title,
        xlabel=plain_text(figures.WEIGHTS_XLABEL),
        ylabel=plain_text(figures.WEIGHTS_YLABEL),
        logy=spans_decades(counts),
        responsive=True,
        height=260,
        color="#1f77b4",
        show_grid=True,
    )


def t2k_chi2_frame(chi2: pd.DataFrame) -> pd.DataFrame:
    """The T2K chi2 table with its total cross sections under headers with their unit (the unit of the T2K
    figure's axes): ``sigma_1e38`` of each method and ``sigma_t2k_1e38`` of T2K, per CH nucleon."""
    unit = f"[{plain_text(figures.XSEC_UNIT)}/nucleon]"
    return chi2.rename(columns={"sigma_1e38": f"σ {unit}", "sigma_t2k_1e38": f"σ T2K {unit}"})


def weights_frame(weights: np.ndarray) -> pd.DataFrame:
    """Per-event weights as a table: ``event`` (row of the MC sample), ``weight``."""
    w = np.asarray(weights)
    return pd.DataFrame({"event": np.arange(len(w)), "weight": w})


def _first_one_dimensional(histograms: pd.DataFrame, options: list[str]) -> str:
    """The first 1-D distribution (one plot, quick to draw), else the first one."""
    if "slice_low" not in histograms:
        return options[0]
    two_d = set(histograms.loc[histograms["slice_low"].notna(), "distribution"])
    return next((o for o in options if o not in two_d), options[0])


def _span_text(iterations: list[int]) -> str:
    """Iterations as text, a run of consecutive ones as a range.

    >>> _span_text([2, 3, 4, 5]), _span_text([1, 3])
    ('iterations 2–5', 'iterations 1, 3')
    """
    if iterations == list(range(iterations[0], iterations[-1] + 1)):
        return f"iterations {iterations[0]}–{iterations[-1]}"
    return "iterations " + ", ".join(map(str, iterations))


# -- the results view -------------------------------------------------------------------------------
class UnfoldingResults(pn.viewable.Viewer):
    """Tabs of an unfolding result: distributions, T2K, diagnostics, chi2, export.

    ``result`` is the :class:`~numl_core.unfold.result.UnfoldResult` shown (None while a job runs);
    ``fields`` what is drawn: the result's fields, or a running job's intermediate artefacts.
    """

    def __init__(self) -> None:
        super().__init__()
        self.result: UnfoldResult | None = None
        self.fields: dict[str, Any] = {}
        self.distribution = pn.widgets.Select(label="Distribution", options=[], width=240)
        self.distribution.param.watch(lambda _e: self._draw_distribution(), "value")
        self.plot = pn.Column(sizing_mode="stretch_width", min_height=PLOT_HEIGHT)
        self.summary = pn.pane.Markdown("*No result yet.*", css_classes=["numl-unfold-summary"])
        self.distribution_export = pn.Column(sizing_mode="stretch_width")
        self.distributions_tab = pn.Column(
            self.distribution, self.plot, self.distribution_export, sizing_mode="stretch_width"
        )
        self.t2k_tab, self.diagnostics_tab, self.chi2_tab, self.validation_tab, self.export_tab = (
            pn.Column(sizing_mode="stretch_width") for _ in range(5)
        )
        views = (
            self.distributions_tab,
            self.t2k_tab,
            self.diagnostics_tab,
            self.chi2_tab,
            self.validation_tab,
            self.export_tab,
        )
        self.tabs = pn.Tabs(*zip(TABS, views, strict=True), dynamic=True, sizing_mode="stretch_width")
        self._drawn: set[int] = set()
        self._histograms_shown: pd.DataFrame | None = None
        self.tabs.param.watch(lambda event: self._draw_tab(event.new), "active")
        self._layout = pn.Column(
            self.summary, self.tabs, sizing_mode="stretch_width", css_classes=["numl-unfold-results"]
        )

    def show(self, result: UnfoldResult) -> UnfoldingResults:
        """Draw a finished result; returns ``self`` for the job panel's result area.

        Only the open tab is drawn now, the others when they are opened: drawing runs on the
        server's event loop, which every session shares.
        """
        self.result = result
        self.fields = result.to_dict()
        self._drawn.clear()
        self._set_histograms(result.histograms)
        self.summary.object = self._summary_text(result)
        self.distribution_export[:] = [self._distribution_export(result)]
        self._draw_tab(self.tabs.active)
        return self

    def show_live(self, artefacts: Mapping[str, Any]) -> UnfoldingResults:
        """Draw intermediate artefacts (``histograms``, ``diagnostics``) while the job runs."""
        if isinstance(artefacts.get("histograms"), pd.DataFrame):
            self.fields["histograms"] = artefacts["histograms"]
            self._set_histograms(artefacts["histograms"])
            self.summary.object = "*Intermediate result: the job is still running.*"
        if isinstance(artefacts.get("diagnostics"), pd.DataFrame):
            self.fields["diagnostics"] = artefacts["diagnostics"]
            self._drawn.discard(DIAGNOSTICS_TAB)
            self._draw_tab(self.tabs.active)
        return self

    def _draw_tab(self, index: int) -> None:
        if index in self._drawn or index == DISTRIBUTIONS_TAB:
            return
        self._drawn.add(index)
        draw = {
            1: self._draw_t2k,
            DIAGNOSTICS_TAB: self._draw_diagnostics,
            3: self._draw_chi2,
            4: self._draw_validation,
            5: self._draw_export,
        }
        draw[index]()

    # -- pieces --------------------------------------------------------------------------------
    @staticmethod
    def _summary_text(result: UnfoldResult) -> str:
        parts = [f"{result.n_mc} MC events", f"{result.n_data} data events"]
        names = {"omnifold": "OmniFold", "ibu": "IBU"}
        alike = equally_good_iterations(result.iterations)
        for method, n in result.suggested_iterations.items():
            stop = f"stop at iteration {n}" if n is not None else "not converged: iterate more"
            span = alike.get(method, [])
            if n is not None and len(span) > 1:
                stop += f" ({_span_text(span)} alike within the estimate's spread)"
            parts.append(f"{names.get(method, method)}: {stop}")
        if not result.suggested_iterations and not result.iterations.empty:
            parts.append("no stopping suggestion (needs two iterations or more and throws)")
        if np.isfinite(result.seconds):
            parts.append(f"{result.seconds:.1f} s")
        return "**Result:** " + ", ".join(parts)

    def _frame(self, key: str) -> pd.DataFrame | None:
        """The table ``key`` if it is shown and not empty."""
        frame = self.fields.get(key)
        return frame if isinstance(frame, pd.DataFrame) and not frame.empty else None

    def _set_histograms(self, histograms: pd.DataFrame) -> None:
        if histograms.empty or histograms is self._histograms_shown:
            return
        self._histograms_shown = histograms
        options = list(dict.fromkeys(histograms["distribution"]))
        current = self.distribution.value
        self.distribution.options = options
        if current in options:
            self._draw_distribution()
        else:
            self.distribution.value = _first_one_dimensional(histograms, options)

    def _draw_distribution(self) -> None:
        histograms = self._frame("histograms")
        if histograms is not None and self.distribution.value:
            self.plot[:] = [_plots_view(distribution_plot(histograms, self.distribution.value), ncols=2)]

    def _distribution_export(self, result: UnfoldResult) -> pn.Row:
        """The chosen distribution's figure (:func:`~numl_core.unfold.figures.unfolded_figure`) and rows."""

        def rows() -> pd.DataFrame:
            return result.histograms[result.histograms["distribution"] == self.distribution.value]

        return export_row(
            lambda: f"unfolded_{self.distribution.value}",
            lambda: figures.unfolded_figure(result, self.distribution.value),
            rows,
        )

    def _t2k_export(self, name: str) -> pn.Row | None:
        """One T2K variable's figure with its histogram and chi2 rows (None while a job runs)."""
        result = self.result
        if result is None:
            return None
        tables = {
            "histograms": result.t2k_comparison[result.t2k_comparison["distribution"] == name],
            "chi2": result.t2k_chi2[result.t2k_chi2["distribution"] == name],
        }
        return export_row(name, lambda: figures.t2k_figure(result, name), tables)

    def _draw_t2k(self) -> None:
        parts: list[Any] = []
        histograms, comparison, chi2 = (self._frame(k) for k in ("histograms", "t2k_comparison", "t2k_chi2"))
        if histograms is not None and "t2k" in set(histograms["method"]):
            parts.append(pn.pane.Markdown("T2K data points are overlaid on the distribution plots."))
        if comparison is not None:
            if {"distribution", "method", "low", "high", "value"} <= set(comparison.columns):
                for name in dict.fromkeys(comparison["distribution"]):
                    parts.append(
                        plot_pane(distribution_plot(comparison, name, figures.cross_section_label(name)))
                    )
                    parts.append(self._t2k_export(name))
            else:
                parts.append(table(comparison, pagination="local", page_size=15))
        if chi2 is not None:
            parts.insert(
                0,
                pn.pane.Markdown(
                    "The T2K CC0pi-Np measurement (PRD 98, 032003) in its own phase space and binning, "
                    "per CH nucleon, against the prior, the fake data's truth and OmniFold; chi2 uses "
                    "T2K's covariance (plus OmniFold's own)."
                ),
            )
            parts.append(table(t2k_chi2_frame(chi2), pagination="local", page_size=15))
        parts = [p for p in parts if p is not None]
        self.t2k_tab[:] = parts or [pn.pane.Markdown("*This result holds no comparison with T2K data.*")]

    def _draw_diagnostics(self) -> None:
        parts: list[Any] = []
        diagnostics = self._frame("diagnostics")
        result = self.result
        if diagnostics is not None:
            parts += [
                _plots_view(diagnostics_plot(diagnostics), ncols=2),
                table(diagnostics, pagination="local", page_size=10),
            ]
            if result is not None:
                parts.append(
                    export_row("diagnostics", lambda: figures.diagnostics_figure(result), diagnostics)
                )
        if self.fields.get("weights") is not None:
            parts.append(plot_pane(weights_plot(self.fields["weights"])))
            if result is not None:
                weights = weights_frame(result.weights)
                parts.append(export_row("weights", lambda: figures.weights_figure(result), weights))
        self.diagnostics_tab[:] = parts or [pn.pane.Markdown("*No weight diagnostics yet.*")]

    def _draw_chi2(self) -> None:
        chi2 = self._frame("chi2_table")
        if chi2 is not None:
            note = pn.pane.Markdown(
                "χ² of each method against the truth with the full covariance (see **Validation** for how "
                "it is estimated and checked); the `ndof` row gives the bins per distribution."
            )
            self.chi2_tab[:] = [
                note,
                table(chi2, css_classes=["numl-chi2-table"]),
                export_row("chi2", tables=chi2),
            ]
        else:
            self.chi2_tab[:] = [pn.pane.Markdown("*No χ² table yet.*")]

    def _draw_validation(self) -> None:
        calibration, iterations = self._frame("calibration"), self._frame("iterations")
        if calibration is None or iterations is None:
            self.validation_tab[:] = [
                pn.pane.Markdown("*This result holds no validation (run before it existed).*")
            ]
            return
        result = self.result
        note = pn.pane.Markdown(
            "**Calibration.** χ² of each method against the truth with the covariance of the throws "
            "(`covariance`: `hartlap` with its inverse correction, `shrinkage` when there are too few "
            "throws for the bins, `parts` when the throws vary the systematics only); "
            "`loo_chi2_per_ndof` checks the covariance: each throw against the others', about 1 when it "
            "is right; `chi2_closure` compares with the truth using the covariance of (result − truth) over "
            "the throws, which carries the truth's own fluctuation; `p_value` and `p_closure` are their "
            "p-values. **Per iteration:** χ²/ndof against the truth (the bias) with each iteration's "
            "covariance, which widens with the iterations, and with the last iteration's for all of them, "
            "which falls only where the result moves towards the truth; and that last χ² estimated "
            "without the truth (real data too): how far each iteration lies from the last beyond what the "
            "throws' noise explains, plus its own noise. The suggested iteration is where that estimate, "
            "summed over the distributions, is smallest; it takes the last iteration as unbiased, so a bias "
            "left there makes it rate earlier iterations too well. The summary lists the iterations whose "
            "estimate lies within √(2 ndof) of the smallest: the data cannot rank them against it."
        )
        parts: list[Any] = [note, table(calibration, css_classes=["numl-calibration-table"])]
        curves = validation_curves(iterations)
        shown = figures.validation_panels(curves)
        if not shown:
            parts.append(
                pn.pane.Markdown("*Nothing to draw per iteration: no truth and a single iteration.*")
            )
            self.validation_tab[:] = parts
            return
        parts.append(validation_plot(curves, shown))
        if result is not None:
            parts.append(export_row("validation", lambda: figures.validation_figure(result), curves))
        self.validation_tab[:] = parts

    def _draw_export(self) -> None:
        frames = {name: self.fields.get(key) for key, name in EXPORTS.items()}
        if self.fields.get("weights") is not None:
            frames["weights.csv"] = weights_frame(self.fields["weights"])
        buttons = [
            table_download(frame, name.removesuffix(".csv"), label=name)
            for name, frame in frames.items()
            if isinstance(frame, pd.DataFrame)
        ]
        self.export_tab[:] = [
            pn.pane.Markdown(
                "Download the result as CSV files. Each plot's figure (PNG, PDF, SVG) and numbers are in the "
                "**Export** row under it."
            ),
            pn.FlexBox(*buttons),
        ]

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def result_view(result: UnfoldResult) -> pn.viewable.Viewable:
    """The results view of a stored or in-memory unfolding result."""
    return UnfoldingResults().show(result)


def live_view(artefacts: Mapping[str, Any]) -> pn.viewable.Viewable:
    """The results view of a running job's intermediate artefacts (its ``histograms``)."""
    return UnfoldingResults().show_live(artefacts)


PAGE = PageSpec(workflow="unfold", result_view=result_view, defaults=APP_DEFAULTS, artefact_view=live_view)
