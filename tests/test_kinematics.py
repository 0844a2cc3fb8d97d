"""Kinematics helpers against hand-computed values and exact identities."""

from __future__ import annotations

import numpy as np
import pytest

from numl_core.data.kinematics import (
    MUON_MASS,
    NUCLEON_MASS,
    boost,
    energy_from_momentum,
    energy_transfer,
    kinetic_energy,
    minkowski_square,
    momentum_components,
    q2_cc,
    spherical_components,
    transverse_imbalance,
    two_body_momentum,
)


def test_momentum_components_beam_along_z():
    px, py, pz = momentum_components(
        np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, -1.0]), np.array([0.3, 0.0, 1.0])
    )
    np.testing.assert_allclose(px, [0.0, 2.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(py, [0.0, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(pz, [1.0, 0.0, -3.0], atol=1e-15)


def test_spherical_components_round_trip():
    rng = np.random.default_rng(0)
    p, cos, phi = rng.uniform(0.1, 2.0, 100), rng.uniform(-1, 1, 100), rng.uniform(-np.pi, np.pi, 100)
    back = spherical_components(*momentum_components(p, cos, phi))
    np.testing.assert_allclose(back, (p, cos, phi), atol=1e-12)


def test_back_to_back_transverse_momenta_balance():
    # muon pT = 0.4 along +x (p = 0.5, cos = 0.6); proton pT = 0.4 along -x (p = 0.5, cos = 0.6, phi = pi)
    dpt, dalphat, dphit = transverse_imbalance(0.5, 0.6, 0.0, 0.5, 0.6, np.pi)
    assert dpt == 0.0
    assert dphit == pytest.approx(0.0, abs=1e-7)
    assert np.isnan(dalphat)  # the direction of a vanishing dp_T is undefined


def test_ninety_degree_case():
    # pT(mu) = (1, 0), pT(p) = (0, 1): dpT = (1, 1) -> |dpT| = sqrt(2);
    # dphiT = arccos(-(pTmu . pTp)) = arccos(0) = pi/2; dalphaT = arccos(-(1*1 + 0*1)/(1*sqrt 2)) = 3 pi/4
    dpt, dalphat, dphit = transverse_imbalance(1.0, 0.0, 0.0, 1.0, 0.0, np.pi / 2)
    assert dpt == pytest.approx(np.sqrt(2.0))
    assert dphit == pytest.approx(np.pi / 2)
    assert dalphat == pytest.approx(3 * np.pi / 4)


@pytest.mark.parametrize(("proton_pt", "expected_alpha"), [(0.5, np.pi), (1.5, 0.0)])
def test_dalphat_collinear_limits(proton_pt, expected_alpha):
    # pT(mu) = (1, 0), pT(p) = (-proton_pt, 0): dpT = (1 - proton_pt, 0), antiparallel to pTmu when
    # proton_pt > 1 (dalphaT = 0, "accelerated" final state) and parallel otherwise (dalphaT = pi)
    dpt, dalphat, dphit = transverse_imbalance(1.0, 0.0, 0.0, proton_pt, 0.0, np.pi)
    assert dpt == pytest.approx(abs(1.0 - proton_pt))
    assert dalphat == pytest.approx(expected_alpha, abs=1e-7)
    assert dphit == pytest.approx(0.0, abs=1e-7)


def test_stv_ignore_longitudinal_momenta_and_common_rotation():
    rng = np.random.default_rng(3)
    mu_p, p_p = rng.uniform(0.3, 1.0, 50), rng.uniform(0.4, 1.0, 50)
    mu_cos, p_cos = rng.uniform(-0.5, 0.9, 50), rng.uniform(0.0, 0.9, 50)
    mu_phi, p_phi = rng.uniform(-np.pi, np.pi, 50), rng.uniform(-np.pi, np.pi, 50)
    ref = transverse_imbalance(mu_p, mu_cos, mu_phi, p_p, p_cos, p_phi)
    rotated = transverse_imbalance(mu_p, mu_cos, mu_phi + 0.7, p_p, p_cos, p_phi + 0.7)
    # same transverse momentum p sin(theta) with a longer longitudinal component
    mu_pt = mu_p * np.sqrt(1 - mu_cos**2)
    stretched_p = np.hypot(mu_pt, 2.0)
    stretched = transverse_imbalance(stretched_p, 2.0 / stretched_p, mu_phi, p_p, p_cos, p_phi)
    np.testing.assert_allclose(rotated, ref, atol=1e-9)
    np.testing.assert_allclose(stretched, ref, atol=1e-9)
    assert np.all((ref[1] >= 0) & (ref[1] <= np.pi) & (ref[2] >= 0) & (ref[2] <= np.pi))


def test_q2_known_value():
    # E_nu = 1 GeV, p_mu = 0.5 GeV/c at cos = 0.8: E_mu = sqrt(0.25 + 0.1056584^2) = 0.5110418,
    # Q^2 = 2 * 1 * (0.5110418 - 0.4) - 0.1056584^2 = 0.2220836 - 0.0111637 = 0.2109199 GeV^2
    e_mu = energy_from_momentum(0.5, MUON_MASS)
    assert e_mu == pytest.approx(0.5110418, abs=1e-7)
    assert q2_cc(1.0, e_mu, 0.5, 0.8, MUON_MASS) == pytest.approx(0.2109199, abs=1e-7)
    assert energy_transfer(1.0, e_mu) == pytest.approx(0.4889582, abs=1e-7)


def test_q2_equals_minus_q_squared():
    rng = np.random.default_rng(1)
    enu, p, cos, phi = (
        rng.uniform(0.3, 3, 20),
        rng.uniform(0.1, 0.3, 20),
        rng.uniform(-1, 1, 20),
        rng.uniform(-3, 3, 20),
    )
    e = energy_from_momentum(p, MUON_MASS)
    lepton = np.stack([e, *momentum_components(p, cos, phi)], axis=1)
    beam = np.stack([enu, 0 * enu, 0 * enu, enu], axis=1)
    np.testing.assert_allclose(q2_cc(enu, e, p, cos, MUON_MASS), -minkowski_square(beam - lepton), rtol=1e-12)


def test_kinetic_energy_and_boost_invariance():
    # a proton with T = 0.1 GeV has p = sqrt(T^2 + 2 M T) = 0.4450 GeV/c
    p = np.sqrt(0.1**2 + 2 * NUCLEON_MASS * 0.1)
    assert kinetic_energy(p, NUCLEON_MASS) == pytest.approx(0.1)
    rng = np.random.default_rng(2)
    p4 = np.column_stack([np.full(10, 3.0), rng.uniform(-1, 1, (10, 3))])
    beta = rng.uniform(-0.5, 0.5, (10, 3))
    boosted = boost(p4, beta)
    np.testing.assert_allclose(minkowski_square(boosted), minkowski_square(p4), rtol=1e-12)
    np.testing.assert_allclose(boost(boosted, -beta), p4, atol=1e-12)


def test_two_body_momentum():
    # Delta(1232) -> N pi with M = 0.938919, m = 0.13957: W^2 = 1.517824, (M+m)^2 = 1.163262,
    # (M-m)^2 = 0.638985, p* = sqrt(0.354562 * 0.878839) / 2.464 = 0.22659 GeV/c
    assert two_body_momentum(1.232, NUCLEON_MASS, 0.13957) == pytest.approx(0.22659, abs=1e-5)
    assert np.isnan(two_body_momentum(1.0, NUCLEON_MASS, 0.13957))
