"""Calibration of an unfolding: is the covariance right, does the result recover the truth, and after
how many iterations does more unfolding stop helping?

Four checks, each per method and distribution, all on the bins of
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
- **bias per iteration**: the chi2 against the truth after each iteration, with that iteration's
  covariance (``chi2_truth``) and with the last iteration's (``chi2_truth_fixed``: one metric for every
  iteration, so it falls only where the result moves towards the truth and rises where the iterations
  fit the data's own fluctuations), and the **change** from the previous iteration.
- **when to stop** (``estimated_chi2`` of :func:`iteration_rows`, needs no truth): the chi2 against
  the truth in the last iteration's metric, estimated from the data and the throws alone if the last
  iteration is unbiased: the distance of each iteration from the last, less the part of it the throws'
  noise explains, plus the noise of the iteration itself (:func:`noise_terms`). The suggested number of
  iterations is the one with the smallest estimate summed over the distributions
  (:func:`suggested_iterations`); :func:`equally_good_iterations` lists those the estimate cannot rank
  against it. It trades the bias that more iterations remove against the noise they add, the trade the
  fixed-metric chi2 measures; what it cannot see is a bias the last iteration still has.

Tables are long format; see :class:`~numl_core.unfold.result.UnfoldResult`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from numl_core.stats import Chi2, covariance_from_replicas, leave_one_out_chi2
from numl_core.unfold.compare import Unfolded, chi2_of


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


def in_metric(estimate: Unfolded, metric: Unfolded) -> Unfolded:
    """``estimate``'s result with ``metric``'s covariance (and throws, for the correction of its inverse)."""
    return Unfolded(estimate.nominal, metric.cov, metric.throws)


def noise_terms(per_iteration: list[Unfolded], used: np.ndarray) -> list[float] | None:
    """Per iteration i, on the ``used`` bins, what the estimate of the chi2 against the truth in the last
    iteration's metric (``estimated_chi2`` of :func:`iteration_rows`) adds to ``chi2_to_last``, the chi2
    of iteration i against the last iteration N. If N is unbiased, that chi2 against the truth is

        (u_i - u_N)^T W (u_i - u_N)  -  tr(W Cov(u_i - u_N))  +  tr(W Cov(u_i))

    with W the last iteration's corrected inverse covariance; this returns the last two terms. The
    first of them is what the throws' noise alone gives the distance to the last iteration (the throws
    are the same ensemble members at every iteration, so their differences carry it); the second is the
    noise of iteration i alone against the truth. Each trace is a leave-one-throw-out mean
    (:func:`~numl_core.stats.leave_one_out_chi2` with the last iteration's throws as the metric), free of
    the bias of measuring the throws in a covariance built from themselves; at the last iteration the
    estimate is that check's mean, about ``ndof``. The estimate is unbiased, so it can fall below the
    noise term where the data sit closer to the prior than their noise says. None with one iteration
    (nothing to weigh) or without throws (a covariance built from parts)."""
    last = per_iteration[-1]
    if len(per_iteration) < 2 or any(e.throws is None for e in per_iteration):
        return None
    metric = last.throws[:, used]
    out = []
    for estimate in per_iteration[:-1]:
        noise_apart = leave_one_out_chi2((estimate.throws - last.throws)[:, used], metric, "auto").mean()
        noise = leave_one_out_chi2(estimate.throws[:, used], metric, "auto").mean()
        out.append(float(noise - noise_apart))
    return [*out, float(leave_one_out_chi2(metric, method="auto").mean())]


def iteration_rows(
    name: str,
    method: str,
    per_iteration: list[Unfolded],
    prior: np.ndarray,
    truth: np.ndarray | None,
    used: np.ndarray,
) -> list[dict]:
    """One row per iteration (1-based) on the ``used`` bins: chi2 against the truth with this iteration's
    covariance (``chi2_truth``) and with the last iteration's (``chi2_truth_fixed``), both None for real
    data; the ``change_chi2`` from the previous iteration's result (the ``prior`` before the first), with
    this iteration's covariance; ``chi2_to_last``, the chi2 against the last iteration in its metric; and
    ``estimated_chi2``, the chi2 against the truth in that metric estimated without the truth,
    ``chi2_to_last`` plus :func:`noise_terms` (NaN without throws)."""
    last = per_iteration[-1]
    noise = noise_terms(per_iteration, used) or [np.nan] * len(per_iteration)
    rows, previous = [], prior
    for i, (estimate, added) in enumerate(zip(per_iteration, noise, strict=True), start=1):
        change = chi2_of(estimate, previous, used)
        to_last = chi2_of(in_metric(estimate, last), last.nominal, used).chi2
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
                "chi2_to_last": to_last,
                "estimated_chi2": to_last + added,
            }
        )
        previous = estimate.nominal
    return rows


def _summed_estimates(iterations: pd.DataFrame) -> dict[str, tuple[pd.Series, float]]:
    """Per method with an estimate at two iterations or more: ``estimated_chi2`` summed over the
    distributions per iteration, and the spread sqrt(2 ndof) of that summed chi2 (ndof summed too)."""
    if "estimated_chi2" not in iterations:
        return {}
    out = {}
    for method, rows in iterations.groupby("method", sort=False):
        estimate = pd.to_numeric(rows["estimated_chi2"], errors="coerce")
        if estimate.isna().any() or rows["iteration"].nunique() < 2:
            continue
        spread = np.sqrt(2.0 * rows.groupby("distribution")["ndof"].first().sum())
        out[str(method)] = (estimate.groupby(rows["iteration"]).sum(), float(spread))
    return out


def suggested_iterations(iterations: pd.DataFrame) -> dict[str, int | None]:
    """Per method, the iteration with the smallest ``estimated_chi2`` summed over the distributions
    (:func:`iteration_rows`); None ("iterate more") when that is the last iteration and the estimate
    still fell there by more than the spread sqrt(2 ndof) of the summed chi2 (ndof summed too), since
    the estimate takes the last iteration as unbiased. Methods with one iteration or without an estimate
    (no throws, or results stored before it) get no suggestion.

    >>> t = pd.DataFrame({"method": "ibu", "distribution": ["a"] * 3 + ["b"] * 3, "ndof": 8,
    ...                   "iteration": [1, 2, 3] * 2, "estimated_chi2": [30, 12, 9, 9, 7, 8.0]})
    >>> suggested_iterations(t), suggested_iterations(t.assign(estimated_chi2=[30, 20, 2, 9, 9, 8.0]))
    ({'ibu': 3}, {'ibu': None})
    """
    out: dict[str, int | None] = {}
    for method, (total, spread) in _summed_estimates(iterations).items():
        best = int(total.idxmin())
        still_falling = float(total.iloc[-2] - total.iloc[-1]) > spread
        out[method] = None if best == int(total.index[-1]) and still_falling else best
    return out


def equally_good_iterations(iterations: pd.DataFrame) -> dict[str, list[int]]:
    """Per method, the iterations whose ``estimated_chi2`` summed over the distributions lies within
    the spread sqrt(2 ndof) of the summed chi2 of its smallest value: the data and throws cannot rank
    them (the benchmark judges a suggestion by the same spread against the truth). Where the iterations
    move towards the truth, the estimate's blind spot, a bias the last iteration still has, rates the
    earlier of them too well (docs/physics.md, "Bias and when to stop iterating"). Same methods as
    :func:`suggested_iterations`.

    >>> t = pd.DataFrame({"method": "omnifold", "distribution": "a", "ndof": 8,
    ...                   "iteration": [1, 2, 3, 4], "estimated_chi2": [30, 14, 9, 11.0]})
    >>> equally_good_iterations(t)
    {'omnifold': [3, 4]}
    """
    return {
        method: [int(i) for i, value in total.items() if value <= total.min() + spread]
        for method, (total, spread) in _summed_estimates(iterations).items()
    }


def validation_curves(iterations: pd.DataFrame) -> pd.DataFrame:
    """What the Validation view draws, per method, distribution and iteration, each chi2 over ndof:
    ``bias_per_ndof`` (against the truth, each iteration's covariance), ``bias_fixed_per_ndof`` (the
    last iteration's) and ``estimated_per_ndof`` (``estimated_chi2``, the latter estimated without
    the truth). NaN where a result does not hold it: no truth for real data, no estimate without throws
    or in results stored before it.

    >>> t = pd.DataFrame({"method": "ibu", "distribution": "a", "iteration": [1, 2], "ndof": 2,
    ...                   "chi2_truth": [4.0, 2.0], "estimated_chi2": [3.0, 2.5]})
    >>> shown = ["bias_per_ndof", "bias_fixed_per_ndof", "estimated_per_ndof"]
    >>> validation_curves(t)[shown].to_numpy().tolist()
    [[2.0, nan, 1.5], [1.0, nan, 1.25]]
    """
    out = iterations[["method", "distribution", "iteration"]].copy()
    ndof = iterations["ndof"].to_numpy(float)
    for column, source in (
        ("bias_per_ndof", "chi2_truth"),
        ("bias_fixed_per_ndof", "chi2_truth_fixed"),
        ("estimated_per_ndof", "estimated_chi2"),
    ):
        values = iterations.get(source, pd.Series(np.nan, index=iterations.index))
        out[column] = pd.to_numeric(values, errors="coerce").to_numpy(float) / ndof
    return out
