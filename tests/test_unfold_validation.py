"""The unfolding's calibration tools on toys with known answers, fixed seeds.

- The chi2 against a truth that fluctuates itself: an estimator that does not follow the data's
  fluctuations (as smoothing classifiers do not) lies farther from the data's truth than its own
  covariance says; :func:`closure_chi2`, with the covariance of (result - truth), has mean ndof again.
- The stopping rule on a geometric convergence: the projected remaining bias is exact there, so the rule
  stops where the remaining bias itself falls below its threshold; a change-only rule stops far earlier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from numl_core.stats import covariance_from_replicas, hartlap_factor
from numl_core.unfold.compare import Unfolded, chi2_of
from numl_core.unfold.validation import (
    change_threshold,
    closure_chi2,
    contraction,
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


def test_contraction_is_the_shrink_factor_of_aligned_steps_and_zero_for_noise():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(BINS, BINS))
    cov = a @ a.T + np.eye(BINS)
    step = rng.normal(size=BINS)
    assert contraction(0.7 * step, step, cov) == pytest.approx(0.7, rel=1e-9)
    # steps of noise only: u_i = n_i, so step_i = n_i - n_(i-1) and step_(i-1) share -n_(i-1): rho ~ -1/2,
    # clipped at 0 in most draws
    noise = rng.normal(size=(REPEATS, 3, BINS))
    rhos = [contraction(n[2] - n[1], n[1] - n[0], np.eye(BINS)) for n in noise]
    assert np.mean(np.array(rhos) == 0.0) > 0.9


def _geometric_rows(rho: float, bias0: np.ndarray, iterations: int) -> pd.DataFrame:
    """A method whose bias shrinks by ``rho`` every iteration, with unit covariance (no throws)."""
    truth = np.zeros(BINS)
    per_iteration = [Unfolded(truth + bias0 * rho**i, np.eye(BINS)) for i in range(1, iterations + 1)]
    rows = iteration_rows("x", "slow", per_iteration, truth + bias0, truth, np.ones(BINS, bool))
    return pd.DataFrame(rows)


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


def test_stopping_rule_waits_for_a_slow_convergence_that_a_change_only_rule_stops():
    rho, bias0 = 0.9, np.full(BINS, 3.0)  # bias chi2 90 at the prior
    rows = _geometric_rows(rho, bias0, 40)
    threshold = change_threshold(BINS)
    # the projected remaining bias is the true remaining bias for a geometric convergence
    later = rows[rows["iteration"] > 1]
    np.testing.assert_allclose(later["remaining_chi2"], later["chi2_truth"], rtol=1e-6)
    np.testing.assert_allclose(later["contraction"], rho, rtol=1e-9)
    stop = suggested_iterations(rows)["slow"]
    met = (rows["change_chi2"] < threshold) & (rows["chi2_truth"] < 2 * threshold) & (rows["iteration"] > 1)
    assert stop == int(rows.loc[met, "iteration"].min())
    change_only = int(rows.loc[rows["change_chi2"] < threshold, "iteration"].min())
    assert change_only < stop
    assert rows.set_index("iteration").at[change_only, "chi2_truth"] > 10 * threshold
    # a short run that has not got there says so instead of stopping
    assert suggested_iterations(_geometric_rows(rho, bias0, 10))["slow"] is None


def test_stopping_rule_is_the_change_alone_for_a_fast_convergence():
    rows = _geometric_rows(0.2, np.full(BINS, 3.0), 6)
    # rho 0.2: the bias left is (0.2 / 0.8)^2 = 1/16 of the change, so the change decides; the rule needs
    # two steps to see a rate, so it stops at the second iteration at the earliest
    threshold = change_threshold(BINS)
    assert (rows["remaining_chi2"].dropna() < rows["change_chi2"].iloc[1:] / 15).all()
    expected = int(rows.loc[(rows["change_chi2"] < threshold) & (rows["iteration"] > 1), "iteration"].min())
    assert suggested_iterations(rows)["slow"] == expected == 3


def test_results_stored_before_the_projection_draw_the_change_alone():
    old = pd.DataFrame(
        {"method": "ibu", "distribution": "a", "iteration": [1, 2], "ndof": 8,
         "chi2_truth": [9.0, 4.0], "change_chi2": [4.0, 1.0]}
    )  # fmt: skip
    curves = validation_curves(old)
    np.testing.assert_allclose(curves["stop_over_threshold"], [4.0 / 2.0, 1.0 / 2.0])  # threshold sqrt(16)/2
    assert suggested_iterations(old) == {"ibu": 2}
