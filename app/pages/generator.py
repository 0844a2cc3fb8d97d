"""The flow-generator page: train a conditional flow on the exclusive 1p1h cross section, compare its
marginals with the weighted reference, inspect the weights and the sampler figures, and write events.

Live curves (training loss per round, proposal RESS) are the workflow's own declaration, drawn by the
generic job panel; this module adds the result views, which take the workflow's typed results
(:class:`~numl_core.generator.result.GeneratorResult` of a run,
:class:`~numl_core.generator.result.SampleResult` of the ``sample`` action), so that a finished job, a
run reopened from disk and a notebook result look the same. A "Generate events" box runs the
``sample`` action through the same job panel, on the flow of the panel's last finished run, and writes
a parquet, CSV or ROOT file into the data folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn

from app.components.export import export_row
from app.components.job_panel import JobPanel
from app.components.page import PageSpec
from app.components.plots import layout_grid, plot_pane, use_bokeh
from app.components.tables import table
from numl_core.figures import plain_text, steps
from numl_core.generator import figures
from numl_core.generator import sampling as smp
from numl_core.generator.config import GeneratorConfig
from numl_core.generator.result import GeneratorResult, SampleResult
from numl_core.generator.workflow import FLOW_FILE

if TYPE_CHECKING:
    from numl_core.jobs import Job

#: Smaller than the workflow's defaults so that a run from the dashboard takes a few minutes on a laptop.
APP_DEFAULTS = GeneratorConfig.preset_values("quick look")
#: Colour and legend label of each sample of the marginals.
SAMPLE_STYLE = {
    "reference": ("black", "reference (weighted)"),
    "flow": ("#1f77b4", "flow (emulator)"),
    "flow_reweighted": ("#2ca02c", "flow, reweighted"),
    "accept_reject": ("#ff7f0e", "accept-reject"),
}
#: Axis labels of the box coordinates: the export figures' labels, as plain text.
VARIABLE_LABELS = {v: plain_text(label) for v, label in figures.VARIABLE_LABELS.items()}
PLOT_WIDTH = 420


def _style(sample: str) -> tuple[str, str]:
    return SAMPLE_STYLE.get(sample, ("#9467bd", sample))


def marginal_plot(marginals: pd.DataFrame, variable: str) -> Any:
    """One variable: normalised densities of every sample over the reference, and their ratios."""
    use_bokeh()
    label = VARIABLE_LABELS.get(variable, variable)
    rows = marginals[marginals["variable"] == variable]
    curves = []
    for name, part in rows.groupby("sample", sort=False):
        x, y = steps(part["low"].to_numpy(), part["high"].to_numpy(), part["density"].to_numpy())
        color, legend = _style(name)
        curves.append(hv.Curve((x, y), label, "density", label=legend).opts(color=color))
    top = hv.Overlay(curves).opts(
        title=label,
        width=PLOT_WIDTH,
        height=260,
        show_grid=True,
        legend_position="right",
        ylabel=f"density (1/N dN/d{label})",
    )
    ratios = []
    for name, part in smp.marginal_ratios(rows).groupby("sample", sort=False):
        color = _style(name)[0]
        centre = 0.5 * (part["low"] + part["high"]).to_numpy()
        ratios.append(
            hv.ErrorBars((centre, part["ratio"], part["error"]), label, ["ratio", "yerr"]).opts(color=color)
        )
        ratios.append(hv.Scatter((centre, part["ratio"]), label, "ratio").opts(color=color, size=4))
    lo, hi = float(rows["low"].min()), float(rows["high"].max())
    ratios.append(hv.HLine(1.0).opts(color="black", line_dash="dashed"))
    bottom = hv.Overlay(ratios).opts(
        width=PLOT_WIDTH, height=150, show_grid=True, ylim=(0.8, 1.2), xlim=(lo, hi), ylabel="/ reference"
    )
    return (top + bottom).cols(1).opts(shared_axes=False)


def marginal_2d_plot(
    marginals_2d: pd.DataFrame, x_variable: str, y_variable: str, sample: str = "flow"
) -> Any:
    """One pair of variables: the reference's 2-D density and ``sample`` over the reference, bin by bin."""
    use_bokeh()
    rows = marginals_2d[
        (marginals_2d["x_variable"] == x_variable) & (marginals_2d["y_variable"] == y_variable)
    ]
    xl, yl = VARIABLE_LABELS.get(x_variable, x_variable), VARIABLE_LABELS.get(y_variable, y_variable)
    x_edges = np.unique(np.r_[rows["x_low"].to_numpy(), rows["x_high"].to_numpy()])
    y_edges = np.unique(np.r_[rows["y_low"].to_numpy(), rows["y_high"].to_numpy()])
    shape = (len(x_edges) - 1, len(y_edges) - 1)

    def grid(frame: pd.DataFrame, column: str) -> np.ndarray:
        values = np.full(shape, np.nan)
        i = np.searchsorted(x_edges, frame["x_low"].to_numpy())
        j = np.searchsorted(y_edges, frame["y_low"].to_numpy())
        values[i, j] = frame[column].to_numpy()
        return values.T  # QuadMesh wants (y, x)

    ref = grid(rows[rows["sample"] == "reference"], "density")
    ratios = smp.marginal_ratios(rows)
    ratio = grid(ratios[ratios["sample"] == sample], "ratio")
    opts = {"width": PLOT_WIDTH, "height": 300, "colorbar": True, "tools": ["hover"]}
    left = hv.QuadMesh((x_edges, y_edges, ref), [xl, yl], "density").opts(
        title=f"reference: {xl} vs {yl}", cmap="viridis", clabel="reference density (per unit area)", **opts
    )
    right = hv.QuadMesh((x_edges, y_edges, ratio), [xl, yl], "ratio").opts(
        title=f"{_style(sample)[1]} / reference",
        cmap="RdBu_r",
        clim=(0.8, 1.2),
        clabel=f"{_style(sample)[1]} / reference",
        **opts,
    )
    return (left + right).opts(shared_axes=False)


