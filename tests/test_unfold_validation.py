"""The unfolding's calibration tools on toys with known answers, fixed seeds.

- The chi2 against a truth that fluctuates itself: an estimator that does not follow the data's
  fluctuations (as smoothing classifiers do not) lies farther from the data's truth than its own
  covariance says; :func:`closure_chi2`, with the covariance of (result - truth), has mean ndof again.
- The chi2 against the truth estimated without it, on an iterated toy whose bias shrinks while its noise
  grows: over repeats its mean is that of the chi2 against the truth in the same metric, at every
  iteration; the stopping rule at its minimum stops at once where the prior is the truth and waits where
  a bias is removed slowly; where the last iteration keeps a bias, the estimate's blind spot, it stops
  too early, and the iterations it cannot rank against its choice hold the better ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from numl_core.stats import covariance_from_replicas, hartlap_factor
from numl_core.unfold.compare import Unfolded, chi2_of
from numl_core.unfold.validation import (
    closure_chi2,
    equally_good_iterations,
    iteration_rows,
    suggested_iterations,
    validation_curves,
)

BINS, THROWS, REPEATS = 10, 100, 300


def _stiff_unfolding(rng: np.random.Generator) -> tuple[Unfolded, np.ndarray, np.ndarray]:
    """An unfolding that returns the MC's truth whatever the data (the stiffest regularisation): its
    throws vary the MC only, while the data's truth has a Poisson fluctuation of the same size."""
    mean = np.full(BINS, 400.0)
    mc = rng.poisson(mean).astype(float)
    truth = rng.poisson(mean).astype(float)
    throws = mc + rng.normal(0, np.sqrt(mean), (THROWS, BINS))  # Poisson(1) counts of the MC's events
    truth_throws = truth + rng.normal(0, np.sqrt(mean), (THROWS, BINS))  # and of the data's
    return Unfolded(mc, covariance_from_replicas(throws), throws), truth, truth_throws


def _f_mean_and_sd(p: int, n: int) -> tuple[float, float]:
    """Mean and standard deviation of a Hartlap-corrected chi2 of a Gaussian difference with a covariance
    from n replicas in p bins: h (p (n - 1) / (n - p)) F(p, n - p)."""
    d1, d2 = p, n - p
    scale = hartlap_factor(n, p) * p * (n - 1) / (n - p)
    var_f = 2 * d2**2 * (d1 + d2 - 2) / (d1 * (d2 - 2) ** 2 * (d2 - 4))
    return scale * d2 / (d2 - 2), scale * np.sqrt(var_f)


def test_closure_chi2_carries_the_truths_own_fluctuation():
    rng = np.random.default_rng(11)
    used = np.ones(BINS, bool)
    plain, closure = [], []
    for _ in range(REPEATS):
        estimate, truth, truth_throws = _stiff_unfolding(rng)
        plain.append(chi2_of(estimate, truth, used).chi2)
        closure.append(closure_chi2(estimate, truth, truth_throws, used).chi2)
    mean, sd = _f_mean_and_sd(BINS, THROWS)
    tolerance = 4 * sd / np.sqrt(REPEATS)
    # (result - truth) has twice the variance of the result: the plain chi2 is twice ndof
    assert np.mean(plain) == pytest.approx(2 * mean, abs=2 * tolerance)
    assert np.mean(closure) == pytest.approx(mean, abs=tolerance)
    assert mean == pytest.approx(BINS, rel=1e-9)  # the Hartlap correction makes the mean exactly ndof


def test_closure_chi2_needs_throws_of_the_truth():
    rng = np.random.default_rng(2)
    estimate, truth, _ = _stiff_unfolding(rng)
    assert closure_chi2(estimate, truth, None, np.ones(BINS, bool)) is None


