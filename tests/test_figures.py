"""The matplotlib figures of every workflow (``numl_core/<workflow>/figures.py``), built from the session's
tiny real results, and the dashboard's export buttons that download them.

Each figure must label every axis that shows tick labels (with the expected units), hold finite data in
every panel, have its ratio panel and log axes where promised, and save as PNG, PDF and SVG.
"""

from __future__ import annotations

import base64
import dataclasses
import io

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle, StepPatch

from app.components.export import export_buttons, export_row
from app.pages import unfolding as unfolding_page
from app.pages import xsec as xsec_page
from numl_core.data.binning import BINNINGS
from numl_core.energy import figures as energy_figures
from numl_core.figures import FORMATS, figure_bytes, ratio_limits, save_figure, style
from numl_core.generator import figures as generator_figures
from numl_core.uncertainty import figures as uncertainty_figures
from numl_core.unfold import figures as unfold_figures
from numl_core.unfold.compare import histogram_rows
from numl_core.xsec import figures as xsec_figures

MAGIC = {"png": (b"\x89PNG",), "pdf": (b"%PDF",), "svg": (b"<?xml", b"<svg")}


# -- what every figure must have ----------------------------------------------------------------------
def _is_colorbar(ax: Axes) -> bool:
    return hasattr(ax, "_colorbar")


def _shown_ticklabels(labels: list) -> bool:
    return any(t.get_visible() and t.get_text() for t in labels)


def _data(ax: Axes) -> list[np.ndarray]:
    """Every number the axes draws: line and scatter coordinates, mesh values, step heights, bar heights."""
    arrays = [np.asarray(line.get_xydata(), float).ravel() for line in ax.lines]
    for c in ax.collections:
        if isinstance(c, QuadMesh):
            arrays.append(np.ma.filled(np.ma.asarray(c.get_array(), float), np.nan).ravel())
        elif len(c.get_offsets()):
            arrays.append(np.ma.filled(np.ma.asarray(c.get_offsets(), float), np.nan).ravel())
        else:
            arrays += [np.asarray(p.vertices, float).ravel() for p in c.get_paths()]
    for patch in ax.patches:
        if isinstance(patch, StepPatch):
            arrays.append(np.asarray(patch.get_data().values, float))
        elif isinstance(patch, Rectangle):
            arrays.append(np.array([patch.get_height()], float))
        else:  # the polygons of step histograms
            arrays.append(np.asarray(patch.get_path().vertices, float).ravel())
    return [a for a in arrays if a.size]


