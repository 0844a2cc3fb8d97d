"""The config form of the job panel, on the server side without a browser: essentials first and the rest in
an Advanced card, labels with units, tooltips, list widgets instead of Python text, presets, reset, and
JSON export / import (app/components/config_form.py)."""

from __future__ import annotations

import json

import panel as pn
import param
import pytest
from bokeh.document import Document

from app.components.config_form import WORKFLOW_DEFAULTS, ConfigForm, DictField, ListField
from app.components.job_panel import JobPanel
from app.components.page import PageSpec, build_page
from app.context import AppContext, Shared, new_token
from app.pages import energy as energy_page
from app.pages import xsec as xsec_page
from numl_core.config import Config
from numl_core.data.particles import VECTOR_COLUMNS
from numl_core.energy.config import EnergyConfig
from numl_core.generator.config import GeneratorConfig
from numl_core.uncertainty.config import UncertaintyConfig
from numl_core.unfold.config import UnfoldingConfig
from numl_core.xsec.config import XsecConfig

CONFIGS = [UnfoldingConfig, EnergyConfig, GeneratorConfig, UncertaintyConfig, XsecConfig]
ids = pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
#: Fields a page edits with its own controls (left out of its form).
CUSTOM = {EnergyConfig: energy_page.PAGE.custom_fields, XsecConfig: xsec_page.PAGE.custom_fields}


def page_panel(spec: PageSpec, shared: Shared) -> JobPanel:
    """The job panel of a workflow page, built as the dashboard builds it."""
    ctx = AppContext(shared, new_token())
    build_page(spec, ctx)
    return ctx.job_panels[spec.workflow]


def page_form(cls: type[Config], **kwargs) -> ConfigForm:
    """The form a workflow's page shows for ``cls``'s defaults."""
    return ConfigForm(cls(), hidden=CUSTOM.get(cls, ()), **kwargs)


