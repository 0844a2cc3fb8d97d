"""Units and scales of the page plots: each axis label a page draws is the label of the workflow's export
figure (``numl_core/<workflow>/figures.py``, as plain text), read here from the rendered Bokeh plot and from
the matplotlib figure built from the same small hand-made result; unfolded distributions go on a log y axis
when they span more than two decades; the T2K chi2 table names its cross sections with their unit."""

from __future__ import annotations

from types import SimpleNamespace

import holoviews as hv
import numpy as np
import pandas as pd
import pytest

from app.pages import uncertainty as uncertainty_page
from app.pages import unfolding as unfolding_page
from app.pages import xsec as xsec_page
from numl_core.figures import plain_text
from numl_core.uncertainty import figures as uncertainty_figures
from numl_core.uncertainty.result import C2ST
from numl_core.unfold import figures as unfold_figures
from numl_core.unfold.result import UnfoldResult
from numl_core.xsec import figures as xsec_figures
from numl_core.xsec.workflow import CHI2_PLOT, LIVE_PLOTS, TRANSFER_PLOT


def _axes(element: object) -> tuple[str, str]:
    """(x label, y label) of a HoloViews element drawn with Bokeh."""
    fig = hv.render(element, backend="bokeh")
    return fig.xaxis[0].axis_label, fig.yaxis[0].axis_label


def _figure_axes(fig: object, index: int = 0) -> tuple[str, str]:
    """(x label, y label) of axes ``index`` of a matplotlib figure, as plain text."""
    ax = fig.axes[index]
    return plain_text(ax.get_xlabel()), plain_text(ax.get_ylabel())


def _t2k_rows(name: str = "dpt_t2k") -> pd.DataFrame:
    """Three bins of T2K, prior and OmniFold in 10^-38 cm^2 per nucleon per bin."""
    return pd.DataFrame(
        [
            {"distribution": name, "method": m, "bin": b, "low": 0.2 * b, "high": 0.2 * (b + 1),
             "value": v, "error": 0.1 * v}
            for m, scale in (("t2k", 1.0), ("prior", 1.1), ("omnifold", 0.9))
            for b, v in enumerate(scale * np.array([1.0, 2.0, 0.5]))
        ]
    )  # fmt: skip


def _unfold_result() -> UnfoldResult:
    comparison = _t2k_rows()
    chi2 = pd.DataFrame(
        {
            "distribution": "dpt_t2k",
            "method": ["prior", "omnifold"],
            "chi2": [3.0, 2.0],
            "ndof": 3,
            "sigma_1e38": [3.85, 3.15],
            "sigma_t2k_1e38": 3.5,
        }
    )
    empty = pd.DataFrame()
    weights = np.exp(np.random.default_rng(1).normal(0.0, 2.0, 5000))
    return UnfoldResult(empty, empty, empty, empty, comparison, chi2, weights, 1e-40, 5000, 5000, 1.0)


def test_unfolding_t2k_overlay_and_weights_plot_have_the_export_figures_labels() -> None:
    result = _unfold_result()
    t2k = unfolding_page.distribution_plot(
        result.t2k_comparison, "dpt_t2k", unfold_figures.cross_section_label("dpt_t2k")
    )
    figure = unfold_figures.t2k_figure(result, "dpt_t2k")
    assert _axes(t2k)[1] == plain_text(figure.axes[0].get_ylabel()) == "dσ/dδp_T [10⁻³⁸ cm²/(GeV/c)/nucleon]"
    assert _axes(t2k)[0] == plain_text(figure.axes[1].get_xlabel())
    weights = unfolding_page.weights_plot(result.weights)
    assert (
        _axes(weights)
        == _figure_axes(unfold_figures.weights_figure(result))
        == (
            "log_10(final weight)",
            "MC events / bin",
        )
    )


def test_the_t2k_chi2_table_names_its_cross_sections_with_their_unit() -> None:
    shown = unfolding_page.t2k_chi2_frame(_unfold_result().t2k_chi2)
    assert "sigma_1e38" not in shown and "sigma_t2k_1e38" not in shown
    unit = "[10⁻³⁸ cm²/nucleon]"
    assert shown[f"σ {unit}"].tolist() == [3.85, 3.15] and shown[f"σ T2K {unit}"].tolist() == [3.5, 3.5]


@pytest.mark.parametrize(("top", "log"), [(1e4, True), (10.0, False)])
def test_unfolded_distributions_go_on_a_log_axis_when_they_span_two_decades(top: float, log: bool) -> None:
    rows = _t2k_rows()
    rows.loc[rows["bin"] == 1, "value"] = top  # the others hold 0.45 to 1.1 per bin
    fig = hv.render(unfolding_page.distribution_plot(rows, "dpt_t2k"), backend="bokeh")
    assert (type(fig.y_scale).__name__ == "LogScale") is log


def test_uncertainty_plots_have_the_export_figures_labels() -> None:
    metrics = pd.DataFrame({"model": ["gaussian", "flow"], C2ST: [0.8, 0.52], "c2st_error": [0.01, 0.01]})
    near_far = pd.DataFrame(
        {"model": ["transformer"], "pit_0": [0.4], "pit_1": [0.6], "pit_ks_pvalue": [0.3]}
    )
    history = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.2, 1.9]})
    result = SimpleNamespace(metrics=metrics, near_far=near_far, history=history, best_epoch=2)
    c2st = _axes(uncertainty_page.c2st_bars(metrics))
    assert c2st == _figure_axes(uncertainty_figures.c2st_figure(result))
    assert c2st[1] == "C2ST accuracy (samples vs held-out toys)"
    assert _axes(uncertainty_page.pit_plot(near_far)) == _figure_axes(uncertainty_figures.pit_figure(result))
    training = uncertainty_page._training_tab(result)[0].object
    assert (
        _axes(training)
        == _figure_axes(uncertainty_figures.training_figure(result))
        == (
            "epoch",
            "NLL [nats per toy]",
        )
    )


def test_xsec_live_plots_and_transfer_bars_say_what_chi2_per_point_is() -> None:
    fit, transfer = LIVE_PLOTS.spec(CHI2_PLOT), LIVE_PLOTS.spec(TRANSFER_PLOT)
    for spec in (fit, transfer):
        assert spec.title not in ("chi2 per point", "transfer learning: chi2 per point")
        assert "χ²" in spec.title and spec.ylabel == "χ² per point (data errors, fitted λ_k)"
    assert "training and validation" in fit.title and "fine-tuned" in transfer.title
    table = pd.DataFrame({"nucleus": ["Al"], "finetuned": [1.5], "scratch": [4.0], "scaled_base": [40.0]})
    bars = _axes(xsec_page.transfer_plot(table))[1]
    figure = xsec_figures.transfer_figure(SimpleNamespace(transfer=table, base_nucleus="O"))
    assert (
        bars == plain_text(figure.axes[0].get_ylabel()) == "held-out χ² per point (data errors, fitted λ_k)"
    )
