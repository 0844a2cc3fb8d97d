"""Per-event training weights, by name: flat spectrum (transformer_EE's ``FlatSpectraWeights``), none,
a weight column of the table (e.g. ``weight_physical`` for the natural atmospheric spectrum), or
``oscillated``: the natural spectrum times three-flavour oscillation in matter
(:func:`numl_core.data.generators.atmospheric_oscillation.oscillation_weights`).

The flat-spectrum weight of an event is 1 / (count + 1) of its bin in a histogram of the first target,
normalised to mean 1 over the bins, then clipped to [``minweight``, ``maxweight``]; the outer bin edges
are open (as in transformer_EE).

>>> w = FlatSpectralWeights(np.array([1.0, 1.0, 1.0, 5.0]), bins=2)
>>> w.getweight(np.array([1.0, 5.0])).round(3).tolist()
[0.667, 1.333]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from numl_core.data.schema import DataError

WEIGHTERS = ("none", "FlatSpectralWeights", "FlatSpectraWeights", "column", "oscillated")
OSCILLATION_COLUMNS = ("weight_physical", "nu_pdg", "enu_truth", "cos_zenith_truth", "is_cc")


class FlatSpectralWeights:
    """Weights flattening the histogram of ``values`` (``bins``, ``range`` as in ``np.histogram``)."""

    def __init__(
        self,
        values: np.ndarray,
        bins: int = 50,
        range: tuple[float, float] | None = None,  # noqa: A002 - transformer_EE's keyword
        maxweight: float = np.inf,
        minweight: float = -np.inf,
    ) -> None:
        counts, edges = np.histogram(np.asarray(values, float), bins=bins, range=range)
        weights = 1.0 / (counts + 1.0)
        weights = weights / weights.mean()
        self.weights = np.clip(weights, minweight, maxweight)
        self.edges = edges.copy()
        self.edges[0], self.edges[-1] = -np.inf, np.inf

    def getweight(self, x: np.ndarray) -> np.ndarray:
        """Weight of each value in ``x``."""
        return self.weights[np.clip(np.digitize(x, self.edges) - 1, 0, len(self.weights) - 1)]


def event_weights(
    events: pd.DataFrame,
    name: str,
    first_target: str,
    kwargs: dict | None = None,
    column: str = "",
    fit_rows: np.ndarray | None = None,
) -> np.ndarray:
    """Weights (N,) by weighter ``name`` (see :data:`WEIGHTERS`), normalised to mean 1 over ``fit_rows``.

    A flat-spectrum histogram is filled from ``fit_rows`` (e.g. the training events; all when None).
    """
    rows = np.arange(len(events)) if fit_rows is None else np.asarray(fit_rows)
    kwargs = dict(kwargs or {})
    if name == "none":
        w = np.ones(len(events))
    elif name in ("FlatSpectralWeights", "FlatSpectraWeights"):
        allowed = {"bins", "range", "maxweight", "minweight"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise ValueError(
                f"weight.kwargs: unsupported key(s) {sorted(unknown)} for {name}; allowed {sorted(allowed)}"
            )
        if "range" in kwargs and kwargs["range"] is not None:
            kwargs["range"] = tuple(kwargs["range"])
        values = events[first_target].to_numpy(float)
        w = FlatSpectralWeights(values[rows], **kwargs).getweight(values)
    elif name == "column":
        if not column or column not in events.columns:
            raise DataError(
                f"EnergyConfig.weight_column: column {column!r} not found; "
                f"the table has {list(events.columns)}"
            )
        w = pd.to_numeric(events[column], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"weight column {column!r} row {i}: {events[column].iloc[i]!r}; "
                "weights must be finite and >= 0"
            )
    elif name == "oscillated":
        from numl_core.data.generators.atmospheric_oscillation import oscillation_weights

        missing = [c for c in OSCILLATION_COLUMNS if c not in events.columns]
        if missing:
            raise ValueError(
                f"weight 'oscillated' needs the column(s) {missing}; the table has {list(events)}"
            )
        w = events["weight_physical"].to_numpy(float) * oscillation_weights(events)
    else:
        raise ValueError(f"unknown weighter {name!r}; expected one of {list(WEIGHTERS)}")
    mean = w[rows].mean()
    return w / mean if mean > 0 else w
