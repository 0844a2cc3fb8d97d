"""QES-archive loader: shipped files, README facts, kinematics and bad-input errors."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from numl_core.data import electron_scattering as es
from numl_core.data.reference import FILES_DIR, verify_checksums
from numl_core.data.schema import DataError

HEADER = "# Z A E theta omega xsec error citation\n"
GOOD_ROWS = (
    "  6  12   0.361  60.000   0.050  1.0e+03  5.0e+01 O'Connell:1987ag\n"
    "  6  12   0.361  60.000   0.060  2.0e+03  5.0e+01 O'Connell:1987ag\n"
    "  6  12   0.361  60.000   0.070  3.0e+03  5.0e+01 O'Connell:1987ag\n"
)


def _write(tmp_path, text, name="table.dat"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("folder", ["qes_archive_genie", "qes_archive_nuisance"])
def test_shipped_files_match_checksums(folder):
    status = verify_checksums(FILES_DIR / folder)
    assert status and all(status.values())
    assert (FILES_DIR / folder / "README.md").is_file()


def test_carbon_table_matches_readme():
    # qes_archive_nuisance/README.md: 2883 rows, 11 experiments, Barreau 795 and Fomin 359 rows;
    # one exact duplicate row is dropped on loading
    raw = es.read_archive_table(FILES_DIR / es.NUCLEI["C"].file)
    assert len(raw) == 2882
    counts = raw["citation"].value_counts()
    assert counts["Fomin:2010ei"] == 359 and counts["O'Connell:1987ag"] == 54
    assert raw["citation"].nunique() == 11


def test_genie_carbon_rows_are_a_subset_of_the_nuisance_table():
    genie = es.read_archive_table(FILES_DIR / "qes_archive_genie" / "eQE_12C.dat")
    nuisance = es.read_archive_table(FILES_DIR / es.NUCLEI["C"].file)
    cols = list(es.RAW_COLUMNS)
    merged = genie[cols].merge(nuisance[cols].drop_duplicates(), how="left", indicator=True)
    assert (merged["_merge"] == "both").all()


@pytest.mark.parametrize("symbol", ["C", "O", "Al", "Ca", "Fe"])
def test_shipped_nuclei_load_with_positive_values(symbol):
    table = es.load_nucleus(symbol)
    n = es.NUCLEI[symbol]
    assert (table["Z"] == n.z).all() and (table["A"] == n.a).all()
    assert (table["xsec"] > 0).all() and (table["error"] > 0).all()
    assert table.groupby("setting").size().min() >= 2
    assert np.allclose(table["cos_theta"], np.cos(np.radians(table["theta_deg"])))
    assert ((table["norm_uncertainty"] > 0) & (table["norm_uncertainty"] <= 0.1)).all()


def test_calcium_drops_its_two_nonpositive_rows_with_a_logged_count(caplog):
    with caplog.at_level(logging.WARNING, logger=es.__name__):
        table = es.load_nucleus("Ca")
    assert len(table) == 1339 - 2
    assert "dropped 2 row(s)" in caplog.text


def test_normalisation_uncertainties_follow_the_reference_table():
    # Kowal, Graczyk et al., PRC 110, 025501 (2024): Barreau 2.0%, Baran 3.7%, Bagdasaryan 10%
    table = es.load_nucleus("C").groupby("citation")["norm_uncertainty"].first()
    assert table["Barreau:1983ht"] == 0.02
    assert table["Baran:1988tw"] == 0.037
    assert table["Bagdasaryan:1988hp"] == 0.10
    assert table["Zeller:1973ge"] == es.DEFAULT_NORM_UNCERTAINTY


def test_q2_and_energy_transfer_identities():
    table = es.load_nucleus("C")
    e, ep, th = table["energy"], table["e_prime"], table["theta"]
    assert np.allclose(table["omega"], e - ep)
    assert np.allclose(table["q2"], 4 * e * ep * np.sin(th / 2) ** 2)
    # Q2 = 2 E E' (1 - cos theta) is the same identity
    assert np.allclose(table["q2"], 2 * e * ep * (1 - table["cos_theta"]))


def test_quasielastic_peak_free_nucleon_is_elastic_kinematics():
    # elastic e-N: E' = E / (1 + 2 E sin^2(theta/2) / M); omega = E - E'
    e, theta = 0.5, np.radians(45.0)
    elastic = e - e / (1 + 2 * e * np.sin(theta / 2) ** 2 / es.NUCLEON_MASS)
    assert es.quasielastic_peak(e, theta) == pytest.approx(elastic, rel=1e-12)
    # the binding shift enters at the peak divided by the recoil factor
    assert es.quasielastic_peak(e, theta, 0.025) > es.quasielastic_peak(e, theta)


def test_quasielastic_peak_matches_the_data_maximum():
    # README test idea: Barreau 1983, E = 0.361 GeV, theta = 60 deg shows the QE peak near Q2/2M + binding
    table = es.load_nucleus("C")
    one = table[(table["citation"] == "Barreau:1983ht") & np.isclose(table["energy"], 0.361)]
    one = one[np.isclose(one["theta_deg"], 60.0)]
    assert len(one) > 10
    peak_data = one["omega"].to_numpy()[np.argmax(one["xsec"].to_numpy())]
    # the peak is broad (Fermi motion, k_F ~ 0.22 GeV/c gives a width ~ 0.1 GeV here); 20 MeV tolerance
    assert abs(peak_data - one["omega_qe"].iloc[0]) < 0.02


def test_low_omega_cut_drops_the_lowest_points_of_each_setting():
    full = es.load_nucleus("O")
    cut = es.load_nucleus("O", drop_lowest=1)
    assert len(full) - len(cut) == full["setting"].nunique()
    lowest = full.groupby("setting")["omega"].min()
    assert (cut.groupby("setting")["omega"].min().to_numpy() > lowest.to_numpy()).all()
    assert es.load_nucleus("O", omega_min=0.2)["omega"].min() >= 0.2


def test_user_dat_csv_and_parquet_agree(tmp_path):
    dat = es.load_file(_write(tmp_path, HEADER + GOOD_ROWS))
    raw = es.read_archive_table(tmp_path / "table.dat")
    csv_path = tmp_path / "table.csv"
    raw.drop(columns="line").to_csv(csv_path, index=False)
    from_csv = es.load_file(csv_path)
    pq_path = tmp_path / "table.parquet"
    raw.drop(columns="line").rename(columns={"E": "Energy", "omega": "Q0"}).to_parquet(pq_path)
    from_pq = es.load_file(pq_path)
    for other in (from_csv, from_pq):
        pd.testing.assert_series_equal(dat["xsec"], other["xsec"])
        assert list(other["citation"]) == ["O'Connell:1987ag"] * 3


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (GOOD_ROWS.replace("2.0e+03", "-2.0e+03"), ":3: cross section and error must be positive"),
        (GOOD_ROWS.replace("5.0e+01 O'C", "0.0e+00 O'C", 1), ":2: cross section and error must be positive"),
        (GOOD_ROWS.replace("  6  12", "  7  14", 1), ":2: unknown nucleus Z=7.0, A=14.0"),
        (GOOD_ROWS + "  6  12   0.500  30.000   0.050  1.0e+03  5.0e+01 Sealock:1989nx\n", ":5: setting"),
        (GOOD_ROWS.replace(" O'Connell:1987ag\n", "\n", 1), ":2: expected 8 whitespace-separated columns"),
        (GOOD_ROWS.replace("0.070", "0.400"), ":4: energy transfer omega must be in [0, E)"),
    ],
)
def test_bad_rows_raise_naming_file_and_line(tmp_path, text, fragment):
    path = _write(tmp_path, HEADER + text)
    with pytest.raises(DataError, match="table.dat") as info:
        es.load_file(path)
    assert fragment in str(info.value)


def test_drop_invalid_counts_what_it_drops(tmp_path, caplog):
    path = _write(
        tmp_path, HEADER + GOOD_ROWS + GOOD_ROWS.replace("1.0e+03", "-1.0e+03").splitlines()[0] + "\n"
    )
    with caplog.at_level(logging.WARNING, logger=es.__name__):
        table = es.load_file(path, drop_invalid=True)
    assert len(table) == 3 and "dropped 1 row(s)" in caplog.text


def test_csv_with_missing_columns_names_them(tmp_path):
    path = _write(tmp_path, "Z,A,E,theta,omega,xsec\n6,12,0.3,60,0.05,100\n", "bad.csv")
    with pytest.raises(DataError, match=r"bad.csv: missing column\(s\) \['error', 'citation'\]"):
        es.load_file(path)


def test_unknown_nucleus_symbol():
    with pytest.raises(KeyError, match="unknown nucleus 'Li'"):
        es.load_nucleus("Li")


def test_cut_drops_settings_left_with_one_point_and_logs_it(tmp_path, caplog):
    other = (
        "  6  12   0.500  30.000   0.080  1.0e+03  5.0e+01 Sealock:1989nx\n"
        "  6  12   0.500  30.000   0.090  1.0e+03  5.0e+01 Sealock:1989nx\n"
    )
    path = _write(tmp_path, HEADER + GOOD_ROWS + other)
    with caplog.at_level(logging.INFO, logger=es.__name__):
        table = es.load_file(path, omega_min=0.065)
    assert list(table["citation"].unique()) == ["Sealock:1989nx"] and len(table) == 2
    assert "dropped 1 point(s)" in caplog.text
    with pytest.raises(DataError, match="no points left"):
        es.load_file(path, omega_min=0.2)
