"""Metric curves: live ones that grow while a job runs, and static ones for stored runs.

Metric records are the dicts of :meth:`numl_core.jobs.Progress.metric`: ``name``, ``value``,
``step``, ``t`` plus tags. Records are grouped into plots (every ``*_loss`` shares the
"loss" plot, so step 1 and step 2, train and validation overlay) and, within a plot, into
series by name and the non-counter tags (``split=val``, ``distribution=dpt`` ...).

Each live series streams into its own :class:`holoviews.streams.Buffer`, so a new point
sends only that point to the browser.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache, partial, reduce
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn

from numl_core.figures import MARKER_MAX_POINTS, spans_decades
from numl_core.live import COUNTER_KEYS, LivePlots, PlotSpec, Record, plot_key, series_key  # noqa: F401


@cache
def use_bokeh() -> None:
    """Load HoloViews' Bokeh backend once, so that ``hv.opts.Curve`` and friends exist."""
    import holoviews.plotting.bokeh  # noqa: F401

    hv.Store.set_current_backend("bokeh")


def group_records(
    records: Iterable[Record],
    group: Callable[[Record], str | None] = plot_key,
    label: Callable[[Record], str] = series_key,
    last_steps: dict[tuple[str, str], tuple[float, float]] | None = None,
    restarts: dict[str, list[float]] | None = None,
) -> dict[str, dict[str, pd.DataFrame]]:
    """Split records into ``{plot: {series: DataFrame(step, value)}}``, in arrival order.

    Records that ``group`` maps to None are left out (not plotted).

    A step counter that restarts within a series (each OmniFold iteration counts its epochs
    from 0) is laid end to end, so ``step`` is cumulative and a curve never runs backwards.
    ``last_steps`` carries ``{(plot, series): (last step drawn, offset)}`` from one call to
    the next when records arrive in batches; ``restarts`` collects ``{plot: [step where a counter
    restarted]}`` (the start of each OmniFold iteration after the first), drawn as dotted lines.

    >>> g = group_records([{"name": "a_loss", "value": 1.0, "step": s} for s in (0, 1, 0, 1)])
    >>> g["loss"]["a_loss"]["step"].tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    chains = {} if last_steps is None else last_steps
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in records:
        plot = group(r)
        if plot is None:
            continue
        key = (plot, label(r))
        step = float(r["step"])
        last, offset = chains.get(key, (None, 0.0))
        if last is not None and step + offset <= last:
            offset = last + 1.0 - step
            if restarts is not None and step + offset not in restarts.setdefault(plot, []):
                restarts[plot].append(step + offset)
        chains[key] = (step + offset, offset)
        rows.setdefault(key[0], {}).setdefault(key[1], []).append((step + offset, float(r["value"])))
    return {
        plot: {s: pd.DataFrame(pts, columns=["step", "value"]) for s, pts in series.items()}
        for plot, series in rows.items()
    }


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype=float), "value": pd.Series(dtype=float)})


def _dash(series: str) -> str:
    return "dashed" if "val" in series.split("(")[-1] else "solid"


def _curve(data: pd.DataFrame, label: str) -> hv.Curve:
    use_bokeh()  # styling options need a plotting backend, even before any plot was drawn
    return hv.Curve(data, "step", "value", label=label).opts(line_dash=_dash(label))


def _markers(data: pd.DataFrame, label: str) -> hv.Scatter:
    """Markers on the points of a short series (at most :data:`MARKER_MAX_POINTS`): a series of one point
    is otherwise invisible. Longer series get none (an empty scatter)."""
    use_bokeh()
    shown = data if len(data) <= MARKER_MAX_POINTS else data.iloc[:0]
    return hv.Scatter(shown, "step", "value", label=label)


def _boundaries(data: list[float]) -> hv.VLines:
    """Dotted vertical lines where a step counter restarted (a new OmniFold iteration, a new round)."""
    use_bokeh()
    return hv.VLines(list(data), kdims=["step"])


def log_scale(values: Iterable[float], prefer_log: bool = False) -> bool:
    """Whether a plot of ``values`` gets a log y axis: only when every value is positive (a log axis draws
    nothing for a series of zeros, such as the spread of a single trial), and then when ``prefer_log`` (the
    plot's declared default) or the values span more than two decades.

    >>> log_scale([4e4, 200.0]), log_scale([1.0, 2.0]), log_scale([0.0, 1e4], prefer_log=True)
    (True, False, False)
    """
    v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return prefer_log
    if (v <= 0).any():
        return False
    return prefer_log or spans_decades(v)


def _spec(title: str | PlotSpec) -> PlotSpec:
    return title if isinstance(title, PlotSpec) else PlotSpec(title, title, ylabel=title)


def _style(
    obj: hv.Overlay | hv.DynamicMap,
    title: str | PlotSpec,
    height: int,
    logy: bool | None = None,
    hooks: Sequence[Callable[..., None]] = (),
) -> Any:
    use_bokeh()
    spec = _spec(title)
    frame = dict(
        title=spec.title or spec.key,
        responsive=True,
        height=height,
        show_grid=True,
        xlabel=spec.xlabel,
        ylabel=spec.ylabel,
        logy=spec.logy if logy is None else logy,
    )
    return obj.opts(
        hv.opts.Curve(tools=["hover"], line_width=2, framewise=True, **frame),
        hv.opts.Scatter(size=6, framewise=True, **frame),
        hv.opts.VLines(color="#888888", line_dash="dotted", line_width=1.5, **frame),
        hv.opts.Overlay(legend_position="right", hooks=list(hooks), **frame),
    )


BOUNDARY_TAG = "numl-restart"
"""Tag of the dotted Bokeh spans a live plot draws where a step counter restarted."""


def sync_boundaries(fig: Any, steps: Sequence[float]) -> None:
    """Dotted vertical Bokeh spans on ``fig`` exactly at ``steps``: missing ones added, stale ones (a new
    job started) removed. Drawn on the Bokeh figure itself, so a live plot's curve updates do not redraw
    them."""
    from bokeh.models import Span

    wanted = set(steps)
    ours = [r for r in fig.center if isinstance(r, Span) and BOUNDARY_TAG in r.tags]
    if any(r.location not in wanted for r in ours):
        fig.center = [r for r in fig.center if r not in ours or r.location in wanted]
    have = {r.location for r in ours}
    for step in steps:
        if step not in have:
            span = Span(location=step, dimension="height", line_dash="dotted", line_width=1.5)
            span.line_color, span.tags = "#888888", [BOUNDARY_TAG]
            fig.add_layout(span)


def plot_pane(obj: Any, **kwargs: Any) -> pn.pane.HoloViews:
    """A full-width HoloViews pane whose axes are its own (Panel links equal axes across panes by default)."""
    return pn.pane.HoloViews(obj, sizing_mode="stretch_width", linked_axes=False, **kwargs)


def static_overlay(
    series: dict[str, pd.DataFrame], title: str | PlotSpec, height: int = 260, restarts: Sequence[float] = ()
) -> Any:
    """An overlay of fixed curves (stored runs, comparisons): markers on short series, dotted lines at
    ``restarts``, a log y axis where the values allow and call for one (:func:`log_scale`)."""
    elements: list[Any] = [e for s, df in series.items() for e in (_curve(df, s), _markers(df, s))]
    if restarts:
        elements.append(_boundaries(list(restarts)))
    values = np.concatenate([df["value"].to_numpy(float) for df in series.values()] or [np.empty(0)])
    return _style(hv.Overlay(elements), title, height, log_scale(values, _spec(title).logy))


def static_curves(
    records: Iterable[Record],
    group: Callable[[Record], str] = plot_key,
    label: Callable[[Record], str] = series_key,
    height: int = 260,
) -> pn.viewable.Viewable:
    """All metric plots of a stored run (or of several runs, told apart by ``label``)."""
    restarts: dict[str, list[float]] = {}
    groups = group_records(records, group, label, restarts=restarts)
    if not groups:
        return pn.pane.Markdown("No metrics recorded.")
    panes = [plot_pane(static_overlay(s, plot, height, restarts.get(plot, ()))) for plot, s in groups.items()]
    return pn.GridBox(*panes, ncols=2, sizing_mode="stretch_width")


class LiveCurves(pn.viewable.Viewer):
    """Growing metric curves; feed them with :meth:`push` from a periodic callback.

    ``group`` maps a record to its plot (see :func:`plot_key`), or to None to count it
    without drawing it; ``length`` caps the points kept per series (the oldest are dropped).
    """

    def __init__(
        self,
        group: Callable[[Record], str | None] = plot_key,
        length: int = 100_000,
        height: int = 260,
        specs: LivePlots | None = None,
    ) -> None:
        super().__init__()
        self.group = group
        self.specs = specs if specs is not None else LivePlots(group=group)
        self.length = length
        self.height = height
        self._buffers: dict[str, dict[str, hv.streams.Buffer]] = {}
        self._last_steps: dict[tuple[str, str], tuple[float, float]] = {}
        self._restarts: dict[str, list[float]] = {}
        self._marker_pipes: dict[tuple[str, str], hv.streams.Pipe] = {}
        self._ranges: dict[str, tuple[float, float, bool]] = {}
        self._logy: dict[str, bool] = {}
        self._panes: dict[str, pn.pane.HoloViews] = {}
        self.counts: dict[str, int] = {}
        self.received = 0
        self._grid = pn.GridBox(ncols=2, sizing_mode="stretch_width")
        self._readout = pn.pane.Markdown("0 metric points", css_classes=["numl-metric-count"], margin=(0, 10))
        self._layout = pn.Column(self._readout, self._grid, sizing_mode="stretch_width")

    def prepare(self, expected: Mapping[str, Sequence[str]]) -> None:
        """Create plots and (empty) series up front, e.g. ``{"loss": ["a_loss (train)"]}``.

        Drawing every expected plot once, when a job starts, is much cheaper for the server
        than redrawing a plot each time one of its series first appears.
        """
        changed = []
        for plot, names in expected.items():
            buffers = self._buffers.setdefault(plot, {})
            for name in names:
                if name not in buffers:
                    buffers[name] = hv.streams.Buffer(_empty(), length=self.length, index=False)
                    changed.append(plot)
        self._draw(list(dict.fromkeys(changed)))

    def push(self, records: list[Record]) -> int:
        """Append records to their curves; return the number of records received."""
        self.received += len(records)
        changed_plots = []
        grouped = group_records(records, self.group, last_steps=self._last_steps, restarts=self._restarts)
        for plot, series in grouped.items():
            buffers = self._buffers.setdefault(plot, {})
            for name, df in series.items():
                if name in buffers:
                    buffers[name].send(df)
                    self._send_markers(plot, name)
                else:
                    buffers[name] = hv.streams.Buffer(df, length=self.length, index=False)
                    changed_plots.append(plot)
                self.counts[name] = self.counts.get(name, 0) + len(df)
                self._track_range(plot, df["value"].to_numpy(float))
            if plot in self._panes and self._logy.get(plot) != self._wants_log(plot):
                changed_plots.append(plot)  # the values now call for the other y scale: redraw once
        self._draw(list(dict.fromkeys(changed_plots)))
        self.sync_readout()
        return len(records)

    def sync_readout(self) -> None:
        """Show the current point counts (a no-op when the text is already up to date)."""
        text = self._readout_text()
        if self._readout.object != text:
            self._readout.object = text

    def _boundary_hook(self, plot: str, hv_plot: Any, element: Any) -> None:
        """Plot hook (run when the plot is drawn and at each update): the restarts of ``plot`` so far as
        dotted spans (:func:`sync_boundaries`)."""
        sync_boundaries(hv_plot.state, self._restarts.get(plot, ()))

    def _marker_data(self, plot: str, series: str) -> pd.DataFrame:
        data = self._buffers[plot][series].data
        return data if len(data) <= MARKER_MAX_POINTS else data.iloc[:0]

    def _send_markers(self, plot: str, series: str) -> None:
        """Update a series' markers while it is short; once it is long, empty them once and then leave
        them alone, so a long curve's updates redraw one glyph, not two."""
        pipe = self._marker_pipes.get((plot, series))
        if pipe is not None and (
            len(self._buffers[plot][series].data) <= MARKER_MAX_POINTS or len(pipe.data)
        ):
            pipe.send(self._marker_data(plot, series))

    def _wants_log(self, plot: str) -> bool:
        """:func:`log_scale` of the plot's values, from their running (min, max) over finite values and
        whether any was <= 0 (updated from each push, not recomputed from every point)."""
        low, high, nonpositive = self._ranges.get(plot, (np.inf, -np.inf, False))
        values = [] if high < low else [low, high]
        return log_scale([0.0] if nonpositive else values, self.specs.spec(plot).logy)

    def _track_range(self, plot: str, values: np.ndarray) -> None:
        finite = values[np.isfinite(values)]
        if finite.size:
            low, high, nonpositive = self._ranges.get(plot, (np.inf, -np.inf, False))
            self._ranges[plot] = (
                min(low, float(finite.min())),
                max(high, float(finite.max())),
                nonpositive or bool((finite <= 0).any()),
            )

    def _draw(self, plots: list[str]) -> None:
        """(Re)build the overlays of ``plots``; add new panes to the grid in one update."""
        new_panes = []
        for plot in plots:
            spec = self.specs.spec(plot)
            dmaps = []
            for s, b in self._buffers[plot].items():
                dmaps.append(hv.DynamicMap(partial(_curve, label=s), streams=[b]))
                if spec.markers:
                    markers = hv.streams.Pipe(data=self._marker_data(plot, s))
                    self._marker_pipes[(plot, s)] = markers
                    dmaps.append(hv.DynamicMap(partial(_markers, label=s), streams=[markers]))
            hooks = [partial(self._boundary_hook, plot)] if spec.boundaries else []
            self._logy[plot] = self._wants_log(plot)
            overlay = _style(
                reduce(operator.mul, dmaps), self.specs.spec(plot), self.height, self._logy[plot], hooks
            )
            if plot in self._panes:
                self._panes[plot].object = overlay
            else:
                self._panes[plot] = plot_pane(overlay, min_height=self.height)
                new_panes.append(self._panes[plot])
        if new_panes:
            self._grid.extend(new_panes)

    def _readout_text(self) -> str:
        if not self.received:
            return "0 metric points"
        parts = ", ".join(f"{s}: {n}" for s, n in self.counts.items())
        return f"{self.received} metric points ({parts})"

    def reset(self) -> None:
        """Empty every curve but keep the plots (a new job starts: nothing is redrawn)."""
        for buffers in self._buffers.values():
            for buffer in buffers.values():
                if len(buffer.data):
                    buffer.clear()
        self._last_steps.clear()
        self._restarts.clear()
        for pipe in self._marker_pipes.values():
            if len(pipe.data):
                pipe.send(_empty())
        self._ranges.clear()
        self.counts.clear()
        self.received = 0
        self._readout.object = "0 metric points"

    def clear(self) -> None:
        """Forget all curves and plots."""
        self._buffers.clear()
        self._last_steps.clear()
        self._restarts.clear()
        self._marker_pipes.clear()
        self._ranges.clear()
        self._logy.clear()
        self._panes.clear()
        self.counts.clear()
        self.received = 0
        self._grid.clear()
        self._readout.object = "0 metric points"

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
