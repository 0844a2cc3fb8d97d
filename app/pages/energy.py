"""The energy page: train the energy-and-direction transformer, watch its loss terms, compare baselines.

The job panel renders the config (data set or file, input columns, thresholds, weights, model size,
epochs, device) and streams the train / validation loss per term (the live plots the workflow declares);
the loss terms are chosen in a :class:`LossTermEditor` below the config: one checkbox, coefficient and
base loss per term. The result view of an :class:`~numl_core.energy.result.EnergyResult`: a comparison
table (transformer, calorimetric, GBDT, lepton and visible-momentum directions), resolution against true
energy, predicted against true energy as a heatmap, resolution per topology and energy range next to the
15 and 7 degree reference points, and CSV downloads. Below the panel, :class:`ThresholdComparison` sets
the thresholds and headline resolutions of two stored runs side by side.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn

from app.components.export import export_row, table_download
from app.components.page import PageSpec
from app.components.plots import plot_pane, use_bokeh
from app.components.tables import table
from numl_core.energy import figures
from numl_core.energy.config import DEFAULT_LOSS, EnergyConfig
from numl_core.energy.losses import BASE_LOSSES, PHYSICS_TERMS, term_label
from numl_core.energy.result import HEADLINE_METRICS, EnergyResult, PredictResult
from numl_core.energy.workflow import ABLATION
from numl_core.figures import MARKER_MAX_POINTS, plain_text

if TYPE_CHECKING:
    from app.components.job_panel import JobPanel
    from app.context import AppContext

WORKFLOW_NAME = "energy"
#: Smaller than the workflow's defaults so that a run started from the dashboard takes a few minutes on a CPU.
APP_DEFAULTS = EnergyConfig.preset_values("quick look")
SUMMARY_COLUMNS = ["estimator", "n", "bias", "rms", "res68", "angle68", "within15", "within7", "baseline68"]
COLORS = {
    "transformer": "#1f77b4",
    "calorimetric": "#ff7f0e",
    "gbdt": "#2ca02c",
    ABLATION: "#9467bd",
}
PLOT_HEIGHT = 340
TAB_TITLES = ("Comparison", "Resolution vs energy", "Predicted vs true", "Topologies & ranges", "Export")
#: The base losses under short names (MSE, MAE, MAPE, MSPE, huber, log cosh), so that none is cut off.
LOSS_CHOICES = {
    ("".join(w[0] for w in name.split()).upper() if name.startswith("mean ") else name): name
    for name in BASE_LOSSES
}


# -- pure helpers -------------------------------------------------------------------------------------
def loss_rows(loss_terms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Editor rows: every physics term (checked when configured) and the configured target terms.

    Each row: label, term, column, enabled, coefficient, loss. Unconfigured terms start unchecked with
    coefficient 1 and the default config's base loss for the term (else the mean squared error).
    """
    configured = {term_label(t): t for t in loss_terms}
    default_losses = {t["term"]: t["loss"] for t in DEFAULT_LOSS}
    rows = []
    for term in PHYSICS_TERMS:
        t = configured.get(term, {})
        default_loss = default_losses.get(term, "mean squared error")
        rows.append(
            {
                "label": term,
                "term": term,
                "column": "",
                "enabled": term in configured,
                "coefficient": float(t.get("coefficient", 1.0)),
                "loss": str(t.get("loss", default_loss)),
            }
        )
    for label, t in configured.items():
        if t.get("term") == "target":
            rows.append(
                {
                    "label": label,
                    "term": "target",
                    "column": str(t.get("column", "")),
                    "enabled": True,
                    "coefficient": float(t.get("coefficient", 1.0)),
                    "loss": str(t.get("loss", "mean squared error")),
                }
            )
    return rows


def terms_from_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The config's ``loss_terms`` from editor rows: the checked ones, in row order."""
    out = []
    for row in rows:
        if not row["enabled"]:
            continue
        term = {"term": row["term"], "loss": row["loss"], "coefficient": float(row["coefficient"])}
        if row["term"] == "target":
            term["column"] = row["column"]
        out.append(term)
    return out


def comparison_table(result: EnergyResult, group: str = "CC") -> pd.DataFrame:
    """One row per estimator on the events of ``group`` (a channel, or "all"): energy and angle metrics."""
    resolution = result.resolution
    if group == "all" or group not in set(resolution["group"]):
        rows = resolution[resolution["grouping"] == "all"]
    else:
        rows = resolution[(resolution["grouping"] == "channel") & (resolution["group"] == group)]
    return rows[[c for c in SUMMARY_COLUMNS if c in rows.columns]].reset_index(drop=True)


