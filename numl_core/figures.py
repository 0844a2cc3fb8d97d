"""What every workflow's figures share: the mplhep (ROOT) style, a main panel with a ratio panel under it,
legends outside the data, markers on short series, log axes where values span decades, and saving to
PNG, PDF or SVG.

Each workflow has a ``figures`` module (:mod:`numl_core.unfold.figures`, ...) of pure functions that take a
result and return a :class:`matplotlib.figure.Figure`; the notebooks draw them and the dashboard exports
them. Figures are built without pyplot (no global figure list, safe in a server), inside :func:`style`,
which applies the style for the duration of the call (and of each drawing) only: a notebook's own
rcParams are left as they were. A notebook shows a returned figure once ``%matplotlib inline`` has run
(the notebooks in ``notebooks/`` start with it).

>>> @styled
... def line() -> Figure:
...     fig = new_figure()
...     fig.add_subplot().plot([1.0, 2.0], [3.0, 4.0])
...     return fig
>>> figure_bytes(line(), "svg")[:5]
b'<?xml'
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from typing import IO, Any, ParamSpec

import matplotlib.style
import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.gridspec import SubplotSpec
from matplotlib.ticker import MaxNLocator, NullLocator

FORMATS = ("png", "pdf", "svg")
"""The file formats :func:`save_figure` writes."""
MIME_TYPES = {"png": "image/png", "pdf": "application/pdf", "svg": "image/svg+xml"}
PNG_DPI = 200
"""Resolution of saved PNG files [dots per inch]."""
MARKER_MAX_POINTS = 25
"""Series with at most this many points are drawn with markers (:func:`markers`)."""
#: mplhep's ROOT style sized for a 7 x 5 inch figure (its own defaults suit 10 x 10 inches).
STYLE_OVERRIDES = {
    "font.size": 14,
    "figure.figsize": (7.0, 5.0),
    "axes.linewidth": 1.2,
    "lines.linewidth": 1.8,
    "xtick.major.size": 7,
    "xtick.minor.size": 3.5,
    "ytick.major.size": 7,
    "ytick.minor.size": 3.5,
    "legend.fontsize": "x-small",
    "axes.titlesize": "small",
    "savefig.dpi": PNG_DPI,
}
RATIO_HEIGHTS = (3, 1)
"""Heights of the main panel and the ratio panel under it."""

P = ParamSpec("P")


@contextmanager
def style() -> Iterator[None]:
    """mplhep's ROOT style (plus :data:`STYLE_OVERRIDES`) inside the ``with`` block; the rcParams in force
    before it come back afterwards."""
    with matplotlib.style.context([mplhep.style.ROOT, STYLE_OVERRIDES]):
        yield


def styled(build: Callable[P, Figure]) -> Callable[P, Figure]:
    """Decorate a figure function so that it builds its figure inside :func:`style`."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Figure:
        with style():
            return build(*args, **kwargs)

    return wrapper


class StyledFigure(Figure):
    """A figure that lays itself out and draws in :func:`style`, whoever asks: :func:`save_figure`, a
    user's ``fig.savefig`` or a notebook's inline display, which renders after the building function has
    returned (its mathtext fonts and sizes are read from the rcParams at drawing time)."""

    def draw(self, renderer: Any) -> None:
        with style():
            super().draw(renderer)

    def get_tightbbox(self, *args: Any, **kwargs: Any) -> Any:
        with style():
            return super().get_tightbbox(*args, **kwargs)


def new_figure(width: float = 7.0, height: float = 5.0) -> Figure:
    """An empty :class:`StyledFigure` of ``width`` x ``height`` inches with constrained layout (room for
    outside legends), not registered with pyplot."""
    return StyledFigure(figsize=(width, height), layout="constrained")


