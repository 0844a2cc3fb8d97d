"""Typed workflow results.

Every workflow action returns a dataclass derived from :class:`Result`. Its fields are what the run
produced: tables (pandas DataFrames), arrays (NumPy) and JSON values. A result saves itself into a run
directory (tables as parquet, arrays in one npz, the rest as JSON; see :mod:`numl_core.runs`) and loads
back from it, so a stored run and a fresh one are the same object to every reader.

A result type may name a few **headline metrics** (:meth:`Result.headline_of`): the numbers that summarise
a run in the runs table and when runs are compared (chi2/ndof, a resolution, an ESS, a C2ST accuracy...).
They are written into ``run.json`` (``"headline"``) when the result is saved, and read back from the stored
fields named in :attr:`Result.HEADLINE_FIELDS` for runs saved before that.

>>> from dataclasses import dataclass
>>> @dataclass
... class Fit(Result):
...     table: pd.DataFrame
...     chi2: float = 0.0
>>> sorted(Fit(pd.DataFrame({"x": [1.0]}), 2.5).to_tables())
['table']
>>> Fit.from_dict({"table": pd.DataFrame({"x": [1.0]}), "chi2": 2.5}).chi2
2.5
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from numl_core.runs import RunDir

log = logging.getLogger(__name__)
R = TypeVar("R", bound="Result")


@dataclasses.dataclass
class Result:
    """Base class of workflow results (a dataclass; subclasses declare the fields)."""

    #: The stored fields (tables and arrays; scalars are always read) that :meth:`headline_of` reads.
    HEADLINE_FIELDS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def headline_of(cls, values: Mapping[str, Any]) -> dict[str, float | None]:
        """The headline metrics of a result given its fields by name (``{}``: none declared).

        ``values`` holds at least the scalars and the :attr:`HEADLINE_FIELDS`; a subclass returns a few
        ``{name: number}``, names short and free of dots (they become table column names); a number that
        is None or not finite is left out by :meth:`headline`.
        """
        return {}

    def headline(self) -> dict[str, float]:
        """:meth:`headline_of` this result, finite numbers only.

        >>> Result().headline()
        {}
        """
        return finite_numbers(self.headline_of(self.to_dict()))

    @classmethod
    def stored_headline(cls, run_dir: RunDir) -> dict[str, float]:
        """:meth:`headline_of` the result stored in ``run_dir``, reading only its scalars and
        :attr:`HEADLINE_FIELDS` (for runs saved before headlines were recorded in ``run.json``)."""
        return finite_numbers(cls.headline_of(run_dir.load_result(only=cls.HEADLINE_FIELDS)))

    def to_dict(self) -> dict[str, Any]:
        """Every field that is set (None fields are left out), by name."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    def to_tables(self) -> dict[str, pd.DataFrame]:
        """The fields that are tables, by name (what a user exports as CSV)."""
        return {k: v for k, v in self.to_dict().items() if isinstance(v, pd.DataFrame)}

    def scalars(self) -> dict[str, Any]:
        """The fields that are neither tables nor arrays (numbers, strings, nested dicts and lists)."""
        return {k: v for k, v in self.to_dict().items() if not isinstance(v, (pd.DataFrame, np.ndarray))}

    @classmethod
    def from_dict(cls: type[R], values: dict[str, Any]) -> R:
        """Build from a dict such as :meth:`RunDir.load_result` returns; unknown keys are ignored and
        fields absent from ``values`` take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def save(self, run_dir: RunDir) -> None:
        """Write into ``run_dir/results`` and record the result type and :meth:`headline` in ``run.json``
        (a headline that cannot be computed is logged and left out: it never costs the run its result)."""
        run_dir.save_result(self.to_dict())
        info: dict[str, Any] = {"result_type": type(self).__name__}
        try:
            info["headline"] = self.headline()
        except Exception as exc:  # noqa: BLE001 - a summary must not fail a finished run
            log.warning("no headline metrics for %s: %s: %s", run_dir.id, type(exc).__name__, exc)
        run_dir.update_info(info)

    @classmethod
    def load(cls: type[R], run_dir: RunDir) -> R:
        """The result saved in ``run_dir``."""
        return cls.from_dict(run_dir.load_result())


def finite_numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries of ``values`` that are finite real numbers, as floats (None, NaN, text are dropped).

    >>> finite_numbers({"a": 1, "b": float("nan"), "c": None, "d": "x", "e": True})
    {'a': 1.0}
    """
    real = (int, float, np.integer, np.floating)
    return {
        str(name): float(value)
        for name, value in values.items()
        if isinstance(value, real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(float(value))
    }
