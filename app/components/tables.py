"""Tables and downloads shared by every page."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter


def _needs_exponent(values: pd.Series, digits: int) -> bool:
    """True if fixed decimals would hide a value: a non-zero magnitude below 10^-digits, or above 10^7."""
    v = values.to_numpy(dtype=float)
    v = np.abs(v[np.isfinite(v) & (v != 0)])
    return bool(len(v)) and bool((v < 10.0**-digits).any() or (v >= 1e7).any())


def display_frame(frame: pd.DataFrame, digits: int = 4) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame as a table shows it, and the number formatters of its columns: up to ``digits`` decimals,
    or ``digits`` significant figures with an exponent for a column holding values fixed decimals would
    round to 0 (a cross section of 1e-38 cm^2) or stretch (1e9 events).

    >>> shown, _ = display_frame(pd.DataFrame({"sigma": [1.23456e-38, 0.5], "n": [1.0, 2.0]}))
    >>> shown["sigma"].tolist()
    ['1.235e-38', '0.5']
    """
    frame = (
        frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame.reset_index(drop=True)
    )
    fixed = NumberFormatter(format="0.[" + "0" * digits + "]")
    formatters: dict[str, Any] = {}
    for c in frame.select_dtypes("float").columns:
        if _needs_exponent(frame[c], digits):
            frame[c] = [f"{v:.{digits}g}" if np.isfinite(v) else str(v) for v in frame[c].to_numpy(float)]
        else:
            formatters[c] = fixed
    return frame, formatters


def table(frame: pd.DataFrame, digits: int = 4, **kwargs: Any) -> pn.widgets.Tabulator:
    """A read-only, full-width table (:func:`display_frame`); a non-default index becomes columns."""
    shown, formatters = display_frame(frame, digits)
    return pn.widgets.Tabulator(
        shown, disabled=True, show_index=False, formatters=formatters, sizing_mode="stretch_width", **kwargs
    )


def csv_bytes(frame: pd.DataFrame) -> io.BytesIO:
    """A CSV file in memory (for download buttons)."""
    return io.BytesIO(frame.to_csv(index=False).encode("utf-8"))