def resolution_plot(result: EnergyResult, column: str = "res68") -> hv.Overlay:
    """``res68`` (or ``bias``) of each energy estimator in bins of true energy (log x axis)."""
    use_bokeh()
    curves = []
    for name, rows in result.resolution_by_energy.groupby("estimator", sort=False):
        centre = np.sqrt(rows["low"].to_numpy() * rows["high"].to_numpy())
        color = COLORS.get(name, "#7f7f7f")
        xy = (centre, rows[column].to_numpy())
        curves.append(hv.Curve(xy, "true_e", column, label=name).opts(color=color, line_width=2))
        if len(centre) <= MARKER_MAX_POINTS:
            curves.append(hv.Scatter(xy, "true_e", column, label=name).opts(color=color, size=6))
    return hv.Overlay(curves).opts(
        logx=True,
        responsive=True,
        height=PLOT_HEIGHT,
        show_grid=True,
        legend_position="right",
        xlabel=plain_text(figures.TRUE_ENERGY),
        ylabel=plain_text(figures.RESOLUTION_LABELS.get(column, column)),
        title=f"{column} of (E_reco - E_true) / E_true",
    )


def heatmap_plot(result: EnergyResult) -> hv.Image:
    """Predicted against true energy, events per log-spaced cell (log10 axes)."""
    use_bokeh()
    edges = np.log10(np.asarray(result.heatmap_edges, float))
    counts = np.asarray(result.heatmap_counts, float)
    bounds = (edges[0], edges[0], edges[-1], edges[-1])
    return hv.Image(
        np.flipud(counts.T), bounds=bounds, kdims=["log10 true E", "log10 predicted E"], vdims=["events"]
    ).opts(
        cmap="viridis",
        colorbar=True,
        responsive=True,
        height=PLOT_HEIGHT,
        logz=False,
        title="transformer: predicted vs true energy",
        xlabel=f"log₁₀ of {plain_text(figures.TRUE_ENERGY)}",
        ylabel=f"log₁₀ of {plain_text(figures.PREDICTED_ENERGY)}",
        clabel=figures.HEATMAP_COUNTS,
    )


def range_table(result: EnergyResult) -> pd.DataFrame:
    """Angle and baseline resolution per energy range and topology for the direction estimators."""
    ranges = result.resolution_by_range
    if ranges.empty or "angle68" not in ranges:
        return pd.DataFrame()
    rows = ranges[ranges["angle68"].notna()]
    keep = [
        "energy_range",
        "estimator",
        "group",
        "n",
        "angle68",
        "within15",
        "within7",
        "baseline68",
        "res68",
    ]
    return rows[[c for c in keep if c in rows]].reset_index(drop=True)


def _value(result: EnergyResult, key: str) -> float:
    value = getattr(result, key)
    return np.nan if value is None else value


def threshold_comparison(a: EnergyResult, b: EnergyResult) -> pd.DataFrame:
    """Thresholds [MeV] and key metrics of two results side by side (rows: quantity; columns A, B, B - A)."""
    rows = []
    ta, tb = a.thresholds_mev or {}, b.thresholds_mev or {}
    for kind in dict.fromkeys([*ta, *tb]):
        rows.append((f"threshold {kind} (MeV)", ta.get(kind, np.nan), tb.get(kind, np.nan)))
    for key in HEADLINE_METRICS:
        rows.append((key, _value(a, key), _value(b, key)))
    frame = pd.DataFrame(rows, columns=["quantity", "A", "B"])
    frame["B - A"] = frame["B"].astype(float) - frame["A"].astype(float)
    return frame


def summary_text(result: EnergyResult) -> str:
    """One line: split sizes, epochs, throughputs and the headline resolutions."""
    parts = [
        f"{result.n_train} train / {result.n_test} test events",
        f"{result.epochs_run} epochs (best {result.best_epoch})",
        f"training {result.train_events_per_s:.0f} events/s",
        f"inference {result.inference_events_per_s:.0f} events/s",
    ]
    for value, label in (
        (result.energy_res68_transformer_cc, "E res68 (CC)"),
        (result.angle_res68_deg_transformer, "angle68"),
    ):
        if value is not None and np.isfinite(value):
            parts.append(f"{label} {value:.3g}")
    text = "**Result:** " + ", ".join(parts)
    if result.import_notes:
        text += "\n\n**Imported config, not applied:** " + "; ".join(result.import_notes)
    return text


