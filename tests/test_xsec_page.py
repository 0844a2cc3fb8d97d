"""The cross-section page's views, built from the session's tiny real result (no browser)."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest

from app.components.page import PageSpec, build_page
from app.pages import xsec as page
from numl_core.xsec.workflow import WORKFLOW
from tests.fixtures.xsec import XSEC_TINY


def test_spectrum_plot_shows_data_bands_and_peak(xsec_run):
    result = xsec_run.result
    options = page.setting_options(result)
    assert len(options) == 6
    label, setting = next(iter(options.items()))
    overlay = page.spectrum_plot(result, setting)
    labels = {e.label for e in overlay}
    assert {"bootstrap ensemble", "MC dropout"} <= labels
    assert any(lbl.startswith("data (") for lbl in labels)
    peak = [e for e in overlay if isinstance(e, hv.VLine)]
    curves = result.curves[result.curves["setting"] == setting]
    assert len(peak) == 1 and peak[0].data == pytest.approx(curves["omega_qe"].iloc[0])
    points = result.points[result.points["setting"] == setting]
    scatter_y = np.concatenate([e.dimension_values(1) for e in overlay if isinstance(e, hv.Scatter)])
    assert np.allclose(np.sort(scatter_y), np.sort(points["xsec"] / points["lambda"]))
    boot = [e for e in overlay if isinstance(e, hv.Curve) and e.label == "bootstrap ensemble"][0]
    assert np.allclose(boot.dimension_values(1), curves.sort_values("omega")["boot_mean"])
    assert label in overlay.opts.get().kwargs["title"]
    fig = hv.render(overlay)  # what the reader sees: the export figure's labels, units included
    assert fig.xaxis[0].axis_label == "energy transfer ω [GeV]"
    assert fig.yaxis[0].axis_label == "d²σ/dΩdω [nb/sr/GeV]"
    with pytest.raises(KeyError):
        page.spectrum_plot(result, 999)


def test_result_view_fills_every_tab(xsec_run):
    view = page.PAGE.result_view(xsec_run.result)
    assert "nucleus O" in view.summary.object and "held out by points" in view.summary.object
    norms = view.norm_tab[1].value
    assert list(norms["data_set"]) == ["Anghinolfi:1996vm", "O'Connell:1987ag"]
    metrics = view.metrics_tab[1].value
    assert list(metrics["method"]) == ["bootstrap ensemble", "MC dropout"]
    transfer = view.transfer_tab[2].value
    assert list(transfer["nucleus"]) == ["Al"]
    assert view.plot.object is not None


def test_result_view_of_a_stored_run_and_of_a_transfer(xsec_run):
    stored = page.PAGE.result_view(WORKFLOW.load_result(xsec_run.run))
    assert "nucleus O" in stored.summary.object and stored.plot.object is not None
    from numl_core.xsec.result import TransferResult

    result = xsec_run.result
    transfer = TransferResult(result.transfer, result.transfer_points, "O", "all layers", 1.5)
    view = page.PAGE.result_view(transfer)
    assert view.summary.object == (
        "**Result:** base model O, transfer (all layers) to 1 nucleus/nuclei, 1.5 s"
    )
    assert view.plot.object is None and list(view.transfer_tab[2].value["nucleus"]) == ["Al"]
    assert "No metrics" in view.metrics_tab[0].object


def test_transfer_plot_has_three_bars_per_nucleus(xsec_run):
    bars = page.transfer_plot(xsec_run.result.transfer)
    assert len(bars.data) == 3 * len(xsec_run.result.transfer)


def test_data_set_picker_writes_the_config():
    config = WORKFLOW.config_cls(nucleus="O")
    picker = page.PAGE.controls(config)[0]
    assert isinstance(picker, page.DataSetPicker)
    assert picker.experiments.options == ["Anghinolfi:1996vm", "O'Connell:1987ag"]
    picker.experiments.value = ["O'Connell:1987ag"]
    assert config.experiments == ["O'Connell:1987ag"]
    picker.excluded.value = [picker.excluded.options[0]]
    assert config.exclude_settings == [picker.excluded.options[0]]
    config.nucleus = "Al"
    assert "Day:1993md" in picker.experiments.options and picker.excluded.value == []


def test_page_runs_a_tiny_job_and_shows_its_result(shared):
    from app.context import AppContext, new_token

    assert isinstance(page.PAGE, PageSpec) and page.PAGE.workflow == "xsec"
    ctx = AppContext(shared, new_token(), workflows={"xsec": WORKFLOW})
    panel = build_page(page.PAGE, ctx)
    assert panel.config.members == page.APP_DEFAULTS["members"]
    for key, value in {**XSEC_TINY, "members": 2, "epochs": 4, "mc_samples": 4}.items():
        setattr(panel.config, key, value)
    job = panel.start()
    assert job is not None and job.wait(60) == "done"
    panel.poll()
    panel.poll()
    shown = panel.result_area.objects[0]
    assert "nucleus O" in shown.objects[0].object  # the results view's summary line
    assert panel.curves.received > 0  # the live chi2 records reached the curves