class Notes:
    """Collects what a form reports."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.notes: list[str] = []

    def __call__(self, message: str, error: bool) -> None:
        (self.errors if error else self.notes).append(message)


def leaf_widgets(viewable: pn.viewable.Viewable) -> list[pn.widgets.Widget]:
    """Every widget inside ``viewable`` (through rows, columns, cards and viewers)."""
    return list(pn.panel(viewable).select(pn.widgets.Widget))


def field_names_in(viewable: pn.viewable.Viewable) -> list[str]:
    """The config fields whose widgets lie in ``viewable``, in order (from their ``numl-field-`` class)."""
    out = []
    for w in leaf_widgets(viewable):
        for css in w.css_classes or []:
            name = css.removeprefix("numl-field-")
            if css.startswith("numl-field-") and not name.endswith("-add") and name not in out:
                out.append(name)
    return out


@ids
def test_essentials_come_first_and_the_rest_sit_in_a_collapsed_advanced_card(cls):
    form = page_form(cls)
    pn.panel(form).get_root(Document())
    outside = [o for o in form._layout.objects if o is not form.advanced]
    custom = CUSTOM.get(cls, ())
    advanced = [n for n in cls.advanced_fields() if n not in custom]
    assert field_names_in(pn.Column(*outside)) == [n for n in cls.ESSENTIALS if n not in custom]
    assert field_names_in(form.advanced) == advanced
    assert form.advanced.collapsed and form.advanced.title == f"Advanced ({len(advanced)} fields)"


@ids
def test_widgets_are_named_by_labels_and_no_field_is_python_text(cls):
    form = page_form(cls)
    for name, widget in form.widgets.items():
        inner = [w for w in leaf_widgets(widget) if f"numl-field-{name}" in (w.css_classes or [])]
        assert len(inner) == 1, name
        assert inner[0].label == cls.field_label(name)
        assert not isinstance(inner[0], pn.widgets.LiteralInput), name
        if isinstance(inner[0], (pn.widgets.TextInput, pn.widgets.TextAreaInput)):
            assert not str(inner[0].value).lstrip().startswith(("[", "{")), (name, inner[0].value)
        if isinstance(inner[0], pn.widgets.Select):
            assert inner[0].width >= 250, name  # wide enough for the longest option
        description = getattr(inner[0], "description", None)
        tips = [w.value for w in leaf_widgets(widget) if isinstance(w, pn.widgets.TooltipIcon)]
        assert cls.field_help(name) in (description or "") + "".join(tips), name


def test_labels_units_and_tooltips_reach_the_widgets():
    form = ConfigForm(EnergyConfig())
    threshold = form.widgets["threshold_p_mev"]
    assert isinstance(threshold, pn.widgets.FloatInput) and threshold.label == "Proton threshold [MeV]"
    assert "typical 20-50" in threshold.description and "Default: 25.0" in threshold.description
    assert (threshold.start, threshold.end) == (0, 1000)
    assert isinstance(form.widgets["topologies"], pn.widgets.MultiChoice)
    vector = form.widgets["vector"]
    assert isinstance(vector, ListField) and isinstance(vector.choice, pn.widgets.MultiChoice)
    assert vector.choice.options == list(VECTOR_COLUMNS) and vector.choice.value == list(VECTOR_COLUMNS)


def test_a_list_field_adds_typed_values_and_reports_a_bad_one():
    config, notes = XsecConfig(), Notes()
    form = ConfigForm(config, report=notes)
    factors = form.widgets["transfer_lr_factors"]
    factors.add.value = "0.5"
    assert config.transfer_lr_factors == [0.1, 1.0, 3.0, 0.5] and factors.add.value == ""
    assert 10.0 in factors.choice.options  # the suggested values are offered
    factors.add.value = "fast"
    assert notes.errors == ["Learning-rate factors tried: 'fast' is not a number"]
    assert config.transfer_lr_factors == [0.1, 1.0, 3.0, 0.5]
    factors.choice.value = [3.0, 0.1]
    assert config.transfer_lr_factors == [3.0, 0.1]
    config.transfer_lr_factors = [2.0]  # a loaded config redraws the widget
    assert factors.choice.value == [2.0] and 2.0 in factors.choice.options


def test_a_dict_field_reads_key_value_lines_and_reports_a_bad_line():
    config, notes = EnergyConfig(), Notes()
    form = ConfigForm(config, report=notes)
    kwargs = form.widgets["weight_kwargs"]
    assert isinstance(kwargs, DictField) and kwargs.box.value == "bins: 50\nmaxweight: 10.0"
    kwargs.box.value = "bins: 20\nrange: [0.1, 100]"
    assert config.weight_kwargs == {"bins": 20, "range": [0.1, 100]}
    kwargs.box.value = "bins 20"
    assert "Weighter arguments:" in notes.errors[0] and "'bins 20' is not 'key: value'" in notes.errors[0]
    assert config.weight_kwargs == {"bins": 20, "range": [0.1, 100]}
    form.widgets["column_map"].box.value = "Nu_Energy: enu_truth"
    assert config.column_map == {"Nu_Energy": "enu_truth"}


@ids
def test_applying_a_preset_changes_the_config_and_keeps_the_other_fields(cls):
    config = cls(seed=11)
    form = ConfigForm(config)
    for name in ("quick look", "paper size"):
        assert form.apply_preset(name)
        assert {k: getattr(config, k) for k in cls.preset_values(name)} == cls.preset_values(name)
        assert config.seed == 11
    assert form.message.object == "Preset *paper size* applied."
    assert form.preset.options == [*cls.preset_names(), WORKFLOW_DEFAULTS]
    form.apply_preset(WORKFLOW_DEFAULTS)
    assert config.to_dict() == cls().to_dict()


def test_the_apply_button_applies_the_selected_preset_and_widgets_follow():
    config = UnfoldingConfig()
    form = ConfigForm(config)
    form.preset.value = "quick look"
    form.apply_button.clicks += 1
    assert config.n_events == 50_000 and form.widgets["n_events"].value == 50_000


def test_a_preset_that_would_not_validate_is_refused_and_changes_nothing():
    config, notes = XsecConfig(depth=10, finetune_blocks=8), Notes()
    form = ConfigForm(config, report=notes)
    assert not form.apply_preset("cpu")  # depth 4 < 8 fine-tuned blocks
    assert "XsecConfig.finetune_blocks = 8 exceeds depth = 4" in notes.errors[0]
    assert (config.depth, config.members) == (10, 10)
    assert not form.apply_preset("huge") and "unknown preset 'huge'" in notes.errors[1]


def test_reset_restores_the_values_the_form_started_with():
    config = EnergyConfig(n_events=30_000, epochs=5)
    form = ConfigForm(config)
    config.n_events, config.threshold_p_mev, config.topologies = 1_000, 40.0, ["CCX"]
    form.widgets["epochs"].value = 50
    form.reset_button.clicks += 1
    assert (config.n_events, config.epochs, config.threshold_p_mev) == (30_000, 5, 25.0)
    assert config.topologies == EnergyConfig().topologies and form.widgets["epochs"].value == 5


@ids
def test_export_then_import_round_trips_the_form(cls):
    config = cls.from_preset("quick look", seed=5)
    form = ConfigForm(config)
    exported = form.export_file().getvalue()
    assert json.loads(exported) == config.to_dict()
    form.apply_preset("paper size")
    config.seed = 9
    assert form.import_json(exported.encode(), "mine.json")
    assert config.to_dict() == cls.from_preset("quick look", seed=5).to_dict()
    assert form.message.object == "Imported `mine.json`."


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"n_evnts": 5000}', "unknown field 'n_evnts' (did you mean 'n_events'?)"),
        (b'{"n_events": "many"}', "EnergyConfig.n_events = 'many' is not allowed; expected an integer in"),
        (b'{"n_events": 10}', "EnergyConfig.n_events = 10 is not allowed; expected an integer in [200, "),
        (b'{"schedule": "linear"}', "expected one of ['constant', 'cosine', 'plateau']"),
        (b'{"n_events": 5000,', "bad.json: invalid JSON at line 1"),
        (b"\xff\x00", "bad.json: not UTF-8 text"),
    ],
)
def test_a_bad_import_shows_a_named_error_in_the_panel_and_leaves_the_form(shared, content, expected):
    panel = page_panel(energy_page.PAGE, shared)
    before = panel.config.to_dict()
    panel.form.import_input.filename = "bad.json"
    panel.form.import_input.value = content
    assert panel.config.to_dict() == before
    (alert,) = panel.error_area[0].objects
    assert "Config not imported" in alert.object and expected in alert.object
    assert panel.form.import_json(b'{"n_events": 4000}', "good.json")  # a good file clears the error
    assert panel.config.n_events == 4000 and len(panel.error_area) == 0
    assert panel.form_note.object == "Imported `good.json`."


def test_the_energy_page_offers_one_loss_term_control_with_readable_losses(shared):
    panel = page_panel(energy_page.PAGE, shared)
    assert "loss_terms" not in panel.form.widgets
    editors = [o for o in panel.form.extra if isinstance(o, energy_page.LossTermEditor)]
    assert len(editors) == 1 and editors[0].config is panel.config
    assert max(len(label) for label in energy_page.LOSS_CHOICES) <= 8
    loss = editors[0].widgets[0][2]
    assert loss.value == "mean absolute error" and loss.labels[loss.values.index(loss.value)] == "MAE"
    assert panel.form.import_json(json.dumps({"loss_terms": [{"term": "q2", "loss": "huber"}]}), "l.json")
    assert [row["label"] for row in editors[0].rows if row["enabled"]] == ["q2"]


def test_the_xsec_data_set_picker_is_the_one_control_of_its_fields_and_shows_an_import(shared):
    panel = page_panel(xsec_page.PAGE, shared)
    assert not {"experiments", "exclude_settings"} & set(panel.form.widgets)
    (picker,) = [o for o in panel.form.extra if isinstance(o, xsec_page.DataSetPicker)]
    assert panel.form.import_json(json.dumps({"nucleus": "O", "experiments": ["O'Connell:1987ag"]}), "o.json")
    assert panel.config.experiments == ["O'Connell:1987ag"] == picker.experiments.value
    panel.form.reset()
    assert panel.config.experiments == [] and picker.experiments.value == picker.experiments.options


def test_load_config_fills_the_form_widgets(shared):
    panel = page_panel(energy_page.PAGE, shared)
    config = EnergyConfig(n_events=7_000, threshold_p_mev=33.0, vector=["part_pdg"])
    stored = panel.ctx.store.create("energy", config)
    assert panel.load_config(stored.id)
    assert panel.form.widgets["n_events"].value == 7_000
    assert panel.form.widgets["threshold_p_mev"].value == 33.0
    assert panel.form.widgets["vector"].choice.value == ["part_pdg"]


def test_a_config_without_declarations_shows_every_field_as_essential():
    class Plain(Config):
        steps = param.Integer(default=3, bounds=(1, 100), doc="Steps.")
        rows = param.List(default=[{"a": 1}], item_type=dict, doc="Records.")

    config, notes = Plain(), Notes()
    form = ConfigForm(config, report=notes)
    assert form.essential_names == ["steps", "rows"] and not form.advanced.visible
    rows = form.widgets["rows"]
    assert rows.box.value == '{"a": 1}'
    rows.box.value = '{"a": 2}\n{"b": 3}'
    assert config.rows == [{"a": 2}, {"b": 3}]
    rows.box.value = "[1]"
    assert notes.errors == ["**Rows:** line 1 is not a JSON object"] and config.rows == [{"a": 2}, {"b": 3}]
