"""Toy densities: the shipped T2K covariance, known densities and p-values, ND280 universes, users' files."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from numl_core.data.generators import toys
from numl_core.data.reference import verify_checksums
from numl_core.data.schema import DataError


def test_shipped_t2k_release_is_intact_and_parsed():
    assert all(verify_checksums(toys.FILES_DIR).values())
    values, cov = toys.t2k_ccinc_measurement()
    assert values.shape == (71,) and cov.shape == (71, 71)
    # data_unfold_with_neut.txt, bins 0 and 1: 0.03971 +- 0.00685818 and 3.78186 +- 2.10694 (1e-39 units);
    # the covariance is printed with 4 significant digits
    np.testing.assert_allclose(values[:2], [0.03971, 3.78186])
    np.testing.assert_allclose(np.sqrt(np.diag(cov))[:2], [0.00685818, 2.10694], rtol=1e-3)
    np.testing.assert_allclose(cov, cov.T)
    assert np.linalg.eigvalsh(toys.t2k_ccinc_correlation(71))[0] == pytest.approx(0.108, abs=0.001)


@pytest.mark.parametrize("dim", [0, 72])
def test_measurement_dimension_out_of_range(dim):
    with pytest.raises(ValueError, match="1..71"):
        toys.t2k_ccinc_measurement(dim)


def test_single_gaussian_log_prob_matches_scipy():
    _, cov = toys.t2k_ccinc_measurement(4)
    mean = np.arange(4.0)
    toy = toys.GaussianMixtureToy(np.ones(1), mean[None], cov[None])
    x = toy.sample(50, seed=0)
    np.testing.assert_allclose(toy.log_prob(x), stats.multivariate_normal(mean, cov).logpdf(x), rtol=1e-10)


def test_mixture_density_integrates_to_one_and_samples_match_its_mean():
    toy = toys.mixture_toy(dim=2, n_components=3, seed=4)
    sigma = np.sqrt(np.diag(toy.covs[0]))
    centre = toy.weights @ toy.means
    axes = [np.linspace(c - 12 * s, c + 12 * s, 401) for c, s in zip(centre, sigma, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    cell = np.prod([a[1] - a[0] for a in axes])
    assert np.exp(toy.log_prob(grid)).sum() * cell == pytest.approx(1.0, abs=1e-3)
    x = toy.sample(40_000, seed=1)
    # sample mean within 5 standard errors (per dimension)
    assert np.all(np.abs(x.mean(0) - centre) < 5 * x.std(0) / np.sqrt(len(x)))
    np.testing.assert_array_equal(x[:5], toy.sample(40_000, seed=1)[:5])


def test_bad_mixture_is_rejected():
    with pytest.raises(ValueError, match="sum to 1"):
        toys.GaussianMixtureToy(np.array([0.5, 0.6]), np.zeros((2, 1)), np.ones((2, 1, 1)))
    with pytest.raises(ValueError, match="do not describe"):
        toys.GaussianMixtureToy(np.ones(1), np.zeros((1, 2)), np.ones((1, 3, 3)))


def test_lognormal_moderate_is_a_lognormal_with_the_measured_mean():
    toy = toys.lognormal_toy("moderate", dim=1)
    values, cov = toys.t2k_ccinc_measurement(1)
    s = np.sqrt(cov[0, 0]) / values[0]
    x = np.linspace(0.01, 0.1, 7)[:, None]
    expected = stats.lognorm(s=s, scale=values[0] * np.exp(-0.5 * s**2)).logpdf(x[:, 0])
    np.testing.assert_allclose(toy.log_prob(x), expected, rtol=1e-10)
    assert toy.log_prob(np.array([[-1.0]]))[0] == -np.inf
    draws = toys.lognormal_toy("moderate", dim=5).sample(40_000, seed=0)
    v5, c5 = toys.t2k_ccinc_measurement(5)
    assert np.all(np.abs(draws.mean(0) - v5) < 5 * np.sqrt(np.diag(c5)) / np.sqrt(len(draws)))


def test_extreme_lognormal_is_strongly_skewed_and_named_cases_exist():
    x = toys.make_toy("lognormal_extreme", dim=3).sample(20_000, seed=0)
    # skewness of a unit log-variance log-normal: (e + 2) sqrt(e - 1) = 6.18
    assert np.all(stats.skew(x) > 3)
    with pytest.raises(ValueError, match="not one of"):
        toys.make_toy("cauchy")


def test_true_pvalues_of_a_gaussian_equal_its_chi2_pvalues():
    _, cov = toys.t2k_ccinc_measurement(5)
    toy = toys.GaussianMixtureToy(np.ones(1), np.zeros((1, 5)), cov[None])
    x = toy.sample(200, seed=3)
    chi2 = np.einsum("ni,ij,nj->n", x, np.linalg.inv(cov), x)
    p = toys.true_pvalues(toy, x, n_reference=40_000)
    # Monte-Carlo error of each p-value <= 0.5 / sqrt(40000) = 0.0025; 5 sigma
    np.testing.assert_allclose(p, stats.chi2.sf(chi2, 5), atol=0.0125)


def test_nd280_universes_are_reproducible_and_centred_on_the_nominal():
    u = toys.nd280_universes(40, kind="xsec", binning="dpt_t2k", n_events=3000, seed=1)
    assert u.shape == (40, 8) and np.all(u >= 0)
    np.testing.assert_array_equal(
        u, toys.nd280_universes(40, kind="xsec", binning="dpt_t2k", n_events=3000, seed=1)
    )
    flux = toys.nd280_universes(40, kind="flux", binning="dpt_t2k", n_events=3000, seed=1)
    assert not np.allclose(u, flux)
    with pytest.raises(ValueError, match="kind"):
        toys.nd280_universes(5, kind="beam")


def test_near_far_conditional_is_exact_for_one_gaussian():
    # X_true ~ N(m, s^2): far | near ~ N(m + g (near - m), s^2 + f^2 - g s^2), g = s^2 / (s^2 + n^2)
    truth = toys.GaussianMixtureToy(np.ones(1), np.array([[1.0]]), np.array([[[4.0]]]))
    toy = toys.NearFarToy(truth, np.array([1.0]), np.array([2.0]))
    near, far = np.array([[3.0], [0.0]]), np.array([[2.0], [-1.0]])
    gain = 4.0 / 5.0
    expected = stats.norm(1 + gain * (near[:, 0] - 1), np.sqrt(4 + 4 - gain * 4)).logpdf(far[:, 0])
    np.testing.assert_allclose(toy.conditional_log_prob(far, near), expected, rtol=1e-10)


def test_near_far_conditional_sampling_matches_its_density():
    toy = toys.near_far_toy(dim=1, seed=2)
    near = np.array([[0.5]])
    grid = np.linspace(-8, 8, 4001)[:, None]
    density = np.exp(toy.conditional_log_prob(grid, np.repeat(near, len(grid), 0)))
    assert density.sum() * (grid[1, 0] - grid[0, 0]) == pytest.approx(1.0, abs=1e-4)
    draws = toy.conditional_sample(near, 40_000, seed=0)[:, 0, 0]
    mean = np.sum(grid[:, 0] * density) * (grid[1, 0] - grid[0, 0])
    assert abs(draws.mean() - mean) < 5 * draws.std() / np.sqrt(len(draws))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npz"])
def test_load_toys_round_trip(tmp_path, suffix):
    x = np.random.default_rng(0).normal(size=(30, 3))
    path = tmp_path / f"toys{suffix}"
    if suffix == ".npz":
        np.savez(path, toys=x)
    else:
        frame = pd.DataFrame(x, columns=["a", "b", "c"])
        frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    np.testing.assert_allclose(toys.load_toys(path), x)


def test_bad_toy_matrices_say_what_is_wrong(tmp_path):
    rng = np.random.default_rng(1)
    with pytest.raises(DataError, match="3 toys for 5 dimensions; need at least 6"):
        toys.check_toys(rng.normal(size=(3, 5)))
    x = rng.normal(size=(20, 3))
    x[7, 1] = np.nan
    with pytest.raises(DataError, match="1 row.*first at row 7.*3 finite"):
        toys.check_toys(x)
    y = rng.normal(size=(20, 3))
    y[:, 2] = y[:, 0] + y[:, 1]
    with pytest.raises(DataError, match="singular \\(rank 2 of 3\\)"):
        toys.check_toys(y)
    path = tmp_path / "toys.txt"
    path.write_text("1 2\n")
    with pytest.raises(DataError, match="unknown format"):
        toys.load_toys(path)
    csv = tmp_path / "words.csv"
    pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0]}).to_csv(csv, index=False)
    with pytest.raises(DataError, match="not numeric"):
        toys.load_toys(csv)


def test_sinh_arcsinh_density_is_normalised_and_matches_its_samples():
    from scipy import stats

    from numl_core.data.generators.toys import SinhArcsinhToy

    one = SinhArcsinhToy(np.eye(1), np.array([1.0]), np.array([0.5]))
    x = np.sinh(np.linspace(-12, 12, 400_001))[:, None]  # heavy tails: a grid even in asinh(x)
    assert np.trapezoid(np.exp(one.log_prob(x)), x[:, 0]) == pytest.approx(1.0, abs=1e-6)
    two = SinhArcsinhToy(np.array([[1.0, 0.6], [0.6, 1.0]]), np.array([1.0, -0.5]), np.array([0.5, 0.8]))
    samples = two.sample(20_000, seed=3)
    for i in range(2):  # each marginal: P(X_i < x) = Phi(sinh(delta asinh(x) - epsilon))
        cdf = lambda v, i=i: stats.norm.cdf(np.sinh(two.delta[i] * np.arcsinh(v) - two.epsilon[i]))  # noqa: E731
        assert stats.kstest(samples[:, i], cdf).pvalue > 1e-3


@pytest.mark.slow
def test_the_hard_toy_is_as_hard_for_the_gaussian_as_the_reference_studys():
    from numl_core.data.generators.toys import make_toy, true_pvalues
    from numl_core.uncertainty.c2st import c2st
    from numl_core.uncertainty.model import GaussianDensity, pvalue_metrics, toy_rank_pvalues

    toy = make_toy("sinh_arcsinh", dim=50)
    toys, held_out = toy.sample(20_000, seed=1), toy.sample(2_000, seed=2)
    gaussian = GaussianDensity.fit(toys)
    # 4000 classifier predictions: at accuracy ~0.99 the sd is ~0.002, so 0.97 is far below the measured 0.996
    assert c2st(held_out, gaussian.sample(2_000, 3), seed=1, n_folds=5).accuracy >= 0.97
    p_true = true_pvalues(toy, held_out, n_reference=100_000)
    chi2 = pvalue_metrics(gaussian.chi2_pvalue(held_out), p_true)
    improved = pvalue_metrics(toy_rank_pvalues(gaussian, held_out, toys)[0], p_true)
    assert chi2["pvalue_r2"] <= 0.3 < improved["pvalue_r2"]
