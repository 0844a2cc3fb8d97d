"""The flow-generator page: train a conditional flow on the exclusive 1p1h cross section, compare its
marginals with the weighted reference, inspect the weights and the sampler figures, and write events.

Live curves (training loss per round, proposal RESS) come from the generic job panel; this module adds
the result views, which take the result dict of the ``generator`` workflow so that a finished job, a
run reopened from disk and a notebook result look the same. A "Generate events" box runs the
workflow's ``sample`` action on the flow of the panel's last finished run and writes a parquet, CSV or
ROOT file into the data folder, with its own progress bar.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter

from app.components.job_panel import JobPanel
from app.components.live_curve import plot_key, plot_pane, use_bokeh
from numl_core.generator import sampling as smp
from numl_core.generator.workflow import FLOW_FILE, sample_events

if TYPE_CHECKING:
    from app.context import AppContext

WORKFLOW_NAME = "generator"
#: Smaller than the workflow's defaults so that a run from the dashboard takes a few minutes on a laptop.
APP_DEFAULTS = {
    "preset": "custom",
    "transforms": 4,
    "hidden": 64,
    "rounds": 3,
    "events_per_round": 200_000,
    "epochs": 1,
    "n_eval": 40_000,
    "n_reference": 200_000,
}
SAMPLE_STYLE = {
    "reference": {"color": "black", "label": "reference (weighted)"},
    "flow": {"color": "#1f77b4", "label": "flow (emulator)"},
    "flow_reweighted": {"color": "#2ca02c", "label": "flow, reweighted"},
    "accept_reject": {"color": "#ff7f0e", "label": "accept-reject"},
}
VARIABLE_LABELS = {
    "cos_mu": "cos θ_μ",
    "omega": "ω / (E_ν − m_μ)",
    "cos_n": "cos θ_N",
    "phi_n": "φ_N / π",
}
SUMMARY_LABELS = {
    "ress": "RESS",
    "ress_capped": "RESS (capped weights)",
    "cap_bias": "bias from capping",
    "unweighting_efficiency": "unweighting efficiency",
    "overweight_fraction": "over-weight rate",
    "integral": "flux-averaged σ [cm²]",
    "integral_rel_error": "relative error of σ",
    "mnll_optimum": "MNLL, perfect sampler (expected)",
    "mnll_flow": "MNLL, flow emulator",
    "mnll_unweighted": "MNLL, unweighted flow events",
    "mnll_accept_reject": "MNLL, accept-reject",
    "rms_pull_flow": "RMS pull, flow emulator",
    "rms_pull_unweighted": "RMS pull, unweighted flow events",
    "rms_pull_accept_reject": "RMS pull, accept-reject",
    "unweighted_per_s": "unweighted events / s",
}
PLOT_WIDTH = 420


def metric_group(record: dict[str, Any]) -> str | None:
    """Live plots: the training loss and the RESS of each round's proposal."""
    key = plot_key(record)
    return key if key in ("loss", "proposal_ress") else None


def expected_series(config: Any) -> dict[str, list[str]]:
    """The live plots and series of a generator job."""
    return {"loss": ["loss (train, total)", "loss (val, total)"], "proposal_ress": ["proposal_ress"]}


# -- pure helpers ---------------------------------------------------------------------------------
def summary_table(result: dict[str, Any]) -> pd.DataFrame:
    """The sampler figures with readable names: ``quantity``, ``value`` (known keys first).

    >>> table = summary_table({"summary": pd.DataFrame({"metric": ["x", "ress"], "value": [1.0, 0.9]})})
    >>> table.to_dict("list")
    {'quantity': ['RESS', 'x'], 'value': [0.9, 1.0]}
    """
    frame = result.get("summary")
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        return pd.DataFrame({"quantity": [], "value": []})
    values = dict(zip(frame["metric"], frame["value"], strict=True))
    keys = [k for k in SUMMARY_LABELS if k in values] + [k for k in values if k not in SUMMARY_LABELS]
    return pd.DataFrame(
        {"quantity": [SUMMARY_LABELS.get(k, k) for k in keys], "value": [values[k] for k in keys]}
    )


