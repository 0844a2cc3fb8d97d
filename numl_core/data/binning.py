"""Analysis binnings: 1-D, regular 2-D and sliced (irregular) 2-D, flattened to one bin index.

A 2-D binning is a list of slices in one variable, each slice with its own edges in the other variable,
as in T2K's (p_mu, cos theta_mu) CC0pi binnings; a regular grid is the special case where every slice
has the same edges. Bins are numbered slice by slice, then along the inner variable.

>>> b = BINNINGS["muon_p_cos"]
>>> b.n_bins, b.variables, b.columns("true_")
(58, ('mu_p', 'mu_cos'), ('true_mu_p', 'true_mu_cos'))
>>> idx, ok = b.index(np.array([0.35, 0.5, 0.1]), np.array([0.65, 0.99, 2.0]))
>>> idx.tolist(), ok.tolist()
([7, 51, 0], [True, True, False])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


def bincount_weighted(index: np.ndarray, weights: np.ndarray | None, n_bins: int) -> np.ndarray:
    """Sum ``weights`` per bin for in-range bin indices.

    ``index``: (N,) int, all in [0, n_bins). ``weights``: None (unit weights), (N,) or (T, N) for T
    batched throws. Returns (n_bins,) or (T, n_bins) float64. One ``np.bincount`` per throw: on
    10^6 events x 100 throws it is ~20x faster than a sparse one-hot product, and needs no (T*N) index.

    >>> bincount_weighted(np.array([0, 2, 2]), np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]), 3).tolist()
    [[1.0, 0.0, 5.0], [1.0, 0.0, 2.0]]
    """
    index = np.asarray(index, dtype=np.int64)
    if weights is None:
        return np.bincount(index, minlength=n_bins).astype(np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape[-1] != index.shape[0]:
        raise ValueError(f"weights have {weights.shape[-1]} events, indices {index.shape[0]}")
    if weights.ndim == 1:
        return np.bincount(index, weights, minlength=n_bins)
    if weights.ndim != 2:
        raise ValueError(f"weights must have shape (N,) or (T, N), got {weights.shape}")
    out = np.empty((weights.shape[0], n_bins))
    for t, row in enumerate(weights):
        out[t] = np.bincount(index, row, minlength=n_bins)
    return out


def _locate(edges: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin of each x in ``edges`` (numpy.histogram convention: last bin closed) and the in-range mask."""
    n = len(edges) - 1
    in_range = (x >= edges[0]) & (x <= edges[-1])  # False for NaN
    i = np.searchsorted(edges, x, side="right") - 1
    i = np.where(in_range, np.minimum(i, n - 1), 0)
    return i.astype(np.int64), in_range


def _as_edges(edges: Sequence[float], what: str) -> tuple[float, ...]:
    e = tuple(float(v) for v in edges)
    if len(e) < 2 or not np.all(np.diff(e) > 0) or not np.all(np.isfinite(e)):
        raise ValueError(f"{what} must be >= 2 finite, strictly increasing values, got {e}")
    return e


