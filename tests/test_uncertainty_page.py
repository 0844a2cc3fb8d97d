"""The uncertainty page's views, built from the shared tiny run (``uncertainty_run``), and one tiny job
through the page."""

from __future__ import annotations

import dataclasses
import inspect

import holoviews as hv
import numpy as np
import pandas as pd
import pytest

from app.components.page import build_page
from app.pages import uncertainty as page
from numl_core.runs import RunDir
from numl_core.uncertainty import train
from numl_core.uncertainty.workflow import WORKFLOW, expected_series
from tests.fixtures.uncertainty import UNCERTAINTY_TINY


@pytest.fixture
def result(uncertainty_run):
    return uncertainty_run[0]


def test_corner_plot_has_every_pair(result):
    layout = page.corner_plot(result.toys_sample, result.flow_sample, (0, 1, 2))
    # 3 diagonal histograms + 3 pairs below the diagonal
    assert len(layout) == 6
    scatters = [el for panel in layout for el in panel if isinstance(el, hv.Scatter)]
    assert len(scatters) == 6 and scatters[0].data.shape[0] == 400
    t2k = page.corner_plot(result.toys_sample, result.flow_sample, (0, 1), unit=page.figures.T2K_UNIT)
    diagonal, pair = hv.render(t2k[0]), hv.render(t2k[1])
    assert diagonal.xaxis[0].axis_label == "x0 [10⁻³⁹ cm²/(GeV/c)/nucleon]"
    assert diagonal.yaxis[0].axis_label == "density [1/(10⁻³⁹ cm²/(GeV/c)/nucleon)]"
    assert pair.xaxis[0].axis_label.startswith("x0 [") and pair.yaxis[0].axis_label.startswith("x1 [")


def test_c2st_and_pvalue_views(result):
    bars = page.c2st_bars(result.metrics)
    models = list(bars.Bars.I.data["model"])
    assert models == ["gaussian", "marginal_gaussian", "flow", "truth"]
    overlay = page.pvalue_scatter(result.pvalues, "truth")
    labels = [el.label for el in overlay if isinstance(el, hv.Scatter)]
    assert labels == ["Gaussian (chi2)", "Gaussian, ranked among the toys", "transformed Gaussian", "flow"]
    # every element shares the axes, so the plot is labelled with them rather than Curve's default x / y
    assert {(el.kdims[0].name, el.vdims[0].name) for el in overlay} == {
        ("p-value (truth)", "p-value (model)")
    }
    frame = page.metrics_frame(result.metrics)
    assert list(frame["model"]) == [
        "Gaussian (chi2)",
        "Gaussian, ranked among the toys",
        "transformed Gaussian",
        "flow",
        "truth",
    ]


def test_observation_explanation_names_both_pvalues(result):
    text = page.explain_observation(result.observed)
    observed = result.observed.set_index("model")
    assert (
        f"{observed.loc['gaussian', 'pvalue']:.4f}" in text
        and f"{observed.loc['flow', 'pvalue']:.4f}" in text
    )
    assert "fraction of flow samples" in text
    assert "No observation" in page.explain_observation(pd.DataFrame())


def test_result_view_tabs_and_summary(result, tmp_path):
    view = page.result_view(result)
    summary, tabs = view.objects
    assert "non-Gaussianity C2ST" in summary.object and "6 dimensions" in summary.object
    assert tabs._names == ["Toys vs samples", "C2ST", "p-values", "Observation", "Near → far", "Training"]
    # the Runs tab's path: the result saved, loaded back as its type, and shown the same way
    run_dir = RunDir(tmp_path / "run")
    result.save(run_dir)
    again = page.result_view(WORKFLOW.load_result(run_dir))
    assert again.objects[0].object == summary.object and again.objects[1]._names == tabs._names
    without = page.result_view(dataclasses.replace(result, near_far=None))
    assert "Near → far" not in without.objects[1]._names


def test_upload_parsing_uses_the_core_parser():
    assert page.observation_from_upload(b"1,2,3\n") == "1.0, 2.0, 3.0"
    assert page.observation_from_upload(b"x0,x1\n0.5,7\n") == "0.5, 7.0"
    assert page.observation_from_upload(b"1 2; 3\n4,5\n") == "4.0, 5.0"  # the core's error, then row 2
    with pytest.raises(ValueError, match="numbers separated by commas"):
        page.observation_from_upload(b"a,b\nc,d\n")


def test_the_page_names_no_metric():
    """The live plots come from the core: the page spells none of the metric names it emits."""
    source = inspect.getsource(page)
    names = {
        s.split(" (")[0]
        for v in expected_series(page.UncertaintyConfig(run_near_far=True)).values()
        for s in v
    }
    assert names == {train.loss_name(train.FLOW_PREFIX)} | {
        train.loss_name(train.near_far_prefix(k)) for k in ("transformer", "flow")
    }
    # nor builds one from a prefix (a string opening with it), nor routes records itself
    prefixes = (f'"{train.FLOW_PREFIX}', f'"{train.NEAR_FAR_PREFIX}', f'f"{train.NEAR_FAR_PREFIX}')
    for name in (*names, *prefixes, '"c2st"', "metric_group", "expected_series"):
        assert name not in source


def test_page_runs_a_tiny_job_and_shows_its_result(shared):
    from app.context import AppContext, new_token

    ctx = AppContext(shared, new_token(), workflows={"uncertainty": WORKFLOW})
    view = build_page(page.PAGE, ctx)
    panel = ctx.job_panels["uncertainty"]
    assert panel.config.n_toys == page.APP_DEFAULTS["n_toys"]
    assert panel.config.toys == "sinh_arcsinh"  # the hard case is the page's default comparison
    for key, value in UNCERTAINTY_TINY.items():
        setattr(panel.config, key, value)
    job = panel.start()
    assert job is not None and job.wait(120) == "done"
    panel.poll()
    panel.poll()
    shown = panel.result_area.objects[0]
    assert "toys **sinh_arcsinh**" in shown.objects[0].object
    assert panel.curves.received > 0  # the live NLL records reached the curves
    assert np.isfinite(job.result.metrics["c2st"]).all()

    # later: score two new observations with this run's densities, through the same panel
    assert any("Score observations" in str(getattr(v, "title", "")) for v in view.objects)
    box = page.ScoreBox(panel)
    box.text.value = "0.1, 0.1, 0.1, 0.1, 0.1, 0.1\n2, 2, 2, 2, 2, 2"
    box.start()
    scored = panel.job
    assert scored is not job and scored.label == "score"
    assert scored.wait(120) == "done", scored.traceback
    assert scored.result.n_observations == 2 and set(scored.result.observed["observation"]) == {0, 1}
    assert "Scored 2 observation(s)" in page.result_view(scored.result)[0].object


def test_views_without_truth_compare_against_the_flow(result):
    no_truth = dataclasses.replace(
        result,
        metrics=result.metrics[result.metrics["model"] != "truth"],
        pvalues=result.pvalues.drop(columns=["truth", "truth_error"]),
        near_far=pd.DataFrame({"model": ["truth", "flow"], "nll": [1.0, 1.2]}),
        has_truth=False,
    )
    view = page.result_view(no_truth)
    tabs = view.objects[1]
    assert "Near → far" in tabs._names
    overlay = page.pvalue_scatter(no_truth.pvalues, "flow")
    scatters = [el for el in overlay if isinstance(el, hv.Scatter)]
    assert {el.kdims[0].name for el in scatters} == {"p-value (flow)"}
    assert "flow" not in {el.label for el in scatters}
    assert list(page.metrics_frame(no_truth.metrics).index) == [0, 1, 2, 3]