def test_the_fixed_metric_bias_stands_still_where_only_the_covariance_grows():
    truth, bias, used = np.zeros(BINS), np.full(BINS, 2.0), np.ones(BINS, bool)
    still = [Unfolded(truth + bias, np.eye(BINS) * g) for g in (1.0, 2.0, 4.0)]
    rows = pd.DataFrame(iteration_rows("x", "ibu", still, truth + bias, truth, used))
    # each iteration's own covariance doubles: its chi2 halves though the result has not moved
    np.testing.assert_allclose(rows["chi2_truth"], [40.0, 20.0, 10.0])
    np.testing.assert_allclose(rows["chi2_truth_fixed"], [10.0, 10.0, 10.0])
    # a result that halves its bias falls in the fixed metric too, by the factor 4 of the bias alone
    moving = [Unfolded(truth + bias * f, np.eye(BINS) * g) for f, g in ((1.0, 1.0), (0.5, 2.0))]
    rows = pd.DataFrame(iteration_rows("x", "ibu", moving, truth + bias, truth, used))
    np.testing.assert_allclose(rows["chi2_truth_fixed"], [20.0, 5.0])
    curves = validation_curves(rows)
    np.testing.assert_allclose(curves["bias_fixed_per_ndof"], [2.0, 0.5])
    # real data have no truth: nothing to measure in either metric
    rows = pd.DataFrame(iteration_rows("x", "ibu", moving, truth + bias, None, used))
    assert (
        rows["chi2_truth_fixed"].isna().all() and validation_curves(rows)["bias_fixed_per_ndof"].isna().all()
    )


def _iterated(
    rng: np.random.Generator, bias0: float, shrink: float, growth: float, iterations: int, bins: int, **kw
) -> list[Unfolded]:
    """A toy iterative unfolding of the truth 0 in ``bins`` bins: iteration i (1-based) carries the bias
    bias0 shrink^i in every bin and the data's noise n (unit variance per bin) amplified by
    sqrt(1 + growth (i - 1)), the same n at every iteration, as an iteration carries the data's
    fluctuation forward. Each of ``throws`` (default 100) throws draws its own n, shared by its
    iterations."""
    data_noise, throw_noise = rng.normal(size=bins), rng.normal(size=(kw.get("throws", 100), bins))
    out = []
    for i in range(1, iterations + 1):
        bias, gain = bias0 * shrink**i, np.sqrt(1.0 + growth * (i - 1))
        members = bias + gain * throw_noise
        out.append(Unfolded(bias + gain * data_noise, covariance_from_replicas(members), members))
    return out


def _rows(per_iteration: list[Unfolded], truth: np.ndarray | None, method: str = "toy") -> pd.DataFrame:
    """:func:`iteration_rows` of a toy on all its bins, the first iteration's result for the prior."""
    used = np.ones(len(per_iteration[0].nominal), bool)
    return pd.DataFrame(iteration_rows("x", method, per_iteration, per_iteration[0].nominal, truth, used))


def test_the_estimate_without_the_truth_has_the_mean_of_the_chi2_against_it():
    rng = np.random.default_rng(5)
    bins, throws, repeats = 6, 60, 120
    # the bias left at the last iteration is 2 x 0.3^4 = 0.016 per bin, negligible against the noise
    toys = [_iterated(rng, 2.0, 0.3, 2.0, 4, bins, throws=throws) for _ in range(repeats)]
    rows = [_rows(toy, np.zeros(bins)) for toy in toys]

    def mean_and_se(column: str) -> tuple[np.ndarray, np.ndarray]:
        d = np.array([r[column].to_numpy(float) - r["chi2_truth_fixed"].to_numpy(float) for r in rows])
        return d.mean(axis=0), d.std(axis=0, ddof=1) / np.sqrt(repeats)

    mean, se = mean_and_se("estimated_chi2")
    assert np.all(np.abs(mean) < 4 * se), (mean, se)
    # the test can fail: the chi2 against the last iteration alone, without the noise terms, misses
    mean, se = mean_and_se("chi2_to_last")
    assert np.abs(mean[0]) > 4 * se[0] and mean[-1] < -4 * se[-1]


def test_stopping_rule_stops_at_once_where_the_prior_is_the_truth():
    rng = np.random.default_rng(6)
    bins = 10
    # no bias at all: every iteration only amplifies the data's noise, expected chi2 10 i / 5
    per_iteration = _iterated(rng, 0.0, 0.5, 1.0, 5, bins)
    rows = _rows(per_iteration, None, "ibu")
    assert suggested_iterations(rows) == {"ibu": 1}
    # on real data (no truth) the estimate is all the page can draw
    curves = validation_curves(rows)
    assert curves["bias_fixed_per_ndof"].isna().all() and curves["estimated_per_ndof"].notna().all()


