"""Cross-section network, normalisation-aware chi2 and ensembles: contracts on small inputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from numl_core.data.electron_scattering import load_nucleus
from numl_core.xsec.fit import (
    Chi2Loss,
    NormalisedModel,
    chi2_held_out,
    chi2_per_point,
    lambdas_from_training,
    profile_normalisations,
)
from numl_core.xsec.metrics import (
    band,
    coverage,
    fit_misfit,
    fit_student_t,
    normalised_band,
    predict_log,
    predictive_sigma,
)
from numl_core.xsec.model import FEATURES, EnsembleBatchNorm, XsecNet, features
from numl_core.xsec.points import PointSet
from numl_core.xsec.train import EnsembleSettings, train_model, train_settings


@pytest.fixture(scope="module")
def oxygen():
    table = load_nucleus("O")
    prior = table.groupby("experiment")["norm_uncertainty"].first().to_numpy()
    return table, features(table), table["experiment"].to_numpy(), prior


@pytest.mark.parametrize("kwargs", [{}, {"batch_norm": False}, {"dropout": 0.2}, {"residual": False}])
def test_network_shapes_gradients_and_state_round_trip(kwargs):
    torch.manual_seed(0)
    net = XsecNet(n_members=3, depth=3, width=8, **kwargs)
    x = torch.rand(5, len(FEATURES))
    out = net(x)
    assert out.shape == (3, 5)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    copy = XsecNet(n_members=3, depth=3, width=8, **kwargs)
    copy.load_state_dict(net.state_dict())
    net.eval(), copy.eval()
    assert torch.equal(net(x), copy(x))


def test_stacked_members_are_independent_networks():
    torch.manual_seed(1)
    net = XsecNet(n_members=4, depth=2, width=8).eval()
    x = torch.rand(6, len(FEATURES))
    single = net.select([2]).eval()
    assert torch.allclose(net(x)[2], single(x)[0], atol=1e-6)
    # a member's output does not depend on the other members' inputs
    xs = torch.rand(4, 6, len(FEATURES))
    moved = xs.clone()
    moved[0] += 1.0
    assert torch.allclose(net(xs)[1:], net(moved)[1:])


def test_ensemble_batch_norm_matches_torch_per_member():
    torch.manual_seed(2)
    h = torch.randn(3, 16, 5)
    ours = EnsembleBatchNorm(3, 5)
    refs = [nn.BatchNorm1d(5) for _ in range(3)]
    for _ in range(2):  # two training passes move the running statistics twice
        out = ours(h)
        for m, ref in enumerate(refs):
            assert torch.allclose(out[m], ref(h[m]), atol=1e-5)
    for m, ref in enumerate(refs):
        assert torch.allclose(ours.running_mean[m, 0], ref.running_mean, atol=1e-6)
        assert torch.allclose(ours.running_var[m, 0], ref.running_var, atol=1e-6)
    ours.eval(), refs[0].eval()
    assert torch.allclose(ours(h)[0], refs[0](h[0]), atol=1e-5)


def test_freezing_keeps_early_blocks_fixed():
    torch.manual_seed(3)
    net = XsecNet(n_members=2, depth=3, width=8)
    net.freeze_all_but_last(1)
    assert [all(p.requires_grad for p in b.parameters()) for b in net.blocks] == [False, False, True]
    net.train()
    assert not net.blocks[0].training and net.blocks[2].training
    before = net.blocks[0].norm.running_mean.clone()
    net(torch.rand(10, len(FEATURES)))
    assert torch.equal(before, net.blocks[0].norm.running_mean)


def test_profiled_normalisation_is_the_minimum():
    rng = np.random.default_rng(0)
    model = rng.uniform(1, 2, 50)
    data = model * np.where(np.arange(50) < 25, 1.05, 0.9) + rng.normal(0, 0.01, 50)
    error = np.full(50, 0.1)
    group = (np.arange(50) >= 25).astype(int)
    prior = np.array([0.02, 0.1])
    lam = profile_normalisations(model, data, error, group, prior)
    best, _ = chi2_per_point(model, data, error, group, prior, lam)
    for step in (1e-3, -1e-3):
        for k in range(2):
            shifted = lam.copy()
            shifted[k] += step
            assert chi2_per_point(model, data, error, group, prior, shifted)[0] > best
    # a prior pulls lambda from the data-only value towards 1, the tighter one (2%) the more
    free = profile_normalisations(model, data, error, group, np.array([np.inf, np.inf]))
    assert 1.0 < lam[0] < free[0] and free[1] < lam[1] < 1.0
    assert abs(free[0] - lam[0]) / abs(free[0] - 1) > abs(free[1] - lam[1]) / abs(free[1] - 1)


def test_lambdas_fitted_jointly_recover_known_scales(oxygen):
    table, x, group, _ = oxygen
    torch.manual_seed(0)
    net = XsecNet(n_members=1, depth=1, width=4)
    net.freeze_all_but_last(0)
    for p in net.head.parameters():
        p.requires_grad_(False)
    truth = np.exp(predict_log(net, x)[0])
    scales = np.array([1.07, 0.95])
    data = truth * scales[group]
    model = NormalisedModel(net, 2)  # only the two lambdas are free
    settings = EnsembleSettings(
        train=train_settings(epochs=300, batch_size=256, lr=0.02, schedule="constant", device="cpu")
    )
    points = PointSet(x, data, 0.03 * data, group, np.array([np.inf, np.inf]))
    train_model(points, np.arange(len(x)), None, settings, init=model)
    assert np.allclose(model.lambdas.detach().numpy(), scales[None], atol=2e-3)


def test_chi2_loss_is_zero_at_the_truth(oxygen):
    table, x, group, prior = oxygen
    torch.manual_seed(0)
    net = XsecNet(n_members=1, depth=1, width=4).eval()
    truth = np.exp(predict_log(net, x)[0])
    loss = Chi2Loss.from_points(PointSet(x, truth, 0.05 * truth, group, prior), len(x), torch.device("cpu"))
    terms = loss(NormalisedModel(net, len(prior)), (torch.arange(len(x))[:, None],))
    assert float(terms["chi2"].detach()) < 1e-8 and float(terms["loss"].detach()) < 1e-8


def test_members_train_as_if_alone(oxygen):
    _, x, group, prior = oxygen
    xsec = oxygen[0]["xsec"].to_numpy()
    err = oxygen[0]["error"].to_numpy()
    train = np.arange(0, len(x), 2)
    settings = EnsembleSettings(
        members=2,
        depth=2,
        width=8,
        bootstrap=False,
        residual="log",  # far from the data the linear chi2 amplifies rounding differences
        train=train_settings(epochs=3, batch_size=16, schedule="constant", device="cpu"),
    )
    points = PointSet(x, xsec, err, group, prior)
    torch.manual_seed(5)
    init = XsecNet(n_members=2, depth=2, width=8)
    init.set_scaling(torch.as_tensor(x[train]), torch.as_tensor(np.log(xsec[train])))
    alone = NormalisedModel(init.select([1]), len(prior))
    both = train_model(points, train, None, settings, init=NormalisedModel(init, len(prior)))
    one = train_model(points, train, None, settings, init=alone)
    assert np.allclose(predict_log(both.model.net, x)[1], predict_log(one.model.net, x)[0], atol=1e-4)


def test_bootstrap_members_differ_and_mc_dropout_samples_vary(oxygen):
    table, x, group, prior = oxygen
    xsec, err = table["xsec"].to_numpy(), table["error"].to_numpy()
    settings = EnsembleSettings(
        members=3, depth=2, width=8, dropout=0.1, train=train_settings(epochs=5, batch_size=32, device="cpu")
    )
    fitted = train_model(PointSet(x, xsec, err, group, prior), np.arange(len(x)), None, settings)
    members = predict_log(fitted.model.net, x)
    assert members.shape == (3, len(x)) and np.ptp(members, axis=0).min() > 0
    samples = predict_log(fitted.model.net, x, mc_samples=4, seed=1)
    assert samples.shape == (12, len(x))
    assert np.array_equal(samples, predict_log(fitted.model.net, x, mc_samples=4, seed=1))
    mean, spread = band(samples)
    assert (mean > 0).all() and (spread > 0).any()


def test_coverage_of_a_calibrated_gaussian():
    rng = np.random.default_rng(0)
    n = 20_000
    spread, error = np.full(n, 0.3), np.full(n, 0.4)
    data = rng.normal(0, np.hypot(0.3, 0.4), n)
    cov = coverage(np.zeros(n), spread, np.ones(n), data, error)
    # binomial standard errors at n = 20000: 0.0033 and 0.0015; 4 sigma tolerance
    assert cov["1sigma"] == pytest.approx(0.6827, abs=0.014)
    assert cov["2sigma"] == pytest.approx(0.9545, abs=0.006)


def test_normalised_band_carries_each_members_lambda():
    # two members with the same cross section but different lambda_k: the spread is that of lambda
    log_samples = np.log(np.array([[2.0, 4.0, 8.0], [2.0, 4.0, 8.0]]))
    lambdas = np.array([[0.9, 1.0], [1.1, 1.0]])
    group = np.array([0, 0, 1])
    mean, spread = normalised_band(log_samples, lambdas, group)
    assert np.allclose(mean, [2.0, 4.0, 8.0])
    assert np.allclose(spread, [2.0 * np.std([0.9, 1.1], ddof=1), 4.0 * np.std([0.9, 1.1], ddof=1), 0.0])
    # dropout samples come member by member: sample s belongs to member s % M
    mean, _ = normalised_band(np.zeros((4, 3)), lambdas, group)
    assert np.allclose(mean, [1.0, 1.0, 1.0])


def test_misfit_fitted_on_other_points_calibrates_coverage():
    rng = np.random.default_rng(0)
    n = 20_000
    mean = rng.uniform(1.0, 100.0, n)
    spread, error = 0.01 * mean, 0.02 * mean
    tau = 0.03
    sigma = predictive_sigma(mean, spread, error, tau)
    assert np.allclose(sigma, mean * np.sqrt(0.01**2 + 0.02**2 + 0.03**2))
    fit_half, test_half = np.arange(n) < n // 2, np.arange(n) >= n // 2
    data = rng.normal(mean, sigma)
    fitted = fit_misfit(mean[fit_half], spread[fit_half], data[fit_half], error[fit_half])
    # ML on 10000 points: the relative error of the fitted total width is ~1/sqrt(2n) = 0.7%, i.e.
    # ~0.0003 on tau after propagation (sigma/tau factor ~1.25); allow 0.002
    assert fitted == pytest.approx(tau, abs=0.002)
    ones = np.ones(n // 2)
    args = (mean[test_half], spread[test_half], ones, data[test_half], error[test_half])
    cov = coverage(*args, misfit=fitted)
    # binomial standard errors at n = 10000: 0.0047 and 0.0021; ~4 sigma tolerance
    assert cov["1sigma"] == pytest.approx(0.6827, abs=0.02)
    assert cov["2sigma"] == pytest.approx(0.9545, abs=0.009)
    assert coverage(*args)["1sigma"] < 0.6  # without the misfit the band is too narrow
    # a data set whose lambda was not fitted adds its prior width
    assert coverage(*args, misfit=fitted, norm=0.5)["1sigma"] > 0.95


def test_student_t_fit_recovers_nu_scale_and_spread_scale_and_calibrates_coverage():
    # the model spread is twice too wide (kappa = 0.5) and varies independently of the misfit term
    rng = np.random.default_rng(3)
    n = 20_000
    mean = rng.uniform(1.0, 100.0, n)
    spread, error = 0.01 * mean * rng.uniform(0.2, 8.0, n), 0.02 * mean
    tau, nu, kappa = 0.03, 4.0, 0.5
    scale = predictive_sigma(mean, kappa * spread, error, tau)
    data = mean + scale * rng.standard_t(nu, n)
    fit_half, test_half = np.arange(n) < n // 2, np.arange(n) >= n // 2
    tau_fit, nu_fit, kappa_fit = fit_student_t(
        mean[fit_half], spread[fit_half], data[fit_half], error[fit_half]
    )
    # ML on 10000 t_4 points: the standard error of nu is ~0.2 (Fisher information), those of tau and
    # kappa a few percent of their values; allow ~4 standard errors
    assert nu_fit == pytest.approx(nu, abs=0.8)
    assert tau_fit == pytest.approx(tau, abs=0.004)
    assert kappa_fit == pytest.approx(kappa, abs=0.06)
    ones = np.ones(n // 2)
    args = (mean[test_half], spread[test_half], ones, data[test_half], error[test_half])
    cov = coverage(mean[test_half], kappa_fit * spread[test_half], *args[2:], tau_fit, nu=nu_fit)
    # binomial standard errors at n = 10000: 0.0047 and 0.0021; ~4 sigma tolerance
    assert cov["1sigma"] == pytest.approx(0.6827, abs=0.02)
    assert cov["2sigma"] == pytest.approx(0.9545, abs=0.009)
    # the spread taken at face value widens the band
    assert coverage(*args, tau_fit, nu=nu_fit)["1sigma"] > 0.74
    # the Gaussian fitted to the same heavy-tailed points is too wide at 1 sigma (t_4: ~0.77)
    gauss = coverage(
        *args, misfit=fit_misfit(mean[fit_half], spread[fit_half], data[fit_half], error[fit_half])
    )
    assert gauss["1sigma"] > 0.74


def test_student_t_fit_of_gaussian_points_goes_to_the_gaussian_limit():
    rng = np.random.default_rng(4)
    n = 10_000
    mean = np.ones(n)
    data = rng.normal(mean, 0.05)
    tau_fit, nu_fit, _ = fit_student_t(mean, np.zeros(n), data, np.full(n, 1e-4))
    assert nu_fit > 30
    assert tau_fit == pytest.approx(0.05, rel=0.03)
    # with nu at its upper bound the intervals are those of the Gaussian within a percent
    cov_t = coverage(mean, np.zeros(n), mean, data, np.full(n, 1e-4), tau_fit, nu=1e9)
    assert cov_t == coverage(mean, np.zeros(n), mean, data, np.full(n, 1e-4), misfit=tau_fit)


def test_linear_residual_matches_the_reported_chi2(oxygen):
    _, x, group, prior = oxygen
    torch.manual_seed(0)
    net = XsecNet(n_members=1, depth=1, width=4).eval()
    model = np.exp(predict_log(net, x)[0])
    data, error = 1.1 * model, 0.05 * model
    batch = (torch.arange(len(x))[:, None],)
    wide = np.full(len(prior), np.inf)  # no prior: the loss is the chi2 alone
    points = PointSet(x, data, error, group, wide)
    linear = Chi2Loss.from_points(points, len(x), torch.device("cpu"), "linear")
    expected, _ = chi2_per_point(model, data, error, group, wide, np.ones(len(prior)))
    got = float(linear(NormalisedModel(net, len(prior)), batch)["chi2"].detach())
    assert got == pytest.approx(expected, rel=1e-4) and expected == pytest.approx(4.0, rel=1e-4)
    log = Chi2Loss.from_points(points, len(x), torch.device("cpu"), "log")
    # log residual: log(model / data) / (error / data), with error / data = 0.05 / 1.1
    got_log = float(log(NormalisedModel(net, len(prior)), batch)["chi2"].detach())
    assert got_log == pytest.approx((np.log(1.1) / (0.05 / 1.1)) ** 2, rel=1e-4)


def test_hybrid_training_counts_both_stages(oxygen):
    table, x, group, prior = oxygen
    xsec, err = table["xsec"].to_numpy(), table["error"].to_numpy()
    settings = EnsembleSettings(
        members=2, depth=1, width=4, train=train_settings(epochs=5, batch_size=64, device="cpu")
    )
    assert settings.residual == "hybrid" and settings.train.schedule == "cosine"
    fitted = train_model(PointSet(x, xsec, err, group, prior), np.arange(len(x)), None, settings)
    assert fitted.passes == 5 and len(fitted.fit.history) == 5


def test_chi2_held_out_marginalises_the_prior_of_data_sets_without_training_points():
    # a data set with no training points: lambda = 1 and the prior width as a correlated uncertainty,
    # equal to the chi2 with the explicit covariance diag(e^2) + Delta^2 m m^T
    rng = np.random.default_rng(0)
    m = rng.uniform(1.0, 3.0, 12)
    e = 0.05 * m
    d = 1.08 * m + rng.normal(0, e)
    g, prior = np.zeros(12, int), np.array([0.05])
    cov = np.diag(e**2) + prior[0] ** 2 * np.outer(m, m)
    r = d - m
    expected = float(r @ np.linalg.solve(cov, r)) / 12
    got = chi2_held_out(m, d, e, g, prior, np.array([1.3]), np.array([False]))  # lambda ignored
    assert got == pytest.approx(expected, rel=1e-10)


def test_chi2_held_out_takes_lambdas_from_training_points_not_from_the_scored_ones():
    # the model matches the training points; one experiment's scored points sit 50 % higher: profiling
    # on the scored points hides that, lambdas from the training points do not
    rng = np.random.default_rng(1)
    m = rng.uniform(1.0, 3.0, 200)
    e = 0.02 * m
    g = np.repeat([0, 1], 100)
    prior = np.array([0.03, 0.03])
    train = np.r_[0:10, 100:110]
    held = np.setdiff1d(np.arange(200), train)
    d = m + rng.normal(0, e)
    d[held[g[held] == 1]] *= 1.5
    lam, fitted = lambdas_from_training(m[train], d[train], e[train], g[train], prior)
    assert fitted.all() and np.allclose(lam, 1.0, atol=0.02)
    honest = chi2_held_out(m[held], d[held], e[held], g[held], prior, lam, fitted)
    profiled = chi2_per_point(m[held], d[held], e[held], g[held], prior)[0]
    assert honest > 100 and profiled < honest / 3


def test_scaling_inputs_add_psi_prime_rising_through_each_spectrum():
    from numl_core.xsec.model import INPUTS, features

    table = load_nucleus("C", drop_lowest=1)
    x = features(table, INPUTS["scaling"])
    assert x.shape == (len(table), 6) and np.isfinite(x).all()
    psi = x[:, -1]
    # psi' grows with omega across every fixed (E, theta) spectrum and crosses 0 near the quasi-elastic peak
    for _, part in table.assign(psi=psi).groupby("setting"):
        assert np.all(np.diff(part.sort_values("omega")["psi"].to_numpy()) > 0)
    near_peak = np.abs(table["omega"] - table["omega_qe"]) < 0.01
    assert np.median(np.abs(psi[near_peak.to_numpy()])) < 0.2
    net = XsecNet(n_members=2, depth=2, width=8, features=INPUTS["scaling"])
    assert net(torch.as_tensor(x[:5])).shape == (2, 5) and net.hparams["features"][-1] == "psi_prime"


def test_anchor_keeps_fine_tuning_near_the_pretrained_weights(oxygen):
    table, x, group, prior = oxygen
    xsec, err = table["xsec"].to_numpy(), table["error"].to_numpy()
    points, train = PointSet(x, xsec, err, group, prior), np.arange(0, len(x), 3)
    torch.manual_seed(2)
    start = XsecNet(n_members=2, depth=2, width=8)
    start.set_scaling(torch.as_tensor(x), torch.as_tensor(np.log(xsec)))
    drift = {}
    for strength in (0.0, 1e6):
        settings = EnsembleSettings(
            members=2,
            depth=2,
            width=8,
            residual="log",
            anchor=strength,
            train=train_settings(epochs=60, batch_size=16, lr=3e-3, schedule="constant", device="cpu"),
        )
        net = copy.deepcopy(start)
        train_model(points, train, None, settings, init=NormalisedModel(net, len(prior)))
        moved = [(p - q).pow(2).sum() for p, q in zip(net.parameters(), start.parameters(), strict=True)]
        drift[strength] = float(sum(moved))
    # a strong pull keeps the weights within a small fraction of the free fine-tuning's distance
    assert drift[0.0] > 0 and drift[1e6] < 0.05 * drift[0.0]


def test_log_inputs_are_the_logs_and_ratios_of_the_kinematics():
    from numl_core.xsec.model import INPUTS, features

    table = load_nucleus("Al", drop_lowest=1)
    x = features(table, INPUTS["scaling_log"])
    assert np.allclose(x[:, 0], np.log(table["energy"]), rtol=1e-6)
    assert np.allclose(x[:, 2], table["omega"] / table["energy"], rtol=1e-5)
    assert np.allclose(x[:, 4], np.log(table["q2"]), rtol=1e-5, atol=1e-6)
    assert np.allclose(x[:, 5], features(table, INPUTS["scaling"])[:, 5])
