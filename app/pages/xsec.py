"""The cross-section page: DNN fits of electron-nucleus cross sections, their bands and transfer learning.

Live train/validation chi2 per point of the bootstrap ensemble and the MC-dropout network come from the
generic job panel (declared by the workflow); this module adds a data-set picker (experiments by
citation, settings by kinematics) and the result views: cross section against energy transfer for one
(E, theta) setting with the data, both model bands and the quasi-elastic peak; the fitted normalisation
factors; the metrics; the transfer-learning comparison. Every view takes the workflow's typed result,
:class:`~numl_core.xsec.result.XsecResult` (``run``) or :class:`~numl_core.xsec.result.TransferResult`
(``transfer``).
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn

from app.components.export import export_row
from app.components.page import PageSpec
from app.components.plots import band, plot_pane, use_bokeh
from app.components.tables import table
from numl_core.data import electron_scattering as es
from numl_core.figures import plain_text
from numl_core.xsec import figures
from numl_core.xsec.config import XsecConfig
from numl_core.xsec.result import TransferResult, XsecResult
from numl_core.xsec.workflow import BOOT, MC

WORKFLOW_NAME = "xsec"
#: Smaller than the workflow's defaults so that a fit started from the dashboard takes about a minute.
APP_DEFAULTS = XsecConfig.preset_values("quick look")
METHODS = {
    BOOT: {"color": "#1f77b4", "label": "bootstrap ensemble"},
    MC: {"color": "#ff7f0e", "label": "MC dropout"},
}
SPLIT_MARKERS = {"train": "circle", "val": "square", "test": "triangle"}
PLOT_HEIGHT = 360
NORMS_TEXT = (
    "Fitted normalisation factor λ_k per data set: mean and spread over the bootstrap members; "
    "`prior` is the experiment's normalisation uncertainty, `pull` = (λ − 1) / prior."
)
METRICS_TEXT = (
    "χ² per point with the fitted λ_k (`chi2_test_profiled`: λ_k re-fitted on the held-out "
    "points); coverage: fraction of held-out points inside the central 68.27% (1 σ) and "
    "95.45% (2 σ) intervals of a Student-t predictive located at the prediction λ_k σ_model "
    "for the measured point, scale² = (κ × spread of λ_k σ_model over members)² + data "
    "error² + (misfit × prediction)², the relative misfit (`misfit_student_t`), the degrees "
    "of freedom (`nu_student_t`, in [2, 100]) and the spread scale κ "
    "(`spread_scale_student_t`) fitted jointly by maximum likelihood on the validation "
    "points. `coverage_*_gaussian`: a Gaussian with the same terms and its own "
    "misfit (`misfit`) fitted on the validation points, within 1 and 2 σ; "
    "`coverage_*_no_misfit`: that Gaussian without the misfit term."
)


# -- pure helpers ------------------------------------------------------------------------------------
def setting_options(result: XsecResult) -> dict[str, int]:
    """Setting label -> setting id, in the order of the result's curves."""
    first = result.curves.groupby("setting", sort=True)["setting_label"].first()
    return {label: int(sid) for sid, label in first.items()}


def spectrum_plot(result: XsecResult, setting: int) -> hv.Overlay:
    """d2sigma/dOmega domega [nb/sr/GeV] against omega [GeV] for one setting.

    Data points with error bars, divided by the fitted normalisation lambda_k of their data set (so
    they compare with the model directly), marked by split; each method's mean with a +-1 sigma band;
    a dashed line at the quasi-elastic peak.
    """
    use_bokeh()
    curves = result.curves[result.curves["setting"] == setting].sort_values("omega")
    points = result.points[result.points["setting"] == setting]
    if curves.empty:
        raise KeyError(f"setting {setting} is not in this result")
    elements: list[Any] = []
    for method, style in METHODS.items():
        if f"{method}_mean" in curves:
            mean, spread = curves[f"{method}_mean"].to_numpy(), curves[f"{method}_std"].to_numpy()
            elements += band(curves["omega"].to_numpy(), mean, spread, style["color"], style["label"])
    lam = points["lambda"].to_numpy() if "lambda" in points else np.ones(len(points))
    for split, marker in SPLIT_MARKERS.items():
        part = points["split"].to_numpy() == split
        if not part.any():
            continue
        x = points["omega"].to_numpy()[part]
        y = points["xsec"].to_numpy()[part] / lam[part]
        err = points["error"].to_numpy()[part] / lam[part]
        elements.append(hv.ErrorBars((x, y, err), "x", ["y", "yerr"]).opts(color="black"))
        elements.append(
            hv.Scatter((x, y), "x", "y", label=f"data ({split})").opts(color="black", marker=marker, size=6)
        )
    peak = float(curves["omega_qe"].iloc[0])
    elements.append(hv.VLine(peak).opts(color="#555555", line_dash="dashed", line_width=1))
    label = str(curves["setting_label"].iloc[0])
    return hv.Overlay(elements).opts(
        title=f"{label} (QE peak at omega = {peak:.3f} GeV)",
        xlabel=plain_text(figures.OMEGA_LABEL),
        ylabel=plain_text(figures.XSEC_LABEL),
        responsive=True,
        height=PLOT_HEIGHT,
        show_grid=True,
        legend_position="top_right",
    )