def downloads(result: EnergyResult | PredictResult) -> pn.FlexBox:
    """One CSV download button per table of the result."""
    return pn.FlexBox(
        *(
            table_download(frame, key, label=f"Download {key}.csv")
            for key, frame in result.to_tables().items()
        )
    )


# -- the loss-term editor ----------------------------------------------------------------------------
class LossTermEditor(pn.viewable.Viewer):
    """Checkbox + coefficient + base loss per loss term, kept in sync with ``config.loss_terms``."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.rows: list[dict[str, Any]] = []
        self.widgets: list[tuple[pn.widgets.Checkbox, pn.widgets.FloatInput, pn.widgets.Select]] = []
        self._syncing = False
        self._column = pn.Column(css_classes=["numl-energy-loss-terms"], width=300)
        self._build()
        config.param.watch(self._from_config, "loss_terms")

    def _build(self) -> None:
        self.rows = loss_rows(self.config.loss_terms)
        self.widgets = []
        children: list[Any] = [
            pn.pane.Markdown(
                "**Loss terms** (checked terms are summed; MSE/MAE: mean squared/absolute error, "
                "MAPE/MSPE: their percentage forms)"
            )
        ]
        for i, row in enumerate(self.rows):
            slug = row["label"].replace(":", "-")
            box = pn.widgets.Checkbox(
                label=row["label"], value=row["enabled"], width=115, css_classes=[f"numl-loss-{slug}"]
            )
            coefficient = pn.widgets.FloatInput(
                value=row["coefficient"], step=0.1, width=65, css_classes=[f"numl-loss-coef-{slug}"]
            )
            # 115 + 65 + 85 px and margins: the row fits the 300 px form, no select is cut off
            loss = pn.widgets.Select(value=row["loss"], options=LOSS_CHOICES, width=85)
            for widget in (box, coefficient, loss):
                widget.param.watch(partial(self._changed, i), "value")
            self.widgets.append((box, coefficient, loss))
            children.append(pn.Row(box, coefficient, loss, margin=0))
        self._column[:] = children

    def _changed(self, index: int, _event: Any) -> None:
        if self._syncing:
            return
        box, coefficient, loss = self.widgets[index]
        self.rows[index].update(
            enabled=bool(box.value),
            coefficient=float(coefficient.value if coefficient.value is not None else 0.0),
            loss=loss.value,
        )
        self._syncing = True
        try:
            self.config.loss_terms = terms_from_rows(self.rows)
        finally:
            self._syncing = False

    def _from_config(self, _event: Any) -> None:
        if not self._syncing:
            self._build()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._column


# -- the results view ------------------------------------------------------------------------------------
class EnergyResults(pn.viewable.Viewer):
    """Tabs of an energy result: comparison, resolution, heatmap, topologies and ranges, export."""

    def __init__(self) -> None:
        super().__init__()
        self.result: EnergyResult | None = None
        self.summary = pn.pane.Markdown("*No result yet.*", css_classes=["numl-energy-summary"])
        tabs = [pn.Column(sizing_mode="stretch_width") for _ in TAB_TITLES]
        self.compare_tab, self.resolution_tab, self.heatmap_tab, self.ranges_tab, self.export_tab = tabs
        self.compare_tab.css_classes = ["numl-energy-comparison"]
        self.tabs = pn.Tabs(*zip(TAB_TITLES, tabs, strict=True), dynamic=True, sizing_mode="stretch_width")
        self._layout = pn.Column(self.summary, self.tabs, sizing_mode="stretch_width")

    def show(self, result: EnergyResult) -> EnergyResults:
        """Draw a complete result; returns ``self`` for the job panel's result area."""
        self.result = result
        self.summary.object = summary_text(result)
        channel = pn.widgets.RadioButtonGroup(options=["CC", "NC", "all"], value="CC")
        comparison = table(comparison_table(result, "CC"), css_classes=["numl-energy-table"])
        channel.param.watch(lambda e: setattr(comparison, "value", comparison_table(result, e.new)), "value")
        self.compare_tab[:] = [
            pn.pane.Markdown(
                "Same test events for every estimator; res68 = half the central 68% width of "
                "(E_reco - E_true)/E_true; angle68 = 68% quantile of the opening angle (degrees)."
            ),
            channel,
            comparison,
            export_row("comparison", tables=lambda: comparison_table(result, channel.value)),
        ]
        self.resolution_tab[:] = [
            plot_pane(resolution_plot(result)),
            plot_pane(resolution_plot(result, "bias")),
            table(result.resolution_by_energy, pagination="local", page_size=12),
            export_row(
                "resolution_vs_energy",
                lambda: figures.resolution_figure(result),
                result.resolution_by_energy,
            ),
        ]
        self.heatmap_tab[:] = [
            plot_pane(heatmap_plot(result)),
            export_row(
                "predicted_vs_true",
                lambda: figures.energy_heatmap_figure(result),
                lambda: figures.heatmap_table(result),
            ),
        ]
        ranges = range_table(result)
        self.ranges_tab[:] = [
            pn.pane.Markdown(
                "Reference points: 15 degrees ~ 3 sigma and 7 degrees ~ 5 sigma delta_CP sensitivity "
                "with sub-GeV atmospheric neutrinos (Kelly et al., PRL 123, 081801)."
            ),
            table(ranges, pagination="local", page_size=15)
            if not ranges.empty
            else pn.pane.Markdown("*none*"),
        ]
        if not ranges.empty:
            self.ranges_tab.append(
                export_row("angular_resolution", lambda: figures.angular_resolution_figure(result), ranges)
            )
        note = f"TorchScript model: `{result.model_file}`" if result.model_file else ""
        self.export_tab[:] = [
            pn.pane.Markdown("Download the result as CSV files. " + note),
            downloads(result),
        ]
        return self

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def predict_view(result: PredictResult) -> pn.viewable.Viewable:
    """The predictions of the ``predict`` action: a table and its download."""
    return pn.Column(
        pn.pane.Markdown(
            f"**Predictions:** {len(result.predictions)} events from {result.n_files} file(s)",
            css_classes=["numl-energy-summary"],
        ),
        table(result.predictions, pagination="local", page_size=15),
        downloads(result),
        sizing_mode="stretch_width",
    )


