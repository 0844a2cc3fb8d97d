"""A LArTPC-like detector response for particle lists: thresholds, then momentum and angle smearing.

Particles whose true kinetic energy is below the threshold of their kind (see
:func:`numl_core.data.particles.thresholds_gev`) and all neutrinos and neutrons are not seen. Tracks
(mu, p, pi+-, K) get a Gaussian fractional momentum error (range / multiple scattering); showers (e, gamma,
pi0) a calorimetric energy error sigma_E / E = a / sqrt(E/GeV) (+) b; both get a Gaussian angular error.
The resolutions are typical of DUNE far-detector studies (DUNE TDR vol. II, arXiv:2002.03005).
Units: GeV, GeV/c, degrees where named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numl_core.data.generators.atmospheric_interactions import Particles
from numl_core.data.generators.phase_space import four_vectors
from numl_core.data.particles import mass_of, thresholds_gev

SHOWERS = (11, -11, 22, 111)


@dataclass(frozen=True)
class DetectorModel:
    """Resolutions: track |p| fraction, shower stochastic and constant terms, angles [degrees]."""

    track_momentum: float = 0.05
    shower_stochastic: float = 0.10
    shower_constant: float = 0.03
    track_angle_deg: float = 1.5
    shower_angle_deg: float = 3.0


def visible(particles: Particles, thresholds_mev: dict[str, float] | None = None) -> np.ndarray:
    """Mask of particles above their kind's kinetic-energy threshold (never neutrinos or neutrons)."""
    if not len(particles.pdg):
        return np.zeros(0, bool)
    kinetic = particles.p4[:, 0] - mass_of(particles.pdg)
    return kinetic >= thresholds_gev(particles.pdg, thresholds_mev)


def smear(rng: np.random.Generator, particles: Particles, det: DetectorModel) -> Particles:
    """Reconstructed copies of ``particles``: smeared magnitude and direction, PDG masses kept."""
    n = len(particles.pdg)
    mass = mass_of(particles.pdg)
    p = np.linalg.norm(particles.p4[:, 1:], axis=1)
    shower = np.isin(particles.pdg, SHOWERS)
    energy = particles.p4[:, 0]
    e_res = np.hypot(det.shower_stochastic / np.sqrt(np.clip(energy, 1e-3, None)), det.shower_constant)
    e_reco = np.clip(energy * (1.0 + e_res * rng.standard_normal(n)), mass + 1e-4, None)
    p_shower = np.sqrt(e_reco**2 - mass**2)
    p_track = p * np.clip(1.0 + det.track_momentum * rng.standard_normal(n), 0.05, None)
    p_reco = np.where(shower, p_shower, p_track)
    sigma = np.deg2rad(np.where(shower, det.shower_angle_deg, det.track_angle_deg))
    direction = _tilt(rng, particles.p4[:, 1:] / np.clip(p, 1e-12, None)[:, None], sigma)
    momentum = p_reco[:, None] * direction
    return Particles(particles.event, particles.pdg, four_vectors(np.sqrt(p_reco**2 + mass**2), momentum))


def _tilt(rng: np.random.Generator, unit: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Unit vectors tilted by small Gaussian angles (sigma [rad]) in two perpendicular planes."""
    helper = np.where(np.abs(unit[:, :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    e1 = np.cross(unit, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(unit, e1)
    a, b = (sigma * rng.standard_normal(len(unit)) for _ in range(2))
    out = unit + a[:, None] * e1 + b[:, None] * e2
    return out / np.linalg.norm(out, axis=1, keepdims=True)
