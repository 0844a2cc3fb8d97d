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
        (GOOD_ROWS.replace("  6  12", "  7   6", 1), ":2: not a nucleus: Z = 7 exceeds A = 6"),
        (GOOD_ROWS.replace("  6  12", "  6  12.5", 1), ":2: not a nucleus: A = 12.5 is not an integer"),
        (GOOD_ROWS.replace("  6  12", "  0   1", 1), ":2: not a nucleus: Z = 0 must be >= 1"),
        (GOOD_ROWS.replace("  6  12", "nan  12", 1), ":2: not a nucleus: Z = nan is not an integer"),
        (GOOD_ROWS.replace("  6  12", "  7  14", 1), ":3: a table must hold one nucleus"),
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


# -- nuclear parameters of any nucleus: Moniz et al., PRL 26, 445 (1971), else the nearest measured in A ----
@pytest.mark.parametrize(
    ("z", "a", "symbol", "fermi_momentum", "binding"),
    [
        (6, 12, "C", 0.221, 0.025),  # measured
        (20, 40, "Ca", 0.251, 0.028),  # measured
        (8, 16, "O", 0.221, 0.025),  # shipped, from 12C
        (26, 56, "Fe", 0.260, 0.036),  # shipped, from natural Ni
        (79, 197, "Au", 0.265, 0.044),  # shipped, from 208Pb (11 away; 181Ta is 16 away)
        (92, 238, "U", 0.265, 0.044),  # shipped, above 208: lead
        (2, 4, "He4", 0.169, 0.017),  # shipped, from 6Li
        (1, 2, "H2", 0.169, 0.002),  # shipped: k_F from 6Li, the deuteron's binding
        (20, 48, "48Ca", 0.251, 0.028),  # not shipped: 40Ca (8 away; Ni 10.7 away)
        (82, 208, "208Pb", 0.265, 0.044),  # not shipped, measured
        (3, 7, "7Li", 0.169, 0.017),
        (7, 14, "14N", 0.221, 0.025),
        (4, 9, "9Be", 0.221, 0.025),  # equidistant from 6Li and 12C: the heavier
        (18, 40, "40Ar", 0.251, 0.028),
        (50, 120, "120Sn", 0.260, 0.042),
        (73, 181, "181Ta", 0.265, 0.042),
        (110, 290, "290Ds", 0.265, 0.044),  # saturates above 208
        (1, 1, "1H", 0.169, 0.017),  # below 6Li: lithium's (placeholders)
    ],
)
def test_nucleus_of_gives_the_documented_parameters(z, a, symbol, fermi_momentum, binding):
    n = es.nucleus_of(float(z), float(a))
    assert (n.symbol, n.z, n.a) == (symbol, z, a)
    assert n.fermi_momentum == pytest.approx(fermi_momentum) and n.binding == pytest.approx(binding)
    assert (n.file != "") == (symbol in es.NUCLEI)


def test_shipped_parameters_follow_the_rule_but_the_lightest_bindings():
    for n in es.NUCLEI.values():
        binding, fermi_momentum, _ = es.fermi_gas_parameters(n.a)
        assert n.fermi_momentum == fermi_momentum, n
        if n.a > 3:
            assert n.binding == binding, n


@pytest.mark.parametrize(
    ("z", "a", "field"), [(20.5, 48, "Z = 20.5"), (20, 48.2, "A = 48.2"), (9, 8, "Z = 9")]
)
def test_nucleus_of_refuses_what_is_not_a_nucleus(z, a, field):
    with pytest.raises(ValueError, match=f"not a nucleus: {field}"):
        es.nucleus_of(z, a)


def test_an_unshipped_nucleus_loads_with_its_parameters_and_overrides(tmp_path):
    path = _write(tmp_path, HEADER + GOOD_ROWS.replace("  6  12", " 20  48"))
    table = es.load_file(path)
    assert set(table["nucleus"]) == {"48Ca"} and (table["A"] == 48).all()
    assert (table["binding"] == 0.028).all() and (table["fermi_momentum"] == 0.251).all()
    theta = np.radians(60.0)
    assert table["omega_qe"].iloc[0] == pytest.approx(es.quasielastic_peak(0.361, theta, 0.028))
    changed = es.load_file(path, binding=0.05, fermi_momentum=0.3)
    assert (changed["binding"] == 0.05).all() and (changed["fermi_momentum"] == 0.3).all()
    assert changed["omega_qe"].iloc[0] == pytest.approx(es.quasielastic_peak(0.361, theta, 0.05))
    only_kf = es.load_file(path, fermi_momentum=0.2)
    assert (only_kf["binding"] == 0.028).all() and (only_kf["fermi_momentum"] == 0.2).all()
    with pytest.raises(ValueError, match="binding=-0.1"):
        es.load_file(path, binding=-0.1)
    with pytest.raises(ValueError, match="fermi_momentum=0.0"):
        es.load_file(path, fermi_momentum=0.0)
