"""The config form of a job panel: a workflow's :class:`~numl_core.config.Config` as labelled widgets.

What the form shows comes from the config class (``numl_core``), never from the page: the essential fields
first, the others in a collapsed **Advanced** card; each widget is named by the field's human label (with
its unit) and its tooltip is :meth:`~numl_core.config.Config.field_help`. Numbers are typed boxes, choices
are selects wide enough for their longest option, lists are multi-choice widgets (with an *add* box for a
free list) and dicts are ``key: value`` lines: no field is a Python literal. Above the fields: a preset
selector with **Apply**, **Reset to defaults** (the values the page started with), **Export JSON** and
**Import JSON**. Every change goes into the same config object the job panel starts, resumes and reloads,
so those paths are unchanged; a bad value or file is reported (with the field and what it expects) and the
form keeps its values. Each field's widget carries the CSS class ``numl-field-NAME`` for browser tests.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Collection, Sequence
from typing import Any

import panel as pn
import param

from numl_core.config import Config, ConfigError

FIELD_WIDTH = 290
FORM_WIDTH = 310
#: The preset-selector entry that sets every field to the workflow's own defaults.
WORKFLOW_DEFAULTS = "workflow defaults"

#: ``report(message, error)``: show a note (``error`` False) or a named error.
Report = Callable[[str, bool], None]


def field_class(name: str) -> list[str]:
    """The CSS classes of field ``name``'s widget (browser tests find fields by them)."""
    return [f"numl-field-{name}"]


def field_widget(config: Config, name: str, report: Report) -> pn.viewable.Viewable:
    """The widget of field ``name``, linked both ways to ``config``."""
    cls = type(config)
    p = config.param[name]  # the instance's parameter: the widget edits this config
    common = {"label": cls.field_label(name), "css_classes": field_class(name), "width": FIELD_WIDTH}
    help_text = cls.field_help(name)
    if isinstance(p, param.Boolean):
        box = pn.widgets.Checkbox.from_param(p, **{**common, "width": FIELD_WIDTH - 30})
        return pn.Row(box, pn.widgets.TooltipIcon(value=help_text), margin=0)
    if isinstance(p, param.List) and not isinstance(p, param.ListSelector):
        if p.item_type is dict:
            return RecordsField(config, name, report)
        return ListField(config, name, report)
    if isinstance(p, param.Dict):
        return DictField(config, name, report)
    kind = _widget_type(p)
    return kind.from_param(p, description=help_text, **common)


def _widget_type(p: param.Parameter) -> type[pn.widgets.Widget]:
    """The widget class of a scalar or selector parameter."""
    if isinstance(p, param.Integer):
        return pn.widgets.IntInput
    if isinstance(p, param.Number):
        return pn.widgets.FloatInput
    if isinstance(p, param.ListSelector):
        return pn.widgets.MultiChoice
    if isinstance(p, param.Selector):
        return pn.widgets.Select
    return pn.widgets.TextInput


def parse_item(text: str, item_type: Any, label: str) -> Any:
    """One typed list item from the text of an *add* box; :class:`ConfigError` names the field."""
    if item_type in (int, float):
        try:
            return item_type(text)
        except ValueError:
            kind = "an integer" if item_type is int else "a number"
            raise ConfigError(f"{label}: {text!r} is not {kind}") from None
    return text


class ListField(pn.viewable.Viewer):
    """A free list (``param.List`` of strings or numbers): a multi-choice of the current values and the
    field's suggested ones (``LIST_OPTIONS``), in the order chosen, and a box that adds another value."""

    def __init__(self, config: Config, name: str, report: Report) -> None:
        super().__init__()
        self.config, self.field, self.report = config, name, report
        cls = type(config)
        self.label = cls.field_label(name)
        self.item_type = cls.param[name].item_type
        self.choice = pn.widgets.MultiChoice(
            label=self.label,
            description=cls.field_help(name),
            options=self._options(getattr(config, name)),
            value=list(getattr(config, name)),
            css_classes=field_class(name),
            width=FIELD_WIDTH,
        )
        self.add = pn.widgets.TextInput(
            placeholder="add a value (Enter)", width=FIELD_WIDTH, css_classes=[f"numl-field-{name}-add"]
        )
        self.choice.param.watch(self._to_config, "value")
        self.add.param.watch(self._on_add, "value")
        config.param.watch(self._from_config, name)

    def _options(self, values: Sequence[Any]) -> list[Any]:
        suggested = type(self.config).LIST_OPTIONS.get(self.field, ())
        return list(dict.fromkeys([*suggested, *values]))

    def _to_config(self, event: param.parameterized.Event) -> None:
        if list(event.new) == list(getattr(self.config, self.field)):
            return
        try:
            setattr(self.config, self.field, list(event.new))
        except (ValueError, TypeError) as exc:
            self.report(f"**{self.label}:** {exc}", True)
            self.choice.value = list(getattr(self.config, self.field))

    def _on_add(self, event: param.parameterized.Event) -> None:
        text = (event.new or "").strip()
        if not text:
            return
        try:
            item = parse_item(text, self.item_type, self.label)
        except ConfigError as exc:
            self.report(str(exc), True)
            return
        values = list(self.choice.value)
        if item not in values:
            self.choice.options = self._options([*values, item])
            self.choice.value = [*values, item]
        self.add.value = ""

    def _from_config(self, event: param.parameterized.Event) -> None:
        self.choice.options = self._options(event.new)
        self.choice.value = list(event.new)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.choice, self.add, margin=0)