def summary_frame(result: XsecResult | TransferResult) -> pd.DataFrame:
    """One row per uncertainty method: chi2 per point per split, coverage, band width, time."""
    summary = getattr(result, "summary", None) or {}
    rows = [{"method": METHODS.get(m, {"label": m})["label"], **values} for m, values in summary.items()]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame.insert(1, "coverage target", "0.683 / 0.954")
    return frame


def summary_text(result: XsecResult | TransferResult) -> str:
    """A one-line Markdown summary of a result."""
    if isinstance(result, XsecResult):
        parts = [f"nucleus {result.nucleus}", f"{result.n_points} points", f"held out by {result.split}"]
        boot = result.summary.get(BOOT)
        if boot:
            parts.append(f"bootstrap chi2/point on held-out: {boot['chi2_test']:.2f}")
    else:
        parts = [f"base model {result.base_nucleus}"]
    if result.transfer is not None:
        parts.append(f"transfer ({result.finetune}) to {len(result.transfer)} nucleus/nuclei")
    parts.append(f"{result.seconds:.1f} s")
    return "**Result:** " + ", ".join(parts)


def transfer_plot(transfer: pd.DataFrame) -> hv.Bars:
    """chi2 per point on each target's held-out points: fine-tuned, from scratch, scaled base model."""
    use_bokeh()
    methods = [("finetuned", "fine-tuned"), ("scratch", "from scratch"), ("scaled_base", "scaled base")]
    rows = [
        (n, label, float(v))
        for n in transfer["nucleus"]
        for key, label in methods
        for v in transfer.loc[transfer["nucleus"] == n, key]
    ]
    return hv.Bars(rows, ["nucleus", "method"], "chi2 per point").opts(
        logy=True,
        responsive=True,
        height=300,
        title="transfer learning: held-out χ² per point",
        ylabel=plain_text(figures.TRANSFER_CHI2_LABEL),
        show_grid=True,
        multi_level=True,
        xrotation=0,
    )