def test_stopping_rule_waits_while_iterations_remove_a_bias():
    rng = np.random.default_rng(7)
    bins, iterations = 10, 6
    bias0, shrink, growth = 3.0, 0.6, 0.1
    per_iteration = _iterated(rng, bias0, shrink, growth, iterations, bins)
    rows = _rows(per_iteration, np.zeros(bins), "omnifold")
    # expected chi2 in the last iteration's metric: bias^2 + noise, over the last iteration's noise
    i = np.arange(1, iterations + 1)
    expected = bins * ((bias0 * shrink**i) ** 2 + 1.0 + growth * (i - 1)) / (1.0 + growth * (iterations - 1))
    suggested = suggested_iterations(rows)["omnifold"]
    assert suggested is not None and suggested >= 3  # 28.3 and 15.1 expected at iterations 1 and 2
    assert expected[suggested - 1] <= expected.min() + np.sqrt(2 * bins)
    # twice the bias, stopped after iteration 2: the estimate still falls there by about 10 (3.6 - 2.16)^2
    # = 21 against a spread of 4.5, so the last iteration is not taken as the answer: iterate more
    short = _rows(_iterated(rng, 2 * bias0, shrink, growth, 2, bins), None, "omnifold")
    assert suggested_iterations(short) == {"omnifold": None}


def test_where_the_last_iteration_keeps_a_bias_the_alike_iterations_hold_the_best():
    rng = np.random.default_rng(8)
    bins, iterations, repeats = 40, 6, 60
    bias0, shrink, growth = 3.0, 0.85, 0.3
    i = np.arange(1, iterations + 1)
    # the bias still falls at the last iteration (by 0.17 per bin) while its noise grows (by 0.3): in the
    # last iteration's metric the expected chi2 falls 120, 96, 80, 70, 63.5, 60.5 (spread 8.9), while
    # the estimate, which takes the last iteration as unbiased, has its minimum at iteration 3 or 4
    expected = bins * ((bias0 * shrink**i) ** 2 + 1.0 + growth * (i - 1)) / (1.0 + growth * (iterations - 1))
    spread, best = np.sqrt(2 * bins), int(expected.argmin()) + 1
    agrees, covered = 0, 0
    for _ in range(repeats):
        rows = _rows(_iterated(rng, bias0, shrink, growth, iterations, bins), np.zeros(bins), "omnifold")
        suggested = suggested_iterations(rows)["omnifold"]
        alike = equally_good_iterations(rows)["omnifold"]
        assert suggested in alike and alike == sorted(alike)
        agrees += suggested is not None and expected[suggested - 1] <= expected.min() + spread
        covered += best in alike
    # the blind spot the docs state: the suggestion alone rarely reaches the best iteration here (in
    # none of the 60 toys at this seed) ...
    assert agrees <= 0.2 * repeats, agrees
    # ... while the iterations the estimate cannot rank against it hold it in most toys (52 of 60 at
    # this seed; 45 is 2.7 binomial standard deviations below that)
    assert covered >= 0.75 * repeats, covered


def test_no_suggestion_without_throws_or_from_results_stored_before_the_estimate():
    used = np.ones(BINS, bool)
    parts = [Unfolded(np.full(BINS, v), np.eye(BINS)) for v in (1.0, 0.5)]
    rows = pd.DataFrame(iteration_rows("x", "ibu", parts, np.full(BINS, 2.0), np.zeros(BINS), used))
    assert rows["estimated_chi2"].isna().all() and suggested_iterations(rows) == {}
    old = pd.DataFrame(
        {"method": "ibu", "distribution": "a", "iteration": [1, 2], "ndof": 8,
         "chi2_truth": [9.0, 4.0], "change_chi2": [4.0, 1.0]}
    )  # fmt: skip
    assert suggested_iterations(old) == {} and validation_curves(old)["estimated_per_ndof"].isna().all()
