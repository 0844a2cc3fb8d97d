"""The generator page: its views of the tiny run's typed results, and the "Generate events" box running
the ``sample`` action through the shared job panel."""

from __future__ import annotations

import time

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document

from app.components.page import build_page
from app.context import AppContext, new_token
from app.pages import generator as page
from numl_core.generator import sampling as smp
from numl_core.generator.result import SampleResult
from numl_core.generator.workflow import WORKFLOW, run_generator
from numl_core.jobs import Job

TIMEOUT = 120


def test_marginal_plot_draws_densities_and_the_cores_ratios(generator_run):
    marginals = generator_run.result.marginals
    layout = page.marginal_plot(marginals, "omega")
    curves = [el for el in layout[0] if isinstance(el, hv.Curve)]
    assert len(curves) == 3 and curves[0].label == "reference (weighted)"
    fig = hv.render(layout[0])
    assert (
        fig.xaxis[0].axis_label == "ω/(E_ν-m_μ)"
        and fig.yaxis[0].axis_label == "density (1/N dN/dω/(E_ν-m_μ))"
    )
    assert fig.legend[0] in fig.right  # beside the densities, not over them
    bars = [el for el in layout[1] if isinstance(el, hv.ErrorBars)]
    ratios = smp.marginal_ratios(marginals[marginals["variable"] == "omega"])
    assert len(bars) == 2 and len(bars[0].data) == (ratios["sample"] == "flow").sum()
    np.testing.assert_allclose(
        bars[0].dimension_values("ratio"), ratios.loc[ratios["sample"] == "flow", "ratio"]
    )


def test_weight_plot_and_result_view(generator_run):
    result = generator_run.result
    hist = page.weight_plot(result.weight_histogram)
    assert int(hist.data["events"].sum()) == generator_run.config.n_eval
    view = page.result_view(result)
    assert isinstance(view, pn.Column) and "numl-generator-results" in view.css_classes
    assert f"{result.n_parameters} parameters" in view[0].object
    summary = view[1].value
    assert summary["quantity"].iloc[0] == "RESS" and len(summary) == len(result.summary)
    tabs = [t for t in view if isinstance(t, pn.Tabs)][0]
    assert tabs._names == ["Marginals", "2-D marginals", "Weights", "Training rounds"]


def test_sample_view_says_what_was_written():
    result = SampleResult(pd.DataFrame({"enu": [0.7, 0.8]}), "x.parquet", 5, 10, 0.1)
    view = page.result_view(result)
    assert view[0].object == "**Wrote 5 events to `x.parquet` (10 flow draws, 0.1 s).**"
    assert "numl-generator-written" in view[0].css_classes and len(view[1].value) == 2


def test_marginal_2d_plot_shows_reference_and_ratio(generator_run):
    m2 = generator_run.result.marginals_2d
    assert {"reference", "flow"} <= set(m2["sample"])
    layout = page.marginal_2d_plot(m2, "cos_mu", "omega")
    ref, ratio = layout[0], layout[1]
    assert isinstance(ref, hv.QuadMesh) and isinstance(ratio, hv.QuadMesh)
    colorbars = [next(r for r in hv.render(m).right if type(r).__name__ == "ColorBar") for m in (ref, ratio)]
    assert [c.title for c in colorbars] == [
        "reference density (per unit area)",
        "flow (emulator) / reference",
    ]
    # 12 x 12 bins; the ratio is positive wherever both samples fill a bin
    values = ratio.dimension_values(2, flat=False)
    assert values.shape == (12, 12)
    filled = np.isfinite(values) & (values > 0)
    assert filled.sum() > 20


def _page_with_finished_run(shared, generator_run) -> tuple[page.GenerateBox, AppContext]:
    """The page, its panel showing the tiny run as this session's finished job."""
    ctx = AppContext(shared, new_token(), workflows={"generator": WORKFLOW})
    view = build_page(page.PAGE, ctx)
    assert view[1].title == "Generate events"  # the box, below the panel
    panel = ctx.job_panels["generator"]
    (box,) = page.PAGE.below(panel, ctx)
    job = Job(run_generator, generator_run.config, generator_run.run_dir, "tiny run")
    job.result, job.state, job.started_at, job.finished_at = (
        generator_run.result,
        "done",
        time.time(),
        time.time(),
    )
    panel.attach(job)
    return box, ctx


def test_generate_box_runs_the_sample_action_through_the_job_panel(shared, generator_run):
    box, ctx = _page_with_finished_run(shared, generator_run)
    box.n_events.value, box.filename.value, box.mode.value = 120, "out/events.csv", "emulator"
    box.start()
    job = box.panel.job
    assert job is not None and job.label == "generate events"
    assert job.config.flow_file == generator_run.flow_file  # the run's flow, read from its run folder
    assert job.wait(TIMEOUT) == "done"
    box.panel.poll()
    written = shared.settings.data_root.resolve() / "out" / "events.csv"
    assert isinstance(job.result, SampleResult) and job.result.output_file == str(written)
    assert len(pd.read_csv(written)) == 120
    shown = box.panel.result_area.objects[0]
    assert "Wrote 120 events" in shown[0].object and box.panel.progress_bar.value == 1000
    assert box.status.object.startswith("Done: Wrote 120 events")  # no longer "Writing ..."
    assert ctx.store.get(job.id).read_info()["action"] == "sample"
    # a second batch samples the same flow again (the panel now shows the sample job)
    assert box.sample_config().flow_file == generator_run.flow_file


@pytest.mark.parametrize("filename", ["../outside.csv", "/etc/events.csv"])
def test_generate_box_keeps_the_output_in_the_data_folder(shared, generator_run, filename):
    box, _ = _page_with_finished_run(shared, generator_run)
    box.filename.value = filename
    box.start()
    assert box.panel.job.label == "tiny run" and "Not started" in box.status.object
    assert "Invalid configuration" in box.panel.error_area[0][0].object


def test_generate_box_needs_a_finished_run(shared):
    ctx = AppContext(shared, new_token(), workflows={"generator": WORKFLOW})
    view = build_page(page.PAGE, ctx)
    view.get_root(Document())  # the page builds its Bokeh models, as served
    (box,) = page.PAGE.below(ctx.job_panels["generator"], ctx)
    box.start()
    assert box.panel.job is None and "Train a flow first" in box.status.object
