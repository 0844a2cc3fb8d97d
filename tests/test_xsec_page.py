"""The cross-section page's views, built from a small real result (no browser)."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest

from app.pages import xsec as page
from numl_core.jobs import Progress
from numl_core.xsec.workflow import XsecConfig, run_xsec

TINY = dict(
    nucleus="O",
    members=2,
    depth=2,
    width=8,
    epochs=4,
    batch_size=32,
    mc_samples=4,
    grid_points=10,
    with_transfer=True,
    targets=["Al"],
    finetune_epochs=2,
    device="cpu",
)


@pytest.fixture(scope="module")
def result():
    return run_xsec(XsecConfig(**TINY), Progress())


def test_spectrum_plot_shows_data_bands_and_peak(result):
    options = page.setting_options(result)
    assert len(options) == 6
    label, setting = next(iter(options.items()))
    overlay = page.spectrum_plot(result, setting)
    labels = {e.label for e in overlay}
    assert {"bootstrap ensemble", "MC dropout"} <= labels
    assert any(lbl.startswith("data (") for lbl in labels)
    peak = [e for e in overlay if isinstance(e, hv.VLine)]
    curves = result["curves"][result["curves"]["setting"] == setting]
    assert len(peak) == 1 and peak[0].data == pytest.approx(curves["omega_qe"].iloc[0])
    points = result["points"][result["points"]["setting"] == setting]
    scatter_y = np.concatenate([e.data["xsec"].to_numpy() for e in overlay if isinstance(e, hv.Scatter)])
    assert np.allclose(np.sort(scatter_y), np.sort(points["xsec"] / points["lambda"]))
    assert label in overlay.opts.get().kwargs["title"]
    with pytest.raises(KeyError):
        page.spectrum_plot(result, 999)


def test_result_view_fills_every_tab(result):
    view = page.result_view(result)
    assert "nucleus O" in view.summary.object and "held out by points" in view.summary.object
    norms = view.norm_tab[1].value
    assert list(norms["data_set"]) == ["Anghinolfi:1996vm", "O'Connell:1987ag"]
    metrics = view.metrics_tab[1].value
    assert list(metrics["method"]) == ["bootstrap ensemble", "MC dropout"]
    transfer = view.transfer_tab[2].value
    assert list(transfer["nucleus"]) == ["Al"]
    assert view.plot.object is not None


def test_transfer_plot_has_three_bars_per_nucleus(result):
    bars = page.transfer_plot(result["transfer"])
    assert len(bars.data) == 3 * len(result["transfer"])


def test_live_metric_routing():
    assert page.metric_group({"name": "boot_loss", "term": "chi2", "split": "val"}) == "chi2"
    assert page.metric_group({"name": "finetune_Al_loss", "term": "chi2"}) == "transfer chi2"
    assert page.metric_group({"name": "boot_loss", "term": "total"}) is None
    assert len(page.expected_series(XsecConfig(mc_dropout=0.0))["chi2"]) == 4
    assert {"mc_loss (val, chi2)", "boot_log_loss (train, chi2)"} <= set(
        page.expected_series(XsecConfig())["chi2"]
    )


def test_data_set_picker_writes_the_config():
    config = XsecConfig(nucleus="O")
    picker = page.DataSetPicker(config)
    assert picker.experiments.options == ["Anghinolfi:1996vm", "O'Connell:1987ag"]
    picker.experiments.value = ["O'Connell:1987ag"]
    assert config.experiments == ["O'Connell:1987ag"]
    picker.excluded.value = [picker.excluded.options[0]]
    assert config.exclude_settings == [picker.excluded.options[0]]
    config.nucleus = "Al"
    assert "Day:1993md" in picker.experiments.options and picker.excluded.value == []


def test_page_runs_a_tiny_job_and_shows_its_result(shared):
    from app.context import AppContext, new_token
    from numl_core.xsec.workflow import WORKFLOW

    ctx = AppContext(shared, new_token(), workflows={"xsec": WORKFLOW})
    panel = page.build_page(ctx)
    assert panel.config.members == page.APP_DEFAULTS["members"]
    for key, value in {**TINY, "with_transfer": False}.items():
        setattr(panel.config, key, value)
    job = panel.start()
    assert job is not None and job.wait(60) == "done"
    panel.poll()
    panel.poll()
    shown = panel.result_area.objects[0]
    assert "nucleus O" in shown.objects[0].object  # the results view's summary line
    assert panel.curves.received > 0  # the live chi2 records reached the curves
