"""Built-in ND280 CC0pi sample: cross-section oracle, schema, physics sanity, throws, fake data, T2K check."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from numl_core.data.generators import SAMPLES
from numl_core.data.generators.nd280_cc0pi import (
    FAKE_DATA_SETS,
    ND280_COLUMNS,
    ND280_MODEL_COLUMNS,
    ND280Physics,
    compare_to_t2k_stv,
    fake_data_weights,
    generate,
    split_mc_data,
    throw_parameters,
    throw_weights,
)
from numl_core.data.generators.nd280_physics import (
    CC0PI_MODES,
    MAX_PROTON_RESCATTERS,
    proton_interaction_probability,
)
from numl_core.data.generators.nd280_systematics import (
    DPHIT_NORM_FACTOR,
    FAKE_AXIAL_MASS,
    parameter_names,
    parameter_prior,
    rest_frame_energy,
)
from numl_core.data.kinematics import momentum_components
from numl_core.data.llewellyn_smith import ls_dsigma_dq2, ls_total_sigma
from numl_core.data.schema import DataError

N_EVENTS = 20_000


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate(N_EVENTS, seed=11)


# Free-nucleon CCQE cross sections [1e-38 cm^2] from the table "Free-nucleon CCQE (Llewellyn Smith,
# Phys. Rep. 3, 261 (1972))" in docs/physics.md#llewellyn-smith: direct numerical integration with
# M = 0.938919, m_mu = 0.1056584, m_pi = 0.13957 GeV, G_F = 1.1663787e-5 GeV^-2, cos theta_C = 0.97373,
# M_A = 1.03 GeV, G_E^n = 0.
LS_TABLE = [
    (0.3, 0.487, 0.141),
    (0.5, 0.842, 0.234),
    (1.0, 1.094, 0.415),
    (2.0, 1.089, 0.608),
    (5.0, 1.022, 0.794),
]


@pytest.mark.parametrize(("enu", "sigma_nu", "sigma_nubar"), LS_TABLE)
def test_llewellyn_smith_free_cross_section(enu, sigma_nu, sigma_nubar):
    assert ls_total_sigma(enu) / 1e-38 == pytest.approx(sigma_nu, rel=0.01)
    assert ls_total_sigma(enu, neutrino=False) / 1e-38 == pytest.approx(sigma_nubar, rel=0.01)


def test_axial_mass_only_matters_away_from_q2_zero():
    assert ls_dsigma_dq2(1.0, 0.0, 1.2) == pytest.approx(ls_dsigma_dq2(1.0, 0.0, 1.03), rel=1e-12)
    assert ls_dsigma_dq2(1.0, 0.5, 1.2) > ls_dsigma_dq2(1.0, 0.5, 1.03)


def test_registry_and_schema(events):
    small = SAMPLES["nd280_cc0pi"](200, 3)
    pd.testing.assert_frame_equal(small, generate(200, 3))
    assert list(events.columns) == [*ND280_COLUMNS, *ND280_MODEL_COLUMNS]
    assert len(events) == N_EVENTS
    assert events["event_id"].dtype == np.int64 and events["event_id"].is_unique
    for dtype in ("mode", "sample_id", "true_n_protons", "true_proton_rescatters"):
        assert events[dtype].dtype == np.int8
    for name, (kind, _, (lo, hi)) in {**ND280_COLUMNS, **ND280_MODEL_COLUMNS}.items():
        column = events[name]
        assert column.dtype.kind == kind, name
        assert column.notna().all(), name
        assert column.min() >= lo and column.max() <= hi, name


def test_determinism():
    a, b, c = generate(3000, seed=5), generate(3000, seed=5), generate(3000, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not np.array_equal(a["enu"].to_numpy(), c["enu"].to_numpy())


def test_masks_and_definitions(events):
    no_p = ~events["true_has_proton"]
    cols = ["true_p_p", "true_p_cos", "true_p_phi", "true_dpt", "true_dalphat", "true_dphit"]
    assert (events.loc[no_p, cols] == 0).all().all()
    assert (events["true_has_proton"] == (events["true_n_protons"] > 0)).all()
    assert (events["pass_truth"] == events["mode"].isin(CC0PI_MODES)).all()
    stv = events["in_stv_phase_space"]
    assert (events.loc[stv, "pass_truth"]).all()
    assert (events.loc[stv, "true_p_p"].between(0.45, 1.0)).all() and (
        events.loc[stv, "true_p_cos"] > 0.4
    ).all()
    assert (events.loc[stv, "true_mu_p"] > 0.25).all() and (events.loc[stv, "true_mu_cos"] > -0.6).all()
    no_reco_p = ~events["reco_has_proton"]
    assert (events.loc[no_reco_p, ["reco_p_p", "reco_dpt"]] == 0).all().all()
    # topology 0 (mu only) <-> no reconstructed proton
    assert ((events["sample_id"] % 4 == 0) == no_reco_p).all()
    assert events["weight"].nunique() == 1
    # flux-averaged cross section per carbon nucleon: CCQE + 2p2h + Delta ~ 0.6-0.8e-38 cm^2
    assert 0.5e-38 < events["weight"].sum() < 1.0e-38


def test_selection_is_a_cc0pi_selection(events):
    sel = events["pass_reco"]
    purity = events.loc[sel, "pass_truth"].mean()
    efficiency = sel[events["pass_truth"]].mean()
    assert 0.8 < purity < 1.0  # backgrounds exist (missed pions, pion mis-ID) but are a minority
    assert 0.4 < efficiency < 0.95  # signal also fails reconstruction
    assert set(events.loc[sel & ~events["pass_truth"], "mode"]) <= {4, 5}


def test_ccqe_without_fsi_imbalance_is_the_fermi_momentum():
    # for CCQE with no rescattering, p_T(mu) + p_T(p) = p_T(struck neutron) exactly (beam along z);
    # the global Fermi gas bounds it by k_F
    events = generate(20_000, seed=5, physics=ND280Physics(fermi_gas="global"))
    ccqe = events[(events["mode"] == 1) & (events["true_proton_rescatters"] == 0)]
    px, py, _ = momentum_components(ccqe["true_pn_p"], ccqe["true_pn_cos"], ccqe["true_pn_phi"])
    np.testing.assert_allclose(ccqe["true_dpt"], np.hypot(px, py), atol=1e-9)
    kf = ND280Physics(fermi_gas="global").fermi_momentum
    assert ccqe["true_dpt"].max() <= kf + 1e-9
    # uniform Fermi sphere: <p_T> = (3 pi / 16) k_F = 0.589 k_F; the Pauli cut and weighting move it little
    assert 0.45 * kf < ccqe["true_dpt"].mean() < 0.7 * kf
    assert (ccqe["true_p_p"] > kf).all()  # Pauli blocking


def test_stv_physics_sanity(events):
    ccqe = events[events["mode"] == 1]
    counts, _ = np.histogram(ccqe["true_dphit"], bins=np.linspace(0, np.pi, 13))
    assert np.argmax(counts) == 0  # dphiT peaks at 0 (Lu et al.)
    # in the T2K phase space (p_p > 0.45 GeV/c) without rescattering, dphiT ~ p_nT / p_T(p) is small
    clean = ccqe[ccqe["in_stv_phase_space"] & (ccqe["true_proton_rescatters"] == 0)]
    assert clean["true_dphit"].median() < 0.3
    two_p2h = events[events["mode"] == 2]
    # mean dpT: 2p2h (a pair's momentum plus a third body) above CCQE; the standard errors are ~2 MeV/c
    assert two_p2h["true_dpt"].mean() > ccqe["true_dpt"].mean() + 0.05
    assert (two_p2h["true_n_protons"] >= 1).all()


def test_throw_parameters_prior():
    mean, cov = parameter_prior()
    assert cov.shape == (len(parameter_names()),) * 2 and np.linalg.eigvalsh(cov).min() > 0
    params = throw_parameters(4000, seed=3)
    pd.testing.assert_frame_equal(params, throw_parameters(4000, seed=3))
    # sample means of 4000 throws lie within 4 standard errors sqrt(var / 4000) of the prior means
    tolerance = 4 * np.sqrt(np.diag(cov) / 4000)
    assert np.all(np.abs(params.mean().to_numpy() - mean) < tolerance)
    assert params[["flux_3", "flux_4"]].corr().iloc[0, 1] > 0.7


def test_throw_weights_shape_and_mean(events):
    n_throws = 40
    w = throw_weights(events, n_throws=n_throws, seed=1)
    assert w.shape == (n_throws, N_EVENTS) and w.dtype == np.float32
    assert np.all(np.isfinite(w)) and np.all(w >= 0)
    np.testing.assert_array_equal(w, throw_weights(events, n_throws=n_throws, seed=1))
    assert not np.array_equal(w, throw_weights(events, n_throws=n_throws, seed=2))
    for kind in ("flux", "xsec", "detector"):
        totals = throw_weights(events, n_throws=n_throws, seed=4, kinds=(kind,)).mean(axis=1)
        # each throw's mean weight scatters by its std; the mean of n_throws lies within 4 std / sqrt(n)
        assert abs(totals.mean() - 1.0) < 4 * totals.std() / np.sqrt(n_throws) + 0.01, kind
        assert totals.std() > 0.005, kind
    with pytest.raises(ValueError, match="unknown"):
        throw_weights(events, 2, kinds=("nonsense",))


def test_tables_without_model_truth_get_flux_and_detector_throws(events):
    # a user's file carries ND280_COLUMNS only: flux and detector throws work, xsec ones say what is missing
    user = events[list(ND280_COLUMNS)]
    full = throw_weights(events, 3, seed=0, kinds=("flux", "detector"))
    np.testing.assert_array_equal(throw_weights(user, 3, seed=0, kinds=("flux", "detector")), full)
    with pytest.raises(DataError, match="true_pn_p"):
        throw_weights(user, 3, seed=0)


def test_fake_data_weights(events):
    weight = events["weight"].to_numpy()
    signal = events["pass_truth"].to_numpy()
    for name in FAKE_DATA_SETS:
        w = fake_data_weights(events, name)
        assert w.shape == (N_EVENTS,) and np.all(w >= 0) and np.all(np.isfinite(w))
    np.testing.assert_array_equal(fake_data_weights(events, "nominal"), 1.0)

    shape = fake_data_weights(events, "dphit_shape")
    assert np.sum(shape[signal] * weight[signal]) == pytest.approx(np.sum(weight[signal]), rel=1e-9)
    assert np.all(shape[~signal] == 1.0)
    dphit = events["true_dphit"].to_numpy()
    assert np.average(dphit[signal], weights=shape[signal]) > dphit[signal].mean() + 0.02
    norm = fake_data_weights(events, "dphit_shape_norm")
    assert np.sum(norm[signal] * weight[signal]) / np.sum(weight[signal]) == pytest.approx(
        DPHIT_NORM_FACTOR, rel=1e-9
    )
    np.testing.assert_allclose(norm[signal], DPHIT_NORM_FACTOR * shape[signal], rtol=1e-12)

    ma = fake_data_weights(events, "ma_shift")
    ccqe = events["mode"].to_numpy() == 1
    assert np.all(ma[~ccqe] == 1.0)
    e_rest = rest_frame_energy(events[ccqe], ND280Physics())
    q2 = events.loc[ccqe, "true_q2"].to_numpy()
    expected = ls_dsigma_dq2(e_rest, q2, FAKE_AXIAL_MASS) / ls_dsigma_dq2(e_rest, q2, 1.03)
    np.testing.assert_allclose(ma[ccqe], expected, rtol=1e-10)
    assert 1.02 < ma[ccqe].mean() < 1.3

    mec = fake_data_weights(events, "2p2h_norm")
    np.testing.assert_array_equal(mec, np.where(events["mode"] == 2, 1.5, 1.0))


def test_proton_fsi_reweighting_reproduces_the_step_probability(events):
    # reweighting to strength x1.5 must give P(k >= 1 | proton) = p' exactly in expectation; the binomial
    # standard error with n ~ 18k events (inflated by the weight spread) is < 0.006, so 4 sigma < 0.025
    w = fake_data_weights(events, "proton_fsi")
    has_p = events["true_has_proton"].to_numpy()
    k = events["true_proton_rescatters"].to_numpy()[has_p]
    p_new = float(proton_interaction_probability(1.5 * ND280Physics().proton_fsi_strength))
    assert np.average(k >= 1, weights=w[has_p]) == pytest.approx(p_new, abs=0.025)
    assert np.average(k == MAX_PROTON_RESCATTERS, weights=w[has_p]) == pytest.approx(p_new**3, abs=0.025)
    assert np.mean(w[has_p]) == pytest.approx(1.0, abs=0.03)


def test_split_mc_data(events):
    mc, data = split_mc_data(events, seed=0)
    assert len(mc) == len(data) == N_EVENTS // 2
    ids = np.concatenate([mc["event_id"], data["event_id"]])
    assert np.array_equal(np.sort(ids), events["event_id"].to_numpy())
    for half in (mc, data):
        assert half["weight"].sum() == pytest.approx(events["weight"].sum(), rel=1e-12)
        assert list(half.index) == list(range(len(half)))
    again, _ = split_mc_data(events, seed=0)
    pd.testing.assert_frame_equal(mc, again)


def test_local_fermi_gas_option():
    local = generate(3000, seed=1, physics=replace(ND280Physics(), fermi_gas="local"))
    ccqe = local[(local["mode"] == 1) & (local["true_proton_rescatters"] == 0)]
    # carbon's central k_F is 0.270 GeV/c, above the global 0.221
    assert 0.221 < ccqe["true_pn_p"].max() <= 0.2698
    with pytest.raises(ValueError, match="fermi_gas"):
        generate(100, seed=1, physics=replace(ND280Physics(), fermi_gas="shell"))


def test_comparison_with_t2k_stv(events):
    table = compare_to_t2k_stv(events)
    assert list(table.index) == ["dpt", "dalphat", "dphit"]
    assert (table["ndof"] == 8).all()
    assert np.all(np.isfinite(table["chi2"])) and np.all(table["chi2"] > 0)
    # the prediction for CH from carbon is within 30% of T2K's integrated CC0pi-Np cross section
    ratio = table["sigma_model"] / table["sigma_data"]
    assert np.all((ratio > 0.7) & (ratio < 1.3)), ratio
