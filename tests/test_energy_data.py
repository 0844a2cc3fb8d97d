"""Particle lists -> padded arrays: ordering, truncation, masks, and the bad-input errors."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from numl_core.data.schema import DataError
from numl_core.energy.data import flatten_lists, to_arrays


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [10, 11, 12],
            "part_pdg": ["13,2212", [2212.0, 211.0, 111.0], ""],
            "part_energy": ["0.5,1.2", [0.3, 0.9, 0.2], ""],
            "vis": [1.7, 1.4, 0.0],
            "enu": [2.0, 1.5, 0.4],
        }
    )


def test_padding_order_and_ids():
    a = to_arrays(_table(), ["part_pdg", "part_energy"], ["vis"], ["enu"], max_num_prongs=3)
    assert a.vector.shape == (3, 3, 2) and a.vector.dtype == np.float32
    # particles sorted by decreasing energy; padding is zero and masked
    assert a.vector[0, :, 1].tolist() == pytest.approx([1.2, 0.5, 0.0])
    assert a.vector[0, :2, 0].tolist() == [2212.0, 13.0]
    assert a.mask.tolist() == [[False, False, True], [False, False, False], [True, True, True]]
    assert a.event_id.tolist() == [10, 11, 12] and a.target[:, 0].tolist() == pytest.approx([2.0, 1.5, 0.4])


def test_truncation_keeps_the_most_energetic_and_logs_once(caplog):
    with caplog.at_level(logging.WARNING):
        a = to_arrays(_table(), ["part_pdg", "part_energy"], [], ["enu"], max_num_prongs=2)
    assert a.n_truncated == 1
    assert a.vector[1, :, 1].tolist() == pytest.approx([0.9, 0.3])
    assert a.vector[1, :, 0].tolist() == [211.0, 2212.0]
    assert sum("max_num_prongs=2" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("column", "cell", "match"),
    [
        ("part_energy", "0.5,abc", "row 0: expected a comma-separated list"),
        ("part_energy", "0.5", "row 0: list column 'part_energy' has 1 entries but 'part_pdg' has 2"),
        ("part_energy", "0.5,-1.0", "row 0: negative energy"),
        ("part_energy", [0.5, float("nan")], "row 0: nan is not a finite float32 number"),
        ("part_pdg", "13,4444", "row 0: unknown PDG code 4444"),
        ("part_pdg", "13,2212.5", "row 0: unknown PDG code 2212.5"),
    ],
)
def test_bad_cells_name_file_row_and_column(column, cell, match):
    df = _table()
    df.loc[0, column] = cell if isinstance(cell, str) else None
    if not isinstance(cell, str):
        df[column] = [cell, *df[column].iloc[1:]]
    with pytest.raises(DataError, match=match) as err:
        to_arrays(df, ["part_pdg", "part_energy"], ["vis"], ["enu"], 3, source="events.csv")
    assert "events.csv" in str(err.value) and column in str(err.value) or "row 0" in str(err.value)


def test_missing_columns_and_nan_scalars():
    with pytest.raises(DataError, match=r"vector column\(s\) \['part_px'\] not found"):
        to_arrays(_table(), ["part_px"], [], ["enu"], 3, source="f.csv")
    with pytest.raises(DataError, match=r"target column\(s\) \['trueE'\] not found"):
        to_arrays(_table(), ["part_energy"], [], ["trueE"], 3, source="f.csv")
    df = _table()
    df.loc[1, "vis"] = np.nan
    with pytest.raises(DataError, match="f.csv: scalar column 'vis' row 1"):
        to_arrays(df, ["part_energy"], ["vis"], ["enu"], 3, source="f.csv")


def test_flatten_lists_counts():
    lengths, flat = flatten_lists(_table(), ["part_energy"])
    assert lengths.tolist() == [2, 3, 0] and len(flat["part_energy"]) == 5
