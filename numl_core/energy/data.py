"""Event tables with per-particle lists -> padded model inputs, with checks that name file, row and column.

The layout is transformer_EE's: ``vector`` columns hold one entry per particle ("prong"), ``scalar``
columns one value per event, ``target`` columns the regression targets. Inputs are padded to
``max_num_prongs`` with a mask that is True on padding; an event with more particles keeps the most
energetic ones (by ``sort_column``) and the first such truncation is logged once per call.

>>> import pandas as pd
>>> df = pd.DataFrame({"e": [[1.0, 3.0], [2.0]], "s": [1.0, 2.0], "t": [4.0, 2.0]})
>>> a = to_arrays(df, ["e"], ["s"], ["t"], max_num_prongs=2)
>>> a.vector[:, :, 0].tolist(), a.mask.tolist()
([[3.0, 1.0], [2.0, 0.0]], [[False, False], [False, True]])
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from numl_core.data.io import parse_list_cell
from numl_core.data.particles import embedding_codes
from numl_core.data.schema import DataError, finite_as

log = logging.getLogger(__name__)

ENERGY_LIKE = ("energy", "eng", "mass", "cale")
"""Vector-column name fragments whose values must not be negative."""


@dataclass
class EventArrays:
    """Inputs: ``vector`` (N, P, F), ``mask`` (N, P), True = pad; ``scalar`` (N, S); ``target`` (N, T)"""

    vector: np.ndarray
    mask: np.ndarray
    scalar: np.ndarray
    target: np.ndarray
    event_id: np.ndarray
    n_truncated: int

    def __len__(self) -> int:
        return len(self.vector)


def _require(df: pd.DataFrame, columns: list[str], role: str, source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{source}: {role} column(s) {missing} not found; the table has {list(df.columns)}")


def flatten_lists(df: pd.DataFrame, columns: list[str], source: str = "<table>") -> tuple[np.ndarray, dict]:
    """Per-event lengths (N,) and the concatenated values of each list column, after all checks.

    Raises :class:`DataError` for malformed cells, lengths that differ between columns of one event,
    non-finite values, negative energies/masses and unknown PDG codes (in a column named ``*pdg*``).
    """
    _require(df, columns, "vector", source)
    lengths = None
    flat = {}
    for c in columns:
        cells = [parse_list_cell(v, source, c, i) for i, v in enumerate(df[c].to_numpy())]
        n = np.array([len(x) for x in cells], np.int64)
        if lengths is None:
            lengths = n
        elif (n != lengths).any():
            i = int(np.argmax(n != lengths))
            raise DataError(
                f"{source}: row {i}: list column '{c}' has {n[i]} entries but '{columns[0]}' has "
                f"{lengths[i]}; "
                "per-particle columns must have one entry per particle"
            )
        values = np.concatenate(cells) if len(cells) and n.sum() else np.zeros(0)
        owner = np.repeat(np.arange(len(cells)), n)
        bad = ~finite_as(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{source}: column '{c}' row {owner[i]}: {float(values[i])!r} is not a finite float32 number "
                "(the model computes in float32)"
            )
        if any(f in c.lower() for f in ENERGY_LIKE):
            neg = values < 0
            if neg.any():
                i = int(np.argmax(neg))
                raise DataError(f"{source}: column '{c}' row {owner[i]}: negative energy {values[i]!r}")
        if "pdg" in c.lower():
            unknown = (values != np.round(values)) | ~np.isin(values.astype(np.int64), embedding_codes())
            if unknown.any():
                i = int(np.argmax(unknown))
                raise DataError(
                    f"{source}: column '{c}' row {owner[i]}: unknown PDG code {values[i].item():g}; "
                    "see numl_core.data.particles.PARTICLES"
                )
        flat[c] = values
    if lengths is None:
        lengths = np.zeros(len(df), np.int64)
    return lengths, flat


def _scalar_block(df: pd.DataFrame, columns: list[str], role: str, source: str) -> np.ndarray:
    _require(df, columns, role, source)
    if not columns:
        return np.zeros((len(df), 0), np.float32)
    out = np.empty((len(df), len(columns)), np.float64)
    for j, c in enumerate(columns):
        values = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        bad = ~finite_as(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{source}: {role} column '{c}' row {i}: expected a finite float32 number, "
                f"got {df[c].iloc[i]!r}"
            )
        out[:, j] = values
    return out


def to_arrays(
    df: pd.DataFrame,
    vector: list[str],
    scalar: list[str],
    target: list[str],
    max_num_prongs: int,
    *,
    sort_column: str | None = None,
    source: str = "<table>",
    id_column: str = "event_id",
) -> EventArrays:
    """Padded float32 arrays for a model; particles in each event ordered by decreasing ``sort_column``.

    ``sort_column`` defaults to the first vector column whose name contains "energy" (else the first one).
    Targets may be empty (prediction on unlabelled files).
    """
    if len(df) == 0:
        raise DataError(f"{source}: no events")
    if not vector:
        raise DataError(f"{source}: at least one vector (per-particle) column is needed")
    lengths, flat = flatten_lists(df, vector, source)
    scalars = _scalar_block(df, scalar, "scalar", source).astype(np.float32)
    targets = _scalar_block(df, target, "target", source).astype(np.float32)
    if sort_column is None:
        sort_column = next((c for c in vector if "energy" in c.lower() or "eng" in c.lower()), vector[0])
    n = len(df)
    owner = np.repeat(np.arange(n), lengths)
    key = flat[sort_column] if sort_column in flat else np.zeros(len(owner))
    order = np.lexsort((-key, owner))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rank = np.arange(len(owner)) - starts[owner]
    keep = rank < max_num_prongs
    n_truncated = int((lengths > max_num_prongs).sum())
    if n_truncated:
        log.warning(
            "%s: %d event(s) have more than max_num_prongs=%d particles; kept the most energetic (by %s)",
            source,
            n_truncated,
            max_num_prongs,
            sort_column,
        )
    out = np.zeros((n, max_num_prongs, len(vector)), np.float32)
    rows, slots = owner[keep], rank[keep]
    for j, c in enumerate(vector):
        out[rows, slots, j] = flat[c][order][keep]
    mask = np.ones((n, max_num_prongs), bool)
    mask[rows, slots] = False
    ids = df[id_column].to_numpy(np.int64) if id_column in df.columns else np.arange(n, dtype=np.int64)
    return EventArrays(out, mask, scalars, targets, ids, n_truncated)