def ratio_axes(fig: Figure, spec: SubplotSpec | None = None) -> tuple[Axes, Axes]:
    """A main panel and a ratio panel under it sharing the x axis (the main panel's x tick labels
    hidden), filling ``fig`` or one cell ``spec`` of a grid in it."""
    grid = (
        spec.subgridspec(2, 1, height_ratios=RATIO_HEIGHTS, hspace=0.0)
        if spec is not None
        else fig.add_gridspec(2, 1, height_ratios=RATIO_HEIGHTS, hspace=0.0)
    )
    main = fig.add_subplot(grid[0])
    ratio = fig.add_subplot(grid[1], sharex=main)
    main.tick_params(labelbottom=False)
    return main, ratio


def legend_outside(ax: Axes, **kwargs: Any) -> None:
    """The legend of ``ax`` to the right of its data area, top-aligned (nothing when it has no labels)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def markers(n_points: int, marker: str = "o") -> dict[str, Any]:
    """Line keywords that put ``marker`` on a series of at most :data:`MARKER_MAX_POINTS` points.

    >>> markers(5), markers(100)
    ({'marker': 'o', 'markersize': 5}, {})
    """
    return {"marker": marker, "markersize": 5} if n_points <= MARKER_MAX_POINTS else {}


def spans_decades(values: Sequence[float] | np.ndarray, decades: float = 2.0) -> bool:
    """True if the positive finite ``values`` reach from their smallest to their largest over at least
    ``decades`` powers of ten.

    >>> spans_decades([0.0, 1.0, 50.0]), spans_decades([1e-3, 1.0]), spans_decades([np.nan])
    (False, True, False)
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    return bool(v.size) and float(np.log10(v.max() / v.min())) >= decades


def log_scale_if_spanning(ax: Axes, values: Sequence[float] | np.ndarray, axis: str = "y") -> bool:
    """Put the ``axis`` ("x" or "y") of ``ax`` on a log scale if ``values`` span decades
    (:func:`spans_decades`); returns whether it did."""
    if not spans_decades(values):
        return False
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    return True


