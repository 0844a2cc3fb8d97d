import math

import numpy as np
import pandas as pd
import pytest

from numl_core.data.io import read_table, write_table
from numl_core.data.schema import Column, DataError, Schema

SCHEMA = Schema(
    "test",
    (
        Column("event_id", "int"),
        Column("enu", "float", "GeV", 0.0, 100.0),
        Column("pass_reco", "bool"),
        Column("pdg", "list[int]"),
        Column("energy", "list[float]", "GeV", 0.0, 1e4),
    ),
)


def table(n=4):
    rng = np.random.default_rng(0)
    counts = [1, 3, 0, 2][:n]
    return pd.DataFrame(
        {
            "event_id": np.arange(n, dtype=np.int64),
            "enu": rng.uniform(0.1, 5, n),
            "pass_reco": np.array([True, False, True, True][:n]),
            "pdg": [np.array([13, 2212, 211][:k], dtype=np.int64) for k in counts],
            "energy": [rng.uniform(0.1, 1, k) for k in counts],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".root"])
def test_round_trip_every_format(tmp_path, suffix):
    df = table()
    path = write_table(df, tmp_path / f"events{suffix}")
    back = read_table(path, SCHEMA)
    assert list(back["event_id"]) == list(df["event_id"])
    np.testing.assert_allclose(back["enu"], df["enu"], rtol=1e-15)
    assert back["pass_reco"].dtype == bool and list(back["pass_reco"]) == list(df["pass_reco"])
    for a, b in zip(back["energy"], df["energy"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-15)
    assert [list(x) for x in back["pdg"]] == [list(x) for x in df["pdg"]]


def test_missing_column(tmp_path):
    path = write_table(table().drop(columns="enu"), tmp_path / "e.parquet")
    with pytest.raises(DataError, match=r"e.parquet: missing column\(s\) \['enu'\]"):
        read_table(path, SCHEMA)


def test_wrong_dtype_names_column_and_row(tmp_path):
    df = table()
    df["enu"] = ["1.0", "2.0", "lots", "3.0"]
    path = write_table(df, tmp_path / "e.csv")
    with pytest.raises(
        DataError, match=r"e.csv: column 'enu' row 2: expected float in \[0.0, 100.0\] GeV, got 'lots'"
    ):
        read_table(path, SCHEMA)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 1e300])
def test_non_finite_and_out_of_range(tmp_path, bad):
    df = table()
    df.loc[1, "enu"] = bad
    path = write_table(df, tmp_path / "e.parquet")
    with pytest.raises(DataError, match=r"column 'enu' row 1"):
        read_table(path, SCHEMA)


def test_bad_value_inside_a_list_names_the_event_row(tmp_path):
    df = table()
    energy = list(df["energy"])
    energy[3] = np.array([0.5, -2.0])
    df["energy"] = energy
    path = write_table(df, tmp_path / "e.root")
    with pytest.raises(DataError, match=r"column 'energy' row 3: .* got -2.0"):
        read_table(path, SCHEMA)


def test_ragged_lists_across_particle_columns(tmp_path):
    df = table()
    energy = list(df["energy"])
    energy[1] = np.array([0.5])
    df["energy"] = energy
    path = write_table(df, tmp_path / "e.csv")
    with pytest.raises(DataError, match=r"row 1: list column 'energy' has 1 entries but 'pdg' has 3"):
        read_table(path, SCHEMA)


def test_malformed_list_cell(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text('event_id,enu,pass_reco,pdg,energy\n0,1.0,1,"13,x","0.2,0.3"\n')
    with pytest.raises(
        DataError, match=r"column 'pdg' row 0: expected a comma-separated list of numbers, got '13,x'"
    ):
        read_table(path, SCHEMA)


def test_non_integer_and_bad_bool(tmp_path):
    df = table()
    df["event_id"] = [0, 1.5, 2, 3]
    with pytest.raises(DataError, match=r"column 'event_id' row 1: .*not an integer"):
        SCHEMA.validate(df, "mem")
    df = table()
    df["pass_reco"] = [1, 0, 2, 1]
    with pytest.raises(DataError, match=r"column 'pass_reco' row 2"):
        SCHEMA.validate(df, "mem")


def test_empty_files(tmp_path):
    for name in ("e.csv", "e.parquet", "e.root"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(DataError, match=f"{name}: file is empty"):
            read_table(tmp_path / name, SCHEMA)
    header_only = tmp_path / "h.csv"
    header_only.write_text("event_id,enu,pass_reco,pdg,energy\n")
    with pytest.raises(DataError, match="no rows"):
        read_table(header_only, SCHEMA)


@pytest.mark.parametrize("suffix", [".parquet", ".root"])
def test_truncated_binary_files(tmp_path, suffix):
    path = write_table(table(), tmp_path / f"e{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"e{suffix}: "):
        read_table(path, SCHEMA)


def test_garbage_root_and_missing_tree(tmp_path):
    bad = tmp_path / "g.root"
    bad.write_bytes(b"not a root file at all" * 10)
    with pytest.raises(DataError, match="g.root: not a readable ROOT file"):
        read_table(bad, SCHEMA)
    path = write_table(table(), tmp_path / "e.root", tree="other")
    with pytest.raises(DataError, match=r"no TTree 'events'; the file holds \['other'\]"):
        read_table(path, SCHEMA)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"unsupported file type '.txt'"):
        read_table(tmp_path / "x.txt")
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "x.csv")


def test_write_is_atomic_on_failure(tmp_path):
    path = write_table(table(), tmp_path / "e.parquet")
    before = path.read_bytes()
    bad = table()
    bad["weird"] = [object()] * 4  # pyarrow cannot store these
    with pytest.raises(Exception):  # noqa: B017 - any pyarrow error; the point is what is left behind
        write_table(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["e.parquet"]