def check_figure(fig: Figure, units: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Save ``fig`` in every format (checking each file's magic bytes), then check its axes: a label on
    every axis showing tick labels, every ``units`` string in some label, finite data in every panel.
    Returns the saved files by format."""
    files = {fmt: figure_bytes(fig, fmt) for fmt in FORMATS}  # also draws the figure: tick labels exist
    for fmt, data in files.items():
        assert len(data) > 1000 and data.lstrip().startswith(MAGIC[fmt]), fmt
    labels = []
    panels = [ax for ax in fig.axes if ax.axison]
    assert panels, "the figure has no axes"
    for ax in panels:
        if _shown_ticklabels(ax.get_xticklabels()):
            assert ax.get_xlabel().strip(), f"an x axis without a label ({ax.get_ylabel()!r})"
        if _shown_ticklabels(ax.get_yticklabels()):
            assert ax.get_ylabel().strip(), f"a y axis without a label ({ax.get_xlabel()!r})"
        labels += [ax.get_xlabel(), ax.get_ylabel()]
        if _is_colorbar(ax):
            continue
        values = np.concatenate(_data(ax)) if _data(ax) else np.array([])
        assert np.isfinite(values).any(), f"panel {ax.get_ylabel()!r} draws no finite data"
        assert not np.isinf(values).any(), f"panel {ax.get_ylabel()!r} draws infinite values"
    text = " ".join(labels)
    for unit in units:
        assert unit in text, f"{unit!r} is in no axis label: {text}"
    return files


def ratio_panels(fig: Figure) -> list[Axes]:
    """Panels labelled "/ something" that share their x axis with a panel above them."""
    return [
        ax
        for ax in fig.axes
        if ax.get_ylabel().startswith("/ ")
        and any(o is not ax and ax.get_shared_x_axes().joined(ax, o) for o in fig.axes)
    ]


# -- the shared layer -----------------------------------------------------------------------------------
def test_style_is_applied_inside_and_restored_after(tmp_path):
    before = dict(mpl.rcParams)
    with style():
        assert (
            mpl.rcParams["font.sans-serif"][0] == "TeX Gyre Heros" and mpl.rcParams["xtick.direction"] == "in"
        )
    assert dict(mpl.rcParams) == before
    with pytest.raises(ValueError, match="format 'jpg'"):
        save_figure(Figure(), tmp_path / "x.jpg")


def test_ratio_limits_keep_one_wild_bin_from_flattening_the_rest():
    assert ratio_limits([0.9, 1.0, 1.1, 40.0]) == (0.8, 3.0)
    assert ratio_limits([np.nan]) == (0.8, 1.2)


# -- unfolding -----------------------------------------------------------------------------------------
def test_unfolded_figures_have_units_ratio_panels_and_save(unfold_tiny_result, tmp_path):
    result = unfold_tiny_result
    fig = unfold_figures.unfolded_figure(result, "dpt")
    check_figure(fig, ("GeV/c", "$10^{-38}$ cm$^2$", "nucleon"))
    (ratio,) = ratio_panels(fig)
    assert ratio.get_ylabel() == "/ truth"
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert {"truth (fake data)", "prior (MC)", "OmniFold", "IBU"} <= set(labels)
    # the drawn truth is the table's content converted to 10^-38 cm^2 per GeV/c
    truth = result.histograms.query("distribution == 'dpt' and method == 'truth'").sort_values("bin")
    expected = truth["value"] * result.xsec_scale / 1e-38 / (truth["high"] - truth["low"])
    drawn = [
        p for p in fig.axes[0].patches if isinstance(p, StepPatch) and p.get_label() == "truth (fake data)"
    ]
    np.testing.assert_allclose(drawn[0].get_data().values, expected)
    check_figure(unfold_figures.unfolded_figure(result, "dphit"), ("rad",))
    save_figure(fig, tmp_path / "dpt.pdf")
    assert (tmp_path / "dpt.pdf").read_bytes().startswith(b"%PDF")


def test_two_dimensional_distribution_spans_decades_on_a_log_axis(unfold_tiny_result):
    binning = BINNINGS["muon_p_cos"]
    counts = np.full(binning.n_bins, 100.0)
    rows = [
        histogram_rows("muon_p_cos", m, binning, counts * f, np.sqrt(counts))
        for m, f in (("truth", 1.0), ("omnifold", 1.1))
    ]
    result = dataclasses.replace(unfold_tiny_result, histograms=pd.concat(rows, ignore_index=True))
    fig = unfold_figures.unfolded_figure(result, "muon_p_cos")
    check_figure(fig, ("GeV/c", r"\cos\theta_\mu", "nucleon"))
    assert fig.axes[0].get_yscale() == "log"  # the 30 GeV/c overflow bins are 100x thinner
    assert len(ratio_panels(fig)) == 1
    with pytest.raises(KeyError, match="no histograms for 'nope'"):
        unfold_figures.unfolded_figure(result, "nope")


def test_t2k_diagnostics_and_weights_figures(unfold_tiny_result):
    result = unfold_tiny_result
    fig = unfold_figures.t2k_figure(result, "dpt_t2k")
    check_figure(fig, ("GeV/c", "$10^{-38}$", "nucleon"))
    assert ratio_panels(fig)[0].get_ylabel() == "/ T2K data"
    legend = " ".join(fig.axes[0].get_legend().get_texts()[i].get_text() for i in range(3))
    assert "$\\chi^2$ =" in legend and "/8" in legend
    diagnostics = unfold_figures.diagnostics_figure(result)
    check_figure(diagnostics, ("effective sample size [events]", "OmniFold iteration"))
    weights = unfold_figures.weights_figure(result)
    check_figure(weights, ("MC events",))
    assert weights.axes[0].get_yscale() == "log"
    validation = unfold_figures.validation_figure(result)
    check_figure(validation, ("against the truth / ndof", "estimated without it", "iteration"))
    assert "last iteration's covariance" in validation.axes[1].get_ylabel() and len(validation.axes) == 3
    # one line per method and distribution in each panel: OmniFold solid, IBU dashed
    lines = validation.axes[0].get_lines()
    styles = sorted(line.get_linestyle() for line in lines if line.get_linestyle() != ":")
    assert styles == ["-", "-", "--", "--"]


# -- energy --------------------------------------------------------------------------------------------
def test_energy_figures(energy_run):
    result = energy_run.result
    fig = energy_figures.resolution_figure(result)
    check_figure(fig, ("true $E_\\nu$ [GeV]", "res68", "bias"))
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    top = fig.axes[0]
    assert all(line.get_marker() == "o" for line in top.lines if line.get_label() in {"transformer", "gbdt"})
    angle = energy_figures.angular_resolution_figure(result)
    check_figure(angle, ("[degrees]", "[GeV]"))
    assert angle.axes[0].get_xscale() == "log"
    assert {15.0, 7.0} <= {line.get_ydata()[0] for line in angle.axes[0].lines}
    heatmap = energy_figures.energy_heatmap_figure(result)
    check_figure(heatmap, ("true $E_\\nu$ [GeV]", "predicted $E_\\nu$ [GeV]", "events"))
    assert heatmap.axes[0].get_xscale() == heatmap.axes[0].get_yscale() == "log"
    assert (
        energy_figures.heatmap_table(result)["events"].sum() == result.heatmap_counts.sum() == result.n_test
    )


# -- generator -----------------------------------------------------------------------------------------
def test_generator_figures(generator_run):
    result = generator_run.result
    fig = generator_figures.marginals_figure(result)
    check_figure(fig, (r"$\cos\theta_\mu$", r"$\omega/(E_\nu - m_\mu)$", r"$\phi_N/\pi$", "density"))
    assert len(ratio_panels(fig)) == 4
    one = generator_figures.marginal_figure(result, "omega")
    assert len(ratio_panels(one)) == 1 and one.axes[0].get_legend() is not None
    pair = generator_figures.marginal_2d_figure(result, "cos_mu", "omega")
    check_figure(pair, ("reference density", "/ reference"))
    weights = generator_figures.weights_figure(result)
    check_figure(weights, ("events / bin", r"\log_{10}"))
    assert weights.axes[0].get_yscale() == "log"


# -- uncertainty ---------------------------------------------------------------------------------------
def test_uncertainty_figures(uncertainty_run):
    result, _ = uncertainty_run
    unit = uncertainty_figures.toy_unit(result.toys)
    assert "10^{-39}" in unit
    corner = uncertainty_figures.toys_vs_samples_figure(result, "flow", dims=(0, 1))
    check_figure(corner, (unit,))
    check_figure(uncertainty_figures.toys_vs_samples_figure(result, "gaussian", dims=(0, 1)), (unit,))
    check_figure(uncertainty_figures.c2st_figure(result), ("C2ST accuracy",))
    pvalues = uncertainty_figures.pvalue_figure(result)
    check_figure(pvalues, ("p-value (truth)", "p-value (model)"))
    linear, log = pvalues.axes[:2]
    assert linear.get_yscale() == "linear" and log.get_xscale() == log.get_yscale() == "log"
    check_figure(uncertainty_figures.pit_figure(result), ("PIT",))
    training = uncertainty_figures.training_figure(result)
    check_figure(training, ("nats per toy", "epoch"))
    assert training.axes[0].lines[0].get_marker() == "o"  # a few epochs: markers


# -- cross sections ------------------------------------------------------------------------------------
def test_xsec_figures(xsec_run):
    result = xsec_run.result
    setting = int(result.curves["setting"].iloc[0])
    spectrum = xsec_figures.spectrum_figure(result, setting)
    check_figure(spectrum, ("[nb/sr/GeV]", r"$\omega$ [GeV]"))
    assert spectrum.axes[0].get_legend() is not None
    with pytest.raises(KeyError):
        xsec_figures.spectrum_figure(result, 999)
    check_figure(xsec_figures.normalisations_figure(result), (r"$\lambda_k$",))
    transfer = xsec_figures.transfer_figure(result)
    check_figure(transfer, (r"$\chi^2$ per point",))
    assert transfer.axes[0].get_yscale() == "log"
    assert len([p for p in transfer.axes[0].patches if isinstance(p, Rectangle)]) == 3 * len(result.transfer)


# -- the dashboard's export buttons --------------------------------------------------------------------
def _press(button) -> bytes:
    """What the browser receives when the button is pressed."""
    button._clicks += 1
    return base64.b64decode(button.data.split(",", 1)[1])


def test_export_buttons_download_the_figure_and_the_table(xsec_run):
    result = xsec_run.result
    built = []

    def figure() -> Figure:
        built.append(1)
        return xsec_figures.normalisations_figure(result)

    row = export_row("norms", figure, {"table": result.normalisations, "later": lambda: result.curves})
    buttons = export_buttons(row)
    assert [b.label for b in buttons] == ["PNG", "PDF", "SVG", "CSV: table", "CSV: later"] and not built
    for button, fmt in zip(buttons[:3], FORMATS, strict=True):
        assert _press(button).lstrip().startswith(MAGIC[fmt]) and button.filename == f"norms.{fmt}"
    assert len(built) == 3  # one figure per press, none before
    table = pd.read_csv(io.BytesIO(_press(buttons[3])))
    assert list(table["data_set"]) == list(result.normalisations["data_set"])
    assert len(pd.read_csv(io.BytesIO(_press(buttons[4])))) == len(result.curves)


def test_result_views_export_the_selected_setting_and_distribution(xsec_run, unfold_tiny_result, monkeypatch):
    calls = []
    original = xsec_figures.spectrum_figure
    monkeypatch.setattr(xsec_figures, "spectrum_figure", lambda r, s: calls.append(s) or original(r, s))
    view = xsec_page.show_result(xsec_run.result)
    assert not calls  # the page builds no matplotlib figure until asked
    (row,) = view.spectrum_export
    png, _, _, curves, points = export_buttons(row)
    last = list(view.setting.options.values())[-1]
    view.setting.value = last
    assert (
        _press(png).startswith(b"\x89PNG")
        and calls == [last]
        and png.filename == f"spectrum_setting{last}.png"
    )
    assert set(pd.read_csv(io.BytesIO(_press(points)))["setting"]) == {last}
    assert len(_press(curves)) > 100 and curves.filename == f"spectrum_setting{last}_curves.csv"
    for tab in (view.norm_tab, view.metrics_tab, view.transfer_tab):
        assert export_buttons(tab[-1]), "each tab ends with its export row"

    unfold = unfolding_page.result_view(unfold_tiny_result)
    unfold.distribution.value = "dphit"
    buttons = export_buttons(unfold.distribution_export[0])
    assert (
        _press(buttons[2]).lstrip().startswith(MAGIC["svg"]) and buttons[2].filename == "unfolded_dphit.svg"
    )
    assert set(pd.read_csv(io.BytesIO(_press(buttons[3])))["distribution"]) == {"dphit"}
