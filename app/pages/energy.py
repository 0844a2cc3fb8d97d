"""The energy page: train the energy-and-direction transformer, watch its loss terms, compare baselines.

The job panel renders the config (data set or file, input columns, thresholds, weights, model size,
epochs, device) and streams the train / validation loss per term; the loss terms are chosen in a
:class:`LossTermEditor` below the config: one checkbox, coefficient and base loss per term.
The result views: a comparison table (transformer, calorimetric, GBDT, lepton and visible-momentum
directions), resolution against true energy, predicted against true energy as a heatmap, resolution per
topology and energy range next to the 15 and 7 degree reference points, a threshold-sensitivity
comparison with another stored run, and CSV downloads. Every view takes the ``energy`` workflow's
result dict.
"""

from __future__ import annotations

import io
from functools import partial
from typing import TYPE_CHECKING, Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter

from app.components.job_panel import JobPanel
from app.components.live_curve import plot_pane, use_bokeh
from numl_core.energy.config import DEFAULT_LOSS
from numl_core.energy.losses import BASE_LOSSES, PHYSICS_TERMS

if TYPE_CHECKING:
    from app.context import AppContext

WORKFLOW_NAME = "energy"
#: Smaller than the workflow's defaults so that a run started from the dashboard takes a few minutes on a CPU.
APP_DEFAULTS = {"n_events": 30_000, "epochs": 5}
SUMMARY_COLUMNS = ["estimator", "n", "bias", "rms", "res68", "angle68", "within15", "within7", "baseline68"]
KEY_METRICS = [
    "energy_res68_transformer_cc",
    "energy_res68_calorimetric_cc",
    "energy_res68_gbdt_cc",
    "angle_res68_deg_transformer",
    "angle_res68_deg_baseline",
]
COLORS = {
    "transformer": "#1f77b4",
    "calorimetric": "#ff7f0e",
    "gbdt": "#2ca02c",
    "transformer (energy-only loss)": "#9467bd",
}
PLOT_HEIGHT = 340


def metric_group(record: dict[str, Any]) -> str | None:
    """Live plots: the total loss, and the individual loss terms."""
    if not str(record["name"]).endswith("loss"):
        return None
    return "loss" if record.get("term", "total") == "total" else "loss terms"


def expected_series(config: Any) -> dict[str, list[str]]:
    """Total loss per split, and one series per configured term and split."""
    terms = [
        t["term"] if t.get("term") != "target" else f"target:{t.get('column')}" for t in config.loss_terms
    ]
    return {
        "loss": [f"loss ({split}, total)" for split in ("train", "val")],
        "loss terms": [f"loss ({split}, {term})" for term in terms for split in ("train", "val")],
    }


# -- pure helpers -------------------------------------------------------------------------------------
def _label(term: dict[str, Any]) -> str:
    return f"target:{term.get('column', '')}" if term.get("term") == "target" else str(term.get("term"))