def ratio_frame(marginals: pd.DataFrame, variable: str, reference: str = "reference") -> pd.DataFrame:
    """Each sample's density over the reference's in one variable, with the combined relative error:
    ``sample, low, high, ratio, error`` (bins where the reference is empty are left out)."""
    rows = marginals[marginals["variable"] == variable]
    ref = rows[rows["sample"] == reference].set_index("low")
    out = []
    for name, part in rows[rows["sample"] != reference].groupby("sample", sort=False):
        part = part.set_index("low")
        d_ref = ref.loc[part.index, "density"].to_numpy()
        e_ref = ref.loc[part.index, "error"].to_numpy()
        ok = d_ref > 0
        d, e = part["density"].to_numpy()[ok], part["error"].to_numpy()[ok]
        ratio = d / d_ref[ok]
        err = ratio * np.sqrt((e / np.where(d > 0, d, 1)) ** 2 + (e_ref[ok] / d_ref[ok]) ** 2)
        out.append(
            pd.DataFrame(
                {
                    "sample": name,
                    "low": part.index.to_numpy()[ok],
                    "high": part["high"].to_numpy()[ok],
                    "ratio": ratio,
                    "error": err,
                }
            )
        )
    return (
        pd.concat(out, ignore_index=True)
        if out
        else pd.DataFrame(columns=["sample", "low", "high", "ratio", "error"])
    )


