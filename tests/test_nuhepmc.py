"""NuHepMC reader against the shipped NEUT sample, read independently as plain text."""

from __future__ import annotations

import numpy as np
import pytest

from numl_core.data.nuhepmc import read_nuhepmc
from numl_core.data.reference import FILES_DIR, verify_checksums
from numl_core.data.schema import DataError

NEUT = FILES_DIR / "neut_nuhepmc_events" / "neut.vect.hepmc"


def _text_oracle() -> tuple[list[float], int]:
    """Beam energies [GeV] of events without a Pauli-blocked particle, read from the ASCII lines."""
    energies, blocked, current, is_blocked = [], 0, None, False
    for line in NEUT.read_text().splitlines() + ["E end"]:
        if line.startswith("E "):
            if current is not None:
                if is_blocked:
                    blocked += 1
                else:
                    energies.append(current)
            current, is_blocked = None, False
        elif line.startswith("P "):
            fields = line.split()
            status, energy = int(fields[-1]), float(fields[7])
            if status == 4:
                current = energy / 1000.0
            is_blocked |= status == 31
    return energies, blocked


def test_neut_sample_matches_the_text():
    assert all(verify_checksums(NEUT.parent).values())
    events = read_nuhepmc(NEUT)
    energies, blocked = _text_oracle()
    # README: 1000 events; the convention skips Pauli-blocked ones
    assert blocked == 17 and len(events) == 1000 - blocked
    assert events["enu_truth"].to_numpy() == pytest.approx(np.array(energies))
    # README: mean E_nu ~ 1.76 GeV; nu_mu beam along +z
    assert events["enu_truth"].mean() == pytest.approx(1.76, abs=0.02)
    assert (events["nu_pdg"] == 14).all() and events["nu_dcosz_truth"].to_numpy() == pytest.approx(1.0)
    assert events["event_id"].is_unique


def test_neut_final_state_is_detector_level():
    events = read_nuhepmc(NEUT, max_events=200)
    flat = np.concatenate(list(events["part_pdg"])).astype(int)
    assert not np.isin(np.abs(flat), [12, 14, 2112]).any()
    kinetic = np.concatenate(list(events["part_energy"])) - np.concatenate(list(events["part_mass"]))
    assert (kinetic[flat == 2212] >= 0.025).all()
    cc = events["is_cc"].to_numpy()
    has_mu = np.array([13 in set(x.astype(int)) for x in events["part_pdg"]])
    assert has_mu[cc].all() and not has_mu[~cc].any()
    # energy is conserved up to the nuclear target: visible energy below E_nu (+ Fermi motion)
    assert (events["vis_energy"] < events["enu_truth"] + 0.3).all()
    lowered = read_nuhepmc(NEUT, max_events=200, thresholds_mev={"p": 0.0})
    assert lowered["n_particles"].sum() > events["n_particles"].sum()


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_nuhepmc(tmp_path / "missing.hepmc")
    text = NEUT.read_text().splitlines()
    header = [line for line in text[:200] if not line.startswith(("E ", "U ", "V ", "P ", "A "))]
    header = [line for line in header if not line.startswith("HepMC::Asciiv3-END")]
    event = [
        "E 0 1 3",
        "U MEV MM",
        "P 1 0 14 0 0 1000 1000 0 4",
        "P 2 0 2112 0 0 0 939.5 939.5 11",
        "V -1 0 [1,2]",
        "P 3 -1 9999999 0 0 500 800 0 1",
    ]
    bad = tmp_path / "bad.hepmc"
    bad.write_text("\n".join([*header, *event, "HepMC::Asciiv3-END_EVENT_LISTING", ""]))
    with pytest.raises(DataError, match="unknown PDG code 9999999"):
        read_nuhepmc(bad)
