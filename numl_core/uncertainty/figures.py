"""Figures of an uncertainty result (:class:`~numl_core.uncertainty.result.UncertaintyResult`), for notebooks,
papers and the dashboard's export buttons: held-out toys against model samples (corner plot), the C2ST
accuracy per model, each model's p-values against the exact (or the flow's) ones, the near-to-far PIT and
the flow's training curve.

Toys are in their own units (:func:`toy_unit`: 10^-39 cm^2 / (GeV/c) / nucleon for the toys built on the T2K
CC-inclusive measurement); NLL in nats per toy. Every function takes the result, never a model, and returns
a :class:`matplotlib.figure.Figure` drawn in :func:`numl_core.figures.style`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from numl_core.figures import integer_ticks, legend_outside, markers, new_figure, styled
from numl_core.uncertainty.result import C2ST, UncertaintyResult

#: Colour and legend label of each model.
MODEL_STYLE = {
    "gaussian": {"color": "#ff7f0e", "label": r"Gaussian ($\chi^2$)"},
    "improved_baseline": {"color": "#d62728", "label": "Gaussian, ranked among the toys"},
    "marginal_gaussian": {"color": "#9467bd", "label": "transformed Gaussian"},
    "flow": {"color": "#1f77b4", "label": "flow"},
    "truth": {"color": "black", "label": "truth"},
    "transformer": {"color": "#2ca02c", "label": "near-to-far transformer"},
}
T2K_UNIT = r"$10^{-39}$ cm$^2$/(GeV/c)/nucleon"
"""Unit of the toys built on the T2K CC-inclusive measurement (mixture, lognormal_moderate)."""
SAMPLES = {"flow": "flow_sample", "gaussian": "gaussian_sample"}
"""The model samples a result keeps, by model."""
MODEL_AXIS = "density model"
C2ST_LABEL = "C2ST accuracy (samples vs held-out toys)"
"""y label of the C2ST accuracy (a fraction of held-out toys and samples classified right; 0.5 = chance)."""
PVALUE_MODEL = "p-value (model)"
PIT_LABEL = "PIT $u$ of the true far value"
PIT_DENSITY = "density (1/N dN/du)"
EPOCH_LABEL = "epoch"
NLL_LABEL = "NLL [nats per toy]"
"""y label of the flow's training curve: negative log-likelihood per toy in nats."""


def pvalue_label(model: str) -> str:
    """The axis label of the p-values of ``model`` (its legend label), e.g. ``p-value (truth)``."""
    return f"p-value ({_style(model)['label']})"


def toy_unit(toys: str) -> str:
    """The unit of a toy set's values: the T2K cross-section unit, 10^-39 cm^2 per nucleon per bin for the
    ND280 universes, "a.u." for the standardised and user toys.

    >>> toy_unit("mixture") == T2K_UNIT, toy_unit("sinh_arcsinh")
    (True, 'a.u.')
    """
    if toys in ("mixture", "lognormal_moderate"):
        return T2K_UNIT
    if toys.startswith("nd280_"):
        return r"$10^{-39}$ cm$^2$/nucleon"
    return "a.u."


def _style(model: str) -> dict[str, str]:
    return MODEL_STYLE.get(model, {"color": "#7f7f7f", "label": model})


@styled
def toys_vs_samples_figure(
    result: UncertaintyResult, model: str = "flow", dims: tuple[int, ...] = (0, 1, 2)
) -> Figure:
    """Corner plot of the held-out toys (grey) and the samples of ``model`` ("flow" or "gaussian") in the
    dimensions ``dims``, in the toys' units (:func:`toy_unit`): normalised histograms on the diagonal
    (density per unit of x_i, explained in the legend), scatter below it; the outer axes carry the labels."""
    samples = np.asarray(getattr(result, SAMPLES[model]))
    toys = np.asarray(result.toys_sample)
    dims = tuple(d for d in dims if d < toys.shape[1])
    unit, style = toy_unit(result.toys), _style(model)
    n = len(dims)
    fig = new_figure(3.2 * n + 2.5, 3.0 * n)
    axes = fig.subplots(n, n, squeeze=False, sharex="col")
    for row, i in enumerate(dims):
        for col, j in enumerate(dims):
            ax = axes[row, col]
            if col > row:
                ax.set_axis_off()
                continue
            if i == j:
                edges = np.histogram_bin_edges(np.concatenate([toys[:, i], samples[:, i]]), bins=40)
                ax.hist(
                    toys[:, i], edges, density=True, histtype="stepfilled", color="0.6", label="held-out toys"
                )
                ax.hist(
                    samples[:, i],
                    edges,
                    density=True,
                    histtype="step",
                    label=style["label"],
                    color=style["color"],
                )
                ax.tick_params(labelleft=False)
            else:
                ax.scatter(toys[:, j], toys[:, i], s=2, color="0.5", alpha=0.4, rasterized=True)
                ax.scatter(
                    samples[:, j], samples[:, i], s=2, color=style["color"], alpha=0.4, rasterized=True
                )
                if col == 0:
                    ax.set_ylabel(f"$x_{i}$ [{unit}]")
                else:
                    ax.tick_params(labelleft=False)
            if row == n - 1:
                ax.set_xlabel(f"$x_{j}$ [{unit}]")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    title = f"diagonal: normalised densities\n(1 / unit of $x_i$); unit: {unit}"
    legend = (axes[0, -1] if n > 1 else axes[0, 0]).legend(handles, labels, loc="upper right", title=title)
    legend.set_in_layout(False)  # it sits in the empty upper triangle
    return fig


