"""The energy page's views, built from the session's tiny trained run (no browser)."""

from __future__ import annotations

import dataclasses
import io

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import pytest

from app.components.page import PageSpec, build_page
from app.components.tables import csv_bytes
from app.context import AppContext, new_token
from app.pages import energy as page
from numl_core.energy.config import EnergyConfig
from numl_core.energy.result import PredictResult
from numl_core.energy.workflow import ABLATION, WORKFLOW


def test_page_spec_uses_the_shared_builder_and_the_core_live_plots(shared):
    assert isinstance(page.PAGE, PageSpec) and page.PAGE.workflow == "energy"
    assert not hasattr(page, "metric_group") and not hasattr(page, "expected_series")
    ctx = AppContext(shared, new_token())
    view = build_page(page.PAGE, ctx)
    panel = ctx.job_panels["energy"]
    assert panel.config.n_events == page.APP_DEFAULTS["n_events"] and panel.config.epochs == 5
    assert panel.expected_series(panel.config) == WORKFLOW.live_plots.expected(panel.config)
    assert isinstance(view, pn.Column) and view[1].title == "Threshold sensitivity"
    # the loss-term editor is among the panel's controls and edits the panel's config
    (editor,) = [c for c in page.PAGE.controls(panel.config) if isinstance(c, page.LossTermEditor)]
    assert editor.config is panel.config


def test_comparison_table_matches_the_result(energy_run):
    result = energy_run.result
    cc = page.comparison_table(result, "CC")
    assert list(cc["estimator"]) == [
        "transformer",
        "calorimetric",
        "gbdt",
        ABLATION,
        "visible momentum",
        "lepton or visible",
    ]
    row = cc[cc["estimator"] == "transformer"].iloc[0]
    assert row["res68"] == pytest.approx(result.energy_res68_transformer_cc)
    assert row["angle68"] == pytest.approx(result.angle_res68_deg_transformer)
    assert page.comparison_table(result, "all")["n"].iloc[0] == result.n_test


def test_plots_carry_the_numbers(energy_run):
    result = energy_run.result
    overlay = page.resolution_plot(result)
    labels = [c.label for c in overlay if isinstance(c, hv.Curve)]
    assert labels == ["transformer", "calorimetric", "gbdt", ABLATION]
    binned = result.resolution_by_energy
    first = binned[binned["estimator"] == "transformer"]["res68"].to_numpy()
    np.testing.assert_allclose(overlay.get(0).dimension_values(1), first)
    # a few energy bins: every curve carries markers; axes say what and in which unit; legend beside the data
    assert len([c for c in overlay if isinstance(c, hv.Scatter)]) == 4
    fig = hv.render(overlay)
    assert fig.xaxis[0].axis_label == "true E_ν [GeV]"
    assert fig.yaxis[0].axis_label == "res68 of ΔE/E_true"
    assert fig.legend[0] in fig.right
    image = page.heatmap_plot(result)
    assert isinstance(image, hv.Image) and image.data.sum() == result.n_test
    fig = hv.render(image)
    assert "[GeV]" in fig.xaxis[0].axis_label and "[GeV]" in fig.yaxis[0].axis_label
    colorbar = next(r for r in fig.right if type(r).__name__ == "ColorBar")
    assert colorbar.title == "test events / cell"


def test_ranges_and_thresholds(energy_run):
    result = energy_run.result
    ranges = page.range_table(result)
    assert set(ranges["energy_range"]) == {"0.1-1", "0.1-5", "0.1-10", "0.1-100"}
    assert ranges["angle68"].notna().all()
    other = dataclasses.replace(
        result, thresholds_mev={**result.thresholds_mev, "p": 50.0}, energy_res68_transformer_cc=0.5
    )
    table = page.threshold_comparison(result, other)
    p_row = table[table["quantity"] == "threshold p (MeV)"].iloc[0]
    assert (p_row["A"], p_row["B"], p_row["B - A"]) == (25.0, 50.0, 25.0)
    res = table[table["quantity"] == "energy_res68_transformer_cc"].iloc[0]
    assert res["B - A"] == pytest.approx(0.5 - result.energy_res68_transformer_cc)
    # a headline value that was not computed compares as NaN
    none = dataclasses.replace(result, energy_res68_gbdt_cc=None)
    gbdt = page.threshold_comparison(result, none).set_index("quantity").loc["energy_res68_gbdt_cc"]
    assert np.isnan(gbdt["B"]) and np.isnan(gbdt["B - A"])


def test_result_view_and_summary(energy_run):
    result = energy_run.result
    view = page.EnergyResults().show(result)
    assert "train" in view.summary.object and "E res68 (CC)" in view.summary.object
    assert len(view.export_tab[1]) == 5
    csv = csv_bytes(result.predictions).getvalue().decode()
    assert pd.read_csv(io.StringIO(csv)).shape == result.predictions.shape
    # the Runs tab: the stored run loads back as its typed result and draws the same view
    stored = page.PAGE.result_view(WORKFLOW.load_result(energy_run.run))
    assert stored.summary.object == view.summary.object


def test_predict_result_view():
    frame = pd.DataFrame({"file": ["a.csv"] * 3, "event_id": [1, 2, 3], "pred_enu_truth": [1.0, 2.0, 3.0]})
    view = page.result_view(PredictResult(frame, n_files=1))
    assert "3 events from 1 file" in view[0].object and len(view[2]) == 1


def test_threshold_comparison_of_two_stored_runs(shared, energy_run):
    ctx = AppContext(shared, new_token())
    result = energy_run.result
    ids = []
    for p in (25.0, 40.0):
        run = ctx.store.create("energy", energy_run.config)
        dataclasses.replace(result, thresholds_mev={**result.thresholds_mev, "p": p}).save(run)
        run.update_info({"state": "done"})
        ids.append(run.id)
    box = page.ThresholdComparison(ctx)
    assert sorted(box.a.options) == sorted(ids) and box.a.value != box.b.value
    box.a.value, box.b.value = ids
    box.compare()
    table = box.out[0].value.set_index("quantity")
    assert table.loc["threshold p (MeV)", "B - A"] == 15.0
    assert table.loc["energy_res68_transformer_cc", "B - A"] == 0.0


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
