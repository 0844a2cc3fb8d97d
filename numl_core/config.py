"""Validated, JSON round-tripping workflow configurations.

Every workflow describes its inputs as a :class:`Config` subclass: typed, bounded,
documented ``param`` parameters that the dashboard turns into widgets, the CLI reads
from JSON and a notebook builds in code. A subclass also declares how a form shows it:
``ESSENTIALS`` (the fields shown first; the rest are "advanced"), ``LABELS`` (a human label
with its unit per field) and ``NAMED_PRESETS`` (e.g. "quick look", "paper size"); the
tooltip of a field is :meth:`Config.field_help`, its doc with the allowed values and default.

Example
-------
>>> import param
>>> class Fit(Config):
...     iterations = param.Integer(default=5, bounds=(1, 100), doc="Number of iterations.")
>>> Fit.from_json(Fit(iterations=7).to_json()).iterations
7
>>> Fit.from_dict({"iteratons": 3})
Traceback (most recent call last):
...
numl_core.config.ConfigError: Fit: unknown field 'iteratons' (did you mean 'iterations'?)
>>> class Labelled(Fit):
...     LABELS = {"iterations": "Iterations [passes]"}
...     NAMED_PRESETS = {"quick look": {"iterations": 2}}
>>> Labelled.field_label("iterations"), Labelled.from_preset("quick look").iterations
('Iterations [passes]', 2)
>>> Labelled.field_help("iterations")
'Number of iterations. Allowed: an integer in [1, 100]. Default: 5.'
"""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any, TypeVar

import param

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A configuration field is unknown or holds a value it does not allow."""


def _allowed(p: param.Parameter) -> str:
    """Describe in words what values a parameter accepts."""
    if isinstance(p, param.ListSelector):
        return f"a list drawn from {list(p.objects)}"
    if isinstance(p, param.Selector) and not isinstance(p, param.ClassSelector):
        return f"one of {list(p.objects)}"
    if isinstance(p, param.List):
        item = getattr(p, "item_type", None)
        return f"a list of {item.__name__} values" if isinstance(item, type) else "a list"
    kind = type(p).__name__.lower()
    article = "an" if kind[0] in "aeiou" else "a"
    bounds = getattr(p, "bounds", None)
    if bounds is not None and any(b is not None for b in bounds):
        lo, hi = bounds
        return f"{article} {kind} in [{lo}, {hi}]"
    return f"{article} {kind}"


def _shown(value: Any) -> str:
    """A default value as a form's tooltip shows it."""
    if isinstance(value, str):
        return repr(value) if value else "empty"
    if isinstance(value, (list, tuple)) and any(isinstance(v, dict) for v in value):
        return f"{len(value)} entries"
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) if value else "none"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


class _ConfigMeta(type(param.Parameterized)):
    """Lets a subclass change an inherited field's default by plain assignment (``epochs = 30``): the value
    becomes the default of the subclass's own copy of the parameter, so it keeps its type, bounds, doc and
    watchers (param alone would leave a bare class attribute that shadows the parameter)."""

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> None:
        super().__init__(name, bases, namespace)
        for key, value in namespace.items():
            if key == "name" or isinstance(value, param.Parameter) or callable(value):
                continue
            if any(isinstance(b, _ConfigMeta) and key in b.param for b in bases):
                type.__delattr__(cls, key)
                setattr(cls, key, value)  # param copies the inherited parameter and validates the default


