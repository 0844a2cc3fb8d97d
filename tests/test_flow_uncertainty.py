"""Density models and p-values: Gaussian baselines, the per-dimension transform, flows."""

import numpy as np
import pytest
import torch
from scipy import stats

from numl_core.data.schema import DataError
from numl_core.uncertainty import model as unc
from numl_core.uncertainty.model import (
    FlowSettings,
    GaussianDensity,
    MarginalGaussianDensity,
    check_observation,
    density_pvalues,
    flow_training,
    heldout_nll,
    pvalue_metrics,
)
from numl_core.uncertainty.train import fit_flow

COV = np.array([[1.0, 0.6, 0.0], [0.6, 2.0, 0.3], [0.0, 0.3, 0.5]])


@pytest.fixture(scope="module")
def gaussian_toys():
    return np.random.default_rng(0).multivariate_normal([1.0, -1.0, 0.0], COV, size=4000)


def test_gaussian_fit_matches_scipy(gaussian_toys):
    g = GaussianDensity.fit(gaussian_toys)
    x = gaussian_toys[:20]
    np.testing.assert_allclose(g.log_prob(x), stats.multivariate_normal(g.mean, g.cov).logpdf(x), rtol=1e-10)
    d2 = np.einsum("ni,ij,nj->n", x - g.mean, np.linalg.inv(g.cov), x - g.mean)
    np.testing.assert_allclose(g.chi2_pvalue(x), stats.chi2.sf(d2, 3), rtol=1e-10)
    assert heldout_nll(g, x) == pytest.approx(-stats.multivariate_normal(g.mean, g.cov).logpdf(x).mean())


def test_rank_pvalue_of_a_gaussian_equals_its_chi2_pvalue(gaussian_toys):
    g = GaussianDensity.fit(gaussian_toys)
    obs = gaussian_toys[:100]
    p, err = density_pvalues(g, obs, n_samples=40_000, seed=1)
    # MC error <= 0.5 / sqrt(40000) = 0.0025; 5 sigma
    np.testing.assert_allclose(p, g.chi2_pvalue(obs), atol=0.0125)
    np.testing.assert_allclose(err, np.sqrt(p * (1 - p) / 40_000))


def test_bad_inputs_name_the_problem(gaussian_toys):
    g = GaussianDensity.fit(gaussian_toys)
    with pytest.raises(DataError, match="2 values per row; the toys have 3 dimensions"):
        g.chi2_pvalue(np.zeros(2))
    with pytest.raises(DataError, match="NaN"):
        check_observation([1.0, np.nan, 0.0], 3)
    with pytest.raises(DataError, match="2 toys for 3 dimensions; need at least 4"):
        GaussianDensity.fit(gaussian_toys[:2])
    singular = np.column_stack([gaussian_toys[:, 0], gaussian_toys[:, 0]])
    with pytest.raises(DataError, match="singular"):
        GaussianDensity.fit(singular)


@pytest.mark.parametrize("lam", [-0.5, 0.0, 0.7, 2.0, 2.5])
def test_yeo_johnson_matches_scipy_and_inverts(lam):
    x = np.linspace(-3, 3, 13)[:, None]
    y, logd = unc._yeo_johnson(x, np.array([lam]))
    np.testing.assert_allclose(y[:, 0], stats.yeojohnson(x[:, 0], lmbda=lam), rtol=1e-10, atol=1e-12)
    h = 1e-6
    numeric = (stats.yeojohnson(x[:, 0] + h, lmbda=lam) - stats.yeojohnson(x[:, 0] - h, lmbda=lam)) / (2 * h)
    # central differences with h = 1e-6: truncation ~h^2, rounding ~1e-16 / h = 1e-10
    np.testing.assert_allclose(np.exp(logd[:, 0]), numeric, rtol=1e-6)
    np.testing.assert_allclose(unc._yeo_johnson_inverse(y, np.array([lam])), x, atol=1e-10)


def test_marginal_gaussian_is_normalised_and_fits_skewed_toys_better():
    x = np.random.default_rng(2).lognormal(0.0, 0.6, size=(4000, 1))
    m = MarginalGaussianDensity.fit(x)
    grid = np.linspace(-5, 40, 40_001)[:, None]
    assert np.exp(m.log_prob(grid)).sum() * (grid[1, 0] - grid[0, 0]) == pytest.approx(1.0, abs=2e-3)
    assert heldout_nll(m, x) < heldout_nll(GaussianDensity.fit(np.column_stack([x, x**0.5])[:, :1]), x)
    assert m.sample(10, seed=0).shape == (10, 1)


def test_pvalue_metrics_known_values():
    truth = np.array([0.1, 0.4, 0.6, 0.9])
    out = pvalue_metrics(truth + 0.1, truth)
    assert out["pvalue_r"] == pytest.approx(1.0)
    assert out["pvalue_mse"] == pytest.approx(0.01)
    assert out["pvalue_r2"] == pytest.approx(1 - 0.04 / np.sum((truth - 0.5) ** 2))


TINY_FLOW = {"transforms": 2, "hidden_features": 16}
TINY_TRAIN = {"epochs": 6, "batch_size": 200, "device": "cpu"}


