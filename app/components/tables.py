"""Tables and downloads shared by every page."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter


def table(frame: pd.DataFrame, digits: int = 4, **kwargs: Any) -> pn.widgets.Tabulator:
    """A read-only, full-width table; floats shown with up to ``digits`` decimals; a non-default index
    becomes columns."""
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    else:
        frame = frame.reset_index(drop=True)
    fmt = NumberFormatter(format="0.[" + "0" * digits + "]")
    floats = {c: fmt for c in frame.select_dtypes("float").columns}
    return pn.widgets.Tabulator(
        frame, disabled=True, show_index=False, formatters=floats, sizing_mode="stretch_width", **kwargs
    )


def csv_bytes(frame: pd.DataFrame) -> io.BytesIO:
    """A CSV file in memory (for download buttons)."""
    return io.BytesIO(frame.to_csv(index=False).encode("utf-8"))


def csv_download(
    frame: pd.DataFrame, filename: str, label: str = "Download CSV", **kwargs: Any
) -> pn.widgets.FileDownload:
    """A button that downloads ``frame`` as ``filename``."""
    return pn.widgets.FileDownload(
        callback=lambda: csv_bytes(frame), filename=filename, label=label, button_type="default", **kwargs
    )