class Config(param.Parameterized, metaclass=_ConfigMeta):
    """Base class of all numl configurations.

    Subclasses declare ``param`` parameters only. ``to_dict``/``from_dict`` and the JSON
    variants round-trip exactly; any bad key or value raises one :class:`ConfigError`
    naming the field, the value and what is allowed.
    """

    #: Old field names still read from JSON, mapped to their current names.
    RENAMED: dict[str, str] = {}
    #: Fields a form shows first, in this order; the others go to its "Advanced" section.
    #: Empty: every field is essential.
    ESSENTIALS: tuple[str, ...] = ()
    #: Human label per field, with the unit in brackets (``"Proton threshold [MeV]"``); a subclass's
    #: labels extend its bases'. A field without one is labelled from its name.
    LABELS: dict[str, str] = {}
    #: Named presets: field values applied on top of a config (at least "quick look" and "paper size"
    #: for a workflow). Each must validate on top of the defaults.
    NAMED_PRESETS: dict[str, dict[str, Any]] = {}
    #: Values a form offers for a free list field (``param.List``), e.g. the known column names; one may
    #: still add others.
    LIST_OPTIONS: dict[str, tuple[Any, ...]] = {}

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the user-facing fields, in declaration order."""
        return [n for n in cls.param if n != "name"]

    @classmethod
    def essential_fields(cls) -> list[str]:
        """The fields a form shows first: ``ESSENTIALS``, or every field when it is empty."""
        return list(cls.ESSENTIALS) if cls.ESSENTIALS else cls.field_names()

    @classmethod
    def advanced_fields(cls) -> list[str]:
        """The other fields, in declaration order."""
        essentials = set(cls.essential_fields())
        return [n for n in cls.field_names() if n not in essentials]

    @classmethod
    def field_label(cls, name: str) -> str:
        """The human label of field ``name`` (with its unit); raises :class:`ConfigError` for an unknown
        field."""
        cls._require_field(name)
        for klass in cls.__mro__:
            label = vars(klass).get("LABELS", {}).get(name)
            if label:
                return label
        return name.replace("_", " ").capitalize()

    @classmethod
    def field_help(cls, name: str) -> str:
        """What field ``name`` does (its doc), the values it allows and its default: a form's tooltip."""
        cls._require_field(name)
        p = cls.param[name]
        text = " ".join((p.doc or "").split())
        if text and not text.endswith("."):
            text += "."
        if not isinstance(p, (param.Boolean, param.String, param.Dict)):
            text += f" Allowed: {_allowed(p)}."
        return f"{text} Default: {_shown(getattr(cls, name))}.".strip()

    @classmethod
    def preset_names(cls) -> list[str]:
        """Names of the named presets, in declaration order."""
        return list(cls.NAMED_PRESETS)

    @classmethod
    def preset_values(cls, name: str) -> dict[str, Any]:
        """A copy of the field values of preset ``name``; :class:`ConfigError` names the known ones."""
        if name not in cls.NAMED_PRESETS:
            known = ", ".join(repr(n) for n in cls.NAMED_PRESETS) or "none"
            raise ConfigError(f"{cls.__name__}: unknown preset {name!r}; known presets: {known}")
        return json.loads(json.dumps(cls.NAMED_PRESETS[name]))

    @classmethod
    def from_preset(cls: type[C], name: str, **changes: Any) -> C:
        """The defaults with preset ``name``, then ``changes``, validated."""
        return cls.from_dict({**cls.preset_values(name), **changes}, source=f"preset {name!r}")

    def with_preset(self: C, name: str) -> C:
        """A validated copy of this config with the values of preset ``name``."""
        return self.copy(**self.preset_values(name))

    @classmethod
    def check_declarations(cls) -> None:
        """Raise :class:`ConfigError` if ``ESSENTIALS``, ``LABELS``, ``LIST_OPTIONS`` or ``NAMED_PRESETS``
        name an unknown field, ``ESSENTIALS`` repeats one, or a preset does not validate."""
        names = set(cls.field_names())
        labels = {k for klass in cls.__mro__ for k in vars(klass).get("LABELS", {})}
        declared = (("ESSENTIALS", cls.ESSENTIALS), ("LABELS", labels), ("LIST_OPTIONS", cls.LIST_OPTIONS))
        for what, fields in declared:
            unknown = sorted(set(fields) - names)
            if unknown:
                raise ConfigError(f"{cls.__name__}.{what}: unknown fields {unknown}")
        if len(set(cls.ESSENTIALS)) != len(cls.ESSENTIALS):
            raise ConfigError(f"{cls.__name__}.ESSENTIALS: a field is listed twice")
        for name in cls.NAMED_PRESETS:
            cls.from_preset(name)

    @classmethod
    def _require_field(cls, name: str) -> None:
        if name not in cls.field_names():
            close = difflib.get_close_matches(name, cls.field_names(), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{cls.__name__}: unknown field '{name}'{hint}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary of all fields."""
        out = {}
        for n in self.field_names():
            v = getattr(self, n)
            if isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, Path):
                v = str(v)
            out[n] = v
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to JSON text; also write it to ``path`` (atomically) if given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False)
        if path is not None:
            from numl_core.runs import atomic_write_text

            atomic_write_text(Path(path), text + "\n")
        return text

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any], *, source: str | None = None) -> C:
        """Build and validate a config from a dictionary.

        ``source`` (a file name) is included in error messages.
        """
        where = f"{source}: " if source else ""
        if not isinstance(values, dict):
            raise ConfigError(f"{where}{cls.__name__}: expected a JSON object, got {type(values).__name__}")
        values = {cls.RENAMED.get(k, k): v for k, v in values.items()}
        names = cls.field_names()
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known fields: {', '.join(names)})"
                raise ConfigError(f"{where}{cls.__name__}: unknown field '{key}'{hint}")
        kwargs = {}
        for key, value in values.items():
            p = cls.param[key]
            if isinstance(p, (param.NumericTuple, param.Tuple)) and isinstance(value, list):
                value = tuple(value)
            if isinstance(p, param.Number) and isinstance(value, bool):
                raise ConfigError(
                    f"{where}{cls.__name__}.{key} = {value!r} is a boolean; expected {_allowed(p)}"
                )
            if isinstance(p, param.Number) and isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(
                    f"{where}{cls.__name__}.{key} = {value!r} is not finite; expected {_allowed(p)}"
                )
            kwargs[key] = value
        try:
            cfg = cls(**kwargs)
        except (ValueError, TypeError) as exc:  # param raises these for bad types and bounds
            raise cls._as_config_error(exc, values, where) from exc
        cfg.validate()
        return cfg

    @classmethod
    def _as_config_error(cls, exc: Exception, values: dict[str, Any], where: str) -> ConfigError:
        text = str(exc)
        for key, value in values.items():
            if f"'{key}'" in text or f" {key} " in text or f".{key}" in text:
                p = cls.param[key]
                return ConfigError(
                    f"{where}{cls.__name__}.{key} = {value!r} is not allowed; expected {_allowed(p)}"
                )
        return ConfigError(f"{where}{cls.__name__}: {text}")

    @classmethod
    def from_json(cls: type[C], text_or_path: str | Path) -> C:
        """Build from JSON text or from a path to a JSON file."""
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or not text.lstrip().startswith("{"):
            path = Path(text_or_path)
            if not path.is_file():
                raise ConfigError(f"{path}: config file not found")
            return cls.from_json_text(path.read_text(), source=str(path))
        return cls.from_json_text(text)

    @classmethod
    def from_json_text(cls: type[C], text: str | bytes, source: str | None = None) -> C:
        """Build from JSON text (never read as a path), e.g. an uploaded file; ``source`` (its name) is
        included in error messages. Raises :class:`ConfigError` for text that is not UTF-8 JSON."""
        where = source or "config"
        try:
            values = json.loads(text.decode("utf-8-sig") if isinstance(text, bytes) else text)
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        except RecursionError:
            raise ConfigError(f"{where}: JSON nested too deeply to be a config") from None
        return cls.from_dict(values, source=source)

    def validate(self) -> None:
        """Cross-field checks; subclasses override and raise :class:`ConfigError`."""

    def copy(self: C, **changes: Any) -> C:
        """A validated copy with some fields changed."""
        values = self.to_dict()
        values.update(changes)
        return type(self).from_dict(values)
