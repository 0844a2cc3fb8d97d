"""Validated, JSON round-tripping workflow configurations.

Every workflow describes its inputs as a :class:`Config` subclass: typed, bounded,
documented ``param`` parameters that the dashboard turns into widgets, the CLI reads
from JSON and a notebook builds in code.

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
    if isinstance(p, param.Selector) and not isinstance(p, param.ClassSelector):
        return f"one of {list(p.objects)}"
    if isinstance(p, param.ListSelector):
        return f"a list drawn from {list(p.objects)}"
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


class Config(param.Parameterized):
    """Base class of all numl configurations.

    Subclasses declare ``param`` parameters only. ``to_dict``/``from_dict`` and the JSON
    variants round-trip exactly; any bad key or value raises one :class:`ConfigError`
    naming the field, the value and what is allowed.
    """

    #: Old field names still read from JSON, mapped to their current names.
    RENAMED: dict[str, str] = {}

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the user-facing fields, in declaration order."""
        return [n for n in cls.param if n != "name"]

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
        source = None
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or not text.lstrip().startswith("{"):
            path = Path(text_or_path)
            if not path.is_file():
                raise ConfigError(f"{path}: config file not found")
            source, text = str(path), path.read_text()
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source or 'config'}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        except RecursionError:
            raise ConfigError(f"{source or 'config'}: JSON nested too deeply to be a config") from None
        return cls.from_dict(values, source=source)

    def validate(self) -> None:
        """Cross-field checks; subclasses override and raise :class:`ConfigError`."""

    def copy(self: C, **changes: Any) -> C:
        """A validated copy with some fields changed."""
        values = self.to_dict()
        values.update(changes)
        return type(self).from_dict(values)
