"""The covariance of replicas and its inverse: Gaussian toys with a known covariance, fixed seeds.

Tolerances come from the statistics: the mean of K independent chi2 values with p degrees of freedom
has standard deviation sqrt(2 p / K) (more for corrected inverses, whose own scatter adds to it); the
tests allow about four of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from numl_core.stats import Chi2, chi2_from_replicas, hartlap_factor, leave_one_out_chi2

P, N, TRIALS = 20, 60, 400


def _known_covariance(rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(P, P))
    return a @ a.T / P + np.eye(P)


def _chi2_of_fresh_draws(method: str) -> np.ndarray:
    """chi2 of a fresh draw against the truth, with the covariance estimated from N other replicas."""
    rng = np.random.default_rng(7)
    cov = _known_covariance(rng)
    chol = np.linalg.cholesky(cov)
    out = []
    for _ in range(TRIALS):
        replicas = rng.normal(size=(N, P)) @ chol.T
        data = rng.normal(size=P) @ chol.T
        out.append(chi2_from_replicas(data, np.zeros(P), replicas, method=method).chi2)
    return np.array(out)


def test_hartlap_corrected_inverse_gives_chi2_with_mean_ndof():
    corrected, raw = _chi2_of_fresh_draws("hartlap"), _chi2_of_fresh_draws("none")
    # the corrected chi2 has mean p; the raw one is too large by (N - 1) / (N - p - 2) = 1.55
    assert corrected.mean() == pytest.approx(P, abs=4 * corrected.std() / np.sqrt(TRIALS))
    assert raw.mean() / P == pytest.approx((N - 1) / (N - P - 2), rel=0.08)
    assert raw.mean() > corrected.mean() + 8 * corrected.std() / np.sqrt(TRIALS)


def test_shrinkage_works_with_fewer_replicas_than_bins():
    rng = np.random.default_rng(3)
    cov = _known_covariance(rng)
    replicas = rng.multivariate_normal(np.zeros(P), cov, size=P // 2)  # singular sample covariance
    with pytest.raises(ValueError, match="more replicas than bins"):
        chi2_from_replicas(np.ones(P), np.zeros(P), replicas)
    out = chi2_from_replicas(np.ones(P), np.zeros(P), replicas, method="shrinkage")
    assert np.isfinite(out.chi2) and out.chi2 > 0 and out.correction == 1.0


def test_bins_without_variance_are_dropped_and_counted():
    rng = np.random.default_rng(4)
    replicas = rng.normal(size=(40, 6))
    replicas[:, 2] = 0.0  # an empty bin: no variance
    out = chi2_from_replicas(np.ones(6), np.zeros(6), replicas)
    assert isinstance(out, Chi2) and out.ndof == 5 and out.dropped == (2,)
    assert out.correction == pytest.approx(hartlap_factor(40, 5))
    with pytest.raises(ValueError, match="method"):
        chi2_from_replicas(np.ones(6), np.zeros(6), replicas, method="bogus")


def test_leave_one_out_chi2_has_mean_ndof_and_flags_a_wrong_spread():
    rng = np.random.default_rng(5)
    cov = _known_covariance(rng)
    replicas = rng.multivariate_normal(np.zeros(P), cov, size=120)
    loo = leave_one_out_chi2(replicas)
    # 120 chi2 values with mean p; they are not independent, so allow about five standard errors
    assert loo.mean() / P == pytest.approx(1.0, abs=5 * np.sqrt(2 / P / len(loo)) + 0.05)
    # heavy tails (a tenth of the replicas four times wider) scatter more than their covariance says
    wide = replicas.copy()
    wide[::10] *= 4.0
    assert leave_one_out_chi2(wide).mean() / P > 1.5


def test_p_values_of_hartlap_chi2_are_uniform_where_the_chi2_distribution_is_not():
    from scipy import stats

    trials = 2_000
    rng = np.random.default_rng(8)
    cov = _known_covariance(rng)
    chol = np.linalg.cholesky(cov)
    hotelling, chi2 = [], []
    for _ in range(trials):
        replicas = rng.normal(size=(N, P)) @ chol.T
        fit = chi2_from_replicas(rng.normal(size=P) @ chol.T, np.zeros(P), replicas)
        hotelling.append(fit.p_value)
        chi2.append(fit.chi2)
    hotelling, chi2 = np.array(hotelling), np.array(chi2)

    def binomial_tolerance(q: float) -> float:  # four standard deviations of a fraction of ``trials``
        return 4 * np.sqrt(q * (1 - q) / trials)

    for q in (0.01, 0.05, 0.5):  # a uniform p-value falls below q with probability q
        assert (hotelling < q).mean() == pytest.approx(q, abs=binomial_tolerance(q))
    # read with the chi2 distribution, as if the covariance were known, p < 0.01 happens 3.3 times as
    # often: T^2 = chi2 / h follows (p (N - 1) / (N - p)) F(p, N - p)
    h = hartlap_factor(N, P)
    t2 = stats.chi2.isf(0.01, P) / h
    expected = stats.f.sf(t2 * (N - P) / (P * (N - 1)), P, N - P)
    assert expected > 3 * 0.01
    assert (stats.chi2.sf(chi2, P) < 0.01).mean() == pytest.approx(expected, abs=binomial_tolerance(expected))
