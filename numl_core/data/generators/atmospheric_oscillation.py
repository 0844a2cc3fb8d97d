"""Three-flavour oscillation probabilities in constant-density matter, and oscillation weights.

The flavour-basis Hamiltonian of a neutrino of energy E in matter of electron density N_e is
H = U diag(0, dm21, dm31) U^dagger / (2E) + diag(V, 0, 0), V = sqrt(2) G_F N_e; for antineutrinos
U -> U* and V -> -V. The amplitude over a distance L is exp(-i H L), computed by diagonalising H
(exact for constant density; Mikheyev-Smirnov-Wolfenstein, e.g. Giunti & Kim, "Fundamentals of
Neutrino Physics and Astrophysics", OUP 2007, ch. 9). Each flight path gets one density: the mean
electron density along its chord through a two-shell Earth (mantle and core with PREM mean densities,
Dziewonski & Anderson, PEPI 25, 297 (1981)); the part of the path in the atmosphere has none.

Default parameters: NuFIT 5.2 normal ordering (Esteban et al., JHEP 09 (2020) 178, www.nu-fit.org).
Units: eV^2, GeV, km, g/cm^3.

>>> p = probabilities(np.array([14]), np.array([1.0]), np.array([0.0]))
>>> p.round(6).tolist()
[[0.0, 1.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numl_core.data.generators.atmospheric_flux import (
    EARTH_RADIUS_KM,
    HOMESTAKE_DEPTH_KM,
    PRODUCTION_HEIGHT_KM,
    baseline_km,
    load_honda_table,
)

KM_PER_EV2_OVER_GEV = 2.0 * 1.26693
"""Delta m^2 / (2E) in 1/km for Delta m^2 = 1 eV^2 and E = 1 GeV (= 1 / (2 hbar c) in these units)."""
MATTER_POTENTIAL_PER_KM = 3.8679e-4
"""V = sqrt(2) G_F N_e in 1/km for an electron density of 1 mol/cm^3 (Y_e rho = 1 g/cm^3)."""
CORE_RADIUS_KM = 3480.0
MANTLE = (4.45, 0.494)
CORE = (10.9, 0.467)
"""(mean density [g/cm^3], electrons per nucleon) of the PREM mantle (with crust) and core."""
FLAVOUR_INDEX = {12: 0, 14: 1, 16: 2, -12: 0, -14: 1, -16: 2}


@dataclass(frozen=True)
class OscillationParameters:
    """Mixing angles [rad], CP phase [rad] and mass splittings [eV^2] (dm31 < 0: inverted ordering)."""

    theta12: float = np.radians(33.41)
    theta13: float = np.radians(8.58)
    theta23: float = np.radians(42.2)
    delta_cp: float = np.radians(232.0)
    dm21: float = 7.41e-5
    dm31: float = 2.507e-3

    def pmns(self) -> np.ndarray:
        """The PMNS matrix U (3, 3), rows e, mu, tau (PDG parametrisation)."""
        s12, c12 = np.sin(self.theta12), np.cos(self.theta12)
        s13, c13 = np.sin(self.theta13), np.cos(self.theta13)
        s23, c23 = np.sin(self.theta23), np.cos(self.theta23)
        e = np.exp(1j * self.delta_cp)
        return np.array(
            [
                [c12 * c13, s12 * c13, s13 / e],
                [-s12 * c23 - c12 * s23 * s13 * e, c12 * c23 - s12 * s23 * s13 * e, s23 * c13],
                [s12 * s23 - c12 * c23 * s13 * e, -c12 * s23 - s12 * c23 * s13 * e, c23 * c13],
            ]
        )


def electron_density(
    cos_zenith: np.ndarray,
    depth_km: float = HOMESTAKE_DEPTH_KM,
    height_km: float = PRODUCTION_HEIGHT_KM,
) -> np.ndarray:
    """Mean Y_e rho [mol/cm^3] along the flight path from the production height to the detector.

    >>> electron_density(np.array([1.0, -1.0])).round(2).tolist()
    [0.2, 3.77]
    """
    cz = np.asarray(cos_zenith, float)
    length = baseline_km(cz, depth_km, height_km)
    r_det = EARTH_RADIUS_KM - depth_km
    # impact parameter of the path's line from the Earth's centre, and the chord lengths inside
    # the Earth's surface and the core (the detector sits inside the Earth, below its surface)
    b2 = r_det**2 * (1.0 - cz**2)
    half = np.sqrt(np.clip(EARTH_RADIUS_KM**2 - b2, 0.0, None))
    along = -r_det * cz
    in_earth = np.clip(along + half, 0.0, length)
    core_half = np.sqrt(np.clip(CORE_RADIUS_KM**2 - b2, 0.0, None))
    in_core = np.where(cz < 0, 2.0 * core_half, 0.0)
    rho_e_mantle, rho_e_core = MANTLE[0] * MANTLE[1], CORE[0] * CORE[1]
    return (rho_e_mantle * (in_earth - in_core) + rho_e_core * in_core) / length


def probabilities(
    nu_pdg: np.ndarray,
    energy: np.ndarray,
    baseline: np.ndarray,
    density: np.ndarray | float = 0.0,
    params: OscillationParameters = OscillationParameters(),
) -> np.ndarray:
    """P(alpha -> beta) (N, 3) for beta = e, mu, tau, from initial flavours ``nu_pdg`` (N,) (sign:
    neutrino / antineutrino), energies [GeV], baselines [km] and electron densities Y_e rho [mol/cm^3]."""
    pdg = np.asarray(nu_pdg, np.int64)
    energy = np.asarray(energy, float)
    n = len(pdg)
    baseline = np.broadcast_to(np.asarray(baseline, float), (n,))
    density = np.broadcast_to(np.asarray(density, float), (n,))
    unknown = sorted(set(pdg.tolist()) - set(FLAVOUR_INDEX))
    if unknown:
        raise ValueError(f"unknown neutrino PDG code(s) {unknown}; expected one of {sorted(FLAVOUR_INDEX)}")
    if (energy <= 0).any():
        raise ValueError("neutrino energies must be > 0 GeV")
    anti = pdg < 0
    u = np.where(anti[:, None, None], params.pmns().conj(), params.pmns())
    masses = np.array([0.0, params.dm21, params.dm31]) * KM_PER_EV2_OVER_GEV
    h = np.einsum("nij,j,nkj->nik", u, masses, u.conj()) / energy[:, None, None]
    h[:, 0, 0] += np.where(anti, -1.0, 1.0) * MATTER_POTENTIAL_PER_KM * density
    values, vectors = np.linalg.eigh(h)
    phase = np.exp(-1j * values * baseline[:, None])
    amplitude = np.einsum("nij,nj,nkj->nik", vectors, phase, vectors.conj())
    alpha = np.array([FLAVOUR_INDEX[int(c)] for c in pdg], np.int64)
    return np.abs(amplitude[np.arange(n), :, alpha]) ** 2


def oscillation_weights(
    events, params: OscillationParameters = OscillationParameters(), site: str = "frj"
) -> np.ndarray:
    """Per-event factor (N,) turning unoscillated into oscillated rates for a table with ``nu_pdg``,
    ``enu_truth``, ``cos_zenith_truth`` and ``is_cc``: (Phi_e P(e -> b) + Phi_mu P(mu -> b)) / Phi_b for
    a CC event of flavour b, with Honda fluxes at the event's energy and direction; 1 for NC events
    (the sum over final flavours is 1)."""
    pdg = events["nu_pdg"].to_numpy(np.int64)
    energy = events["enu_truth"].to_numpy(float)
    cz = events["cos_zenith_truth"].to_numpy(float)
    sign = np.where(pdg < 0, -1, 1)
    table = load_honda_table(site)
    length, density = baseline_km(cz), electron_density(cz)
    beta = np.array([FLAVOUR_INDEX[int(c)] for c in pdg], np.int64)
    rows = np.arange(len(pdg))
    rate = np.zeros(len(pdg))
    for origin in (12, 14):
        p = probabilities(sign * origin, energy, length, density, params)
        rate += table.flux(sign * origin, energy, cz) * p[rows, beta]
    own = table.flux(pdg, energy, cz)
    weight = np.divide(rate, own, out=np.ones(len(pdg)), where=own > 0)
    return np.where(events["is_cc"].to_numpy(bool), weight, 1.0)