@dataclass(frozen=True)
class Binning:
    """A 1-D or 2-D binning flattened to bins ``0 .. n_bins - 1``.

    ``variables``: base column names (callers add ``true_`` / ``reco_``). ``edges``: the 1-D edges, or for
    2-D the edges of the slicing variable ``variables[outer]``. ``inner_edges``: 2-D only, one edge tuple
    of the other variable per slice. Intervals are [lo, hi) except each axis' last, which is closed.
    ``labels`` / ``units`` default to the variable names and "".
    """

    variables: tuple[str, ...]
    edges: tuple[float, ...]
    inner_edges: tuple[tuple[float, ...], ...] = ()
    outer: int = 0
    labels: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        variables = tuple(self.variables)
        ndim = 2 if self.inner_edges else 1
        if len(variables) != ndim:
            raise ValueError(f"a {ndim}-D binning needs {ndim} variable names, got {variables}")
        edges = _as_edges(self.edges, "edges")
        inner = tuple(_as_edges(e, f"inner edges of slice {k}") for k, e in enumerate(self.inner_edges))
        if ndim == 2 and len(inner) != len(edges) - 1:
            raise ValueError(f"{len(edges) - 1} slices need as many inner edge lists, got {len(inner)}")
        if self.outer not in range(ndim):
            raise ValueError(f"outer must index a variable (0..{ndim - 1}), got {self.outer}")
        labels = tuple(self.labels) or variables
        units = tuple(self.units) or ("",) * ndim
        if len(labels) != ndim or len(units) != ndim:
            raise ValueError(f"labels and units need {ndim} entries, got {labels}, {units}")
        normalised = {
            "variables": variables,
            "edges": edges,
            "inner_edges": inner,
            "labels": labels,
            "units": units,
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)  # frozen: store the validated, hashable form once

    @classmethod
    def sliced(
        cls,
        variables: tuple[str, str],
        outer: int,
        slices: Sequence[tuple[tuple[float, float], Sequence[float]]],
        **kwargs,
    ) -> Binning:
        """2-D binning from contiguous slices ``[((lo, hi), inner_edges), ...]`` of ``variables[outer]``."""
        lows = [float(lo) for (lo, _), _ in slices]
        highs = [float(hi) for (_, hi), _ in slices]
        if lows[1:] != highs[:-1]:
            raise ValueError(f"slices must be contiguous: lows {lows}, highs {highs}")
        inner = tuple(tuple(e) for _, e in slices)
        return cls(variables, (*lows, highs[-1]), inner, outer, **kwargs)

    @classmethod
    def grid(
        cls, variables: tuple[str, str], edges_0: Sequence[float], edges_1: Sequence[float], **kwargs
    ) -> Binning:
        """Regular 2-D grid; bins are numbered with ``variables[0]`` slowest."""
        return cls(variables, tuple(edges_0), (tuple(edges_1),) * (len(edges_0) - 1), 0, **kwargs)

    @property
    def ndim(self) -> int:
        return len(self.variables)

    @cached_property
    def _offsets(self) -> np.ndarray:
        counts = [len(e) - 1 for e in self.inner_edges] if self.inner_edges else [len(self.edges) - 1]
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @property
    def n_bins(self) -> int:
        return int(self._offsets[-1])

    def columns(self, prefix: str = "") -> tuple[str, ...]:
        """Event-table column names, e.g. ``columns("reco_")``."""
        return tuple(prefix + v for v in self.variables)

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper corners, each (n_bins, ndim) in ``variables`` order."""
        outer = np.asarray(self.edges)
        if self.ndim == 1:
            return outer[:-1, None], outer[1:, None]
        lo, hi = np.empty((self.n_bins, 2)), np.empty((self.n_bins, 2))
        inner_axis = 1 - self.outer
        for k, e in enumerate(self.inner_edges):
            s = slice(self._offsets[k], self._offsets[k + 1])
            lo[s, self.outer], hi[s, self.outer] = outer[k], outer[k + 1]
            lo[s, inner_axis], hi[s, inner_axis] = e[:-1], e[1:]
        return lo, hi

    @property
    def lower(self) -> np.ndarray:
        """Lower bin corners, (n_bins, ndim)."""
        return self._bounds[0]

    @property
    def upper(self) -> np.ndarray:
        """Upper bin corners, (n_bins, ndim)."""
        return self._bounds[1]

    @property
    def centers(self) -> np.ndarray:
        """Bin centres: (n_bins,) for 1-D, (n_bins, 2) for 2-D."""
        c = 0.5 * (self.lower + self.upper)
        return c[:, 0] if self.ndim == 1 else c

    @property
    def widths(self) -> np.ndarray:
        """Bin widths (1-D) or areas (2-D), (n_bins,), in the product of the variables' units."""
        return np.prod(self.upper - self.lower, axis=1)

    def index(self, *values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat bin index (int64, 0 where out of range) and in-range mask for one array per variable."""
        if len(values) != self.ndim:
            raise ValueError(f"{self.name or 'binning'} needs {self.ndim} value arrays, got {len(values)}")
        values = [np.asarray(v, dtype=np.float64) for v in values]
        k, in_range = _locate(np.asarray(self.edges), values[self.outer])
        if self.ndim == 1:
            return k, in_range
        inner = values[1 - self.outer]
        flat = np.zeros(inner.shape, dtype=np.int64)
        for s, e in enumerate(self.inner_edges):
            sel = in_range & (k == s)
            j, ok = _locate(np.asarray(e), inner[sel])
            flat[sel] = self._offsets[s] + j
            in_range[sel] = ok
        return np.where(in_range, flat, 0), in_range

    def histogram(self, *values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Weighted counts per bin: (n_bins,), or (T, n_bins) for weights of shape (T, N)."""
        idx, ok = self.index(*values)
        w = None if weights is None else np.asarray(weights, dtype=np.float64)[..., ok]
        return bincount_weighted(idx[ok], w, self.n_bins)


_MUON_P_LOW = 0.0  # GeV/c
_MUON_P_HIGH = 30.0  # GeV/c: T2K's overflow edge

# T2K nu_mu CC0pi on CH (PRD 101, 112001 (2020), arXiv:2002.09323): 9 cos theta_mu slices, 58 bins.
_MUON_SLICES = [
    ((-1.0, 0.2), []),
    ((0.2, 0.6), [0.3, 0.4, 0.5, 0.6]),
    ((0.6, 0.7), [0.3, 0.4, 0.5, 0.6, 0.8]),
    ((0.7, 0.8), [0.3, 0.4, 0.5, 0.6, 0.8]),
    ((0.8, 0.85), [0.3, 0.4, 0.5, 0.6, 0.8, 1.0]),
    ((0.85, 0.9), [0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5]),
    ((0.9, 0.94), [0.4, 0.5, 0.6, 0.8, 1.25, 2.0]),
    ((0.94, 0.98), [0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0]),
    ((0.98, 1.0), [0.5, 0.7, 0.9, 1.25, 2.0, 3.0, 5.0]),
]


def _stv_1d(name: str, edges: Sequence[float], label: str, unit: str, key: str) -> Binning:
    return Binning((name,), tuple(edges), labels=(label,), units=(unit,), name=key)


def _build_binnings() -> dict[str, Binning]:
    muon = Binning.sliced(
        ("mu_p", "mu_cos"),
        outer=1,
        slices=[(c, [_MUON_P_LOW, *p, _MUON_P_HIGH]) for c, p in _MUON_SLICES],
        labels=("p_mu", "cos theta_mu"),
        units=("GeV/c", ""),
        name="muon_p_cos",
    )
    # Finer where the CC0pi STV distributions peak (Lu et al., PRC 94, 015503): dpT below the Fermi
    # momentum, dphiT near 0; dalphaT is broad, so uniform 10-degree bins.
    dpt = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.1]
    dphit = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.4, 2.0, np.pi]
    # T2K CC0piNp STV (PRD 98, 032003 (2018)) edges as released (first edge 1e-7, last pi rounded).
    t2k_dpt = [1e-7, 0.08, 0.12, 0.155, 0.2, 0.26, 0.36, 0.51, 1.1]
    t2k_dat = [1e-7, 0.47, 1.02, 1.54, 1.98, 2.34, 2.64, 2.89, 3.1416]
    t2k_dphit = [1e-7, 0.067, 0.14, 0.225, 0.34, 0.52, 0.85, 1.5, 3.1416]
    return {
        "muon_p_cos": muon,
        "dpt": _stv_1d("dpt", dpt, "delta p_T", "GeV/c", "dpt"),
        "dalphat": _stv_1d("dalphat", np.linspace(0.0, np.pi, 19), "delta alpha_T", "rad", "dalphat"),
        "dphit": _stv_1d("dphit", dphit, "delta phi_T", "rad", "dphit"),
        "dpt_t2k": _stv_1d("dpt", t2k_dpt, "delta p_T", "GeV/c", "dpt_t2k"),
        "dalphat_t2k": _stv_1d("dalphat", t2k_dat, "delta alpha_T", "rad", "dalphat_t2k"),
        "dphit_t2k": _stv_1d("dphit", t2k_dphit, "delta phi_T", "rad", "dphit_t2k"),
    }


BINNINGS: dict[str, Binning] = _build_binnings()
"""Predefined analysis binnings by name (muon kinematics and single-transverse variables)."""