def result_view(result: EnergyResult | PredictResult) -> pn.viewable.Viewable:
    """The view of a stored or in-memory energy result (a training run, or the ``predict`` action)."""
    if isinstance(result, PredictResult):
        return predict_view(result)
    return EnergyResults().show(result)


# -- comparing two stored runs ---------------------------------------------------------------------------
class ThresholdComparison(pn.viewable.Viewer):
    """Thresholds and headline resolutions of two stored energy runs (A and B) side by side."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.a = pn.widgets.Select(label="Run A", width=320)
        self.b = pn.widgets.Select(label="Run B", width=320)
        refresh = pn.widgets.Button(label="Refresh", width=90)
        compare = pn.widgets.Button(label="Compare", color="primary", width=120)
        refresh.on_click(lambda _event: self.refresh())
        compare.on_click(lambda _event: self.compare())
        self.out = pn.Column(sizing_mode="stretch_width")
        self._layout = pn.Card(
            pn.pane.Markdown("Thresholds and headline resolutions of two stored runs (B - A per row)."),
            pn.Row(self.a, self.b, refresh, compare),
            self.out,
            title="Threshold sensitivity",
            collapsed=True,
            sizing_mode="stretch_width",
        )
        self.refresh()

    def refresh(self) -> None:
        """List the finished runs, newest first; A defaults to the one before the newest, B to the newest."""
        runs = [
            i["id"]
            for i in self.ctx.store.list(WORKFLOW_NAME)
            if i.get("state") == "done"
            and i.get("result_type", EnergyResult.__name__) == EnergyResult.__name__
        ]
        self.a.options, self.b.options = runs, runs
        if runs:
            self.a.value, self.b.value = runs[min(1, len(runs) - 1)], runs[0]

    def compare(self) -> None:
        """Draw the comparison of the chosen runs."""
        if not self.a.value or not self.b.value:
            return
        workflow = self.ctx.workflows()[WORKFLOW_NAME]
        a, b = (workflow.load_result(self.ctx.store.get(run)) for run in (self.a.value, self.b.value))
        self.out[:] = [table(threshold_comparison(a, b), css_classes=["numl-energy-thresholds"])]

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def _loss_editor(config: Any) -> list[pn.viewable.Viewable]:
    return [LossTermEditor(config)]


def _below(panel: JobPanel, ctx: AppContext) -> list[pn.viewable.Viewable]:
    return [ThresholdComparison(ctx)]


PAGE = PageSpec(
    workflow=WORKFLOW_NAME,
    result_view=result_view,
    defaults=APP_DEFAULTS,
    controls=_loss_editor,
    below=_below,
    custom_fields=("loss_terms",),  # the loss-term editor is its one control
)
