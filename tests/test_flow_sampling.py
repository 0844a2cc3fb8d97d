"""Importance-sampling figures and histogram metrics, and the unbiasedness of flow importance sampling."""

import math

import numpy as np
import pytest
import torch

from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.generator import sampling as smp
from numl_core.generator.model import FlowSpec, GeneratorFlow


def test_ress_and_integral_error_known_values():
    w = np.array([1.0, 1.0, 2.0, 4.0])
    assert smp.relative_ess(w) == pytest.approx(64 / (4 * 22))
    assert smp.relative_integral_error(np.ones(10)) == 0.0


def test_cap_weights_bias_and_errors():
    w = np.r_[np.ones(99), 101.0]
    c = smp.cap_weights(w, 0.99)
    assert 1.0 < c.cap < 101.0 and c.weights.max() == c.cap
    assert c.bias == pytest.approx((w.sum() - c.weights.sum()) / w.sum())
    assert smp.cap_weights(w, 1.0).bias == 0.0
    with pytest.raises(ValueError, match="quantile"):
        smp.cap_weights(w, 0.0)


def test_unweighting_efficiency_and_hit_or_miss_rate():
    rng = np.random.default_rng(0)
    w = rng.exponential(1.0, 200_000)
    u = smp.unweighting_efficiency(w, seed=1)
    keep, resid = smp.unweight(w, u.w_max, seed=2)
    # kept fraction ~ Binomial(N, eff): 5 standard deviations
    n = len(w)
    assert abs(len(keep) / n - u.efficiency) < 5 * math.sqrt(u.efficiency / n)
    # replicas of 10 % of the sample: about 1 event in 0.1 N * 2 lies above the median maximum
    assert (resid >= 1).all() and 0 < u.overweight_fraction < 1e-3 and (resid > 1).sum() > 0
    with pytest.raises(ValueError, match="non-negative"):
        smp.unweighting_efficiency(np.array([1.0, -1.0]))


def test_histogram_quality_of_a_perfect_sample_has_unit_pulls():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(400))
    reference = p * 1e7  # effectively exact reference
    counts = rng.multinomial(100_000, p).astype(float)
    q = smp.histogram_quality(counts, reference, reference * 1e-7 * 0)
    # RMS of ~400 unit pulls: 1 within ~5/sqrt(2*400)
    assert abs(q.rms_pull - 1) < 0.18
    entropy = -np.sum(p * np.log(p))
    assert q.mnll == pytest.approx(entropy, abs=0.02)
    biased = rng.multinomial(100_000, np.roll(p, 1)).astype(float)
    assert smp.histogram_quality(biased, reference, reference * 0).rms_pull > 3


def test_binning_from_reference_and_index_range():
    rng = np.random.default_rng(4)
    y = np.column_stack([rng.uniform(-1, 1, 5000), rng.uniform(0, 1, 5000), rng.uniform(-1, 1, (5000, 2))])
    b = smp.HistogramBinning.from_reference(y, np.ones(5000), 4)
    assert b.n_bins == 256
    h = b.histogram(y)
    assert h.sum() == 5000 and h.min() > 0


def test_flow_importance_sampling_is_unbiased():
    # an untrained flow is a valid proposal: mean(f/q) must reproduce the quadrature sigma(E) within
    # 4 of its own standard errors
    torch.manual_seed(0)
    model = ex.carbon_model("1p3/2", removal_quadrature="hermite", energy_nodes=2)
    flow = GeneratorFlow(FlowSpec.preset("S", {"enu": (0.2, 1.0)}, transforms=2, hidden=16))
    flux = ex.Flux.flat(0.7999, 0.8001, bins=1)
    s = smp.sample_flow(flow, 150_000, flux, seed=1, target=model)
    w = s.weights
    est, err = w.mean(), w.std() / math.sqrt(len(w))
    exact = ex.total_cross_section(0.8, model, n_cos=16, n_omega=100)
    assert abs(est - exact) < 4 * err, (est, exact, err)
    report = smp.sampler_report(s)
    assert 0 < report.ress <= report.ress_capped <= 1 and report.cap_bias >= 0


def test_emulator_mode_and_energy_range_checks():
    flow = GeneratorFlow(FlowSpec.preset("S", {"enu": (0.2, 1.0)}, transforms=2, hidden=16))
    s = smp.sample_flow(flow, 100, ex.Flux.flat(0.3, 0.9), seed=0)
    assert np.isnan(s.f.numpy()).all() and s.x.shape == (100, 4)
    frame = smp.events_frame(s.x, s.enu)
    assert list(frame.columns) == ["enu", *ex.VARIABLES]
    with pytest.raises(ValueError, match="beyond the flow's range"):
        smp.flux_averaged_bound_check(flow, ex.carbon_model(), ex.Flux.flat(0.3, 2.0))
    with pytest.raises(ValueError, match="outside the flow's trained range"):
        smp.sample_flow(flow, 10, ex.Flux.flat(0.3, 2.0), seed=0)


