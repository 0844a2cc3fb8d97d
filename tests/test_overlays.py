"""Result overlays of compared runs: each workflow's selection of its curves (``result_curves`` of its
figures module, declared as the workflow's ``result_overlay``)
from small hand-made result tables, their grouping per plot, the partial read from stored runs, and the
dashboard's drawing of them (app.components.plots.overlay_plot, the Runs tab's compare_results)."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn

from app.components.plots import overlay_plot
from app.components.run_browser import compare_results
from numl_core import workflows
from numl_core.energy import figures as energy_figures
from numl_core.energy.figures import result_curves as energy_curves
from numl_core.overlays import Curve, overlays, run_overlays
from numl_core.runs import RunStore
from numl_core.unfold.figures import FLAT_BIN, events_density_label, variable_label
from numl_core.unfold.figures import result_curves as unfold_curves
from numl_core.xsec import figures as xsec_figures
from numl_core.xsec.figures import MAX_SETTINGS
from numl_core.xsec.figures import result_curves as xsec_curves

UNFOLD_OVERLAY = workflows.get("unfold").result_overlay


def _histograms(scale: float = 1.0) -> pd.DataFrame:
    """Two bins of dpt per method (the second 2 wide) and two bins of a 2-D distribution."""
    one_d = [
        {"distribution": "dpt", "method": m, "bin": b, "low": lo, "high": hi, "value": v * scale, "error": 1}
        for m, values in (("omnifold", (10.0, 40.0)), ("ibu", (99.0, 99.0)), ("truth", (5.0, 5.0)))
        for b, (lo, hi, v) in enumerate(zip((0.0, 1.0), (1.0, 3.0), values, strict=True))
    ]
    two_d = [
        {"distribution": "mu_2d", "method": "omnifold", "bin": b, "low": 0.0, "high": 1.0, "value": v,
         "error": 1.0, "slice_low": s, "slice_high": s + 1.0}
        for b, (s, v) in enumerate(((0.0, 7.0), (1.0, 8.0)))
    ]  # fmt: skip
    return pd.DataFrame(one_d + two_d)


def test_unfold_curves_are_omnifold_per_unit_of_the_variable_and_2d_by_flat_bin() -> None:
    dpt, two_d = unfold_curves({"histograms": _histograms()})
    assert dpt.plot == "dpt: OmniFold unfolded" and dpt.steps
    assert dpt.x.tolist() == [0.0, 1.0, 1.0, 3.0]
    assert dpt.y.tolist() == [10.0, 10.0, 20.0, 20.0]  # 40 events over a bin 2 wide; no IBU, no truth
    assert (dpt.xlabel, dpt.ylabel) == (variable_label("dpt"), events_density_label("dpt"))
    assert two_d.xlabel == FLAT_BIN and two_d.y.tolist() == [7.0, 7.0, 8.0, 8.0]
    assert unfold_curves({}) == []


def test_energy_curves_are_res68_per_estimator_against_true_energy() -> None:
    table = pd.DataFrame(
        {
            "estimator": ["transformer", "transformer", "calorimetric", "calorimetric"],
            "low": [0.1, 1.0, 0.1, 1.0],
            "high": [1.0, 10.0, 1.0, 10.0],
            "res68": [0.3, np.nan, 0.5, 0.4],
        }
    )
    transformer, calorimetric = energy_curves({"resolution_by_energy": table})
    assert transformer.plot == "res68 vs true energy: transformer" and transformer.logx
    assert transformer.y.tolist() == [0.3] and np.allclose(transformer.x, [np.sqrt(0.1)])  # NaN left out
    assert calorimetric.y.tolist() == [0.5, 0.4]
    assert (transformer.xlabel, transformer.ylabel) == (
        energy_figures.TRUE_ENERGY,
        energy_figures.RESOLUTION_LABELS["res68"],
    )


def test_xsec_curves_are_the_ensemble_mean_of_the_first_settings() -> None:
    rows = [
        {"setting": s, "setting_label": f"E{s}", "omega": w, "boot_mean": 10.0 * s + w, "mc_mean": -1.0}
        for s in range(MAX_SETTINGS + 2)
        for w in (0.2, 0.1)
    ]
    curves = xsec_curves({"curves": pd.DataFrame(rows)})
    assert [c.plot for c in curves] == [f"E{s}: bootstrap ensemble mean" for s in range(MAX_SETTINGS)]
    assert curves[1].x.tolist() == [0.1, 0.2] and curves[1].y.tolist() == [10.1, 10.2]  # sorted by omega
    assert (curves[0].xlabel, curves[0].ylabel) == (xsec_figures.OMEGA_LABEL, xsec_figures.XSEC_LABEL)


def test_overlays_group_runs_per_plot_and_choose_a_log_axis_over_two_decades() -> None:
    low = Curve("a", np.array([1.0, 2.0]), np.array([1.0, 2.0]), "x", "y")
    high = Curve("a", np.array([1.0, 2.0]), np.array([1.0, 500.0]), "x", "y")
    empty = Curve("b", np.array([]), np.array([]), "x", "y")
    (plot,) = overlays({"r1": [low, empty], "r2": [high]})
    assert list(plot.curves) == ["r1", "r2"] and plot.logy
    (linear,) = overlays({"r1": [low], "r2": [low]})
    assert not linear.logy


def _stored_unfold_runs(tmp_path, n: int = 3) -> list:  # noqa: ANN001 - pytest's tmp_path
    store = RunStore(tmp_path / "runs")
    runs = []
    for k in range(n):
        run = store.create("unfold", None)
        run.save_result({"histograms": _histograms(k + 1.0), "weights": np.ones(3), "n_mc": 3})
        run.update_info({"state": "done"})
        runs.append(run)
    return runs


def test_run_overlays_read_the_declared_fields_of_each_stored_run(tmp_path) -> None:
    runs = _stored_unfold_runs(tmp_path)
    assert UNFOLD_OVERLAY.fields == ("histograms",)
    dpt, _ = run_overlays(UNFOLD_OVERLAY, runs)
    assert list(dpt.curves) == [run.id for run in runs]
    assert [c.y[0] for c in dpt.curves.values()] == [10.0, 20.0, 30.0]
    assert run_overlays(workflows.get("generator").result_overlay, runs) == []


def test_the_comparison_draws_one_overlaid_result_plot_per_distribution(tmp_path) -> None:
    runs = _stored_unfold_runs(tmp_path)
    infos = [run.read_info() for run in runs]
    view = compare_results(runs, infos)
    assert view.visible and "numl-compare-results" in view.css_classes
    panes = [p for p in view if isinstance(p, pn.pane.HoloViews)]
    assert len(panes) == 2
    curves = panes[0].object.traverse(lambda e: e, [hv.Curve])
    assert [c.label for c in curves] == [run.id for run in runs]
    assert not compare_results(runs[:1], infos[:1]).visible  # one finished run: nothing to overlay
    mixed = [infos[0], {**infos[1], "workflow": "energy"}]
    assert not compare_results(runs[:2], mixed).visible


def test_overlay_plot_labels_its_axes_with_the_export_figures_units() -> None:
    (plot,) = overlays({"r1": energy_curves({"resolution_by_energy": pd.DataFrame(
        {"estimator": "transformer", "low": [0.1], "high": [1.0], "res68": [0.2]})})})  # fmt: skip
    drawn = hv.render(overlay_plot(plot), backend="bokeh")
    assert drawn.xaxis[0].axis_label == "true E_ν [GeV]"
    assert drawn.yaxis[0].axis_label == "res68 of ΔE/E_true"
    assert type(drawn.x_scale).__name__ == "LogScale"
