"""A user's own MC and data files for the unfolding (``sample="file"``, ``mc_file`` and ``data_file``).

* The MC file has every column of the ND280 schema (:data:`ND280_SCHEMA`, reco and truth) and may carry its
  own systematic throws: columns ``PREFIX0``, ``PREFIX1``, ... (``config.throw_weight_prefix``, numbered
  from 0 without gaps), per-event factors (finite, >= 0) on the MC's nominal ``weight``. They replace the
  built-in flux, cross-section and detector throws; ``n_throws`` takes the first ones.
* The data file has the columns of :data:`DATA_SCHEMA` (reco, ``event_id``, ``weight``). Its truth columns
  (:data:`TRUTH_COLUMNS`) are either all there (fake data, compared with its truth) or all left out (real
  data): :func:`fill_missing_truth` then adds placeholders, and the sample's ``data_has_truth`` is False.

>>> TRUTH_COLUMNS[:4]
('enu', 'mode', 'true_q2', 'true_mu_p')
>>> throw_columns(pd.DataFrame({"w_0": [1.0], "w_1": [0.9], "x": [0.0]}), "w_", "mc.root")
['w_0', 'w_1']
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from numl_core.config import ConfigError
from numl_core.data.generators import nd280_cc0pi as nd280
from numl_core.data.io import read_table
from numl_core.data.schema import DataError, Schema
from numl_core.unfold.config import UnfoldingConfig

ND280_SCHEMA = Schema.from_ranges("nd280_cc0pi", nd280.ND280_COLUMNS)
"""Columns of an event table (the built-in sample, a file split into MC and data, or an MC file)."""
TRUTH_COLUMNS: tuple[str, ...] = tuple(
    c
    for c in nd280.ND280_COLUMNS
    if c.startswith("true_") or c in ("enu", "mode", "pass_truth", "in_stv_phase_space")
)
"""Columns of the generator's truth, which real data do not have."""
DATA_SCHEMA = Schema(
    "nd280_cc0pi_data", tuple(c for c in ND280_SCHEMA.columns if c.name not in TRUTH_COLUMNS)
)
"""Columns a data file needs: the ND280 schema without the truth."""


def throw_columns(events: pd.DataFrame, prefix: str, source: str) -> list[str]:
    """Every throw-weight column ``PREFIX0``, ``PREFIX1``, ... of ``events`` in order ([] when none); a gap in
    the numbering is a :class:`DataError` naming ``source``."""
    pattern = re.compile(re.escape(prefix) + r"(0|[1-9][0-9]*)")
    numbers = sorted(int(m.group(1)) for c in events.columns if (m := pattern.fullmatch(str(c))))
    if numbers != list(range(len(numbers))):
        missing = min(set(range(numbers[-1] + 1)) - set(numbers))
        raise DataError(
            f"{source}: throw-weight columns must be numbered {prefix}0, {prefix}1, ... without gaps; "
            f"{prefix}{missing} is missing ({len(numbers)} columns up to {prefix}{numbers[-1]})"
        )
    return [f"{prefix}{i}" for i in numbers]


def check_throw_columns(events: pd.DataFrame, config: UnfoldingConfig, source: str) -> list[str]:
    """The file's throw-weight columns, checked: finite values >= 0 (else a :class:`DataError` naming the
    file, the column and the first bad row) and at least ``config.n_throws`` of them when there are any
    (else a :class:`ConfigError` saying how many the file has)."""
    columns = throw_columns(events, config.throw_weight_prefix, source)
    for column in columns:
        raw = events[column]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            row = int(np.argmax(bad))
            got = raw.iloc[row]
            got = got.item() if isinstance(got, np.generic) else got
            raise DataError(
                f"{source}: throw-weight column '{column}' row {row}: expected a finite weight >= 0, "
                f"got {got!r}"
            )
    _check_n_throws(config, columns, source)
    return columns


def _check_n_throws(config: UnfoldingConfig, columns: list[str], source: str) -> None:
    if columns and config.n_throws > len(columns):
        raise ConfigError(
            f"UnfoldingConfig.n_throws: {config.n_throws} throws asked for, but {source} has {len(columns)} "
            f"throw-weight columns ({columns[0]} to {columns[-1]}); set n_throws to at most {len(columns)}"
        )


def user_throws(mc: pd.DataFrame, config: UnfoldingConfig) -> np.ndarray | None:
    """(n_throws, N) float32 factors on the MC's nominal weights from its first ``n_throws`` throw-weight
    columns; None when the MC has no such columns (the built-in reweighters throw instead)."""
    columns = throw_columns(mc, config.throw_weight_prefix, "the MC")
    if not columns:
        return None
    _check_n_throws(config, columns, "the MC")
    return np.array(mc[columns[: config.n_throws]].to_numpy(dtype=np.float32).T, order="C")  # a writable copy


def read_mc_file(path: Path, config: UnfoldingConfig) -> pd.DataFrame:
    """An MC file (or the one file split into MC and data): every ND280 column; throw-weight columns
    checked by :func:`check_throw_columns`."""
    events = read_table(path, ND280_SCHEMA)
    check_throw_columns(events, config, str(path))
    return events


def read_data_file(path: Path) -> tuple[pd.DataFrame, bool]:
    """A data file and whether it has truth: every truth column (fake data, validated like the MC) or
    none (real data, given placeholders by :func:`fill_missing_truth`); some but not all: a
    :class:`DataError`."""
    events = read_table(path)
    present = [c for c in TRUTH_COLUMNS if c in events.columns]
    if len(present) == len(TRUTH_COLUMNS):
        return ND280_SCHEMA.validate(events, source=str(path)), True
    if present:
        missing = [c for c in TRUTH_COLUMNS if c not in events.columns]
        raise DataError(
            f"{path}: has truth column(s) {present} but not {missing}; a data file has every truth column "
            "(fake data) or none (real data)"
        )
    return fill_missing_truth(DATA_SCHEMA.validate(events, source=str(path))), False


def fill_missing_truth(data: pd.DataFrame) -> pd.DataFrame:
    """Real data (no truth columns) with placeholder truth, the only place placeholders are made.

    No event is signal: ``pass_truth``, ``in_stv_phase_space`` and ``true_has_proton`` are False, so every
    truth histogram of the data is empty; float truth (``enu``, ``true_q2``, ``true_mu_p`` ...) is NaN and
    integer truth (``mode``, ``true_n_protons``) is -1. The sample's ``data_has_truth = False`` tells the
    comparison that this truth is not one.
    """
    out = data.copy()
    fill = {"float": np.nan, "int": -1, "bool": False}
    dtypes = {"float": np.float64, "int": np.int64, "bool": bool}
    for name in TRUTH_COLUMNS:
        kind = ND280_SCHEMA.column(name).kind
        out[name] = np.full(len(out), fill[kind], dtype=dtypes[kind])
    return out
