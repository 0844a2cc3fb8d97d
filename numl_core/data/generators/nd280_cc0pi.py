"""Built-in T2K-ND280-like nu_mu CC0pi sample on carbon, with systematics, fake data and the T2K STV check.

``generate(n_events, seed)`` returns one row per event (unweighted: every event has the same nominal
``weight``, and the weights sum to the flux-averaged cross section in cm^2 per carbon nucleon, so weighted
histograms are absolute cross sections). E_nu follows the T2K ND280 nu_mu flux (+250 kA, 2016 release)
times the cross section; the interaction, FSI and detector models are documented in
:mod:`~numl_core.data.generators.nd280_physics` and :mod:`~numl_core.data.generators.nd280_detector`.

Columns (units GeV, GeV/c, radians; ``ND280_COLUMNS`` holds dtype kind, unit and allowed range):

* ``event_id``, ``enu``, ``mode`` (see ``MODES``), ``true_q2`` = -q^2 [GeV^2];
* ``true_mu_p/cos/phi``: the outgoing lepton (the muon; the neutrino in NC modes 5 and 6);
* ``true_p_p/cos/phi``: the leading (highest-momentum) final-state proton, 0 where ``true_has_proton`` is
  False; ``true_n_protons``; ``true_dpt/dalphat/dphit`` (Lu et al., PRC 94, 015503), 0 without a proton;
* ``pass_truth``: CC with no pion in the final state (modes 1-3); ``in_stv_phase_space``: the T2K CC0pi-Np
  STV signal (pass_truth, p_mu > 0.25, cos_mu > -0.6, leading proton 0.45 < p_p < 1.0 and cos_p > 0.4);
* ``reco_*``: smeared muon candidate and leading reconstructed proton (0 where absent), their STVs,
  ``reco_has_proton``, ``sample_id`` (0..7, see ``SAMPLE_NAMES``; meaningful where ``pass_reco``),
  ``pass_reco`` (selected as CC0pi; backgrounds are pass_reco & ~pass_truth);
* ``weight`` [cm^2/nucleon];
* model truth (``ND280_MODEL_COLUMNS``): ``true_pn_p/cos/phi``, momentum of the struck nucleon (CCQE,
  Delta) or nucleon pair (2p2h) before the interaction; ``true_pi_p``, pion momentum at the vertex (0 in
  modes 1-2); ``true_proton_rescatters``, steps of the leading-proton FSI cascade (0..3).

>>> events = generate(2000, seed=1)
>>> bool(events["pass_truth"].mean() > 0.5), events["weight"].nunique()
(True, 1)
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy import stats

from numl_core.data.generators.nd280_detector import SAMPLE_NAMES, ND280Detector, reconstruct
from numl_core.data.generators.nd280_fsi import absorb_pions, leading_proton_slot, rescatter_protons
from numl_core.data.generators.nd280_interactions import FinalState, sample_hard_scatters
from numl_core.data.generators.nd280_physics import CC0PI_MODES, MODES, ND280Physics
from numl_core.data.generators.nd280_systematics import (
    FAKE_DATA_SETS,
    fake_data_weights,
    iter_throw_weights,
    throw_parameters,
    throw_weights,
)
from numl_core.data.kinematics import spherical_components, transverse_imbalance
from numl_core.data.reference import STV_VARIABLES, load_t2k_stv
from numl_core.stats import chi2_with_covariance

__all__ = [
    "CH_PER_CARBON_NUCLEON",
    "FAKE_DATA_SETS",
    "MODES",
    "ND280_COLUMNS",
    "ND280_MODEL_COLUMNS",
    "SAMPLE_NAMES",
    "ND280Detector",
    "ND280Physics",
    "compare_to_t2k_stv",
    "fake_data_weights",
    "generate",
    "iter_throw_weights",
    "predict_stv",
    "split_mc_data",
    "throw_parameters",
    "throw_weights",
]

log = logging.getLogger(__name__)

_PI = math.pi
_INF = math.inf
ND280_COLUMNS: dict[str, tuple[str, str, tuple[float, float]]] = {
    "event_id": ("i", "", (0, _INF)),
    "enu": ("f", "GeV", (0.0, 30.0)),
    "mode": ("i", "", (min(MODES), max(MODES))),
    "true_q2": ("f", "GeV^2", (-0.0112, _INF)),
    **{f"{s}_mu_p": ("f", "GeV/c", (0.0, 30.0)) for s in ("true", "reco")},
    **{f"{s}_mu_cos": ("f", "", (-1.0, 1.0)) for s in ("true", "reco")},
    **{f"{s}_mu_phi": ("f", "rad", (-_PI, _PI)) for s in ("true", "reco")},
    **{f"{s}_p_p": ("f", "GeV/c", (0.0, 30.0)) for s in ("true", "reco")},
    **{f"{s}_p_cos": ("f", "", (-1.0, 1.0)) for s in ("true", "reco")},
    **{f"{s}_p_phi": ("f", "rad", (-_PI, _PI)) for s in ("true", "reco")},
    "true_n_protons": ("i", "", (0, 10)),
    "true_has_proton": ("b", "", (0, 1)),
    **{f"{s}_dpt": ("f", "GeV/c", (0.0, 30.0)) for s in ("true", "reco")},
    **{f"{s}_dalphat": ("f", "rad", (0.0, _PI)) for s in ("true", "reco")},
    **{f"{s}_dphit": ("f", "rad", (0.0, _PI)) for s in ("true", "reco")},
    "pass_truth": ("b", "", (0, 1)),
    "in_stv_phase_space": ("b", "", (0, 1)),
    "reco_has_proton": ("b", "", (0, 1)),
    "sample_id": ("i", "", (0, 7)),
    "pass_reco": ("b", "", (0, 1)),
    "weight": ("f", "cm^2/nucleon", (0.0, _INF)),
}
"""Schema of an ND280 CC0pi event table (the built-in sample's and a user's file): column -> (dtype kind:
'i' integer, 'f' float, 'b' bool; unit; allowed closed range)."""
ND280_MODEL_COLUMNS: dict[str, tuple[str, str, tuple[float, float]]] = {
    "true_pn_p": ("f", "GeV/c", (0.0, 1.0)),
    "true_pn_cos": ("f", "", (-1.0, 1.0)),
    "true_pn_phi": ("f", "rad", (-_PI, _PI)),
    "true_pi_p": ("f", "GeV/c", (0.0, 30.0)),
    "true_proton_rescatters": ("i", "", (0, 3)),
}
"""Extra truth of the built-in model (same form as ND280_COLUMNS), appended by ``generate``; the "xsec"
throws and the ma_shift / 2p2h_norm / proton_fsi fake data need it, flux and detector throws do not."""
_DTYPES = {
    "event_id": np.int64,
    "mode": np.int8,
    "true_n_protons": np.int8,
    "true_proton_rescatters": np.int8,
    "sample_id": np.int8,
}

CH_PER_CARBON_NUCLEON = 12.0 / 13.0
"""T2K's STV cross sections are per nucleon of CH. Hydrogen adds no CC0pi-Np events for nu_mu (no CCQE on a
free proton; nu p -> mu p pi+ keeps its pion), so sigma per CH nucleon = 12/13 sigma per C nucleon.
Nuclear effects of C and CH are otherwise taken as equal."""
POST_PROCESS_CHUNK = 250_000
"""Events per chunk of FSI and detector simulation (bounds the memory of intermediate arrays)."""


def _truth_columns(events: FinalState) -> dict[str, np.ndarray]:
    n = len(events)
    out: dict[str, np.ndarray] = {"enu": events.enu, "mode": events.mode, "true_q2": events.q2}
    out["true_mu_p"], out["true_mu_cos"], out["true_mu_phi"] = spherical_components(*events.lepton[:, 1:].T)
    slot, has_proton = leading_proton_slot(events)
    lead = np.where(has_proton[:, None], events.nucleons[np.arange(n), slot, 1:], 0.0)
    p, cos, phi = spherical_components(*lead.T)
    out["true_p_p"], out["true_p_cos"], out["true_p_phi"] = p, np.where(has_proton, cos, 0.0), phi
    out["true_n_protons"] = np.count_nonzero(events.present & events.is_proton, axis=1)
    out["true_has_proton"] = has_proton
    stv = transverse_imbalance(*(out[k] for k in ("true_mu_p", "true_mu_cos", "true_mu_phi")), p, cos, phi)
    for name, value in zip(("true_dpt", "true_dalphat", "true_dphit"), stv, strict=True):
        out[name] = np.where(has_proton & np.isfinite(value), value, 0.0)
    out["true_pn_p"], out["true_pn_cos"], out["true_pn_phi"] = spherical_components(*events.initial.T)
    out["true_pi_p"] = events.pion_p_produced
    out["true_proton_rescatters"] = events.proton_rescatters
    signal = np.isin(events.mode, CC0PI_MODES)
    out["pass_truth"] = signal
    out["in_stv_phase_space"] = (
        signal
        & (out["true_mu_p"] > 0.25)
        & (out["true_mu_cos"] > -0.6)
        & has_proton
        & (p > 0.45)
        & (p < 1.0)
        & (cos > 0.4)
    )
    return out


def generate(
    n_events: int,
    seed: int,
    physics: ND280Physics = ND280Physics(),
    detector: ND280Detector = ND280Detector(),
) -> pd.DataFrame:
    """Generate ``n_events`` nu_mu-carbon events (truth, reco, nominal weight); deterministic in ``seed``."""
    if n_events < 1:
        raise ValueError(f"n_events must be positive, got {n_events}")
    rng = np.random.default_rng(seed)
    hard, sigma = sample_hard_scatters(rng, n_events, physics)
    columns: list[dict[str, np.ndarray]] = []
    for start in range(0, n_events, POST_PROCESS_CHUNK):
        events = hard.take(slice(start, start + POST_PROCESS_CHUNK))
        absorb_pions(rng, events, physics)
        rescatter_protons(rng, events, physics)
        columns.append({**_truth_columns(events), **reconstruct(rng, events, detector)})
    data = {k: np.concatenate([c[k] for c in columns]) for k in columns[0]}
    data["event_id"] = np.arange(n_events)
    data["weight"] = np.full(n_events, sigma / n_events)
    names = [*ND280_COLUMNS, *ND280_MODEL_COLUMNS]
    frame = pd.DataFrame({k: data[k].astype(_DTYPES.get(k, data[k].dtype)) for k in names})
    log.info("generated %d ND280 events, flux-averaged sigma %.4g cm^2/nucleon", n_events, sigma)
    return frame


def split_mc_data(events: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split events at random into two halves (mc, data); each half's weights are scaled by
    n_total / n_half so that both still sum to the full cross section.

    >>> mc, data = split_mc_data(generate(1000, seed=2), seed=0)
    >>> len(mc), len(data)
    (500, 500)
    """
    order = np.random.default_rng(seed).permutation(len(events))
    halves = order[: len(events) // 2], order[len(events) // 2 :]
    out = []
    for index in halves:
        part = events.iloc[np.sort(index)].reset_index(drop=True)
        part["weight"] = part["weight"] * (len(events) / len(index))
        out.append(part)
    return out[0], out[1]


def predict_stv(events: pd.DataFrame, variable: str, edges: np.ndarray, target: str = "CH") -> np.ndarray:
    """Nominal dsigma/dx of the T2K CC0pi-Np signal in ``edges`` [cm^2/nucleon/unit] from truth.

    ``target="CH"`` converts per carbon nucleon to per CH nucleon (x CH_PER_CARBON_NUCLEON); "C" does not.
    """
    if target not in ("C", "CH"):
        raise ValueError(f"target must be 'C' or 'CH', got {target!r}")
    signal = events["in_stv_phase_space"].to_numpy(bool)
    values = events[f"true_{variable}"].to_numpy(float)[signal]
    hist, _ = np.histogram(values, bins=edges, weights=events["weight"].to_numpy(float)[signal])
    scale = CH_PER_CARBON_NUCLEON if target == "CH" else 1.0
    return scale * hist / np.diff(edges)


def compare_to_t2k_stv(events: pd.DataFrame, target: str = "CH") -> pd.DataFrame:
    """Nominal prediction vs the T2K CC0pi-Np STV measurement (PRD 98, 032003) with the full covariance.

    One row per variable (dpt, dalphat, dphit): chi2, ndof (8), p_value, and the integrated cross sections
    ``sigma_model``/``sigma_data`` [cm^2/nucleon] over the measured range. The model is carbon; with
    target="CH" it is scaled to per CH nucleon (see ``CH_PER_CARBON_NUCLEON``).
    """
    rows = []
    for variable in STV_VARIABLES:
        meas = load_t2k_stv(variable)
        model = predict_stv(events, variable, meas.edges, target)
        unit = 1e-38  # solve in units where the covariance is O(1e-3)
        chi2 = chi2_with_covariance(meas.values / unit, model / unit, meas.cov / unit**2)
        rows.append(
            {
                "variable": variable,
                "chi2": chi2,
                "ndof": len(meas.values),
                "p_value": float(stats.chi2.sf(chi2, len(meas.values))),
                "sigma_model": float(np.sum(model * meas.widths)),
                "sigma_data": meas.integrated,
            }
        )
    return pd.DataFrame(rows).set_index("variable")
