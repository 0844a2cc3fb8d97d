"""Typed workflow results.

Every workflow action returns a dataclass derived from :class:`Result`. Its fields are what the run
produced: tables (pandas DataFrames), arrays (NumPy) and JSON values. A result saves itself into a run
directory (tables as parquet, arrays in one npz, the rest as JSON; see :mod:`numl_core.runs`) and loads
back from it, so a stored run and a fresh one are the same object to every reader.

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
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from numl_core.runs import RunDir

R = TypeVar("R", bound="Result")


@dataclasses.dataclass
class Result:
    """Base class of workflow results (a dataclass; subclasses declare the fields)."""

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
        """Write into ``run_dir/results`` and record the result type in ``run.json``."""
        run_dir.save_result(self.to_dict())
        run_dir.update_info({"result_type": type(self).__name__})

    @classmethod
    def load(cls: type[R], run_dir: RunDir) -> R:
        """The result saved in ``run_dir``."""
        return cls.from_dict(run_dir.load_result())