def test_marginals_1d_and_2d_ratios_of_same_distribution_have_unit_pulls():
    # two independent samples of one distribution: pulls are standard normal, so their RMS over
    # 3 pairs x 64 bins (~190 values) is 1 within ~4 * 1/sqrt(2 * 190) = 0.2
    rng = np.random.default_rng(5)

    def draw(n):
        x = np.column_stack(
            [
                np.clip(rng.normal(0.5, 0.3, n), -1, 1),
                rng.uniform(0, 0.4, n),
                rng.uniform(-1, 1, n),
                rng.uniform(-np.pi, np.pi, n),
            ]
        )
        return x, np.full(n, 0.6), None

    samples = {"reference": draw(40_000), "flow": draw(40_000)}
    m2 = smp.marginal_histograms_2d(samples, 0.1, bins=8)
    r2 = smp.marginal_ratios(m2)
    assert set(r2["sample"]) == {"flow"} and {"x_variable", "y_low", "ratio", "pull"} <= set(r2.columns)
    assert abs(float(np.sqrt(np.mean(r2["pull"] ** 2))) - 1) < 0.2
    # each pair's density integrates to one
    vol = (m2["x_high"] - m2["x_low"]) * (m2["y_high"] - m2["y_low"]) * m2["density"]
    np.testing.assert_allclose(vol.groupby([m2["sample"], m2["x_variable"]]).sum(), 1.0)
    r1 = smp.marginal_ratios(smp.marginal_histograms(samples, 0.1, bins=20))
    assert len(r1) <= 80 and abs(float(np.sqrt(np.mean(r1["pull"] ** 2))) - 1) < 0.3
    # a distorted sample is seen: a 30% tilt in cos_mu gives large pulls
    x, e, _ = draw(40_000)
    keep = rng.random(len(x)) < 0.7 + 0.3 * x[:, 0]
    distorted = {**samples, "flow": (x[keep], e[keep], None)}
    tilted = smp.marginal_ratios(smp.marginal_histograms_2d(distorted, 0.1, bins=8))
    muon = tilted[tilted["x_variable"] == "cos_mu"]
    assert float(np.sqrt(np.mean(muon["pull"] ** 2))) > 2.0


def test_event_rate_energies_flatten_weights_and_keep_the_integral():
    # E_nu drawn from flux x sigma(E) (tabulated from the flow) with weights x flux / event rate: the
    # flux-averaged cross section is unchanged within 4 standard errors, and the mean weight no longer
    # follows sigma(E): each energy quarter's mean sits within 4 of its standard errors of the total
    torch.manual_seed(0)
    model = ex.carbon_model("1p3/2", removal_quadrature="hermite", energy_nodes=2)
    flow = GeneratorFlow(FlowSpec.preset("S", {"enu": (0.2, 1.0)}, transforms=2, hidden=16))
    flux = ex.Flux.flat(0.3, 0.9)
    rate = smp.event_rate(flow, flux, model, bins=16, n_per_bin=4000, seed=3)
    assert rate.range == flux.range and (rate.density > 0).all()
    sigma = rate.density / flux.pdf((rate.edges[:-1] + rate.edges[1:]) / 2)
    assert sigma[-1] > 2 * sigma[0]  # sigma(E) rises from 0.3 to 0.9 GeV
    plain = smp.sample_flow(flow, 100_000, flux, seed=1, target=model)
    ratey = smp.sample_flow(flow, 100_000, flux, seed=2, target=model, energies=rate)
    means = []
    for s in (plain, ratey):
        w = s.weights
        means.append((w.mean(), w.std() / math.sqrt(len(w))))
    (m0, e0), (m1, e1) = means
    assert abs(m0 - m1) < 4 * math.hypot(e0, e1), means
    w, enu = ratey.weights, ratey.enu.numpy()
    quarter = np.minimum(((enu - 0.3) / 0.15).astype(int), 3)
    for k in range(4):
        wk = w[quarter == k]
        assert abs(wk.mean() - m1) < 4 * math.hypot(wk.std() / math.sqrt(len(wk)), e1), (k, wk.mean(), m1)
    assert (
        np.histogram(enu, bins=[0.3, 0.45, 0.6, 0.75, 0.9])[0][-1]
        > 1.5 * np.histogram(enu, bins=[0.3, 0.45])[0][0]
    )


def test_mnll_error_matches_the_spread_over_repeated_samples():
    # 300 samples of 2000 events from one histogram: the quoted standard error is the spread of the MNLL
    # (the spread of 300 values is known to 1 / sqrt(2 x 299) = 4 %: 15 % is almost 4 sigma)
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(40))
    ref = p * 1e6
    values, errors = [], []
    for _ in range(300):
        q = smp.histogram_quality(rng.multinomial(2000, p).astype(float), ref, ref)
        values.append(q.mnll)
        errors.append(q.mnll_error)
    assert np.mean(errors) == pytest.approx(np.std(values, ddof=1), rel=0.15)
    # and the mean MNLL is the reference's entropy within a few standard errors of the mean
    entropy = float(-(p * np.log(p)).sum())
    assert abs(np.mean(values) - entropy) < 4 * np.mean(errors) / math.sqrt(300)


def test_flux_quantile_maps_uniform_numbers_onto_the_spectrum():
    flux = ex.Flux(np.array([0.2, 0.3, 0.5, 1.0]), np.array([4.0, 1.0, 0.2]))
    e = flux.quantile(np.random.default_rng(1).random(200_000))
    counts = np.histogram(e, bins=flux.edges)[0]
    mass = flux.density * np.diff(flux.edges)
    expected = 200_000 * mass / mass.sum()
    # binomial pulls of each bin's count within 5 sigma
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    assert flux.quantile(np.array([0.0, 1.0])).tolist() == [0.2, 1.0]