# -- the results view -------------------------------------------------------------------------------
class XsecResults(pn.viewable.Viewer):
    """Tabs of a cross-section result: spectra, normalisations, metrics, transfer."""

    def __init__(self) -> None:
        super().__init__()
        self.result: XsecResult | TransferResult | None = None
        self.setting = pn.widgets.Select(label="Setting (citation, E, theta)", options={}, width=420)
        self.setting.param.watch(lambda _e: self._draw_spectrum(), "value")
        self.plot = plot_pane(None, min_height=PLOT_HEIGHT)
        self.spectrum_export = pn.Column(sizing_mode="stretch_width")
        self.summary = pn.pane.Markdown("*No result yet.*", css_classes=["numl-xsec-summary"])
        self.norm_tab = pn.Column(sizing_mode="stretch_width")
        self.metrics_tab = pn.Column(sizing_mode="stretch_width")
        self.transfer_tab = pn.Column(sizing_mode="stretch_width")
        self.tabs = pn.Tabs(
            (
                "Spectra",
                pn.Column(self.setting, self.plot, self.spectrum_export, sizing_mode="stretch_width"),
            ),
            ("Normalisations", self.norm_tab),
            ("Metrics", self.metrics_tab),
            ("Transfer", self.transfer_tab),
            sizing_mode="stretch_width",
        )
        self._layout = pn.Column(self.summary, self.tabs, sizing_mode="stretch_width")

    def show(self, result: XsecResult | TransferResult) -> XsecResults:
        """Draw a result of ``run`` or ``transfer``; returns ``self``."""
        self.result = result
        self.summary.object = summary_text(result)
        fit = result if isinstance(result, XsecResult) else None
        if fit is not None:
            options = setting_options(fit)
            self.setting.options = options
            self.setting.value = next(iter(options.values()))
            self._draw_spectrum()
            self.spectrum_export[:] = [self._spectrum_export(fit)]
        else:
            self.plot.object = None
            self.spectrum_export[:] = []
        self.norm_tab[:] = (
            [
                pn.pane.Markdown(NORMS_TEXT),
                table(fit.normalisations, css_classes=["numl-xsec-norms"]),
                export_row("normalisations", lambda: figures.normalisations_figure(fit), fit.normalisations),
            ]
            if fit is not None
            else [pn.pane.Markdown("*No normalisation factors.*")]
        )
        metrics = summary_frame(result)
        self.metrics_tab[:] = (
            [
                pn.pane.Markdown(METRICS_TEXT),
                table(metrics, css_classes=["numl-xsec-metrics"]),
                export_row("metrics", tables=metrics),
            ]
            if not metrics.empty
            else [pn.pane.Markdown("*No metrics.*")]
        )
        self.transfer_tab[:] = self._transfer_views(result)
        return self

    @staticmethod
    def _transfer_views(result: XsecResult | TransferResult) -> list[Any]:
        transfer = result.transfer
        if transfer is None or transfer.empty:
            return [pn.pane.Markdown("*Set `with_transfer` to compare transfer learning.*")]
        return [
            pn.pane.Markdown(
                f"Base model carried over ({result.finetune}) with a fraction of each "
                "nucleus's points; χ² per point on the remaining points, each experiment's λ_k taken "
                "from that method's predictions at the fine-tuning points (an experiment without any "
                "keeps λ = 1 with its normalisation uncertainty). The `*_profiled` columns fit λ_k on "
                "the scored points themselves: shown for comparison only."
            ),
            plot_pane(transfer_plot(transfer)),
            table(transfer, css_classes=["numl-xsec-transfer"]),
            export_row(
                "transfer",
                lambda: figures.transfer_figure(result),
                {"summary": transfer, "points": result.transfer_points}
                if result.transfer_points is not None
                else transfer,
            ),
        ]

    def _spectrum_export(self, fit: XsecResult) -> pn.Row:
        """The chosen setting's figure (:func:`~numl_core.xsec.figures.spectrum_figure`), its model curves
        and its data points."""

        def rows(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["setting"] == self.setting.value]

        return export_row(
            lambda: f"spectrum_setting{self.setting.value}",
            lambda: figures.spectrum_figure(fit, self.setting.value),
            {"curves": lambda: rows(fit.curves), "points": lambda: rows(fit.points)},
        )

    def _draw_spectrum(self) -> None:
        if self.setting.value is not None and isinstance(self.result, XsecResult):
            self.plot.object = spectrum_plot(self.result, self.setting.value)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def show_result(result: XsecResult | TransferResult) -> pn.viewable.Viewable:
    """The results view of a stored or in-memory cross-section result."""
    return XsecResults().show(result)


class DataSetPicker(pn.viewable.Viewer):
    """Check boxes of the chosen nucleus's experiments and a multi-choice of settings to leave out,
    kept in step with the config's ``experiments`` and ``exclude_settings`` both ways (a loaded, imported
    or reset config shows its own choice)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.experiments = pn.widgets.CheckBoxGroup(label="Experiments", inline=False)
        self.excluded = pn.widgets.MultiChoice(label="Leave out settings", options=[], width=290)
        self.experiments.param.watch(self._on_experiments, "value")
        self.excluded.param.watch(lambda e: setattr(config, "exclude_settings", list(e.new)), "value")
        config.param.watch(lambda _e: self.refresh(), "nucleus")
        config.param.watch(lambda _e: self.show_config(), ["experiments", "exclude_settings"])
        self.refresh()

    def refresh(self) -> None:
        """The experiments and settings of the config's nucleus, and the config's choice among them."""
        if self.config.nucleus == "file":
            self.experiments.options, self.excluded.options = [], []
            return
        table = es.load_nucleus(self.config.nucleus)
        self.experiments.options = sorted(table["citation"].unique())
        self.excluded.options = list(es.settings_table(table)["label"])
        self.show_config()

    def show_config(self) -> None:
        """Tick the config's experiments (all when it names none of this nucleus's) and select the settings
        it leaves out."""
        chosen = [e for e in self.config.experiments if e in self.experiments.options]
        self.experiments.value = chosen or list(self.experiments.options)
        self.excluded.value = [s for s in self.config.exclude_settings if s in self.excluded.options]

    def _on_experiments(self, event: Any) -> None:
        chosen = list(event.new)
        self.config.experiments = [] if set(chosen) == set(self.experiments.options) else chosen

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.pane.Markdown("**Data sets**"), self.experiments, self.excluded, width=300)


PAGE = PageSpec(
    workflow=WORKFLOW_NAME,
    result_view=show_result,
    defaults=APP_DEFAULTS,
    controls=lambda config: [DataSetPicker(config)],
    custom_fields=("experiments", "exclude_settings"),  # edited by the data-set picker
)
