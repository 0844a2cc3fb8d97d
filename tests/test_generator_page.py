"""The generator page's views, built from a small real result."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import pytest

from app.pages import generator as page
from numl_core.generator.workflow import GeneratorConfig, run_generator
from numl_core.jobs import Progress

TINY = dict(
    preset="custom",
    transforms=2,
    hidden=16,
    bins=8,
    rounds=1,
    events_per_round=4_000,
    epochs=1,
    batch_size=512,
    n_eval=3_000,
    n_reference=10_000,
    bins_per_dim=3,
    enu_low=0.6,
    enu_high=1.0,
    device="cpu",
)


@pytest.fixture(scope="module")
def result():
    return run_generator(GeneratorConfig(**TINY), Progress())


def test_summary_table_names_the_figures(result):
    table = page.summary_table(result)
    assert table["quantity"].iloc[0] == "RESS"
    assert {"unweighting efficiency", "MNLL, flow emulator", "bias from capping"} <= set(table["quantity"])
    values = dict(zip(table["quantity"], table["value"].astype(float), strict=True))
    assert 0 < values["RESS"] <= 1 and np.isfinite(values["MNLL, flow emulator"])


def test_ratio_frame_and_marginal_plot(result):
    ratios = page.ratio_frame(result["marginals"], "cos_mu")
    assert set(ratios["sample"]) == {"flow", "flow_reweighted"}
    assert (ratios["ratio"] > 0).all() and (ratios["error"] >= 0).all()
    assert np.isfinite(ratios["ratio"]).all() and (ratios["high"] > ratios["low"]).all()
    # 40 bins per variable; bins where the reference is empty are left out
    assert ratios.groupby("sample").size().max() <= 40
    layout = page.marginal_plot(result["marginals"], "omega")
    curves = [el for el in layout[0] if isinstance(el, hv.Curve)]
    assert len(curves) == 3 and curves[0].label == "reference (weighted)"


def test_weight_plot_and_result_view(result):
    hist = page.weight_plot(result["weight_histogram"])
    assert int(hist.data["events"].sum()) == 3_000
    view = page.result_view(result)
    assert isinstance(view, pn.Column)
    text = view[0].object
    assert "parameters" in text
    written = page.result_view({"output_file": "x.parquet", "n_events": 5, "n_drawn": 10, "seconds": 0.1})
    assert "Wrote 5 events" in written[0].object


def test_live_metric_groups():
    assert page.metric_group({"name": "loss", "split": "train"}) == "loss"
    assert page.metric_group({"name": "proposal_ress"}) == "proposal_ress"
    assert page.metric_group({"name": "ress"}) is None


def test_marginal_2d_plot_shows_reference_and_ratio(result):
    m2 = result["marginals_2d"]
    assert {"reference", "flow"} <= set(m2["sample"])
    layout = page.marginal_2d_plot(m2, "cos_mu", "omega")
    ref, ratio = layout[0], layout[1]
    assert isinstance(ref, hv.QuadMesh) and isinstance(ratio, hv.QuadMesh)
    # 12 x 12 bins; the ratio is positive wherever both samples fill a bin
    values = ratio.dimension_values(2, flat=False)
    assert values.shape == (12, 12)
    filled = np.isfinite(values) & (values > 0)
    assert filled.sum() > 20
    view = page.result_view(result)
    tabs = [t for t in view if isinstance(t, pn.Tabs)][0]
    assert "2-D marginals" in tabs._names
