"""Column schemas for event tables and the checks that enforce them.

A :class:`Schema` lists the columns a workflow needs, with their kind, unit and allowed
range. :meth:`Schema.validate` returns the table with canonical dtypes or raises one
:class:`DataError` that names the file, the column, the first bad row and what was expected.

>>> s = Schema("demo", (Column("p", "float", "GeV/c", 0.0, 30.0),))
>>> s.validate(pd.DataFrame({"p": [0.5, -1.0]}), source="x.csv")
Traceback (most recent call last):
...
numl_core.data.schema.DataError: x.csv: column 'p' row 1: expected float in [0.0, 30.0] GeV/c, got -1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = ("float", "int", "bool", "list[float]", "list[int]")


class DataError(ValueError):
    """Input data is malformed; the message names the file, column, row and expectation."""


@dataclass(frozen=True)
class Column:
    """One column: ``kind`` is one of :data:`KINDS`; ``low``/``high`` bound every value."""

    name: str
    kind: str = "float"
    unit: str = ""
    low: float = -math.inf
    high: float = math.inf
    doc: str = ""

    def expectation(self) -> str:
        rng = "" if (self.low == -math.inf and self.high == math.inf) else f" in [{self.low}, {self.high}]"
        return f"{self.kind}{rng}{' ' + self.unit if self.unit else ''}"

    @property
    def is_list(self) -> bool:
        return self.kind.startswith("list")


@dataclass(frozen=True)
class Schema:
    """An ordered set of required columns."""

    name: str
    columns: tuple[Column, ...]

    @classmethod
    def from_ranges(cls, name: str, columns: dict[str, tuple[str, str, tuple[float, float]]]) -> Schema:
        """From ``{column: (kind 'i'|'f'|'b', unit, (low, high))}``, the form generators export."""
        kinds = {"i": "int", "f": "float", "b": "bool"}
        return cls(
            name,
            tuple(
                Column(c, kinds[k], unit, float(lo), float(hi)) for c, (k, unit, (lo, hi)) in columns.items()
            ),
        )

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"schema {self.name!r} has no column {name!r}")

    def validate(self, df: pd.DataFrame, source: str = "<table>") -> pd.DataFrame:
        """Check presence, type, finiteness and range; return a copy with canonical dtypes."""
        if len(df) == 0:
            raise DataError(f"{source}: no rows (schema {self.name!r} needs at least one event)")
        missing = [c for c in self.names if c not in df.columns]
        if missing:
            raise DataError(
                f"{source}: missing column(s) {missing} required by schema {self.name!r}; "
                f"found {list(df.columns)}"
            )
        out = df.copy()
        for col in self.columns:
            out[col.name] = _check_column(out[col.name], col, source)
        return out


def _bad(source: str, col: Column, row: int, value: object, why: str = "") -> DataError:
    extra = f" ({why})" if why else ""
    return DataError(
        f"{source}: column '{col.name}' row {row}: expected {col.expectation()}, got {value!r}{extra}"
    )


def _check_column(series: pd.Series, col: Column, source: str) -> pd.Series:
    if col.is_list:
        return _check_list_column(series, col, source)
    values = series.to_numpy()
    if col.kind == "bool":
        if values.dtype == bool:
            return series
        ok = pd.Series(values).isin([0, 1, True, False]).to_numpy()
        if not ok.all():
            i = int(np.argmin(ok))
            raise _bad(source, col, i, values[i])
        return series.astype(bool)
    numeric = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    not_number = np.isnan(numeric) & ~pd.isna(series).to_numpy()
    if not_number.any():
        i = int(np.argmax(not_number))
        raise _bad(source, col, i, values[i], "not a number")
    _check_values(numeric, col, source)
    if col.kind == "int":
        frac = numeric != np.round(numeric)
        if frac.any():
            i = int(np.argmax(frac))
            raise _bad(source, col, i, values[i], "not an integer")
        return pd.Series(numeric.astype(np.int64), index=series.index, name=series.name)
    return pd.Series(numeric, index=series.index, name=series.name)


def _check_values(numeric: np.ndarray, col: Column, source: str, row_of: np.ndarray | None = None) -> None:
    bad_finite = ~np.isfinite(numeric)
    if bad_finite.any():
        i = int(np.argmax(bad_finite))
        row = int(row_of[i]) if row_of is not None else i
        raise _bad(source, col, row, float(numeric[i]), "not finite")
    bad_range = (numeric < col.low) | (numeric > col.high)
    if bad_range.any():
        i = int(np.argmax(bad_range))
        row = int(row_of[i]) if row_of is not None else i
        raise _bad(source, col, row, float(numeric[i]))


def _check_list_column(series: pd.Series, col: Column, source: str) -> pd.Series:
    lists = []
    for i, cell in enumerate(series.to_numpy()):
        if isinstance(cell, str) or not hasattr(cell, "__len__"):
            raise _bad(source, col, i, cell, "not a list")
        try:
            arr = np.asarray(cell, dtype=float)
        except (TypeError, ValueError):
            raise _bad(source, col, i, cell, "list holds non-numbers") from None
        if arr.ndim != 1:
            raise _bad(source, col, i, cell, "nested list")
        lists.append(arr)
    lengths = np.array([len(a) for a in lists])
    flat = np.concatenate(lists) if lists else np.zeros(0)
    _check_values(flat, col, source, row_of=np.repeat(np.arange(len(lists)), lengths))
    if col.kind == "list[int]":
        return pd.Series([a.astype(np.int64) for a in lists], index=series.index, name=series.name)
    return pd.Series(lists, index=series.index, name=series.name)


def check_same_lengths(df: pd.DataFrame, columns: list[str], source: str = "<table>") -> None:
    """Raise if per-particle list columns of one event differ in length."""
    if not columns:
        return
    ref = df[columns[0]].map(len).to_numpy()
    for c in columns[1:]:
        n = df[c].map(len).to_numpy()
        diff = n != ref
        if diff.any():
            i = int(np.argmax(diff))
            raise DataError(
                f"{source}: row {i}: list column '{c}' has {n[i]} entries but '{columns[0]}' has {ref[i]}; "
                "per-particle columns must have one entry per particle"
            )


def finite_as(values: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """True where a value stays finite once cast to ``dtype``, the precision training uses (``1e39`` is
    finite in float64 but overflows float32).

    >>> finite_as(np.array([1.0, 1e39, np.nan])).tolist()
    [True, False, False]
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return np.isfinite(np.asarray(values, np.float64).astype(dtype))
