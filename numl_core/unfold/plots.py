"""Matplotlib figures of unfolding results, for notebooks and papers.

Plotting takes results (the long-format ``histograms`` table of a run), never models.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

STYLE = {
    "truth": {"color": "black", "label": "truth (fake data)"},
    "prior": {"color": "0.6", "label": "prior (MC)", "linestyle": "--"},
    "omnifold": {"color": "tab:blue", "label": "OmniFold"},
    "ibu": {"color": "tab:orange", "label": "IBU"},
}


def plot_unfolded(histograms: pd.DataFrame, distribution: str, ax: plt.Axes | None = None) -> plt.Figure:
    """Unfolded distributions with their error bands against truth and prior, per unit of the variable.

    For a 2-D distribution the bins are drawn in flattened order (bin index on the x axis).
    """
    rows = histograms[histograms["distribution"] == distribution]
    if rows.empty:
        raise KeyError(
            f"no histograms for {distribution!r}; have {sorted(histograms['distribution'].unique())}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    two_d = "slice_low" in rows.columns and rows["slice_low"].notna().any()
    for method, style in STYLE.items():
        h = rows[rows["method"] == method].sort_values("bin")
        if h.empty:
            continue
        if two_d:
            x = np.append(h["bin"].to_numpy(), h["bin"].max() + 1).astype(float)
            width = np.ones(len(h))
        else:
            x = np.append(h["low"].to_numpy(), h["high"].to_numpy()[-1])
            width = (h["high"] - h["low"]).to_numpy()
        y = h["value"].to_numpy() / width
        err = h["error"].to_numpy() / width
        ax.stairs(y, x, **style)
        if method in ("omnifold", "ibu"):
            ax.stairs(y + err, x, baseline=y - err, fill=True, alpha=0.25, color=style["color"])
    ax.set_xlabel("bin" if two_d else distribution)
    ax.set_ylabel("events / bin" if two_d else f"events / unit of {distribution}")
    ax.legend(frameon=False)
    return ax.figure
