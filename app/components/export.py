"""Export buttons shared by every result view: a figure as PNG, PDF or SVG and tables as CSV.

The figure is the workflow's own matplotlib figure (``numl_core/<workflow>/figures.py``, the one the
notebooks draw), built only when a button is pressed: a result view costs nothing until then. Tables may be
given as frames or as callables (read at the press too, so that a view's current selection is exported).

>>> import pandas as pd
>>> row = export_row("table", tables=pd.DataFrame({"a": [1]}))
>>> [b.label for b in export_buttons(row)]
['CSV']
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import panel as pn
from matplotlib.figure import Figure

from app.components.tables import csv_bytes
from numl_core.figures import FORMATS, figure_bytes

Stem = str | Callable[[], str]
"""A file name without its suffix, or a callable returning it at the press (e.g. from a selection)."""
Table = pd.DataFrame | Callable[[], pd.DataFrame]
BUTTON_WIDTH = 70


def _text(stem: Stem) -> str:
    return stem() if callable(stem) else stem


def _frame(table: Table) -> pd.DataFrame:
    return table() if callable(table) else table


def figure_download(build: Callable[[], Figure], stem: Stem, fmt: str) -> pn.widgets.FileDownload:
    """A button that builds the figure when pressed and downloads it as ``<stem>.<fmt>``."""
    button = pn.widgets.FileDownload(
        filename=f"{_text(stem)}.{fmt}", label=fmt.upper(), color="default", width=BUTTON_WIDTH
    )

    def callback() -> io.BytesIO:
        button.filename = f"{_text(stem)}.{fmt}"  # Panel reads the name after the callback
        return io.BytesIO(figure_bytes(build(), fmt))

    button.callback = callback
    return button


def table_download(table: Table, stem: Stem, label: str = "CSV") -> pn.widgets.FileDownload:
    """A button that downloads the table (read when pressed) as ``<stem>.csv``."""
    button = pn.widgets.FileDownload(
        filename=f"{_text(stem)}.csv", label=label, color="default", width=max(BUTTON_WIDTH, 10 * len(label))
    )

    def callback() -> io.BytesIO:
        button.filename = f"{_text(stem)}.csv"
        return csv_bytes(_frame(table))

    button.callback = callback
    return button


def export_row(
    stem: Stem,
    figure: Callable[[], Figure] | None = None,
    tables: Table | Mapping[str, Table] | None = None,
    title: str = "Export",
) -> pn.Row:
    """A row of download buttons: the figure ``figure()`` as PNG, PDF and SVG (when given) and each table
    as CSV. One table downloads as ``<stem>.csv`` (button "CSV"); named tables ``{name: table}`` as
    ``<stem>_<name>.csv`` (buttons "CSV: name")."""
    buttons: list[Any] = []
    if figure is not None:
        buttons += [figure_download(figure, stem, fmt) for fmt in FORMATS]
    if isinstance(tables, Mapping):
        buttons += [
            table_download(t, (lambda name=name: f"{_text(stem)}_{name}"), f"CSV: {name}")
            for name, t in tables.items()
        ]
    elif tables is not None:
        buttons.append(table_download(tables, stem))
    return pn.Row(
        pn.pane.Markdown(f"**{title}**", margin=(8, 10, 0, 5)),
        *buttons,
        css_classes=["numl-export"],
        sizing_mode="stretch_width",
    )


def export_buttons(row: pn.Row) -> list[pn.widgets.FileDownload]:
    """The download buttons of an :func:`export_row`, in order."""
    return [b for b in row if isinstance(b, pn.widgets.FileDownload)]
