"""ND280-like detector response: efficiencies, thresholds, smearing and the 8 CC0pi samples.

Vertices fall in FGD1 or FGD2 with equal odds. The muon candidate is the muon of CC events, or, for NC
events, a charged pion mis-identified as a muon. Protons are tracked in the TPCs above ~0.45 GeV/c and
forward, or only in the FGD down to ~0.3 GeV/c. A CC0pi selection keeps events with a muon candidate and
no detected pion (tracked charged pion, Michel electron of a stopped pi+, or ECal-tagged pi0).
Sample ID = 4 x FGD + topology, topology 0: mu only, 1: mu + 1 p in a TPC, 2: mu + 1 p in the FGD only,
3: mu + >= 2 p. Momentum resolutions are fractional Gaussians, direction resolutions isotropic Gaussian
kicks of the unit vector. GeV/c and radians throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numl_core.data.generators.nd280_interactions import FinalState
from numl_core.data.generators.nd280_physics import CC_MODES
from numl_core.data.kinematics import spherical_components, transverse_imbalance

TOPOLOGIES = ("mu only", "mu + p in TPC", "mu + p in FGD only", "mu + Np")
SAMPLE_NAMES: dict[int, str] = {
    4 * f + t: f"FGD{f + 1} {name}" for f in range(2) for t, name in enumerate(TOPOLOGIES)
}
"""Sample ID -> description (column ``sample_id``)."""


@dataclass(frozen=True)
class ND280Detector:
    """Efficiency and resolution parameters (probabilities, GeV/c, radians)."""

    muon_efficiency: tuple[float, float] = (0.90, 0.85)
    """Plateau muon efficiency in (FGD1, FGD2)."""
    muon_cos_turn_on: float = -0.2
    """cos(theta_mu) at half efficiency (backward tracks are poorly reconstructed)."""
    muon_p_threshold: float = 0.10
    """Muon momentum at half efficiency [GeV/c]."""
    proton_tpc_efficiency: float = 0.85
    proton_tpc_threshold: float = 0.45
    """Proton momentum at half TPC efficiency [GeV/c]."""
    proton_tpc_cos_turn_on: float = 0.3
    proton_fgd_efficiency: float = 0.6
    proton_fgd_threshold: float = 0.30
    """Proton momentum at half FGD-only efficiency [GeV/c]."""
    pion_track_efficiency: float = 0.85
    pion_p_threshold: float = 0.10
    michel_efficiency: float = 0.5
    """Tag probability of an untracked pi+ through its decay electron."""
    pi0_efficiency: float = 0.4
    pion_muon_misid: float = 0.03
    """Probability that a tracked charged pion passes the muon PID."""
    muon_p_resolution: tuple[float, float] = (0.05, 0.03)
    """sigma_p / p = hypot(a, b * p[GeV/c]) for muons."""
    muon_angle_resolution: float = 0.015
    proton_tpc_resolution: tuple[float, float] = (0.08, 0.02)
    """(sigma_p / p, angle [rad]) of TPC protons."""
    proton_fgd_resolution: tuple[float, float] = (0.12, 0.06)
    """(sigma_p / p, angle [rad]) of FGD-only protons."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def muon_efficiency(p: np.ndarray, cos: np.ndarray, fgd: np.ndarray, det: ND280Detector) -> np.ndarray:
    """Muon reconstruction efficiency vs momentum [GeV/c], cos theta and FGD index (0, 1)."""
    plateau = np.asarray(det.muon_efficiency)[fgd]
    return (
        plateau * _sigmoid((cos - det.muon_cos_turn_on) / 0.12) * _sigmoid((p - det.muon_p_threshold) / 0.02)
    )


def proton_tpc_efficiency(p: np.ndarray, cos: np.ndarray, det: ND280Detector) -> np.ndarray:
    """Probability to track a proton into a TPC, vs momentum [GeV/c] and cos theta."""
    return (
        det.proton_tpc_efficiency
        * _sigmoid((p - det.proton_tpc_threshold) / 0.02)
        * _sigmoid((cos - det.proton_tpc_cos_turn_on) / 0.1)
    )


def proton_fgd_efficiency(p: np.ndarray, det: ND280Detector) -> np.ndarray:
    """Probability to reconstruct a proton (not in a TPC) in the FGD alone, vs momentum [GeV/c]."""
    return det.proton_fgd_efficiency * _sigmoid((p - det.proton_fgd_threshold) / 0.02)


def pion_track_efficiency(p: np.ndarray, det: ND280Detector) -> np.ndarray:
    """Probability to track a charged pion, vs momentum [GeV/c]."""
    return det.pion_track_efficiency * _sigmoid((p - det.pion_p_threshold) / 0.02)