def _steps(low: np.ndarray, high: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.column_stack([low, high]).ravel(), np.repeat(y, 2)


def marginal_plot(marginals: pd.DataFrame, variable: str) -> Any:
    """One variable: normalised densities of every sample over the reference, and their ratios."""
    use_bokeh()
    label = VARIABLE_LABELS.get(variable, variable)
    rows = marginals[marginals["variable"] == variable]
    curves = []
    for name, part in rows.groupby("sample", sort=False):
        style = SAMPLE_STYLE.get(name, {"color": "#9467bd", "label": name})
        x, y = _steps(part["low"].to_numpy(), part["high"].to_numpy(), part["density"].to_numpy())
        curves.append(hv.Curve((x, y), label, "density", label=style["label"]).opts(color=style["color"]))
    top = hv.Overlay(curves).opts(
        title=label, width=PLOT_WIDTH, height=260, show_grid=True, legend_position="top_left"
    )
    ratios = []
    for name, part in ratio_frame(marginals, variable).groupby("sample", sort=False):
        style = SAMPLE_STYLE.get(name, {"color": "#9467bd", "label": name})
        centre = 0.5 * (part["low"] + part["high"]).to_numpy()
        ratios.append(
            hv.ErrorBars((centre, part["ratio"], part["error"]), label, ["ratio", "yerr"]).opts(
                color=style["color"]
            )
        )
        ratios.append(hv.Scatter((centre, part["ratio"]), label, "ratio").opts(color=style["color"], size=4))
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
    label = SAMPLE_STYLE.get(sample, {"label": sample})["label"]
    opts = {"width": PLOT_WIDTH, "height": 300, "colorbar": True, "tools": ["hover"]}
    left = hv.QuadMesh((x_edges, y_edges, ref), [xl, yl], "density").opts(
        title=f"reference: {xl} vs {yl}", cmap="viridis", **opts
    )
    right = hv.QuadMesh((x_edges, y_edges, ratio), [xl, yl], "ratio").opts(
        title=f"{label} / reference", cmap="RdBu_r", clim=(0.8, 1.2), **opts
    )
    return (left + right).opts(shared_axes=False)


def weight_plot(weight_histogram: pd.DataFrame) -> hv.Histogram:
    """Distribution of log10(w / mean w) of the evaluation sample."""
    use_bokeh()
    edges = np.r_[weight_histogram["low"].to_numpy(), weight_histogram["high"].to_numpy()[-1:]]
    return hv.Histogram(
        (edges, weight_histogram["count"].to_numpy()), kdims=["log10(w / <w>)"], vdims=["events"]
    ).opts(title="importance weights", width=PLOT_WIDTH, height=260, color="#2ca02c", show_grid=True)


def _table(frame: pd.DataFrame) -> pn.widgets.Tabulator:
    floats = {c: NumberFormatter(format="0.[00000]") for c in frame.select_dtypes("float").columns}
    return pn.widgets.Tabulator(
        frame, disabled=True, show_index=False, formatters=floats, sizing_mode="stretch_width"
    )


def result_view(result: dict[str, Any]) -> pn.viewable.Viewable:
    """The results of a training run (summary, marginals, weights, rounds) or of a ``sample`` action."""
    if "output_file" in result:
        head = result.get("events_head")
        text = (
            f"**Wrote {result.get('n_events')} events** to `{result['output_file']}` "
            f"({result.get('n_drawn')} flow draws, {result.get('seconds', float('nan')):.1f} s)."
        )
        parts: list[Any] = [pn.pane.Markdown(text, css_classes=["numl-generator-written"])]
        if isinstance(head, pd.DataFrame):
            parts.append(_table(head.head(200)))
        return pn.Column(*parts, sizing_mode="stretch_width")
    parts = [
        pn.pane.Markdown(
            f"**Result:** flow with {result.get('n_parameters', '?')} parameters, "
            f"{result.get('seconds', float('nan')):.1f} s",
        ),
        _table(summary_table(result)),
    ]
    tabs = []
    marginals = result.get("marginals")
    if isinstance(marginals, pd.DataFrame) and not marginals.empty:
        plots = [marginal_plot(marginals, v) for v in VARIABLE_LABELS if v in set(marginals["variable"])]
        tabs.append(("Marginals", pn.GridBox(*[plot_pane(p) for p in plots], ncols=2)))
    marginals_2d = result.get("marginals_2d")
    if isinstance(marginals_2d, pd.DataFrame) and not marginals_2d.empty:
        pairs = marginals_2d[["x_variable", "y_variable"]].drop_duplicates().itertuples(index=False)
        plots = [plot_pane(marginal_2d_plot(marginals_2d, vx, vy)) for vx, vy in pairs]
        tabs.append(("2-D marginals", pn.Column(*plots, css_classes=["numl-generator-marginals-2d"])))
    weights = result.get("weight_histogram")
    if isinstance(weights, pd.DataFrame) and not weights.empty:
        tabs.append(("Weights", plot_pane(weight_plot(weights))))
    rounds = result.get("rounds")
    if isinstance(rounds, pd.DataFrame) and not rounds.empty:
        tabs.append(("Training rounds", _table(rounds)))
    if tabs:
        parts.append(pn.Tabs(*tabs, dynamic=True, sizing_mode="stretch_width"))
    return pn.Column(*parts, sizing_mode="stretch_width", css_classes=["numl-generator-results"])


class GenerateBox(pn.viewable.Viewer):
    """Writes N events from the flow of the panel's last finished run, with a progress bar."""

    def __init__(self, panel: JobPanel, ctx: AppContext) -> None:
        super().__init__()
        self.panel, self.ctx = panel, ctx
        self.n_events = pn.widgets.IntInput(name="Events", value=100_000, start=1, width=140)
        self.filename = pn.widgets.TextInput(
            name="File (in the data folder)", value="events.parquet", width=200
        )
        self.mode = pn.widgets.Select(name="Mode", options=["importance", "emulator"], width=130)
        self.button = pn.widgets.Button(
            name="Generate events", color="primary", css_classes=["numl-generate"]
        )
        self.bar = pn.indicators.Progress(value=0, max=1000, sizing_mode="stretch_width")
        self.status = pn.pane.Markdown("", css_classes=["numl-generate-status"])
        self.job: Any = None
        self.button.on_click(lambda _e: self.start())
        self._layout = pn.Card(
            pn.Row(self.n_events, self.filename, self.mode, self.button),
            self.bar,
            self.status,
            title="Generate events",
            sizing_mode="stretch_width",
        )

    def start(self) -> None:
        """Submit the ``sample`` action on the last finished run's flow."""
        job = self.panel.job
        if job is None or job.state != "done" or job.run_dir is None:
            self.status.object = "Train a flow first: the last run of this page must have finished."
            return
        target = Path(self.ctx.data_root) / Path(self.filename.value).name
        config = job.config.copy()
        config.param.update(
            flow_file=str(job.run_dir.path / FLOW_FILE),
            n_generate=int(self.n_events.value),
            sample_mode=self.mode.value,
            output_file=str(target),
        )
        workflow = dataclasses.replace(self.panel.workflow, run=sample_events)
        self.job = self.ctx.submit(workflow, config, "generate events")
        self.status.object = f"Writing {self.n_events.value} events to `{target}` ..."
        pn.state.add_periodic_callback(self._poll, period=500, count=2400)

    def _poll(self) -> None:
        if self.job is None:
            return
        self.bar.value = int(1000 * self.job.progress.fraction)
        if self.job.done:
            if self.job.state == "done":
                self.status.object = (
                    f"Wrote {self.job.result['n_events']} events to `{self.job.result['output_file']}`."
                )
            else:
                self.status.object = f"Generation {self.job.state}: {self.job.error}"
            self.job = None

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def build_page(ctx: AppContext) -> pn.viewable.Viewable:
    """The generator page: the job panel, the results, and the event-writing box."""
    workflow = ctx.workflows()[WORKFLOW_NAME]
    defaults = {k: v for k, v in APP_DEFAULTS.items() if k in workflow.config_cls.param}
    panel = JobPanel(
        workflow,
        ctx,
        config=workflow.config_cls(**defaults),
        on_result=result_view,
        metric_group=metric_group,
        expected_series=expected_series,
        restore=False,
    )
    panel.restore()
    return pn.Column(panel, GenerateBox(panel, ctx), sizing_mode="stretch_width")