def steps(low: np.ndarray, high: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The x and y of a histogram drawn as steps: each bin [low, high) at height y (for plotting
    libraries without stairs, and for curves that overlay histograms of several runs).

    >>> x, y = steps(np.array([0.0, 1.0]), np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    >>> x.tolist(), y.tolist()
    ([0.0, 1.0, 1.0, 2.0], [3.0, 3.0, 4.0, 4.0])
    """
    return np.column_stack([low, high]).ravel(), np.repeat(y, 2)


def stairs_with_band(
    ax: Axes,
    edges: np.ndarray,
    values: np.ndarray,
    errors: np.ndarray | None,
    label: str,
    band_alpha: float = 0.25,
    **line: Any,
) -> None:
    """A histogram drawn as steps over ``edges`` and, with ``errors``, a +-1 error band of the same colour
    around it."""
    drawn = ax.stairs(values, edges, label=label, baseline=None, **line)
    if errors is not None:
        color = drawn.get_edgecolor()
        ax.stairs(values + errors, edges, baseline=values - errors, fill=True, alpha=band_alpha, color=color)


def log_count_histogram(
    counts: np.ndarray, edges: np.ndarray, *, color: str, label: str, xlabel: str, ylabel: str
) -> Figure:
    """A histogram of event counts (``counts`` per bin of ``edges``) on a log count axis, its legend
    outside: the shape of every weight-distribution figure."""
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    ax.stairs(counts, edges, color=color, label=label)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    legend_outside(ax)
    return fig


def unity_line(ax: Axes) -> None:
    """A dashed line at ratio 1."""
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1.0)


def ratio_limits(
    ratios: Sequence[float] | np.ndarray, widest: tuple[float, float] = (0.0, 3.0)
) -> tuple[float, float]:
    """y limits of a ratio panel: the central 90 % of the finite ``ratios`` with a margin, always including
    0.8-1.2 and never beyond ``widest`` (so that one wild bin does not flatten the others).

    >>> ratio_limits([0.95, 1.0, 1.05]), ratio_limits([1.0, 50.0])
    ((0.8, 1.2), (0.8, 3.0))
    """
    r = np.asarray(ratios, float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return 0.8, 1.2
    lo, hi = np.percentile(r, [5, 95])
    low = float(np.clip(min(0.8, lo - 0.05), *widest))
    high = float(np.clip(max(1.2, hi + 0.05), *widest))
    return round(low, 3), round(high, 3)


def integer_ticks(ax: Axes, axis: str = "x") -> None:
    """Whole-number major ticks and no minor ticks on ``axis`` of ``ax`` (iterations, epochs, rounds)."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(MaxNLocator(integer=True))
    target.set_minor_locator(NullLocator())


def save_figure(fig: Figure, target: str | PathLike[str] | IO[bytes], format: str | None = None) -> None:
    """Write ``fig`` to a path or binary buffer as ``format`` (png, pdf or svg; for a path, its suffix
    when not given), including legends outside the axes; PNG at :data:`PNG_DPI` dots per inch."""
    fmt = format or str(target).rsplit(".", 1)[-1].lower()
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {FORMATS}")
    with style():
        fig.savefig(target, format=fmt, dpi=PNG_DPI, bbox_inches="tight", metadata=_metadata(fmt))


def figure_bytes(fig: Figure, format: str) -> bytes:
    """The file :func:`save_figure` writes, as bytes."""
    buffer = io.BytesIO()
    save_figure(fig, buffer, format)
    return buffer.getvalue()


def _metadata(fmt: str) -> dict[str, Any]:
    """File metadata naming numl as creator (SVG without a date, so that one figure gives one file)."""
    if fmt == "png":
        return {"Software": "numl"}
    return {"Creator": "numl", "Date": None} if fmt == "svg" else {"Creator": "numl"}


_TEX_SYMBOLS = {
    r"\delta": "δ", r"\Delta": "Δ", r"\alpha": "α", r"\phi": "φ", r"\theta": "θ", r"\sigma": "σ",
    r"\chi": "χ", r"\nu": "ν", r"\mu": "μ", r"\pi": "π", r"\omega": "ω", r"\langle": "⟨",
    r"\Omega": "Ω", r"\lambda": "λ", r"\Lambda": "Λ", r"\gamma": "γ", r"\Gamma": "Γ", r"\beta": "β",
    r"\epsilon": "ε", r"\eta": "η", r"\tau": "τ", r"\rho": "ρ", r"\Phi": "Φ", r"\Theta": "Θ",
    r"\Sigma": "Σ", r"\pm": "±", r"\times": "×", r"\rangle": "⟩", r"\circ": "°", r"\log": "log",
    r"\cos": "cos ", r"\,": " ",
}  # fmt: skip
_SUPERSCRIPTS = str.maketrans("0123456789-+", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺")


def plain_text(label: str) -> str:
    """A matplotlib mathtext label as plain Unicode text, for the dashboard's Bokeh axes: the page and the
    exported figure then show the same label from one string.

    >>> plain_text(r"d$\\sigma$/d$\\delta p_\\mathrm{T}$ [$10^{-38}$ cm$^2$/(GeV/c)/nucleon]")
    'dσ/dδp_T [10⁻³⁸ cm²/(GeV/c)/nucleon]'
    >>> plain_text(r"true $E_\\nu$ [GeV]"), plain_text(r"$\\log_{10}(w/\\langle w\\rangle)$")
    ('true E_ν [GeV]', 'log_10(w/⟨w⟩)')
    """
    import re

    def math(part: str) -> str:
        part = part.replace(" ", "")  # spaces in mathtext are not drawn
        part = re.sub(r"\\math(?:rm|it|bf)\{([^{}]*)\}", r"\1", part)
        for tex, text in sorted(_TEX_SYMBOLS.items(), key=lambda kv: -len(kv[0])):
            part = part.replace(tex, text)
        part = re.sub(r"\^\{([-+0-9]+)\}|\^([0-9])", lambda m: (m[1] or m[2]).translate(_SUPERSCRIPTS), part)
        part = re.sub(r"_\{([^{}]*)\}", r"_\1", part)
        return part.replace("{", "").replace("}", "").replace("\\", "").replace("^°", "°")

    pieces = label.split("$")
    return "".join(math(p) if i % 2 else p for i, p in enumerate(pieces))