@pytest.mark.parametrize(
    ("model", "coupling", "standardise"),
    [("maf", True, "zscore"), ("maf", False, "log"), ("nsf", True, "none")],
)
def test_flow_family_contract(model, coupling, standardise):
    rng = np.random.default_rng(3)
    x = rng.lognormal(0.0, 0.3, size=(1000, 2)) + 0.1
    settings = FlowSettings(
        model=model,
        coupling=coupling,
        standardise=standardise,
        train=flow_training(seed=4, **TINY_TRAIN),
        **TINY_FLOW,
    )
    flow, result = fit_flow(x[:800], x[800:], settings)
    assert result.epochs_run >= 1 and np.isfinite(result.best_val_loss)
    lp = flow.log_prob(x[:50])
    assert lp.shape == (50,) and np.isfinite(lp).all()
    samples, slp = flow.sample_and_log_prob(300, seed=1)
    assert samples.shape == (300, 2)
    # the density returned with a sample equals the density evaluated there
    np.testing.assert_allclose(slp, flow.log_prob(samples), atol=2e-3)
    assert flow.to_latent(x[:7]).shape == (7, 2)
    # same seed, same model
    again, _ = fit_flow(x[:800], x[800:], settings)
    np.testing.assert_allclose(again.log_prob(x[:5]), lp[:5], rtol=1e-5)
    # normalised: integral of the density over a grid covering the data (log standardisation included)
    axes = [np.linspace(-4.0, 8.0, 241)] * 2
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    integral = np.exp(flow.log_prob(grid)).sum() * (axes[0][1] - axes[0][0]) ** 2
    assert integral == pytest.approx(1.0, abs=0.05)


def test_flow_beats_the_gaussian_on_a_bimodal_toy():
    rng = np.random.default_rng(5)
    sign = rng.choice([-1.0, 1.0], size=(3000, 1))
    x = np.column_stack([sign[:, 0] * 2 + 0.4 * rng.normal(size=3000), rng.normal(size=3000)])
    torch.manual_seed(0)
    settings = FlowSettings(
        model="nsf",
        coupling=False,
        train=flow_training(seed=0, **{**TINY_TRAIN, "epochs": 30}),
        **{**TINY_FLOW, "hidden_features": 32},
    )
    flow, _ = fit_flow(x[:2000], x[2000:2500], settings)
    test = x[2500:]
    assert heldout_nll(flow, test) < heldout_nll(GaussianDensity.fit(x[:2500]), test) - 0.3


def test_log_standardisation_needs_positive_toys():
    with pytest.raises(DataError, match="positive"):
        fit_flow(np.full((10, 2), -1.0), np.ones((5, 2)), FlowSettings(standardise="log", **TINY_FLOW))
    with pytest.raises(ValueError, match="model"):
        FlowSettings(model="glow").validate()


def test_improved_baseline_equals_chi2_on_gaussian_toys():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 5))
    toys = rng.normal(size=(20_000, 5)) @ a.T
    held_out = rng.normal(size=(500, 5)) @ a.T
    g = unc.GaussianDensity.fit(toys)
    p_toys, err = unc.toy_rank_pvalues(g, held_out, toys)
    p_chi2 = g.chi2_pvalue(held_out)
    # binomial error of a fraction of 20 000 toys is at most 0.0035; allow 5 of them
    assert np.max(np.abs(p_toys - p_chi2)) < 5 * 0.0036
    np.testing.assert_allclose(err, np.sqrt(p_toys * (1 - p_toys) / 20_000))


def test_improved_baseline_differs_from_chi2_on_log_normal_toys_and_is_calibrated():
    rng = np.random.default_rng(4)
    toys = np.exp(rng.normal(size=(20_000, 5)))
    held_out = np.exp(rng.normal(size=(2_000, 5)))
    g = unc.GaussianDensity.fit(toys)
    p_toys, _ = unc.toy_rank_pvalues(g, held_out, toys)
    p_chi2 = g.chi2_pvalue(held_out)
    assert np.mean(np.abs(p_toys - p_chi2)) > 0.1
    # held-out toys rank uniformly among the toys' own statistic, not under chi2_D
    assert stats.kstest(p_toys, "uniform").pvalue > 1e-3
    assert stats.kstest(p_chi2, "uniform").pvalue < 1e-10


def test_asinh_standardisation_is_a_normalised_density_that_saves_and_loads():
    from numl_core.data.generators.toys import SinhArcsinhToy
    from numl_core.uncertainty.train import fit_flow

    toy = SinhArcsinhToy(np.eye(1), np.array([1.0]), np.array([0.5]))  # skewed and heavy-tailed
    toys = toy.sample(4_000, seed=1)
    settings = unc.FlowSettings(
        model="nsf",
        standardise="asinh",
        transforms=2,
        hidden_features=16,
        train=unc.flow_training(epochs=40, lr=1e-2, batch_size=256),
    )
    flow, _ = fit_flow(toys[:3_500], toys[3_500:], settings)
    x = np.sinh(np.linspace(-14, 14, 200_001))[:, None]  # a grid even in asinh(x) reaches the heavy tails
    assert np.trapezoid(np.exp(flow.log_prob(x)), x[:, 0]) == pytest.approx(1.0, abs=2e-3)
    samples, log_q = flow.sample_and_log_prob(500, seed=2)
    np.testing.assert_allclose(log_q, flow.log_prob(samples), atol=1e-3)
    # held-out NLL (nats): the truth 3.42, the Gaussian fit 4.32, this flow 3.44 (measured); 2000 toys
    # put an sd of about 0.03 on each, so the flow must come within 0.1 of the truth
    held_out = toy.sample(2_000, seed=3)
    assert unc.heldout_nll(flow, held_out) < -toy.log_prob(held_out).mean() + 0.1
    fitted = unc.FittedModels(
        unc.GaussianDensity.fit(toys), unc.MarginalGaussianDensity.fit(toys), flow, np.zeros(3)
    )
    back = unc.models_from_state(unc.models_state(fitted, settings))
    assert back.flow.module.transform == "asinh"
    np.testing.assert_allclose(back.flow.log_prob(held_out[:50]), flow.log_prob(held_out[:50]), atol=1e-6)
