"""The energy page's views, built from a small real result (no browser)."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import pytest

from app.pages import energy as page
from numl_core.energy.config import EnergyConfig
from numl_core.energy.workflow import run_energy
from numl_core.jobs import Progress

TINY = dict(
    n_events=600,
    epochs=1,
    d_model=16,
    nhead=2,
    num_layers=1,
    dim_feedforward=32,
    batch_size=128,
    device="cpu",
    export=False,
)


@pytest.fixture(scope="module")
def result():
    return run_energy(EnergyConfig(**TINY), Progress())


def test_live_metric_groups():
    assert page.metric_group({"name": "loss", "term": "total", "split": "val"}) == "loss"
    assert page.metric_group({"name": "ablation_loss", "term": "energy", "split": "train"}) == "loss terms"
    assert page.metric_group({"name": "lr"}) is None
    series = page.expected_series(EnergyConfig())
    assert series["loss"] == ["loss (train, total)", "loss (val, total)"]
    assert "loss (val, direction)" in series["loss terms"] and len(series["loss terms"]) == 6


def test_comparison_table_matches_the_result(result):
    cc = page.comparison_table(result, "CC")
    assert list(cc["estimator"]) == [
        "transformer",
        "calorimetric",
        "gbdt",
        "visible momentum",
        "lepton or visible",
    ]
    row = cc[cc["estimator"] == "transformer"].iloc[0]
    assert row["res68"] == pytest.approx(result["energy_res68_transformer_cc"])
    assert row["angle68"] == pytest.approx(result["angle_res68_deg_transformer"])
    assert page.comparison_table(result, "all")["n"].iloc[0] == result["n_test"]


def test_plots_carry_the_numbers(result):
    overlay = page.resolution_plot(result)
    labels = [c.label for c in overlay]
    assert labels == ["transformer", "calorimetric", "gbdt"]
    binned = result["resolution_by_energy"]
    first = binned[binned["estimator"] == "transformer"]["res68"].to_numpy()
    np.testing.assert_allclose(overlay.get(0).dimension_values(1), first)
    image = page.heatmap_plot(result)
    assert isinstance(image, hv.Image) and image.data.sum() == result["n_test"]


def test_ranges_and_thresholds(result):
    ranges = page.range_table(result)
    assert set(ranges["energy_range"]) == {"0.1-1", "0.1-5", "0.1-10", "0.1-100"}
    assert ranges["angle68"].notna().all()
    other = dict(
        result, thresholds_mev={**result["thresholds_mev"], "p": 50.0}, energy_res68_transformer_cc=0.5
    )
    table = page.threshold_comparison(result, other)
    p_row = table[table["quantity"] == "threshold p (MeV)"].iloc[0]
    assert (p_row["A"], p_row["B"], p_row["B - A"]) == (25.0, 50.0, 25.0)
    res = table[table["quantity"] == "energy_res68_transformer_cc"].iloc[0]
    assert res["B - A"] == pytest.approx(0.5 - result["energy_res68_transformer_cc"])


def test_result_view_and_summary(result):
    view = page.EnergyResults().show(result)
    assert "train" in view.summary.object and "E res68 (CC)" in view.summary.object
    assert len(view.export_tab[1]) == 5
    csv = page.csv_bytes(result["predictions"]).getvalue().decode()
    assert pd.read_csv(pd.io.common.StringIO(csv)).shape == result["predictions"].shape
    assert page.result_view(result) is not None


def test_loss_term_editor_drives_the_config():
    config = EnergyConfig()
    editor = page.LossTermEditor(config)
    labels = [row["label"] for row in editor.rows]
    assert labels[:8] == ["energy", "momentum", "direction", "cos_zenith"] + [
        "baseline",
        "missing_pt",
        "invariant_mass",
        "q2",
    ]
    assert {r["label"] for r in editor.rows if r["enabled"]} == {"energy", "direction", "invariant_mass"}
    editor.widgets[labels.index("direction")][0].value = False
    box, coefficient, _ = editor.widgets[labels.index("q2")]
    coefficient.value = 0.5
    box.value = True
    assert [t["term"] for t in config.loss_terms] == ["energy", "invariant_mass", "q2"]
    assert config.loss_terms[-1]["coefficient"] == 0.5
    config.validate()
    # a config restored from a stored run redraws the editor, target terms included
    config.loss_terms = [
        {"term": "target", "loss": "mean absolute error", "coefficient": 2.0, "column": "enu_truth"}
    ]
    assert [r["label"] for r in editor.rows if r["enabled"]] == ["target:enu_truth"]
    assert page.terms_from_rows(page.loss_rows(config.loss_terms)) == config.loss_terms
    assert editor.widgets[-1][1].value == 2.0