@styled
def c2st_figure(result: UncertaintyResult) -> Figure:
    """Held-out C2ST accuracy of each model's samples against the toys, with its fold error; 0.5 means
    indistinguishable."""
    metrics = result.metrics[result.metrics["model"] != "improved_baseline"]  # the Gaussian's own samples
    fig = new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    x = np.arange(len(metrics))
    colors = [_style(m)["color"] for m in metrics["model"]]
    ax.bar(x, metrics[C2ST], yerr=metrics["c2st_error"], color=colors, alpha=0.8, capsize=4)
    ax.axhline(0.5, color="black", linestyle="--", linewidth=1.0, label="0.5: indistinguishable")
    ax.set_xticks(x, [_style(m)["label"] for m in metrics["model"]], rotation=20, ha="right")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_ylim(0.4, 1.02)
    ax.set_xlabel(MODEL_AXIS)
    ax.set_ylabel(C2ST_LABEL)
    legend_outside(ax)
    return fig


@styled
def pvalue_figure(result: UncertaintyResult, models: tuple[str, ...] = ("gaussian", "flow")) -> Figure:
    """The p-value of every held-out toy under each of ``models`` (by default the Gaussian's chi2 and the
    flow's density rank) against the reference's (the exact p-value where the toy's density is known, else
    the flow's): linear on the left, log-log on the right (the tail, where a Gaussian's chi2 p-value
    fails), with the diagonal."""
    pvalues = result.pvalues
    reference = "truth" if "truth" in pvalues else "flow"
    models = tuple(m for m in models if m in pvalues and m != reference)
    fig = new_figure(12.0, 5.0)
    linear, log = fig.subplots(1, 2)
    floor = 0.5 / max(len(pvalues), 1)
    for ax in (linear, log):
        ax.plot([floor, 1], [floor, 1], color="black", linestyle="--", linewidth=1.0, label="equal p-values")
        for m in models:
            ax.scatter(
                pvalues[reference],
                pvalues[m],
                s=6,
                alpha=0.6,
                label=_style(m)["label"],
                color=_style(m)["color"],
            )
        ax.set_xlabel(pvalue_label(reference))
        ax.set_ylabel(PVALUE_MODEL)
    linear.set(xlim=(0, 1), ylim=(0, 1))
    log.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1))
    log.set_title("tail: p-values > 0 on log axes", loc="left")
    legend_outside(log)
    return fig


@styled
def pit_figure(result: UncertaintyResult) -> Figure:
    """The near-to-far models' calibration: density of the probability integral transform of the true far
    values under each model's predictive distribution (flat at 1 when calibrated, U-shaped when too narrow,
    humped when too wide)."""
    near_far = result.near_far
    if near_far is None or near_far.empty or "pit_0" not in near_far:
        raise ValueError("this result holds no near-to-far evaluation")
    bins = sorted(int(c[4:]) for c in near_far.columns if c.startswith("pit_") and c[4:].isdigit())
    edges = np.linspace(0.0, 1.0, len(bins) + 1)
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    for _, row in near_far.iterrows():
        density = np.array([row[f"pit_{k}"] for k in bins], float) * len(bins)
        style = _style(str(row["model"]))
        ax.stairs(
            density,
            edges,
            baseline=None,
            color=style["color"],
            label=f"{style['label']} (KS p = {row['pit_ks_pvalue']:.2g})",
        )
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1.0, label="calibrated")
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(PIT_LABEL)
    ax.set_ylabel(PIT_DENSITY)
    legend_outside(ax)
    return fig


@styled
def training_figure(result: UncertaintyResult) -> Figure:
    """The flow's training and validation NLL per epoch [nats per toy], the best epoch marked."""
    history: pd.DataFrame = result.history
    if not {"epoch", "train_loss", "val_loss"} <= set(history.columns):
        raise ValueError("this result holds no training history")
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    for column, label in (("train_loss", "training"), ("val_loss", "validation")):
        ax.plot(history["epoch"], history[column], label=label, **markers(len(history)))
    ax.axvline(result.best_epoch, color="0.5", linestyle=":", label=f"best epoch ({result.best_epoch})")
    integer_ticks(ax)
    ax.set_xlabel(EPOCH_LABEL)
    ax.set_ylabel(NLL_LABEL)
    legend_outside(ax)
    return fig