class TextField(pn.viewable.Viewer):
    """A field edited as lines of text (see :class:`DictField`, :class:`RecordsField`): parsed when the box
    loses focus; a line that does not parse is reported and the config keeps its value."""

    hint = ""

    def __init__(self, config: Config, name: str, report: Report) -> None:
        super().__init__()
        self.config, self.field, self.report = config, name, report
        cls = type(config)
        self.label = cls.field_label(name)
        self.box = pn.widgets.TextAreaInput(
            label=self.label,
            description=f"{cls.field_help(name)} {self.hint}",
            value=self.format(getattr(config, name)),
            css_classes=field_class(name),
            width=FIELD_WIDTH,
            height=90,
        )
        self.box.param.watch(self._to_config, "value")
        config.param.watch(lambda e: setattr(self.box, "value", self.format(e.new)), name)

    def format(self, value: Any) -> str:
        """The text of a field value."""
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """The field value of a text; :class:`ConfigError` names the field and the bad line."""
        raise NotImplementedError

    def _to_config(self, event: param.parameterized.Event) -> None:
        try:
            value = self.parse(event.new or "")
            if value != getattr(self.config, self.field):
                setattr(self.config, self.field, value)
        except (ConfigError, ValueError, TypeError) as exc:
            self.report(f"**{self.label}:** {exc}", True)

    def __panel__(self) -> pn.viewable.Viewable:
        return self.box


