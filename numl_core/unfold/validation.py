"""Calibration of an unfolding: is the covariance right, does the result recover the truth, and after
how many iterations does more unfolding stop helping?

Three checks, each per method and distribution, all on the bins of
:func:`~numl_core.unfold.compare.used_bins`:

- **chi2 against the truth** (fake data only): :func:`~numl_core.unfold.compare.chi2_of`, with the
  correction of the inverse of an estimated covariance (Hartlap factor or shrinkage), stated with
  ``ndof`` and the dropped bins;
- **the covariance check**: each throw's result against the mean and covariance of the other throws
  (:func:`~numl_core.stats.leave_one_out_chi2`); the mean over throws divided by ``ndof`` is 1 when
  the throws scatter as their covariance says, above 1 with outliers or heavy tails;
- **bias per iteration**: the chi2 against the truth after each iteration, and the data-driven
  **change** between iterations, chi2 of (result_i - result_(i-1)) with the covariance of result_i. The
  suggested number of iterations is the first whose change is below :func:`change_threshold` in every
  distribution: half the standard deviation of a chi2 with ``ndof`` degrees of freedom, sqrt(2 ndof) / 2.
  If iterations shrink the remaining bias by a factor 2 or more each, the bias left is then smaller
  than the change, so it moves the chi2 against the truth by less than its own statistical spread; and
  the classifier noise of a retrained OmniFold iteration (a change chi2 of 1-3 in 58 bins at 20,000
  events) does not keep the rule from stopping.

Tables are long format; see :class:`~numl_core.unfold.result.UnfoldResult`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from numl_core.stats import leave_one_out_chi2
from numl_core.unfold.compare import Unfolded, chi2_of


def change_threshold(ndof: np.ndarray | float) -> np.ndarray | float:
    """Change chi2 below which one more iteration stops helping: sqrt(2 ndof) / 2.

    >>> round(float(change_threshold(14)), 3), round(float(change_threshold(58)), 3)
    (2.646, 5.385)
    """
    return np.sqrt(2.0 * np.asarray(ndof, float)) / 2.0


def covariance_check(estimate: Unfolded, used: np.ndarray) -> float | None:
    """Mean leave-one-throw-out chi2 per degree of freedom of the throws on the ``used`` bins (1 when
    their covariance describes their scatter); None without throws of their own covariance or with too
    few throws for the Hartlap correction (throws - 1 <= bins + 2)."""
    if estimate.throws is None:
        return None
    throws = estimate.throws[:, used]
    varied = np.var(throws, axis=0) > 0
    if len(throws) - 1 <= varied.sum() + 2:
        return None
    return float(leave_one_out_chi2(throws[:, varied]).mean() / varied.sum())


def calibration_rows(
    name: str, estimates: dict[str, Unfolded], truth: np.ndarray | None, used: np.ndarray
) -> list[dict]:
    """Per method: chi2 against the truth (None for real data) with ndof, dropped bins, the covariance
    estimate (``hartlap``, ``shrinkage`` or ``parts``) and its inverse correction, the number of throws
    and the covariance check."""
    rows = []
    for method, estimate in estimates.items():
        # the covariance estimate and its correction do not depend on what it is compared with
        fit = chi2_of(estimate, truth if truth is not None else estimate.nominal, used)
        rows.append(
            {
                "distribution": name,
                "method": method,
                "n_throws": 0 if estimate.throws is None else len(estimate.throws),
                "ndof": fit.ndof,
                "dropped_bins": len(fit.dropped),
                "covariance": "parts" if estimate.throws is None else fit.method,
                "inverse_correction": fit.correction,
                "chi2": None if truth is None else fit.chi2,
                "loo_chi2_per_ndof": covariance_check(estimate, used),
            }
        )
    return rows


def iteration_rows(
    name: str,
    method: str,
    per_iteration: list[Unfolded],
    prior: np.ndarray,
    truth: np.ndarray | None,
    used: np.ndarray,
) -> list[dict]:
    """One row per iteration (1-based): chi2 against the truth (None for real data) and the change from
    the previous iteration's result (the ``prior`` before the first), both with this iteration's
    covariance, on the ``used`` bins."""
    rows, previous = [], prior
    for i, estimate in enumerate(per_iteration, start=1):
        change = chi2_of(estimate, previous, used)
        rows.append(
            {
                "distribution": name,
                "method": method,
                "iteration": i,
                "chi2_truth": None if truth is None else chi2_of(estimate, truth, used).chi2,
                "change_chi2": change.chi2,
                "ndof": change.ndof,
            }
        )
        previous = estimate.nominal
    return rows


def suggested_iterations(iterations: pd.DataFrame) -> dict[str, int | None]:
    """Per method, the first iteration whose change is below :func:`change_threshold` in every
    distribution (None if none is).

    >>> t = pd.DataFrame({"method": "ibu", "distribution": ["a", "a", "b", "b"], "ndof": 14,
    ...                   "iteration": [1, 2, 1, 2], "change_chi2": [9.0, 0.5, 0.2, 0.1]})
    >>> suggested_iterations(t)
    {'ibu': 2}
    """
    if iterations.empty:
        return {}
    below = iterations["change_chi2"] < change_threshold(iterations["ndof"].to_numpy())
    out: dict[str, int | None] = {}
    for method, rows in iterations.assign(below=below).groupby("method", sort=False):
        stops = rows.groupby("iteration")["below"].all()
        first = stops.index[stops.to_numpy()]
        out[str(method)] = int(first[0]) if len(first) else None
    return out


def validation_curves(iterations: pd.DataFrame) -> pd.DataFrame:
    """What the Validation view draws, per method, distribution and iteration: ``bias_per_ndof`` (chi2
    against the truth / ndof; NaN for real data) and ``change_over_threshold`` (the change chi2 over
    :func:`change_threshold`; below 1, one more iteration stops helping).

    >>> t = pd.DataFrame({"method": "ibu", "distribution": "a", "iteration": [1], "ndof": 2,
    ...                   "chi2_truth": [4.0], "change_chi2": [1.0]})
    >>> validation_curves(t)[["bias_per_ndof", "change_over_threshold"]].to_numpy().round(2).tolist()
    [[2.0, 1.0]]
    """
    out = iterations[["method", "distribution", "iteration"]].copy()
    ndof = iterations["ndof"].to_numpy(float)
    out["bias_per_ndof"] = pd.to_numeric(iterations["chi2_truth"], errors="coerce").to_numpy(float) / ndof
    out["change_over_threshold"] = iterations["change_chi2"].to_numpy(float) / change_threshold(ndof)
    return out
