"""The uncertainty page: toys vs flow samples, C2ST per model, flow vs Gaussian p-values, near-to-far.

The job panel streams the flow's training and validation NLL live; this module adds the result
views. Every view takes the result dict of the ``uncertainty`` workflow, so the same views show a
finished job, a run reopened from disk or a result built in a notebook.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter

from app.components.job_panel import JobPanel
from app.components.live_curve import plot_key, plot_pane, use_bokeh

if TYPE_CHECKING:
    from app.context import AppContext

WORKFLOW_NAME = "uncertainty"
#: Smaller than the workflow's defaults so that a run from the dashboard takes a minute or two on a laptop.
APP_DEFAULTS = {
    "n_toys": 10_000,
    "n_test": 1_000,
    "epochs": 40,
    "hidden_features": 128,
    "n_pvalue_samples": 20_000,
}
MODEL_STYLE = {
    "gaussian": {"color": "#ff7f0e", "label": "Gaussian (chi2)"},
    "improved_baseline": {"color": "#d62728", "label": "Gaussian (density rank)"},
    "marginal_gaussian": {"color": "#9467bd", "label": "transformed Gaussian"},
    "flow": {"color": "#1f77b4", "label": "flow"},
    "truth": {"color": "black", "label": "truth"},
}
PLOT_HEIGHT = 320
SMALL = 230


def metric_group(record: dict[str, Any]) -> str | None:
    """Live plots: the flow's NLL (``loss``) and the near-to-far models' NLL (``near_far``)."""
    name = str(record["name"])
    if name.startswith("ndfd_"):
        return "near_far"
    if name == "c2st":
        return None
    return plot_key(record)


def expected_series(config: Any) -> dict[str, list[str]]:
    """The live plots and series of an uncertainty job."""
    series = {"loss": [f"flow_loss ({split}, total)" for split in ("train", "val")]}
    if getattr(config, "run_near_far", False):
        series["near_far"] = [
            f"ndfd_{kind}_loss ({split}, total)"
            for kind in ("transformer", "flow")
            for split in ("train", "val")
        ]
    return series


# -- pure plotting helpers ---------------------------------------------------------------------------
def corner_plot(
    toys: np.ndarray, samples: np.ndarray, dims: tuple[int, ...] = (0, 1, 2), label: str = "flow"
) -> Any:
    """Pairs of dimensions: histograms on the diagonal, scatter of toys (grey) and model samples below it."""
    use_bokeh()
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
                ).opts(show_legend=i == dims[0])
            else:
                panel = hv.Scatter(toys[:, [j, i]], f"x{j}", f"x{i}", label="toys").opts(
                    color="#888888", alpha=0.3, size=2
                ) * hv.Scatter(samples[:, [j, i]], f"x{j}", f"x{i}", label=label).opts(
                    color="#1f77b4", alpha=0.3, size=2
                )
                panel = panel.opts(show_legend=False)
            panels.append(panel.opts(width=SMALL, height=SMALL, title=f"x{j} vs x{i}" if i != j else f"x{i}"))
    return hv.Layout(panels).cols(len(dims)).opts(shared_axes=False)


def c2st_bars(metrics: pd.DataFrame) -> Any:
    """C2ST accuracy per model with its fold error; 0.5 means indistinguishable from held-out toys."""
    use_bokeh()
    rows = metrics.drop_duplicates("c2st") if "improved_baseline" in set(metrics["model"]) else metrics
    rows = rows[rows["model"] != "improved_baseline"]
    bars = hv.Bars(rows[["model", "c2st"]], "model", "c2st").opts(color="#1f77b4", ylim=(0.4, 1.02))
    chance = hv.HLine(0.5).opts(color="black", line_dash="dashed")
    return (bars * chance).opts(
        title="C2ST accuracy (0.5 = indistinguishable)", responsive=True, height=PLOT_HEIGHT
    )


def pvalue_scatter(pvalues: pd.DataFrame, reference: str = "truth") -> Any:
    """Each model's p-values against the reference's (the truth where known, else the flow's)."""
    use_bokeh()
    models = [m for m in MODEL_STYLE if m in pvalues and m != reference]
    elements = [hv.Curve([(0, 0), (1, 1)]).opts(color="black", line_dash="dashed")]
    for m in models:
        style = MODEL_STYLE[m]
        elements.append(
            hv.Scatter(
                (pvalues[reference], pvalues[m]), f"p ({reference})", "p (model)", label=style["label"]
            ).opts(color=style["color"], size=3, alpha=0.6)
        )
    return hv.Overlay(elements).opts(
        title=f"p-values against {reference}",
        responsive=True,
        height=PLOT_HEIGHT,
        legend_position="bottom_right",
    )


def metrics_frame(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics table with readable model names and the columns in a fixed order."""
    columns = ["model", "c2st", "c2st_error", "nll", "pvalue_r", "pvalue_mse", "pvalue_r2"]
    frame = metrics[[c for c in columns if c in metrics]].copy()
    frame["model"] = [MODEL_STYLE.get(m, {"label": m})["label"] for m in frame["model"]]
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
        name = MODEL_STYLE.get(model, {"label": model})["label"]
        lines.append(f"| {name} | {row['method']} | {row['pvalue']:.4f}{err} |")
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
    """The first row of an uploaded CSV (with or without header) as the comma-separated config string.

    >>> observation_from_upload(b"a,b\\n1.5,2\\n")
    '1.5, 2.0'
    """
    text = data.decode("utf-8")
    first = text.strip().splitlines()[0].split(",")
    try:
        values = [float(v) for v in first]
    except ValueError:
        values = [float(v) for v in pd.read_csv(io.StringIO(text)).iloc[0]]
    return ", ".join(str(float(v)) for v in values)


def _table(frame: pd.DataFrame, **kwargs: Any) -> pn.widgets.Tabulator:
    floats = {c: NumberFormatter(format="0.[0000]") for c in frame.select_dtypes("float").columns}
    return pn.widgets.Tabulator(
        frame.reset_index(drop=True),
        disabled=True,
        show_index=False,
        formatters=floats,
        sizing_mode="stretch_width",
        **kwargs,
    )


def summary_text(result: dict[str, Any]) -> str:
    """One line: toys, size, non-Gaussianity C2ST and the latent C2ST."""
    parts = [f"toys **{result.get('toys', '?')}**", f"{result.get('dim', '?')} dimensions"]
    if "n_train" in result:
        parts.append(f"{result['n_train']} training / {result.get('n_test', '?')} held-out toys")
    if "non_gaussianity_c2st" in result:
        c2st, p = result["non_gaussianity_c2st"], result["non_gaussianity_pvalue"]
        parts.append(f"non-Gaussianity C2ST {c2st:.3f} (p = {p:.2g})")
    if "latent_c2st" in result:
        parts.append(f"latent C2ST of the flow {result['latent_c2st']:.3f}")
    if "seconds" in result:
        parts.append(f"{result['seconds']:.0f} s")
    return "**Result:** " + ", ".join(parts)


def result_view(result: dict[str, Any]) -> pn.viewable.Viewable:
    """Tabs of an uncertainty result: corner plot, C2ST, p-values and metrics, observation, near-to-far."""
    metrics = result.get("metrics")
    pvalues = result.get("pvalues")
    tabs = []
    toys, flow = result.get("toys_sample"), result.get("flow_sample")
    if toys is not None and flow is not None:
        dims = tuple(range(min(3, np.shape(toys)[1])))
        gauss = result.get("gaussian_sample")
        corner = [plot_pane(corner_plot(toys, flow, dims, "flow"))]
        if gauss is not None:
            corner.append(
                pn.Card(
                    plot_pane(corner_plot(toys, gauss, dims, "Gaussian")),
                    title="Gaussian samples",
                    collapsed=True,
                    sizing_mode="stretch_width",
                )
            )
        tabs.append(("Toys vs samples", pn.Column(*corner, sizing_mode="stretch_width")))
    if isinstance(metrics, pd.DataFrame) and not metrics.empty:
        tabs.append(("C2ST", pn.Column(plot_pane(c2st_bars(metrics)), sizing_mode="stretch_width")))
    if isinstance(pvalues, pd.DataFrame) and not pvalues.empty:
        reference = "truth" if "truth" in pvalues else "flow"
        parts = [plot_pane(pvalue_scatter(pvalues, reference))]
        if isinstance(metrics, pd.DataFrame):
            parts.append(_table(metrics_frame(metrics), css_classes=["numl-uncertainty-metrics"]))
        tabs.append(("p-values", pn.Column(*parts, sizing_mode="stretch_width")))
    tabs.append(
        (
            "Observation",
            pn.pane.Markdown(
                explain_observation(result.get("observed")), css_classes=["numl-uncertainty-observation"]
            ),
        )
    )
    near_far = result.get("near_far")
    if isinstance(near_far, pd.DataFrame) and not near_far.empty:
        note = pn.pane.Markdown(
            "Held-out NLL per event (nats) and coverage of the central 68 % / 95 % predictive intervals "
            "against the toy's exact conditional p(X_far | X_near)."
        )
        tabs.append(("Near → far", pn.Column(note, _table(near_far), sizing_mode="stretch_width")))
    history = result.get("history")
    if isinstance(history, pd.DataFrame) and {"epoch", "train_loss", "val_loss"} <= set(history.columns):
        use_bokeh()
        curves = hv.Curve(history, "epoch", "train_loss", label="train") * hv.Curve(
            history, "epoch", "val_loss", label="val"
        )
        tabs.append(
            ("Training", plot_pane(curves.opts(title="flow NLL", responsive=True, height=PLOT_HEIGHT)))
        )
    return pn.Column(
        pn.pane.Markdown(summary_text(result), css_classes=["numl-uncertainty-summary"]),
        pn.Tabs(*tabs, dynamic=True, sizing_mode="stretch_width"),
        sizing_mode="stretch_width",
        css_classes=["numl-uncertainty-results"],
    )


def build_page(ctx: AppContext) -> pn.viewable.Viewable:
    """The uncertainty page: the job panel (config, live NLL), an observation upload, the results below."""
    workflow = ctx.workflows()[WORKFLOW_NAME]
    defaults = {k: v for k, v in APP_DEFAULTS.items() if k in workflow.config_cls.param}
    config = workflow.config_cls(**defaults)
    upload = pn.widgets.FileInput(accept=".csv,.txt", width=280, css_classes=["numl-observation-upload"])
    upload_note = pn.pane.Markdown(
        "Observed vector: upload a one-row CSV (or type it in *observation*).", width=280
    )

    def on_upload(event: Any) -> None:
        try:
            config.observation = observation_from_upload(event.new)
            upload_note.object = f"Observation set ({len(config.observation.split(','))} values)."
        except (ValueError, UnicodeDecodeError, IndexError) as exc:
            upload_note.object = f"**Could not read the file:** {exc}"

    upload.param.watch(on_upload, "value")
    return JobPanel(
        workflow,
        ctx,
        config=config,
        on_result=result_view,
        metric_group=metric_group,
        expected_series=expected_series,
        extra_controls=[upload_note, upload],
    )
