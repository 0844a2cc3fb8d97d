"""Three-flavour oscillation in constant-density matter against known limits."""

from __future__ import annotations

import numpy as np
import pytest

from numl_core.data.generators import atmospheric_events as atm
from numl_core.data.generators.atmospheric_oscillation import (
    KM_PER_EV2_OVER_GEV,
    MATTER_POTENTIAL_PER_KM,
    OscillationParameters,
    electron_density,
    oscillation_weights,
    probabilities,
)
from numl_core.energy.weights import event_weights

RNG = np.random.default_rng(3)
N = 400
PDG = RNG.choice([12, 14, -12, -14], N)
ENERGY = 10 ** RNG.uniform(-1, 2, N)
BASELINE = RNG.uniform(15, 12_800, N)
DENSITY = RNG.uniform(0, 6, N)


def test_unitarity_sum_over_final_flavours():
    p = probabilities(PDG, ENERGY, BASELINE, DENSITY)
    assert p.shape == (N, 3) and (p >= -1e-12).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-10)


def test_vacuum_two_flavour_limit():
    # theta13 = theta12 = 0 and dm21 = 0 leave nu_mu <-> nu_tau with theta23 and dm31 only
    params = OscillationParameters(theta12=0.0, theta13=0.0, dm21=0.0)
    p = probabilities(np.full(N, 14), ENERGY, BASELINE, 0.0, params)
    phase = 1.26693 * params.dm31 * BASELINE / ENERGY
    survival = 1.0 - np.sin(2 * params.theta23) ** 2 * np.sin(phase) ** 2
    np.testing.assert_allclose(p[:, 1], survival, atol=1e-9)
    np.testing.assert_allclose(p[:, 0], 0.0, atol=1e-12)


def test_matter_two_flavour_msw_limit():
    # theta23 = pi/2, theta12 = 0, dm21 = 0: nu_e <-> nu_mu with theta13 in matter (MSW formula),
    # sin^2 2theta_m = sin^2 2theta / ((cos 2theta - A)^2 + sin^2 2theta), A = 2 E V / dm^2
    params = OscillationParameters(theta12=0.0, theta23=np.pi / 2, dm21=0.0, delta_cp=0.0)
    energy = np.full(N, 6.0)
    p = probabilities(np.full(N, 12), energy, BASELINE, DENSITY, params)
    dm = params.dm31 * KM_PER_EV2_OVER_GEV / energy  # dm^2 / 2E [1/km]
    a = MATTER_POTENTIAL_PER_KM * DENSITY / dm
    s2, c2 = np.sin(2 * params.theta13), np.cos(2 * params.theta13)
    root = np.sqrt((c2 - a) ** 2 + s2**2)
    expected = s2**2 / root**2 * np.sin(0.5 * dm * root * BASELINE) ** 2
    np.testing.assert_allclose(p[:, 1], expected, atol=1e-9)
    # antineutrinos see -V: no resonance, smaller conversion for these normal-ordering parameters
    anti = probabilities(np.full(N, -12), energy, BASELINE, DENSITY, params)
    assert anti[:, 1].max() < 0.5 < p[:, 1].max()


def test_electron_density_of_paths():
    rho = electron_density(np.array([1.0, 0.0, -0.5, -1.0]))
    # downward: 1.48 km of rock in 16.5 km; through the core the mean exceeds the mantle's alone
    assert rho[0] == pytest.approx(4.45 * 0.494 * 1.48 / 16.48, rel=1e-3)
    assert rho[2] == pytest.approx(4.45 * 0.494, rel=1e-2)
    assert rho[3] > 3.0 and np.all(np.diff(rho) > 0)


def test_oscillation_weights_of_the_sample():
    events = atm.generate(3000, seed=2)
    w = oscillation_weights(events)
    nc = ~events["is_cc"].to_numpy(bool)
    np.testing.assert_array_equal(w[nc], 1.0)
    up_mu = (events["nu_pdg"].to_numpy() == 14) & (events["cos_zenith_truth"].to_numpy() < -0.5) & ~nc
    low = up_mu & (events["enu_truth"].to_numpy() < 10)
    down_mu = (events["nu_pdg"].to_numpy() == 14) & (events["cos_zenith_truth"].to_numpy() > 0.5) & ~nc
    down_mu &= events["enu_truth"].to_numpy() > 1.0
    # upward nu_mu below 10 GeV disappear (mean survival about 1/2); downward ones above 1 GeV fly
    # < 40 km: 1.27 dm31 L / E < 0.13, so they keep > 98% (and gain < 1% from nu_e)
    assert 0.3 < w[low].mean() < 0.75
    np.testing.assert_allclose(w[down_mu], 1.0, atol=0.03)
    named = event_weights(events, "oscillated", "enu_truth")
    physical = events["weight_physical"].to_numpy() * w
    np.testing.assert_allclose(named, physical / physical.mean())
