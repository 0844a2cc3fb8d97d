"""Read and write event tables: CSV, parquet and ROOT TTrees (through uproot).

Per-particle list columns are stored as comma-separated strings in CSV (the layout of
the transformer_EE project), as list arrays in parquet and as jagged branches in ROOT.
Every reader raises :class:`~numl_core.data.schema.DataError` naming the file; every
writer writes a temporary file and renames it into place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd

from numl_core.data.schema import DataError, Schema, check_same_lengths
from numl_core.runs import atomic_open

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".root": "root"}
DEFAULT_TREE = "events"
TEXT_SUFFIX = "__utf8"
"""Branch-name suffix of a text column in a ROOT file numl writes (UTF-8 bytes per row)."""


def table_format(path: str | Path) -> str:
    """``csv``, ``parquet`` or ``root`` from the file suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{path}: unsupported file type {suffix!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[suffix]


def _list_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype == object and len(df) and _is_sequence(df[c].iloc[0])]


def _is_sequence(x: object) -> bool:
    return isinstance(x, (list, tuple, np.ndarray)) and not isinstance(x, str)


def read_table(
    path: str | Path,
    schema: Schema | None = None,
    tree: str = DEFAULT_TREE,
    list_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Read an event table; validate it against ``schema`` when given.

    List columns named by the schema or by ``list_columns`` are parsed from CSV strings ("1.0,2.0", as
    :func:`write_table` writes them; one entry reads as a number and none as empty) into arrays.
    """
    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a {fmt} file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    list_cols = [c.name for c in schema.columns if c.is_list] if schema is not None else []
    list_cols += [c for c in list_columns if c not in list_cols]
    if fmt == "csv":
        df = _read_csv(path, list_cols)
    elif fmt == "parquet":
        df = _read_parquet(path)
    else:
        df = _read_root(path, tree)
    if schema is not None:
        df = schema.validate(df, source=str(path))
        check_same_lengths(df, list_cols, source=str(path))
    return df


def _read_csv(path: Path, list_cols: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file has no header or rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV table ({exc})") from None
    for c in list_cols:
        if c in df.columns:
            df[c] = [parse_list_cell(v, path, c, i) for i, v in enumerate(df[c].to_numpy())]
    return df


def parse_list_cell(cell: object, source: str | Path, column: str, row: int) -> np.ndarray:
    """One list cell as a float array: ``"1.5,2"`` or ``"[1.5, 2]"`` (the CSV encoding), a list or
    array, a single number, or empty (``""``, None, NaN: no entries).

    >>> parse_list_cell("[0.1, 2]", "f.csv", "energy", 0).tolist()
    [0.1, 2.0]
    """
    if isinstance(cell, str):
        text = cell.strip().strip("[]")
        if not text:
            return np.zeros(0)
        try:
            return np.array([float(x) for x in text.split(",")])
        except ValueError:
            raise DataError(
                f"{source}: column '{column}' row {row}: expected a comma-separated list of numbers, "
                f"got {cell!r}"
            ) from None
    if isinstance(cell, (list, tuple, np.ndarray)):
        try:
            return np.asarray(cell, dtype=float).ravel()
        except (TypeError, ValueError):
            raise DataError(
                f"{source}: column '{column}' row {row}: list holds non-numbers: {cell!r}"
            ) from None
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return np.zeros(0)
    if isinstance(cell, (int, float, np.number)):
        return np.array([float(cell)])
    raise DataError(f"{source}: column '{column}' row {row}: expected a list of numbers, got {cell!r}")


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    df = table.to_pandas()
    for c in _list_columns(df):
        df[c] = [np.asarray(v, dtype=float) for v in df[c]]
    return df


def _read_root(path: Path, tree: str) -> pd.DataFrame:
    import uproot

    try:
        f = uproot.open(path)
    except Exception as exc:  # uproot raises many types for truncated/corrupt files
        raise DataError(f"{path}: not a readable ROOT file ({type(exc).__name__}: {exc})") from None
    with f:
        try:
            keys = [k.split(";")[0] for k in f.keys()]
            if tree not in keys:
                raise DataError(f"{path}: no TTree {tree!r}; the file holds {keys}")
            arrays = f[tree].arrays(library="ak")
        except DataError:
            raise
        except Exception as exc:
            raise DataError(
                f"{path}: TTree {tree!r} could not be read ({type(exc).__name__}: {exc})"
            ) from None
    columns: dict[str, object] = {}
    jagged = [name for name in arrays.fields if arrays[name].ndim > 1]
    counters = {f"n{name}" for name in jagged}
    for name in arrays.fields:
        if name in counters:
            continue
        col = arrays[name]
        if name.endswith(TEXT_SUFFIX):  # a text column, stored as its UTF-8 bytes (see _write_root)
            columns[name[: -len(TEXT_SUFFIX)]] = [bytes(x).decode("utf-8") for x in ak.to_list(col)]
        elif name in jagged:
            columns[name] = [np.asarray(x, dtype=float) for x in ak.to_list(col)]
        else:
            columns[name] = ak.to_numpy(col)
    return pd.DataFrame(columns)


def write_table(df: pd.DataFrame, path: str | Path, tree: str = DEFAULT_TREE) -> Path:
    """Write an event table atomically in the format given by the suffix."""
    path = Path(path)
    fmt = table_format(path)
    list_cols = _list_columns(df)
    if fmt == "csv":
        out = df.copy()
        for c in list_cols:
            out[c] = [",".join(repr(float(x)) for x in v) for v in out[c]]
        with atomic_open(path, "w") as fh:
            out.to_csv(fh, index=False)
    elif fmt == "parquet":
        out = df.copy()
        for c in list_cols:
            out[c] = [np.asarray(v, dtype=float) for v in out[c]]
        with atomic_open(path, "wb") as fh:
            out.to_parquet(fh, index=False)
    else:
        _write_root(df, path, tree, list_cols)
    return path


def _write_root(df: pd.DataFrame, path: Path, tree: str, list_cols: list[str]) -> None:
    import uproot

    branches: dict[str, object] = {}
    for c in df.columns:
        if c in list_cols:
            branches[c] = ak.Array([np.asarray(v, dtype=np.float64) for v in df[c]])
        elif df[c].dtype == object or pd.api.types.is_string_dtype(df[c]):
            # a TTree holds no strings: text goes as one UTF-8 byte list per row, named NAME__utf8
            encoded = [np.frombuffer(str(v).encode("utf-8"), dtype=np.uint8) for v in df[c]]
            branches[c + TEXT_SUFFIX] = ak.Array(encoded)
        else:
            values = df[c].to_numpy()
            branches[c] = values.astype(np.int8) if values.dtype == bool else values
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".root", dir=path.parent)
    os.close(fd)
    try:
        with uproot.recreate(tmp) as f:
            f[tree] = branches
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
