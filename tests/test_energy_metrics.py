"""Resolution metrics against distributions with known answers, and the baseline estimators by hand."""

from __future__ import annotations

import numpy as np
import pytest

from numl_core.energy import baselines, metrics


def test_gaussian_resolution_recovers_sigma():
    rng = np.random.default_rng(0)
    e_true = rng.uniform(1, 10, 40_000)
    e_reco = e_true * (1 + 0.02 + 0.1 * rng.standard_normal(len(e_true)))
    r = metrics.energy_resolution(e_reco, e_true)
    # Gaussian: half the 16-84% width equals sigma; the sample quantile error is ~sigma * 1.1 / sqrt(n) ~ 6e-4
    assert r["res68"] == pytest.approx(0.1, abs=0.003)
    assert r["rms"] == pytest.approx(0.1, abs=0.003) and r["bias"] == pytest.approx(0.02, abs=0.002)
    assert r["n"] == 40_000


def test_opening_angles_and_direction_resolution():
    u_true = np.tile([0.0, 0.0, 1.0], (4, 1))
    tilt = np.radians([0.0, 5.0, 10.0, 20.0])
    u_reco = np.stack([np.sin(tilt), np.zeros(4), np.cos(tilt)], axis=1) * 3.0
    assert metrics.opening_angle_deg(u_reco, u_true) == pytest.approx([0.0, 5.0, 10.0, 20.0])
    d = metrics.direction_resolution(u_reco, u_true)
    assert d["within7"] == 0.5 and d["within15"] == 0.75
    # straight down-going (cos zenith = -u_y): vertical neutrinos have L = 16.48 km
    down = np.tile([0.0, -1.0, 0.0], (3, 1))
    assert metrics.direction_resolution(down, down)["baseline68"] == pytest.approx(0.0, abs=1e-9)


def test_resolution_table_and_bins():
    e_true = np.array([1.0, 2.0, 4.0, 8.0])
    table = metrics.resolution_table(
        e_true, {"a": e_true * 1.1}, {"channel": np.array(["CC", "CC", "NC", "NC"])}
    )
    assert set(table["group"]) == {"all", "CC", "NC"}
    assert table["bias"].to_numpy() == pytest.approx([0.1, 0.1, 0.1])
    binned = metrics.binned_energy_resolution(e_true, {"a": e_true}, np.array([0.5, 3.0, 10.0]))
    assert binned["n"].tolist() == [2, 2] and binned["res68"].tolist() == [0.0, 0.0]
    heat = metrics.histogram2d(e_true, e_true)
    assert heat["counts"].sum() == 4 and np.trace(heat["counts"]) == 4


def test_calorimetric_and_directions_by_hand():
    roles = {"pdg": 0, "energy": 1, "px": 2, "py": 3, "pz": 4}
    m_p = 0.9382721
    # a muon (E 1.0 along z) and a proton (T 0.1), padding slot last
    vector = np.array([[[13, 1.0, 0, 0, 0.994], [2212, m_p + 0.1, 0.4, 0, 0], [0, 0, 0, 0, 0]]], float)
    mask = np.array([[False, False, True]])
    # E_cal = E_mu + T_p + removal energy (30 MeV)
    assert baselines.calorimetric_energy(vector, mask, roles) == pytest.approx([1.0 + 0.1 + 0.03])
    np.testing.assert_allclose(baselines.visible_momentum(vector, mask, roles), [[0.4, 0.0, 0.994]])
    np.testing.assert_allclose(baselines.lepton_or_visible_direction(vector, mask, roles), [[0.0, 0.0, 1.0]])
    lep, mass = baselines.leading_lepton(vector, mask, roles)
    assert lep[0, 0] == 1.0 and mass[0] == pytest.approx(0.1056584, abs=1e-6)
    assert baselines.summed_features(vector, mask, roles, np.zeros((1, 2))).shape == (1, 18)
    assert baselines.particle_roles(["part_pdg", "part_energy", "part_px", "part_py", "part_pz"]) == roles
    assert baselines.particle_roles(["png.calE"]) is None
