"""Shipped reference data: checksums, and the facts the folder READMEs state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from numl_core.data.reference import (
    FILES_DIR,
    FLUX_DETECTORS,
    FLUX_FLAVOURS,
    FLUX_HORNS,
    STV_VARIABLES,
    load_t2k_flux,
    load_t2k_stv,
    verify_checksums,
)

FOLDERS = ("t2k_flux_2016", "t2k_cc0pi_stv_2018")
# bin edges from the table in t2k_cc0pi_stv_2018/README.md
README_EDGES = {
    "dpt": [1e-7, 0.08, 0.12, 0.155, 0.2, 0.26, 0.36, 0.51, 1.1],
    "dalphat": [1e-7, 0.47, 1.02, 1.54, 1.98, 2.34, 2.64, 2.89, 3.1416],
    "dphit": [1e-7, 0.067, 0.14, 0.225, 0.34, 0.52, 0.85, 1.5, 3.1416],
}


@pytest.mark.parametrize("folder", FOLDERS)
def test_shipped_files_match_checksums(folder):
    status = verify_checksums(FILES_DIR / folder)
    assert status and all(status.values()), {k: v for k, v in status.items() if not v}
    shipped = {p.name for p in (FILES_DIR / folder).iterdir()} - {"README.md", "SHA256SUMS"}
    assert shipped == set(status), "every shipped data file is listed in SHA256SUMS and vice versa"
    assert (FILES_DIR / folder / "README.md").read_text().strip()


def test_checksum_mismatch_is_reported(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  a.txt\n" + "0" * 64 + "  missing.txt\n")
    assert verify_checksums(tmp_path) == {"a.txt": False, "missing.txt": False}


@pytest.mark.parametrize("variable", list(STV_VARIABLES))
def test_stv_measurement_readme_facts(variable):
    m = load_t2k_stv(variable)
    stem = STV_VARIABLES[variable][0]
    csv_errors = pd.read_csv(FILES_DIR / "t2k_cc0pi_stv_2018" / f"{stem}__Result.csv")["error"].to_numpy()
    assert m.values.shape == (8,) and m.cov.shape == (8, 8)
    np.testing.assert_allclose(m.edges, README_EDGES[variable], rtol=1e-9)
    np.testing.assert_allclose(m.errors, csv_errors, rtol=1e-6)  # sqrt(diag cov) == Result errors
    np.testing.assert_allclose(m.cov, m.cov.T, rtol=0, atol=1e-12 * np.abs(m.cov).max())
    assert np.linalg.eigvalsh(m.cov).min() > 0
    assert np.all(m.values > 0)
    assert m.unit == ("GeV/c" if variable == "dpt" else "rad")


def test_stv_units_converted_from_1e38_convention():
    # README: dpT bin 0 is ~3.4e-39 cm^2/GeV/c/nucleon with error sqrt(0.0020869) e-38 = 4.568e-40
    m = load_t2k_stv("dpt")
    assert m.values[0] == pytest.approx(3.445e-39, rel=1e-3)
    assert m.errors[0] == pytest.approx(4.568e-40, rel=1e-3)
    assert 1.0e-39 < m.integrated < 1.6e-39


def test_flux_binning_and_peak():
    edges, density = load_t2k_flux("nd280", "numu", "plus250kA")
    # README: 200 bins of 50 MeV from 0 to 10 GeV, then 20 bins of 1 GeV to 30 GeV; peak at 0.55-0.6 GeV
    np.testing.assert_allclose(np.diff(edges[:201]), 0.05, atol=1e-9)
    np.testing.assert_allclose(np.diff(edges[200:]), 1.0, atol=1e-9)
    assert edges[0] == 0.0 and edges[-1] == pytest.approx(30.0)
    peak = np.argmax(density)
    assert 0.5 <= edges[peak] <= 0.65


@pytest.mark.parametrize("detector", FLUX_DETECTORS)
@pytest.mark.parametrize("flavour", FLUX_FLAVOURS)
@pytest.mark.parametrize("horn", FLUX_HORNS)
def test_every_flux_histogram_loads(detector, flavour, horn):
    edges, density = load_t2k_flux(detector, flavour, horn)
    assert edges.shape == (221,) and density.shape == (220,)
    assert np.all(density >= 0) and density.sum() > 0


def test_wrong_sign_flux_is_small_in_neutrino_mode():
    _, numu = load_t2k_flux("nd280", "numu", "plus250kA")
    _, numub = load_t2k_flux("nd280", "numub", "plus250kA")
    assert numub.sum() < 0.1 * numu.sum()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: load_t2k_flux(detector="nova"), "detector"),
        (lambda: load_t2k_flux(flavour="nutau"), "flavour"),
        (lambda: load_t2k_flux(horn="0kA"), "horn"),
        (lambda: load_t2k_stv("dat"), "variable"),
    ],
)
def test_invalid_choices_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