def weight_plot(weight_histogram: pd.DataFrame) -> hv.Histogram:
    """Distribution of log10(w / mean w) of the evaluation sample."""
    use_bokeh()
    edges = np.r_[weight_histogram["low"].to_numpy(), weight_histogram["high"].to_numpy()[-1:]]
    return hv.Histogram(
        (edges, weight_histogram["count"].to_numpy()),
        kdims=[plain_text(r"$\log_{10}(w/\langle w\rangle)$")],
        vdims=["events"],
    ).opts(title="importance weights", width=PLOT_WIDTH, height=260, color="#2ca02c", show_grid=True)


def _result_tabs(result: GeneratorResult) -> list[tuple[str, Any]]:
    """Marginals, 2-D marginals, weights and training rounds, each where the result has them."""
    tabs = []
    marginals = result.marginals
    if not marginals.empty:
        plots = [marginal_plot(marginals, v) for v in VARIABLE_LABELS if v in set(marginals["variable"])]
        export = export_row("marginals", lambda: figures.marginals_figure(result), marginals)
        tabs.append(
            (
                "Marginals",
                pn.Column(
                    pn.GridBox(*[layout_grid(p, 1) for p in plots], ncols=2, sizing_mode="stretch_width"),
                    export,
                    sizing_mode="stretch_width",
                ),
            )
        )
    marginals_2d = result.marginals_2d
    if not marginals_2d.empty:
        pairs = marginals_2d[["x_variable", "y_variable"]].drop_duplicates().itertuples(index=False)
        views = []
        for vx, vy in pairs:
            rows = marginals_2d[(marginals_2d["x_variable"] == vx) & (marginals_2d["y_variable"] == vy)]
            views.append(layout_grid(marginal_2d_plot(marginals_2d, vx, vy), 2))
            views.append(
                export_row(
                    f"marginal_{vx}_{vy}",
                    lambda vx=vx, vy=vy: figures.marginal_2d_figure(result, vx, vy),
                    rows,
                )
            )
        tabs.append(("2-D marginals", pn.Column(*views, css_classes=["numl-generator-marginals-2d"])))
    if not result.weight_histogram.empty:
        export = export_row("weights", lambda: figures.weights_figure(result), result.weight_histogram)
        tabs.append(
            (
                "Weights",
                pn.Column(
                    plot_pane(weight_plot(result.weight_histogram)), export, sizing_mode="stretch_width"
                ),
            )
        )
    if not result.rounds.empty:
        tabs.append(
            (
                "Training rounds",
                pn.Column(
                    table(result.rounds, digits=5),
                    export_row("rounds", tables=result.rounds),
                    sizing_mode="stretch_width",
                ),
            )
        )
    return tabs


