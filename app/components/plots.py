"""Plot pieces shared by every page: bands with a mean, grids of plots, and the overlay of compared runs'
result curves (histogram steps come from :func:`numl_core.figures.steps`).

Pure functions of arrays that return HoloViews elements; the pages compose them.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import panel as pn

from app.components.live_curve import plot_pane, use_bokeh  # noqa: F401 - re-exported for the pages
from numl_core.figures import MARKER_MAX_POINTS, plain_text
from numl_core.overlays import Overlay


def band(x: np.ndarray, mean: np.ndarray, spread: np.ndarray, color: str, label: str) -> list[Any]:
    """A mean curve with a +-1 spread band around it."""
    use_bokeh()
    return [
        hv.Area((x, mean - spread, mean + spread), "x", ["y", "y2"]).opts(
            color=color, alpha=0.25, line_alpha=0, show_legend=False
        ),
        hv.Curve((x, mean), "x", "y", label=label).opts(color=color, line_width=2),
    ]


def layout_grid(layout: hv.Layout, ncols: int) -> pn.GridBox:
    """The plots of a HoloViews ``layout`` as a Panel grid of panes, ``ncols`` wide: in the dashboard's
    template a Bokeh grid plot (what a layout renders to) collapses to frames of no width."""
    return pn.GridBox(*[plot_pane(p) for p in layout.values()], ncols=ncols, sizing_mode="stretch_width")


def overlay_plot(overlay: Overlay, height: int = 300) -> hv.Overlay:
    """The curves of compared runs in one plot (:class:`~numl_core.overlays.Overlay`), each labelled by its
    run id; axis labels and units from the export figures (:func:`~numl_core.figures.plain_text`), markers
    on short series that are not histogram steps, log axes as the overlay says."""
    use_bokeh()
    elements: list[Any] = []
    for run_id, curve in overlay.curves.items():
        data = (curve.x, curve.y)
        elements.append(hv.Curve(data, "x", "y", label=run_id).opts(line_width=2, tools=["hover"]))
        if not curve.steps and curve.x.size <= MARKER_MAX_POINTS:
            elements.append(hv.Scatter(data, "x", "y", label=run_id).opts(size=6))
    return hv.Overlay(elements).opts(
        hv.opts.Overlay(
            title=overlay.plot,
            xlabel=plain_text(overlay.xlabel),
            ylabel=plain_text(overlay.ylabel),
            logx=overlay.logx,
            logy=overlay.logy,
            responsive=True,
            height=height,
            show_grid=True,
            legend_position="right",
        )
    )