class DictField(TextField):
    """A ``param.Dict`` as ``key: value`` lines; values are read as JSON (numbers, lists) or else text."""

    hint = "One 'key: value' per line."

    def format(self, value: dict[str, Any]) -> str:
        return "\n".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in value.items())

    def parse(self, text: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            key, sep, value = line.partition(":")
            if not sep or not key.strip():
                raise ConfigError(f"line {number} {line.strip()!r} is not 'key: value'")
            try:
                out[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                out[key.strip()] = value.strip()
        return out


class RecordsField(TextField):
    """A list of dicts as one JSON object per line (used where no page offers an editor of its own)."""

    hint = 'One JSON object per line, e.g. {"term": "energy", "loss": "mean squared error"}.'

    def format(self, value: list[dict[str, Any]]) -> str:
        return "\n".join(json.dumps(v) for v in value)

    def parse(self, text: str) -> list[dict[str, Any]]:
        out = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"line {number} is not JSON ({exc.msg})") from None
            if not isinstance(item, dict):
                raise ConfigError(f"line {number} is not a JSON object")
            out.append(item)
        return out


class ConfigForm(pn.viewable.Viewer):
    """Preset, reset and JSON tools, the essential fields, ``extra`` controls of the page, and the other
    fields in a collapsed Advanced card; every widget edits ``config`` itself.

    ``hidden`` fields are left out (a page's own controls edit them); ``filename`` names the exported file;
    ``report(message, error)`` shows notes and errors (by default under the tools).
    """

    def __init__(
        self,
        config: Config,
        *,
        hidden: Collection[str] = (),
        extra: Sequence[pn.viewable.Viewable] = (),
        filename: str = "config.json",
        report: Report | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.start_values = config.to_dict()
        self.extra = list(extra)
        self.message = pn.pane.Markdown("", css_classes=["numl-form-message"], width=FIELD_WIDTH)
        self.report: Report = report or self._show
        cls = type(config)
        self.widgets = {n: field_widget(config, n, self.report) for n in cls.field_names() if n not in hidden}
        self.essential_names = [n for n in cls.essential_fields() if n in self.widgets]
        self.advanced_names = [n for n in cls.advanced_fields() if n in self.widgets]
        self.advanced = pn.Card(
            *(self.widgets[n] for n in self.advanced_names),
            title=f"Advanced ({len(self.advanced_names)} fields)",
            collapsed=True,
            visible=bool(self.advanced_names),
            css_classes=["numl-advanced"],
            width=FORM_WIDTH,
        )
        self._layout = pn.Column(
            self._tools(filename),
            self.message,
            *(self.widgets[n] for n in self.essential_names),
            *self.extra,
            self.advanced,
            width=FORM_WIDTH,
            css_classes=["numl-config-form"],
        )

    def _tools(self, filename: str) -> pn.Column:
        """Preset + Apply, Reset, Export JSON, Import JSON."""
        self.preset = pn.widgets.Select(
            label="Preset",
            options=[*type(self.config).preset_names(), WORKFLOW_DEFAULTS],
            width=190,
            description="Named sizes of this workflow; Apply sets their fields and keeps the others.",
            css_classes=["numl-preset"],
        )
        self.apply_button = pn.widgets.Button(
            label="Apply", width=80, margin=(25, 5, 5, 5), css_classes=["numl-preset-apply"]
        )
        self.reset_button = pn.widgets.Button(
            label="Reset to defaults", width=140, css_classes=["numl-reset"]
        )
        self.export_button = pn.widgets.FileDownload(
            callback=self.export_file,
            filename=filename,
            label="Export JSON",
            embed=False,
            width=140,
            css_classes=["numl-export-json"],
        )
        self.import_input = pn.widgets.FileInput(
            accept=".json,application/json", width=FIELD_WIDTH, css_classes=["numl-import-json"]
        )
        self.apply_button.on_click(lambda _event: self.apply_preset(self.preset.value))
        self.reset_button.on_click(lambda _event: self.reset())
        self.import_input.param.watch(self._on_import, "value")
        return pn.Column(
            pn.Row(self.preset, self.apply_button, margin=0),
            pn.Row(self.reset_button, self.export_button, margin=0),
            pn.pane.Markdown("Import JSON (a config exported here or written for the CLI):", margin=(0, 5)),
            self.import_input,
            margin=0,
        )

    # -- actions -------------------------------------------------------------------------------------
    def apply_preset(self, name: str) -> bool:
        """Set the fields of preset ``name`` (or every field to the workflow's defaults); the others keep
        their values. False, with the reason reported, if the result would not validate."""
        cls = type(self.config)
        try:
            values = cls().to_dict() if name == WORKFLOW_DEFAULTS else cls.preset_values(name)
        except ConfigError as exc:
            self.report(f"**Preset not applied:** {exc}", True)
            return False
        return self._set(values, f"Preset *{name}* applied.", "Preset not applied")

    def reset(self) -> bool:
        """Put back the values the form started with (the page's defaults)."""
        return self._set(self.start_values, "Form reset to its defaults.", "Not reset")

    def export_json(self) -> str:
        """The form's config as JSON text (what **Export JSON** downloads)."""
        return self.config.to_json() + "\n"

    def export_file(self) -> io.StringIO:
        """The download of **Export JSON**."""
        return io.StringIO(self.export_json())

    def import_json(self, data: bytes | str, filename: str = "config.json") -> bool:
        """Fill the form from a JSON file's content. A file that is not JSON, names an unknown field or holds
        a bad value is reported (the field and what it expects) and the form keeps its values."""
        try:
            config = type(self.config).from_json_text(data, source=filename)
        except ConfigError as exc:
            self.report(f"**Config not imported:** {exc}", True)  # the message names the file
            return False
        self.config.param.update(**config.to_dict())
        self.report(f"Imported `{filename}`.", False)
        return True

    def _on_import(self, event: param.parameterized.Event) -> None:
        if event.new:
            self.import_json(event.new, self.import_input.filename or "config.json")
            self.import_input.clear()  # the browser may then pick the same file again

    def _set(self, values: dict[str, Any], note: str, refused: str) -> bool:
        """Validate the config with ``values`` first; only a valid result reaches the form."""
        try:
            config = self.config.copy(**values)
        except ConfigError as exc:
            self.report(f"**{refused}:** {exc}", True)
            return False
        self.config.param.update(**config.to_dict())
        self.report(note, False)
        return True

    def _show(self, message: str, error: bool) -> None:
        self.message.object = f"⚠ {message}" if error else message

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
