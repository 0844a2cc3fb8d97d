"""Calibration of an unfolding: is the covariance right, does the result recover the truth, and after
how many iterations does more unfolding stop helping?

Three checks, each per method and distribution, all on the bins of
:func:`~numl_core.unfold.compare.used_bins`:

- **chi2 against the truth** (fake data only): :func:`~numl_core.unfold.compare.chi2_of`, with the
  correction of the inverse of an estimated covariance (Hartlap factor or shrinkage), stated with
  ``ndof``, the dropped bins and its p-value (:attr:`~numl_core.stats.Chi2.p_value`). That covariance
  is the result's; the truth of the data fluctuates too, and a result that does not follow the data's
  bin-to-bin fluctuations (OmniFold's classifiers smooth them) lies farther from it than the result's
  own covariance says, by up to the truth's Poisson variance. :func:`closure_chi2` uses the covariance
  of (result - truth) over the throws, in which each throw's truth carries the throw's Poisson counts
  of the data events: the chi2 whose mean is ndof for an unbiased method, smoothing or not;
- **the covariance check**: each throw's result against the mean and covariance of the other throws
  (:func:`~numl_core.stats.leave_one_out_chi2`); the mean over throws divided by ``ndof`` is 1 when
  the throws scatter as their covariance says, above 1 with outliers or heavy tails;
- **bias per iteration**: the chi2 against the truth after each iteration, and the data-driven
  **change** between iterations, chi2 of (result_i - result_(i-1)) with the covariance of result_i. The
  steps of an iteration that converges geometrically shrink by a factor rho each (:func:`contraction`,
  from the last two steps), so the bias still left after iteration i is about step_i rho / (1 - rho)
  (:func:`remaining_chi2`). The suggested number of iterations is the first (from the second, where a
  rate is known) at which, in every distribution, the change is below :func:`change_threshold`, half
  the standard deviation sqrt(2 ndof) of a chi2 with ``ndof`` degrees of freedom (this iteration did
  little), and the remaining bias is below the whole standard deviation (all later iterations together
  would lower the chi2 against the truth by less than its own statistical spread). Steps made of noise
  (a retrained classifier's) do not line up, rho is about 0 and the change decides; a slow convergence
  (rho near 1) is not taken for converged because one step is small.

  The chi2 against the truth after iteration i uses iteration i's covariance, which grows with the
  iterations, so it falls even where the result stands still. ``chi2_truth_fixed`` measures every
  iteration in one metric, the last iteration's covariance: it falls only where the result moves
  towards the truth, and rises where the iterations fit the data's own fluctuations.

Tables are long format; see :class:`~numl_core.unfold.result.UnfoldResult`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from numl_core.stats import Chi2, covariance_from_replicas, leave_one_out_chi2
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


def closure_chi2(
    estimate: Unfolded, truth: np.ndarray, truth_throws: np.ndarray | None, used: np.ndarray
) -> Chi2 | None:
    """chi2 of the result against the ``truth`` (B,) with the covariance of (result - truth) over the
    throws, ``truth_throws`` (T, B) the truth as each throw sees it
    (:func:`~numl_core.unfold.compare.truth_throws`); None without either."""
    if estimate.throws is None or truth_throws is None:
        return None
    differences = estimate.throws - truth_throws
    offset = Unfolded(estimate.nominal - truth, covariance_from_replicas(differences), differences)
    return chi2_of(offset, np.zeros_like(truth), used)


def calibration_rows(
    name: str,
    estimates: dict[str, Unfolded],
    truth: np.ndarray | None,
    used: np.ndarray,
    truth_throws: np.ndarray | None = None,
) -> list[dict]:
    """Per method: chi2 against the truth (None for real data) with its p-value, ndof, dropped bins, the
    covariance estimate (``hartlap``, ``shrinkage`` or ``parts``) and its inverse correction, the number
    of throws, the covariance check, and the chi2 that carries the truth's own fluctuation
    (:func:`closure_chi2`, None without ``truth_throws``) with its p-value."""
    rows = []
    for method, estimate in estimates.items():
        # the covariance estimate and its correction do not depend on what it is compared with
        fit = chi2_of(estimate, truth if truth is not None else estimate.nominal, used)
        closure = None if truth is None else closure_chi2(estimate, truth, truth_throws, used)
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
                "p_value": None if truth is None else fit.p_value,
                "loo_chi2_per_ndof": covariance_check(estimate, used),
                "chi2_closure": None if closure is None else closure.chi2,
                "p_closure": None if closure is None else closure.p_value,
            }
        )
    return rows


def contraction(step: np.ndarray, previous: np.ndarray, cov: np.ndarray) -> float:
    """Factor rho >= 0 by which ``previous`` (B,), one iteration's step, shrank into ``step`` (B,): the
    least-squares rho of step = rho previous in the metric of ``cov`` (B, B; pseudo-inverse), 0 when
    the steps point apart (noise).

    >>> contraction(np.array([0.5, 0.25]), np.array([1.0, 0.5]), np.eye(2))
    0.5
    >>> contraction(np.array([-1.0, 0.0]), np.array([1.0, 0.0]), np.eye(2))
    0.0
    """
    inverse = np.linalg.pinv(np.asarray(cov, float))
    norm = float(previous @ inverse @ previous)
    return max(float(step @ inverse @ previous) / norm, 0.0) if norm > 0 else 0.0


def remaining_chi2(change_chi2: float, rho: float) -> float:
    """chi2 of the bias still left after a step of chi2 ``change_chi2`` if every later step shrinks by
    ``rho``: the steps sum to step rho / (1 - rho), so change (rho / (1 - rho))^2; infinite for rho >= 1
    (no convergence in sight).

    >>> remaining_chi2(2.0, 0.5), round(remaining_chi2(2.0, 0.8), 6), remaining_chi2(2.0, 1.0)
    (2.0, 32.0, inf)
    """
    return change_chi2 * (rho / (1.0 - rho)) ** 2 if rho < 1.0 else float("inf")


def in_metric(estimate: Unfolded, metric: Unfolded) -> Unfolded:
    """``estimate``'s result with ``metric``'s covariance (and throws, for the correction of its inverse)."""
    return Unfolded(estimate.nominal, metric.cov, metric.throws)


def iteration_rows(
    name: str,
    method: str,
    per_iteration: list[Unfolded],
    prior: np.ndarray,
    truth: np.ndarray | None,
    used: np.ndarray,
) -> list[dict]:
    """One row per iteration (1-based): chi2 against the truth (None for real data), the change from
    the previous iteration's result (the ``prior`` before the first), both with this iteration's
    covariance, on the ``used`` bins; ``chi2_truth_fixed``, the chi2 against the truth with the last
    iteration's covariance (one metric for every iteration); from the second iteration on the
    ``contraction`` of the step and the ``remaining_chi2`` it projects (NaN at the first: one step shows
    no rate)."""
    last = per_iteration[-1] if per_iteration else None
    rows, previous, last_step = [], prior, None
    for i, estimate in enumerate(per_iteration, start=1):
        change = chi2_of(estimate, previous, used)
        step = (estimate.nominal - previous)[used]
        rho = np.nan
        if last_step is not None:
            rho = contraction(step, last_step, estimate.cov[np.ix_(used, used)])
        rows.append(
            {
                "distribution": name,
                "method": method,
                "iteration": i,
                "chi2_truth": None if truth is None else chi2_of(estimate, truth, used).chi2,
                "chi2_truth_fixed": None
                if truth is None
                else chi2_of(in_metric(estimate, last), truth, used).chi2,
                "change_chi2": change.chi2,
                "ndof": change.ndof,
                "contraction": rho,
                "remaining_chi2": np.nan if np.isnan(rho) else remaining_chi2(change.chi2, rho),
            }
        )
        previous, last_step = estimate.nominal, step
    return rows


def stop_statistic(iterations: pd.DataFrame) -> np.ndarray:
    """Per row, the stopping rule's statistic: the larger of the change and half the remaining bias it
    projects, over :func:`change_threshold`; below 1 where one may stop (NaN at the first iteration,
    where no rate is known). Results stored before the rule projected the remaining bias hold no
    ``remaining_chi2``: their statistic is the change alone."""
    change = iterations["change_chi2"].to_numpy(float)
    threshold = change_threshold(iterations["ndof"].to_numpy(float))
    if "remaining_chi2" not in iterations:
        return change / threshold
    remaining = iterations["remaining_chi2"].to_numpy(float)
    larger = np.where(np.isnan(remaining), np.nan, np.fmax(change, remaining / 2.0))
    return larger / threshold


def suggested_iterations(iterations: pd.DataFrame) -> dict[str, int | None]:
    """Per method, the first iteration whose :func:`stop_statistic` is below 1 in every distribution: the
    change below :func:`change_threshold` and the projected remaining bias below twice that (None if
    none is: iterate more).

    >>> t = pd.DataFrame({"method": "ibu", "distribution": ["a", "a", "a", "b", "b", "b"], "ndof": 14,
    ...                   "iteration": [1, 2, 3] * 2, "change_chi2": [9.0, 2.0, 0.5, 0.2, 0.1, 0.1],
    ...                   "remaining_chi2": [np.nan, 8.0, 0.5, np.nan, 0.0, 0.0]})
    >>> suggested_iterations(t)
    {'ibu': 3}
    """
    if iterations.empty:
        return {}
    below = stop_statistic(iterations) < 1.0
    out: dict[str, int | None] = {}
    for method, rows in iterations.assign(below=below).groupby("method", sort=False):
        stops = rows.groupby("iteration")["below"].all()
        first = stops.index[stops.to_numpy()]
        out[str(method)] = int(first[0]) if len(first) else None
    return out


def validation_curves(iterations: pd.DataFrame) -> pd.DataFrame:
    """What the Validation view draws, per method, distribution and iteration: ``bias_per_ndof`` (chi2
    against the truth / ndof; NaN for real data), ``bias_fixed_per_ndof`` (the same with the last
    iteration's covariance; NaN also for results stored before it was kept) and ``stop_over_threshold``
    (:func:`stop_statistic`; below 1, one more iteration stops helping; NaN, not drawn, at the first
    iteration and where the steps do not shrink).

    >>> t = pd.DataFrame({"method": "ibu", "distribution": "a", "iteration": [1, 2], "ndof": 2,
    ...                   "chi2_truth": [4.0, 2.0], "change_chi2": [1.0, 0.5],
    ...                   "remaining_chi2": [np.nan, 2.0]})
    >>> validation_curves(t)[["bias_per_ndof", "stop_over_threshold"]].to_numpy().round(2).tolist()
    [[2.0, nan], [1.0, 1.0]]
    """
    out = iterations[["method", "distribution", "iteration"]].copy()
    ndof = iterations["ndof"].to_numpy(float)
    out["bias_per_ndof"] = pd.to_numeric(iterations["chi2_truth"], errors="coerce").to_numpy(float) / ndof
    fixed = iterations.get("chi2_truth_fixed", pd.Series(np.nan, index=iterations.index))
    out["bias_fixed_per_ndof"] = pd.to_numeric(fixed, errors="coerce").to_numpy(float) / ndof
    stop = stop_statistic(iterations)
    out["stop_over_threshold"] = np.where(np.isfinite(stop), stop, np.nan)
    return out
