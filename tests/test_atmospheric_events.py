"""Atmospheric sample: PDG table, Honda flux, baseline, generator physics, selections and file layouts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from numl_core.data.generators import atmospheric_events as atm
from numl_core.data.generators.atmospheric_flux import (
    EARTH_RADIUS_KM,
    HOMESTAKE_DEPTH_KM,
    PRODUCTION_HEIGHT_KM,
    baseline_km,
    load_honda_table,
)
from numl_core.data.io import read_table, write_table
from numl_core.data.particles import charge_of, mass_of, thresholds_gev
from numl_core.data.reference import FILES_DIR, verify_checksums
from numl_core.data.schema import DataError
from numl_core.energy.data import flatten_lists


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return atm.generate(6000, seed=3)


def test_particle_table_known_values_and_errors():
    # PDG 2024: m_mu = 105.6584 MeV, m_p = 938.2721 MeV, m_pi+- = 139.5704 MeV
    assert mass_of(np.array([13, 2212, -211])) == pytest.approx([0.1056584, 0.9382721, 0.1395704], abs=1e-6)
    assert charge_of(np.array([11, -13, 111])).tolist() == [-1.0, 1.0, 0.0]
    thr = thresholds_gev(np.array([2212, 211, 111, 321, 13, 11, 2112, 14]))
    assert thr.tolist() == pytest.approx([0.025, 0.070, 0.050, 0.050, 0.005, 0.005, np.inf, np.inf])
    with pytest.raises(DataError, match="unknown PDG code 9999"):
        mass_of(np.array([13, 9999]))
    with pytest.raises(ValueError, match="unknown threshold kind"):
        thresholds_gev(np.array([2212]), {"proton": 10.0})
    with pytest.raises(ValueError, match=">= 0 MeV"):
        thresholds_gev(np.array([2212]), {"p": -1.0})


def test_honda_tables_parse_and_physics():
    assert all(verify_checksums(FILES_DIR / "honda_atm_flux_2015").values())
    kam, frj = load_honda_table("kam"), load_honda_table("frj")
    assert kam.values.shape == (20, 12, 101, 4) and frj.values.shape == (20, 1, 101, 4)
    assert frj.cos_edges[0] == -1.0 and frj.cos_edges[-1] == 1.0
    # the table value itself at a grid point (first block, first row of the Frejus file: 8215.0)
    assert frj.flux(14, 0.1, 0.95) == pytest.approx(8215.0)
    # README: nu_mu / nu_e ~ 2 near 1 GeV, rising with energy; flux falls roughly as E^-2.7 ... E^-3.7
    ratio_1 = frj.flux(14, 1.0, 0.55) / frj.flux(12, 1.0, 0.55)
    ratio_10 = frj.flux(14, 10.0, 0.55) / frj.flux(12, 10.0, 0.55)
    assert 1.7 < ratio_1 < 2.6 and ratio_10 > ratio_1
    slope = np.log(frj.flux(14, 100.0, 0.55) / frj.flux(14, 10.0, 0.55)) / np.log(10.0)
    assert -3.8 < slope < -2.6
    with pytest.raises(ValueError, match="no Honda flux"):
        frj.flux(16, 1.0, 0.0)


def test_baseline_limits():
    r, h, d = EARTH_RADIUS_KM, PRODUCTION_HEIGHT_KM, HOMESTAKE_DEPTH_KM
    assert baseline_km(1.0) == pytest.approx(h + d)
    assert baseline_km(-1.0) == pytest.approx(2 * r + h - d)
    assert baseline_km(0.0) == pytest.approx(np.sqrt((r + h) ** 2 - (r - d) ** 2))
    assert np.all(np.diff(baseline_km(np.linspace(-1, 1, 50))) < 0)


def test_generator_is_seeded_and_within_range(events):
    again = atm.generate(300, seed=3)
    pd.testing.assert_frame_equal(events.head(0), again.head(0))
    assert again["enu_truth"].tolist() == atm.generate(300, seed=3)["enu_truth"].tolist()
    assert again["enu_truth"].tolist() != atm.generate(300, seed=4)["enu_truth"].tolist()
    assert len(events) == 6000 and events["event_id"].tolist() == list(range(6000))
    assert events["enu_truth"].between(0.1, 100.0).all()
    # log-uniform in [0.1, 100] GeV puts 1/3 below 1 GeV; QE near the muon threshold is kinematically
    # forbidden for a few events, so allow 5 binomial sigmas (sqrt(p(1-p)/n) = 0.006) plus 0.02
    assert abs((events["enu_truth"] < 1.0).mean() - 1 / 3) < 5 * 0.006 + 0.02
    assert events["weight_physical"].mean() == pytest.approx(1.0)
    assert set(events["topology"]) <= set(atm.TOPOLOGIES)
    assert set(events["mode"]) == {"QE", "RES", "DIS"}


def test_generator_kinematics(events):
    direction = events[["nu_dcosx_truth", "nu_dcosy_truth", "nu_dcosz_truth"]].to_numpy()
    assert np.linalg.norm(direction, axis=1) == pytest.approx(np.ones(len(events)))
    momentum = events[["nu_px_truth", "nu_py_truth", "nu_pz_truth"]].to_numpy()
    assert np.linalg.norm(momentum, axis=1) == pytest.approx(events["enu_truth"].to_numpy())
    assert events["cos_zenith_truth"].to_numpy() == pytest.approx(-direction[:, 1])
    assert events["baseline_km_truth"].to_numpy() == pytest.approx(baseline_km(events["cos_zenith_truth"]))
    # isotropic: mean cos zenith 0 within 5 sigma (sigma = 1/sqrt(3 n))
    assert abs(events["cos_zenith_truth"].mean()) < 5 / np.sqrt(3 * len(events))
    # the outgoing lepton carries part of the neutrino energy and points forward on average
    lep = events[["lep_px_truth", "lep_py_truth", "lep_pz_truth"]].to_numpy()
    assert (events["lep_energy_truth"] < events["enu_truth"] + 0.3).all()
    assert np.mean(np.sum(lep * direction, axis=1) > 0) > 0.85
    # Q2 is non-negative and bounded by 2 M E (plus Fermi motion)
    assert (events["q2_truth"] >= -1e-9).all()
    assert (events["q2_truth"] <= 2 * 1.2 * events["enu_truth"] + 0.5).all()


def test_visible_lists_are_detector_level(events):
    cc = events["is_cc"].to_numpy()
    pdg = events["part_pdg"]
    lengths = pdg.map(len).to_numpy()
    assert (lengths == events["n_particles"].to_numpy()).all()
    flat = np.concatenate(list(pdg)).astype(int)
    # never a neutrino or a neutron in the visible lists (an NC event must not leak its outgoing neutrino)
    assert not np.isin(np.abs(flat), [12, 14, 16, 2112]).any()
    # CC nu_mu events mostly show their muon, CC nu_e events their electron
    numu_cc = cc & (events["nu_pdg"].to_numpy() == 14)
    has_mu = np.array([13 in set(x.astype(int)) for x in pdg])
    assert has_mu[numu_cc].mean() > 0.9 and has_mu[~cc].mean() < 0.05
    # visible energy is a fraction of E_nu: smaller on average for NC (the neutrino escapes)
    ratio = events["vis_energy"] / events["enu_truth"]
    assert ratio[cc].median() > 0.8 and ratio[~cc].median() < ratio[cc].median()
    assert (events["invisible_energy"][~cc] > 0).mean() > 0.95


def test_thresholds_and_selection(events):
    raised = atm.apply_thresholds(events, {"p": 100.0})
    pdg = np.concatenate(list(raised["part_pdg"])).astype(int)
    kinetic = np.concatenate(list(raised["part_energy"])) - np.concatenate(list(raised["part_mass"]))
    assert (kinetic[pdg == 2212] >= 0.1).all()
    assert raised["n_particles"].sum() < events["n_particles"].sum()
    low = atm.generate(500, seed=1, thresholds_mev={"p": 0.0})
    high = atm.generate(500, seed=1, thresholds_mev={"p": 200.0})
    assert low["n_particles"].sum() > high["n_particles"].sum()
    sel = atm.select(events, ["CC1p0pi"], "0.1-1")
    assert len(sel) > 0 and (sel["topology"] == "CC1p0pi").all() and (sel["enu_truth"] <= 1.0).all()
    with pytest.raises(ValueError, match="energy_range"):
        atm.select(events, None, "1-2")
    with pytest.raises(ValueError, match="unknown topologies"):
        atm.select(events, ["CC2p"])
    with pytest.raises(ValueError, match="n_events"):
        atm.generate(0, seed=1)


def test_topology_labels_by_hand():
    frame = pd.DataFrame(
        {
            "is_cc": [True, True, True, False, False, True],
            "part_pdg": [
                np.array([13.0, 2212.0]),
                np.array([13.0, 2212.0, 2212.0]),
                np.array([13.0, 2212.0, 211.0]),
                np.array([2212.0]),
                np.array([2212.0, 2212.0, 111.0]),
                np.array([13.0]),
            ],
        }
    )
    assert list(atm.topology_labels(frame)) == ["CC1p0pi", "CCNp0pi", "CCX", "NC1p0pi", "NCX", "CCX"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".root"])
def test_round_trip_in_every_format(tmp_path, suffix):
    events = atm.generate(200, seed=2)
    cols = ["event_id", *atm.VECTOR_COLUMNS, *atm.SCALAR_COLUMNS, *atm.TARGET_COLUMNS]
    path = write_table(events[cols], tmp_path / f"events{suffix}")
    back = read_table(path)
    lengths, flat = flatten_lists(back, list(atm.VECTOR_COLUMNS), str(path))
    lengths0, flat0 = flatten_lists(events, list(atm.VECTOR_COLUMNS))
    assert lengths.tolist() == lengths0.tolist()
    for c in atm.VECTOR_COLUMNS:
        assert flat[c] == pytest.approx(flat0[c])
    assert back["enu_truth"].to_numpy() == pytest.approx(events["enu_truth"].to_numpy())
    if suffix == ".csv":
        # transformer_EE's layout: one comma-separated string per list cell
        raw = pd.read_csv(path)
        first = raw["part_energy"].iloc[0]
        assert isinstance(first, str) and len(first.split(",")) == events["n_particles"].iloc[0]