def sample_view(result: SampleResult) -> pn.viewable.Viewable:
    """What the ``sample`` action wrote, and its first events."""
    written = pn.pane.Markdown(f"**{result.describe()}**", css_classes=["numl-generator-written"])
    return pn.Column(
        written,
        table(result.events_head.head(200), digits=5),
        export_row("events_head", tables=result.events_head),
        sizing_mode="stretch_width",
    )


def result_view(result: GeneratorResult | SampleResult) -> pn.viewable.Viewable:
    """The results of a training run (summary, marginals, weights, rounds) or of a ``sample`` action."""
    if isinstance(result, SampleResult):
        return sample_view(result)
    parts: list[Any] = [
        pn.pane.Markdown(f"**Result:** flow with {result.n_parameters} parameters, {result.seconds:.1f} s"),
        table(result.summary_table(), digits=5),
        export_row("summary", tables=result.summary_table()),
    ]
    tabs = _result_tabs(result)
    if tabs:
        parts.append(pn.Tabs(*tabs, dynamic=True, sizing_mode="stretch_width"))
    return pn.Column(*parts, sizing_mode="stretch_width", css_classes=["numl-generator-results"])


def trained_flow(job: Job | None) -> str | None:
    """The flow file behind the panel's last finished job: a run's ``flow.pt``, or the flow a ``sample``
    job drew from; None without one."""
    if job is None or job.state != "done" or job.run_dir is None:
        return None
    path = job.run_dir.path / FLOW_FILE
    if path.exists():
        return str(path)
    return getattr(job.config, "flow_file", "") or None


class GenerateBox(pn.viewable.Viewer):
    """Writes N events from the flow of the panel's last finished run, through the panel itself (its
    progress bar, status and result area show the ``sample`` job)."""

    def __init__(self, panel: JobPanel) -> None:
        super().__init__()
        self.panel = panel
        self.n_events = pn.widgets.IntInput(label="Events", value=100_000, start=1, width=140)
        self.filename = pn.widgets.TextInput(
            label="File (in the data folder)", value="events.parquet", width=200
        )
        self.mode = pn.widgets.Select(label="Mode", options=["importance", "emulator"], width=130)
        self.button = pn.widgets.Button(
            label="Generate events", color="primary", css_classes=["numl-generate"]
        )
        self.status = pn.pane.Markdown("", css_classes=["numl-generate-status"])
        self._job_id: str | None = None
        panel.on_finish.append(self._on_finish)
        self.button.on_click(lambda _e: self.start())
        self._layout = pn.Card(
            pn.Row(self.n_events, self.filename, self.mode, self.button),
            self.status,
            title="Generate events",
            sizing_mode="stretch_width",
        )

    def sample_config(self) -> GeneratorConfig | None:
        """The config of the ``sample`` action: the last run's, with this box's settings; None without a
        finished run."""
        job = self.panel.job
        flow_file = trained_flow(job)
        if flow_file is None:
            return None
        return job.config.copy(
            flow_file=flow_file,
            n_generate=int(self.n_events.value),
            sample_mode=self.mode.value,
            output_file=self.filename.value,
        )

    def start(self) -> None:
        """Submit the ``sample`` action on the last finished run's flow through the job panel."""
        config = self.sample_config()
        if config is None:
            self.status.object = "Train a flow first: the last run of this page must have finished."
            return
        job = self.panel.start(action="sample", config=config, label="generate events", trusted=["flow_file"])
        if job is None:
            self.status.object = "Not started: see the message above."
            return
        self.status.object = f"Writing {config.n_generate} events to `{job.config.output_file}` ..."
        self._job_id = job.id

    def _on_finish(self, job: Job) -> None:
        """Replace the "Writing ..." line once this box's job has ended."""
        if job.id != self._job_id:
            return
        if job.state == "done":
            self.status.object = f"Done: {job.result.describe()}"
        else:
            self.status.object = f"Generating events {job.state}: see the job panel."

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


PAGE = PageSpec(
    workflow="generator",
    result_view=result_view,
    defaults=APP_DEFAULTS,
    below=lambda panel, ctx: [GenerateBox(panel)],
)