def smear_momenta(
    rng: np.random.Generator, p3: np.ndarray, frac_sigma: np.ndarray, angle_sigma: np.ndarray
) -> np.ndarray:
    """Smear momenta ``(n, 3)`` [GeV/c]: |p| by a fractional Gaussian (kept >= 1 MeV/c), the direction by a
    Gaussian kick of width ``angle_sigma`` [rad] per transverse axis."""
    p = np.linalg.norm(p3, axis=1)
    unit = p3 / np.where(p > 0, p, 1.0)[:, None]
    unit = unit + np.asarray(angle_sigma)[..., None] * rng.standard_normal(p3.shape)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    p_reco = np.maximum(p * (1.0 + np.asarray(frac_sigma) * rng.standard_normal(len(p))), 1e-3)
    return p_reco[:, None] * unit


def reconstruct(rng: np.random.Generator, events: FinalState, det: ND280Detector) -> dict[str, np.ndarray]:
    """Detector response of ``events``: a dict of the ``reco_*``, ``sample_id`` and ``pass_reco`` columns."""
    n = len(events)
    fgd = (rng.random(n) < 0.5).astype(np.int8)
    is_cc = np.isin(events.mode, CC_MODES)
    pion_p = np.linalg.norm(events.pion[:, 1:], axis=1)
    charged_pion = events.pion_present & (events.pion_charge != 0)
    pion_tracked = charged_pion & (rng.random(n) < pion_track_efficiency(pion_p, det))

    mu_p, mu_cos, _ = spherical_components(*events.lepton[:, 1:].T)
    misid = ~is_cc & pion_tracked & (rng.random(n) < det.pion_muon_misid)
    has_candidate = np.where(is_cc, rng.random(n) < muon_efficiency(mu_p, mu_cos, fgd, det), misid)
    candidate = np.where(is_cc[:, None], events.lepton[:, 1:], events.pion[:, 1:])
    cand_p = np.linalg.norm(candidate, axis=1)
    mu_sigma = np.hypot(det.muon_p_resolution[0], det.muon_p_resolution[1] * cand_p)
    reco_mu = smear_momenta(rng, candidate, mu_sigma, np.full(n, det.muon_angle_resolution))
    reco_mu = np.where(is_cc[:, None] | misid[:, None], reco_mu, 0.0)

    michel = (events.pion_charge > 0) & ~pion_tracked & (rng.random(n) < det.michel_efficiency)
    pi0 = (events.pion_charge == 0) & (rng.random(n) < det.pi0_efficiency)
    pion_seen = events.pion_present & ~misid & (pion_tracked | michel | pi0)

    protons = events.present & events.is_proton
    p3 = events.nucleons[..., 1:].reshape(-1, 3)
    p_true, cos_true, _ = spherical_components(*p3.T)
    in_tpc = protons.ravel() & (rng.random(len(p3)) < proton_tpc_efficiency(p_true, cos_true, det))
    in_fgd = protons.ravel() & ~in_tpc & (rng.random(len(p3)) < proton_fgd_efficiency(p_true, det))
    frac = np.where(in_tpc, det.proton_tpc_resolution[0], det.proton_fgd_resolution[0])
    angle = np.where(in_tpc, det.proton_tpc_resolution[1], det.proton_fgd_resolution[1])
    reco_p3 = smear_momenta(rng, p3, frac, angle).reshape(n, -1, 3)
    seen = (in_tpc | in_fgd).reshape(n, -1)
    reco_p_mag = np.where(seen, np.linalg.norm(reco_p3, axis=2), -np.inf)
    lead = np.argmax(reco_p_mag, axis=1)
    rows = np.arange(n)
    n_seen = seen.sum(axis=1)
    has_proton = n_seen > 0
    lead_p3 = np.where(has_proton[:, None], reco_p3[rows, lead], 0.0)
    lead_in_tpc = in_tpc.reshape(n, -1)[rows, lead]
    topology = np.select([n_seen == 0, n_seen >= 2, lead_in_tpc], [0, 3, 1], 2)

    out = {}
    for prefix, vec in (("reco_mu", reco_mu), ("reco_p", lead_p3)):
        out[f"{prefix}_p"], out[f"{prefix}_cos"], out[f"{prefix}_phi"] = spherical_components(*vec.T)
    has_mu = is_cc | misid
    out["reco_mu_cos"] = np.where(has_mu, out["reco_mu_cos"], 0.0)
    out["reco_p_cos"] = np.where(has_proton, out["reco_p_cos"], 0.0)
    stv = transverse_imbalance(
        *(out[f"reco_{k}"] for k in ("mu_p", "mu_cos", "mu_phi", "p_p", "p_cos", "p_phi"))
    )
    defined = has_mu & has_proton
    for name, value in zip(("reco_dpt", "reco_dalphat", "reco_dphit"), stv, strict=True):
        out[name] = np.where(defined & np.isfinite(value), value, 0.0)
    out["reco_has_proton"] = has_proton
    out["sample_id"] = (4 * fgd + topology).astype(np.int8)
    out["pass_reco"] = has_candidate & ~pion_seen
    return out