def loss_rows(loss_terms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Editor rows: every physics term (checked when configured) and the configured target terms.

    Each row: label, term, column, enabled, coefficient, loss. Unconfigured terms start unchecked with
    coefficient 1 and the default config's base loss for the term (else the mean squared error).
    """
    configured = {_label(t): t for t in loss_terms}
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


def comparison_table(result: dict[str, Any], group: str = "CC") -> pd.DataFrame:
    """One row per estimator on the events of ``group`` (a channel, or "all"): energy and angle metrics."""
    table = result["resolution"]
    if group == "all" or group not in set(table["group"]):
        rows = table[table["grouping"] == "all"]
    else:
        rows = table[(table["grouping"] == "channel") & (table["group"] == group)]
    return rows[[c for c in SUMMARY_COLUMNS if c in rows.columns]].reset_index(drop=True)


def resolution_plot(result: dict[str, Any], column: str = "res68") -> hv.Overlay:
    """``res68`` (or ``bias``) of each energy estimator in bins of true energy (log x axis)."""
    use_bokeh()
    binned = result["resolution_by_energy"]
    curves = []
    for name, rows in binned.groupby("estimator", sort=False):
        centre = np.sqrt(rows["low"].to_numpy() * rows["high"].to_numpy())
        curves.append(
            hv.Curve((centre, rows[column].to_numpy()), "true E (GeV)", column, label=name).opts(
                color=COLORS.get(name, "#7f7f7f"), line_width=2
            )
        )
    return hv.Overlay(curves).opts(
        logx=True,
        responsive=True,
        height=PLOT_HEIGHT,
        show_grid=True,
        legend_position="top_right",
        title=f"{column} of (E_reco - E_true) / E_true",
    )


def heatmap_plot(result: dict[str, Any]) -> hv.Image:
    """Predicted against true energy, events per log-spaced cell (log10 axes)."""
    use_bokeh()
    edges = np.log10(np.asarray(result["heatmap_edges"], float))
    counts = np.asarray(result["heatmap_counts"], float)
    bounds = (edges[0], edges[0], edges[-1], edges[-1])
    return hv.Image(np.flipud(counts.T), bounds=bounds, kdims=["log10 true E", "log10 predicted E"]).opts(
        cmap="viridis",
        colorbar=True,
        responsive=True,
        height=PLOT_HEIGHT,
        logz=False,
        title="transformer: predicted vs true energy (GeV)",
    )


def range_table(result: dict[str, Any]) -> pd.DataFrame:
    """Angle and baseline resolution per energy range and topology for the direction estimators."""
    ranges = result.get("resolution_by_range")
    if not isinstance(ranges, pd.DataFrame) or ranges.empty or "angle68" not in ranges:
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


def threshold_comparison(a: dict[str, Any], b: dict[str, Any]) -> pd.DataFrame:
    """Thresholds [MeV] and key metrics of two results side by side (rows: quantity; columns A, B, B - A)."""
    rows = []
    ta, tb = a.get("thresholds_mev") or {}, b.get("thresholds_mev") or {}
    for kind in dict.fromkeys([*ta, *tb]):
        rows.append((f"threshold {kind} (MeV)", ta.get(kind, np.nan), tb.get(kind, np.nan)))
    for key in KEY_METRICS:
        rows.append((key, a.get(key, np.nan), b.get(key, np.nan)))
    frame = pd.DataFrame(rows, columns=["quantity", "A", "B"])
    frame["B - A"] = frame["B"].astype(float) - frame["A"].astype(float)
    return frame


def csv_bytes(frame: pd.DataFrame) -> io.BytesIO:
    """A CSV file in memory (for download buttons)."""
    return io.BytesIO(frame.to_csv(index=False).encode("utf-8"))


def _table(frame: pd.DataFrame, **kwargs: Any) -> pn.widgets.Tabulator:
    floats = {c: NumberFormatter(format="0.[0000]") for c in frame.select_dtypes("float").columns}
    return pn.widgets.Tabulator(
        frame, disabled=True, show_index=False, formatters=floats, sizing_mode="stretch_width", **kwargs
    )


def summary_text(result: dict[str, Any]) -> str:
    """One line: split sizes, epochs, throughputs and the headline resolutions."""
    parts = [
        f"{result.get('n_train', 0)} train / {result.get('n_test', 0)} test events",
        f"{result.get('epochs_run', 0)} epochs (best {result.get('best_epoch', -1)})",
        f"training {result.get('train_events_per_s', 0):.0f} events/s",
        f"inference {result.get('inference_events_per_s', 0):.0f} events/s",
    ]
    for key, label in (
        ("energy_res68_transformer_cc", "E res68 (CC)"),
        ("angle_res68_deg_transformer", "angle68"),
    ):
        if key in result and np.isfinite(result[key]):
            parts.append(f"{label} {result[key]:.3g}")
    notes = result.get("import_notes") or []
    text = "**Result:** " + ", ".join(parts)
    if notes:
        text += "\n\n**Imported config, not applied:** " + "; ".join(notes)
    return text


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
        children: list[Any] = [pn.pane.Markdown("**Loss terms** (checked terms are summed)")]
        for i, row in enumerate(self.rows):
            slug = row["label"].replace(":", "-")
            box = pn.widgets.Checkbox(
                label=row["label"], value=row["enabled"], width=120, css_classes=[f"numl-loss-{slug}"]
            )
            coefficient = pn.widgets.FloatInput(
                value=row["coefficient"], step=0.1, width=70, css_classes=[f"numl-loss-coef-{slug}"]
            )
            loss = pn.widgets.Select(value=row["loss"], options=list(BASE_LOSSES), width=95)
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
    """Tabs of an energy result: comparison, resolution, heatmap, topologies, thresholds, export."""

    def __init__(self, ctx: AppContext | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.result: dict[str, Any] = {}
        self.summary = pn.pane.Markdown("*No result yet.*", css_classes=["numl-energy-summary"])
        self.compare_tab = pn.Column(sizing_mode="stretch_width", css_classes=["numl-energy-comparison"])
        self.resolution_tab = pn.Column(sizing_mode="stretch_width")
        self.heatmap_tab = pn.Column(sizing_mode="stretch_width")
        self.ranges_tab = pn.Column(sizing_mode="stretch_width")
        self.thresholds_tab = pn.Column(sizing_mode="stretch_width")
        self.export_tab = pn.Column(sizing_mode="stretch_width")
        self.tabs = pn.Tabs(
            ("Comparison", self.compare_tab),
            ("Resolution vs energy", self.resolution_tab),
            ("Predicted vs true", self.heatmap_tab),
            ("Topologies & ranges", self.ranges_tab),
            ("Threshold sensitivity", self.thresholds_tab),
            ("Export", self.export_tab),
            dynamic=True,
            sizing_mode="stretch_width",
        )
        self._layout = pn.Column(self.summary, self.tabs, sizing_mode="stretch_width")

    def show(self, result: dict[str, Any]) -> EnergyResults:
        """Draw a complete result; returns ``self`` for the job panel's result area."""
        self.result = dict(result)
        self.summary.object = summary_text(result)
        has_physics = "resolution_by_energy" in result and isinstance(result.get("resolution"), pd.DataFrame)
        if not has_physics:
            self.compare_tab[:] = [pn.pane.Markdown("*This result has no resolution tables.*")]
            return self
        channel = pn.widgets.RadioButtonGroup(options=["CC", "NC", "all"], value="CC")
        table = _table(comparison_table(result, "CC"), css_classes=["numl-energy-table"])
        channel.param.watch(lambda e: setattr(table, "value", comparison_table(self.result, e.new)), "value")
        self.compare_tab[:] = [
            pn.pane.Markdown(
                "Same test events for every estimator; res68 = half the central 68% width of "
                "(E_reco - E_true)/E_true; angle68 = 68% quantile of the opening angle (degrees)."
            ),
            channel,
            table,
        ]
        self.resolution_tab[:] = [
            plot_pane(resolution_plot(result)),
            plot_pane(resolution_plot(result, "bias")),
            _table(result["resolution_by_energy"], pagination="local", page_size=12),
        ]
        self.heatmap_tab[:] = [plot_pane(heatmap_plot(result))]
        ranges = range_table(result)
        self.ranges_tab[:] = [
            pn.pane.Markdown(
                "Reference points: 15 degrees ~ 3 sigma and 7 degrees ~ 5 sigma delta_CP sensitivity "
                "with sub-GeV atmospheric neutrinos (Kelly et al., PRL 123, 081801)."
            ),
            _table(ranges, pagination="local", page_size=15)
            if not ranges.empty
            else pn.pane.Markdown("*none*"),
        ]
        self._draw_thresholds()
        self._draw_export()
        return self

    def _draw_thresholds(self) -> None:
        if self.ctx is None:
            self.thresholds_tab[:] = [pn.pane.Markdown("*Stored runs are available in the dashboard.*")]
            return
        runs = [i for i in self.ctx.store.list(WORKFLOW_NAME) if i.get("state") == "done"]
        picker = pn.widgets.Select(name="Compare with run", options=[i["id"] for i in runs], width=360)
        button = pn.widgets.Button(name="Compare", button_type="primary", width=120)
        out = pn.Column(sizing_mode="stretch_width")

        def compare(_event: Any) -> None:
            if not picker.value:
                return
            other = self.ctx.store.get(picker.value).load_result()
            out[:] = [
                _table(threshold_comparison(self.result, other), css_classes=["numl-energy-thresholds"])
            ]

        button.on_click(compare)
        self.thresholds_tab[:] = [
            pn.pane.Markdown(
                "Thresholds and headline resolutions of this result (A) against a stored run (B)."
            ),
            pn.Row(picker, button),
            out,
        ]

    def _draw_export(self) -> None:
        buttons = []
        for key in ("predictions", "resolution", "resolution_by_energy", "resolution_by_range", "history"):
            if isinstance(self.result.get(key), pd.DataFrame):
                buttons.append(
                    pn.widgets.FileDownload(
                        callback=partial(csv_bytes, self.result[key]), filename=f"{key}.csv", width=220
                    )
                )
        note = f"TorchScript model: `{self.result['model_file']}`" if self.result.get("model_file") else ""
        self.export_tab[:] = [
            pn.pane.Markdown("Download the result as CSV files. " + note),
            pn.FlexBox(*buttons),
        ]

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def result_view(result: dict[str, Any]) -> pn.viewable.Viewable:
    """The results view of a stored or in-memory energy result."""
    return EnergyResults().show(result)


def build_page(ctx: AppContext) -> pn.viewable.Viewable:
    """The energy page: the job panel with this workflow's results below it."""
    workflow = ctx.workflows()[WORKFLOW_NAME]
    defaults = {k: v for k, v in APP_DEFAULTS.items() if k in workflow.config_cls.param}
    results = EnergyResults(ctx)
    config = workflow.config_cls(**defaults)
    panel = JobPanel(
        workflow,
        ctx,
        config=config,
        extra_controls=[LossTermEditor(config)],
        on_result=results.show,
        metric_group=metric_group,
        expected_series=expected_series,
        restore=False,
    )
    panel.restore()
    return panel
