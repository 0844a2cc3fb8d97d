"""The uncertainty page: toys vs flow samples, C2ST per model, flow vs Gaussian p-values, near-to-far.

The job panel streams the flow's training and validation NLL live (the plots the workflow declares);
this module adds the result views. Every view takes the workflow's
:class:`~numl_core.uncertainty.result.UncertaintyResult`, so the same views show a finished job, a run
reopened from disk or a result built in a notebook.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn

from app.components.export import export_row
from app.components.page import PageSpec
from app.components.plots import layout_grid, plot_pane, use_bokeh
from app.components.tables import table
from numl_core.config import ConfigError
from numl_core.figures import plain_text
from numl_core.uncertainty import figures
from numl_core.uncertainty.config import UncertaintyConfig, parse_observation
from numl_core.uncertainty.result import C2ST, ScoreResult, UncertaintyResult

#: Smaller than the workflow's defaults so that a run from the dashboard takes a minute or two on a laptop.
APP_DEFAULTS = {
    "toys": "sinh_arcsinh",  # the hard case: the Gaussian fails, the flow does not
    "model": "nsf",
    "standardise": "asinh",
    **UncertaintyConfig.preset_values("quick look"),
}


class Style(NamedTuple):
    """How a model is drawn and named."""

    color: str
    label: str


MODEL_STYLE = {
    "gaussian": Style("#ff7f0e", "Gaussian (chi2)"),
    "improved_baseline": Style("#d62728", "Gaussian, ranked among the toys"),
    "marginal_gaussian": Style("#9467bd", "transformed Gaussian"),
    "flow": Style("#1f77b4", "flow"),
    "truth": Style("black", "truth"),
    "transformer": Style("#2ca02c", "near-to-far transformer"),
}
PLOT_HEIGHT = 320
SMALL = 230


def model_label(model: str) -> str:
    """The readable name of a model of the metrics table (the name itself for an unknown one).

    >>> model_label("marginal_gaussian"), model_label("other")
    ('transformed Gaussian', 'other')
    """
    return MODEL_STYLE[model].label if model in MODEL_STYLE else model


# -- pure plotting helpers ---------------------------------------------------------------------------
def corner_plot(
    toys: np.ndarray,
    samples: np.ndarray,
    dims: tuple[int, ...] = (0, 1, 2),
    label: str = "flow",
    unit: str = "a.u.",
) -> Any:
    """Pairs of dimensions: histograms on the diagonal, scatter of toys (grey) and model samples below it.

    ``unit`` is the toys' unit (mathtext, :func:`numl_core.uncertainty.figures.toy_unit`); the diagonal
    shows densities per unit of x_i."""
    use_bokeh()
    unit = plain_text(unit)

    def axis(i: int) -> str:
        return f"x{i} [{unit}]"

    toys, samples = np.asarray(toys), np.asarray(samples)
    dims = tuple(d for d in dims if d < toys.shape[1])
    panels = []
    for row, i in enumerate(dims):
        for col, j in enumerate(dims):
            if col > row:
                continue
            if i == j:
                edges = np.histogram_bin_edges(np.concatenate([toys[:, i], samples[:, i]]), bins=40)
                h_toys = hv.Histogram(
                    np.histogram(toys[:, i], edges, density=True)[::-1], kdims=[f"x{i}"], label="toys"
                )
                h_model = hv.Histogram(
                    np.histogram(samples[:, i], edges, density=True)[::-1], kdims=[f"x{i}"], label=label
                )
                panel = (
                    h_toys.opts(alpha=0.4, color="#888888") * h_model.opts(alpha=0.4, color="#1f77b4")
                ).opts(
                    show_legend=i == dims[0],
                    xlabel=axis(i),
                    ylabel=f"density [1/({unit})]",
                    legend_position="right",
                )
            else:
                panel = hv.Scatter(toys[:, [j, i]], f"x{j}", f"x{i}", label="toys").opts(
                    color="#888888", alpha=0.3, size=2
                ) * hv.Scatter(samples[:, [j, i]], f"x{j}", f"x{i}", label=label).opts(
                    color="#1f77b4", alpha=0.3, size=2
                )
                panel = panel.opts(show_legend=False, xlabel=axis(j), ylabel=axis(i))
            panels.append(panel.opts(width=SMALL, height=SMALL, title=f"x{j} vs x{i}" if i != j else f"x{i}"))
    return hv.Layout(panels).cols(len(dims)).opts(shared_axes=False)


def c2st_bars(metrics: pd.DataFrame) -> Any:
    """C2ST accuracy per model with its fold error; 0.5 means indistinguishable from held-out toys."""
    use_bokeh()
    rows = metrics.drop_duplicates(C2ST) if "improved_baseline" in set(metrics["model"]) else metrics
    rows = rows[rows["model"] != "improved_baseline"]
    bars = hv.Bars(rows[["model", C2ST]], "model", C2ST).opts(color="#1f77b4", ylim=(0.4, 1.02))
    chance = hv.HLine(0.5).opts(color="black", line_dash="dashed")
    return (bars * chance).opts(
        title="C2ST accuracy (0.5 = indistinguishable)",
        xlabel=plain_text(figures.MODEL_AXIS),
        ylabel=plain_text(figures.C2ST_LABEL),
        responsive=True,
        height=PLOT_HEIGHT,
    )


def pvalue_scatter(pvalues: pd.DataFrame, reference: str = "truth") -> Any:
    """Each model's p-values against the reference's (the truth where known, else the flow's)."""
    use_bokeh()
    models = [m for m in MODEL_STYLE if m in pvalues and m != reference]
    axes = (plain_text(figures.pvalue_label(reference)), plain_text(figures.PVALUE_MODEL))
    elements = [hv.Curve([(0, 0), (1, 1)], *axes).opts(color="black", line_dash="dashed")]
    for m in models:
        style = MODEL_STYLE[m]
        elements.append(
            hv.Scatter((pvalues[reference], pvalues[m]), *axes, label=style.label).opts(
                color=style.color, size=3, alpha=0.6
            )
        )
    return hv.Overlay(elements).opts(
        title=f"p-values against {reference}",
        responsive=True,
        height=PLOT_HEIGHT,
        legend_position="bottom_right",
    )


def metrics_frame(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics table with readable model names and the columns in a fixed order."""
    columns = ["model", C2ST, "c2st_error", "nll", "pvalue_r", "pvalue_mse", "pvalue_r2"]
    frame = metrics[[c for c in columns if c in metrics]].reset_index(drop=True)
    frame["model"] = [model_label(m) for m in frame["model"]]
    return frame


def explain_observation(observed: pd.DataFrame) -> str:
    """Markdown: the observation's p-values and why the chi2 and the flow's can differ."""
    if observed is None or observed.empty:
        return (
            "*No observation was given: enter one (comma-separated) or upload a one-row CSV and run again.*"
        )
    rows = observed.set_index("model")
    lines = ["| model | method | p-value |", "|---|---|---|"]
    for model, row in rows.iterrows():
        err = f" ± {row['error']:.4f}" if row["error"] > 0 else ""
        lines.append(f"| {model_label(model)} | {row['method']} | {row['pvalue']:.4f}{err} |")
    text = "\n".join(lines)
    if "gaussian" in rows.index and "flow" in rows.index:
        p_g, p_f = rows.loc["gaussian", "pvalue"], rows.loc["flow", "pvalue"]
        text += (
            f"\n\nThe χ² p-value ({p_g:.4f}, χ² = {rows.loc['gaussian', 'chi2']:.1f}) assumes the toys are "
            "Gaussian: it measures the distance from their mean in units of their covariance. The flow's "
            f"p-value ({p_f:.4f}) is the fraction of flow samples less probable than the observation, so it "
            "follows skewed, bounded or multi-modal toys. "
        )
        if max(p_g, p_f) > 0 and abs(np.log10(max(p_g, 1e-12)) - np.log10(max(p_f, 1e-12))) > 0.5:
            text += (
                "Here they differ by more than a factor 3: the toys' non-Gaussian shape matters for this "
                "observation."
            )
        else:
            text += "Here they agree within a factor 3."
    return text


def observation_from_upload(data: bytes) -> str:
    """The first row of numbers of an uploaded CSV (with or without a header row) as the comma-separated
    config string, read by the core's :func:`~numl_core.uncertainty.config.parse_observation`.

    >>> observation_from_upload(b"a,b\\n1.5,2\\n")
    '1.5, 2.0'
    """
    lines = data.decode("utf-8").strip().splitlines()
    try:
        values = parse_observation(lines[0])
    except ConfigError:
        values = parse_observation(lines[1])
    return ", ".join(str(float(v)) for v in values)


def summary_text(result: UncertaintyResult) -> str:
    """One line: toys, size, non-Gaussianity C2ST, the latent C2ST and the run time."""
    return "**Result:** " + ", ".join(
        [
            f"toys **{result.toys}**",
            f"{result.dim} dimensions",
            f"{result.n_train} training / {result.n_test} held-out toys",
            f"non-Gaussianity C2ST {result.non_gaussianity_c2st:.3f} "
            f"(p = {result.non_gaussianity_pvalue:.2g})",
            f"latent C2ST of the flow {result.latent_c2st:.3f}",
            f"{result.seconds:.0f} s",
        ]
    )


def samples_frame(result: UncertaintyResult) -> pd.DataFrame:
    """The held-out toys and the flow's and the Gaussian's samples as one table: ``sample`` and ``x0``,
    ``x1``, ... in the toys' units."""
    parts = []
    for name, values in (
        ("toys", result.toys_sample),
        ("flow", result.flow_sample),
        ("gaussian", result.gaussian_sample),
    ):
        frame = pd.DataFrame(np.asarray(values), columns=[f"x{i}" for i in range(np.shape(values)[1])])
        parts.append(frame.assign(sample=name)[["sample", *frame.columns]])
    return pd.concat(parts, ignore_index=True)


def _corner_tab(result: UncertaintyResult) -> pn.viewable.Viewable:
    dims = tuple(range(min(3, result.toys_sample.shape[1])))
    gaussian = pn.Card(
        layout_grid(
            corner_plot(
                result.toys_sample, result.gaussian_sample, dims, "Gaussian", figures.toy_unit(result.toys)
            ),
            len(dims),
        ),
        export_row("toys_vs_gaussian", lambda: figures.toys_vs_samples_figure(result, "gaussian", dims)),
        title="Gaussian samples",
        collapsed=True,
        sizing_mode="stretch_width",
    )
    flow = layout_grid(
        corner_plot(result.toys_sample, result.flow_sample, dims, "flow", figures.toy_unit(result.toys)),
        len(dims),
    )
    export = export_row(
        "toys_vs_flow",
        lambda: figures.toys_vs_samples_figure(result, "flow", dims),
        lambda: samples_frame(result),
    )
    return pn.Column(flow, export, gaussian, sizing_mode="stretch_width")


def _pvalue_tab(result: UncertaintyResult) -> pn.viewable.Viewable:
    reference = "truth" if "truth" in result.pvalues else "flow"
    return pn.Column(
        plot_pane(pvalue_scatter(result.pvalues, reference)),
        export_row("pvalues", lambda: figures.pvalue_figure(result), result.pvalues),
        table(metrics_frame(result.metrics), css_classes=["numl-uncertainty-metrics"]),
        export_row("metrics", tables=result.metrics),
        sizing_mode="stretch_width",
    )


def pit_plot(near_far: pd.DataFrame) -> Any:
    """Histogram of the probability integral transform of the true far values under each model's
    predictive distribution: flat at 1 for a calibrated model, U-shaped if too narrow, humped if too wide."""
    use_bokeh()
    bins = sorted(int(c.split("_")[1]) for c in near_far.columns if c.startswith("pit_") and c[4:].isdigit())
    width = 1.0 / len(bins)
    curves = []
    for _, row in near_far.iterrows():
        edges = np.linspace(0.0, 1.0, len(bins) + 1)
        density = np.array([row[f"pit_{k}"] for k in bins]) / width
        style = MODEL_STYLE.get(row["model"], Style("#7f7f7f", str(row["model"])))
        curves.append(
            hv.Histogram((edges, density), kdims=["u"], vdims=["density"], label=style.label).opts(
                fill_alpha=0.25, line_color=style.color, fill_color=style.color
            )
        )
    flat = hv.HLine(1.0).opts(color="black", line_dash="dashed", line_width=1)
    return hv.Overlay([*curves, flat]).opts(
        title="calibration: PIT of the true far values",
        xlabel=plain_text(figures.PIT_LABEL),
        ylabel=plain_text(figures.PIT_DENSITY),
        responsive=True,
        height=PLOT_HEIGHT,
        legend_position="right",
    )


def _near_far_tab(result: UncertaintyResult) -> pn.viewable.Viewable:
    near_far = result.near_far
    note = pn.pane.Markdown(
        "Held-out NLL per event (nats), coverage of the central 68 % / 95 % predictive intervals and the "
        "PIT's Kolmogorov-Smirnov p-value against U(0, 1), next to the toy's exact conditional "
        "p(X_far | X_near)."
    )
    columns = [c for c in near_far.columns if not (c.startswith("pit_") and c[4:].isdigit())]
    parts: list[Any] = [note, table(near_far[columns])]
    if "pit_0" in near_far.columns:
        parts.insert(1, plot_pane(pit_plot(near_far)))
        parts.append(export_row("near_far", lambda: figures.pit_figure(result), near_far))
    else:
        parts.append(export_row("near_far", tables=near_far))
    return pn.Column(*parts, sizing_mode="stretch_width")


def _training_tab(result: UncertaintyResult) -> pn.viewable.Viewable:
    use_bokeh()
    history = result.history
    curves = hv.Curve(history, "epoch", "train_loss", label="train") * hv.Curve(
        history, "epoch", "val_loss", label="val"
    )
    return pn.Column(
        plot_pane(
            curves.opts(
                title="flow NLL",
                xlabel=plain_text(figures.EPOCH_LABEL),
                ylabel=plain_text(figures.NLL_LABEL),
                responsive=True,
                height=PLOT_HEIGHT,
            )
        ),
        export_row("training", lambda: figures.training_figure(result), history),
        sizing_mode="stretch_width",
    )


def score_view(result: ScoreResult) -> pn.viewable.Viewable:
    """p-values of observations scored later with a finished run's densities."""
    note = pn.pane.Markdown(
        f"**Scored {result.n_observations} observation(s)** with the densities of run `{result.run}`: the "
        "Gaussian's χ² p-value, the improved baseline (the Gaussian density ranked among the toys' own), "
        "and the density rank under the marginal Gaussian and the flow, each with its Monte-Carlo error.",
        css_classes=["numl-uncertainty-score"],
    )
    return pn.Column(
        note,
        table(result.observed, css_classes=["numl-uncertainty-scores"]),
        export_row("scores", tables=result.observed),
        sizing_mode="stretch_width",
    )


def result_view(result: UncertaintyResult | ScoreResult) -> pn.viewable.Viewable:
    """Tabs of an uncertainty result: corner plot, C2ST, p-values and metrics, observation, near-to-far,
    the flow's training; or the table of a ``score`` action."""
    if isinstance(result, ScoreResult):
        return score_view(result)
    observation = pn.pane.Markdown(
        explain_observation(result.observed), css_classes=["numl-uncertainty-observation"]
    )
    c2st = pn.Column(
        plot_pane(c2st_bars(result.metrics)),
        export_row("c2st_accuracy", lambda: figures.c2st_figure(result), result.metrics),
        sizing_mode="stretch_width",
    )
    observed = pn.Column(observation, export_row("observation", tables=result.observed))
    tabs = [
        ("Toys vs samples", _corner_tab(result)),
        ("C2ST", c2st),
        ("p-values", _pvalue_tab(result)),
        ("Observation", observed if not result.observed.empty else observation),
    ]
    if result.near_far is not None and not result.near_far.empty:
        tabs.append(("Near → far", _near_far_tab(result)))
    if {"epoch", "train_loss", "val_loss"} <= set(result.history.columns):
        tabs.append(("Training", _training_tab(result)))
    return pn.Column(
        pn.pane.Markdown(summary_text(result), css_classes=["numl-uncertainty-summary"]),
        pn.Tabs(*tabs, dynamic=True, sizing_mode="stretch_width"),
        sizing_mode="stretch_width",
        css_classes=["numl-uncertainty-results"],
    )


def observation_controls(config: UncertaintyConfig) -> list[pn.viewable.Viewable]:
    """Below the config form: upload a one-row CSV that sets ``config.observation``."""
    upload = pn.widgets.FileInput(accept=".csv,.txt", width=280, css_classes=["numl-observation-upload"])
    note = pn.pane.Markdown("Observed vector: upload a one-row CSV (or type it in *observation*).", width=280)

    def on_upload(event: Any) -> None:
        try:
            config.observation = observation_from_upload(event.new)
            note.object = f"Observation set ({len(config.observation.split(','))} values)."
        except (ValueError, UnicodeDecodeError, IndexError) as exc:
            note.object = f"**Could not read the file:** {exc}"

    upload.param.watch(on_upload, "value")
    return [note, upload]


class ScoreBox(pn.viewable.Viewer):
    """Scores new observations with the densities of the panel's last finished run, through the panel
    itself (the ``score`` action: its progress, status and result area show the job)."""

    def __init__(self, panel: Any) -> None:
        super().__init__()
        self.panel = panel
        self.text = pn.widgets.TextAreaInput(
            label="Observations: comma-separated values, one observation per line",
            height=90,
            sizing_mode="stretch_width",
            css_classes=["numl-score-text"],
        )
        self.button = pn.widgets.Button(label="Score", color="primary", css_classes=["numl-score"])
        self.status = pn.pane.Markdown("", css_classes=["numl-score-status"])
        self.button.on_click(lambda _e: self.start())
        self._layout = pn.Card(
            self.text,
            pn.Row(self.button, self.status),
            title="Score observations",
            sizing_mode="stretch_width",
        )

    def start(self) -> None:
        """Submit the ``score`` action on the last finished run."""
        job = self.panel.job
        if (
            job is None
            or job.state != "done"
            or job.run_dir is None
            or job.run_dir.read_info().get("action", "run") != "run"
        ):
            self.status.object = "Fit the densities first: the last run of this page must have finished."
            return
        lines = [line.strip() for line in self.text.value.splitlines() if line.strip()]
        if not lines:
            self.status.object = "Type at least one observation."
            return
        config = job.config.copy(score_run=str(job.run_dir.path), observation="; ".join(lines))
        started = self.panel.start(action="score", config=config, label="score", trusted=["score_run"])
        self.status.object = (
            f"Scoring {len(lines)} observation(s) ..." if started else "Not started: see above."
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


PAGE = PageSpec(
    workflow="uncertainty",
    result_view=result_view,
    defaults=APP_DEFAULTS,
    controls=observation_controls,
    below=lambda panel, ctx: [ScoreBox(panel)],
)
