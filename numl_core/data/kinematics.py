"""Relativistic kinematics for neutrino-nucleus events (vectorised NumPy).

Conventions: natural units with momenta in GeV/c, energies and masses in GeV, angles in radians; the
neutrino beam travels along +z; ``phi`` is the azimuth in (-pi, pi] measured from +x; four-vectors are
arrays of shape ``(..., 4)`` ordered ``(E, px, py, pz)``.

>>> dpt, dalphat, dphit = transverse_imbalance(0.5, 0.6, 0.0, 0.4, 0.8, np.pi)
>>> round(float(dpt), 6), round(float(dphit), 6)
(0.16, 0.0)
"""

from __future__ import annotations

import numpy as np

MUON_MASS = 0.1056584
"""Muon mass [GeV] (PDG)."""
NUCLEON_MASS = 0.938919
"""Average nucleon mass [GeV], (m_p + m_n) / 2."""
CHARGED_PION_MASS = 0.13957
"""Charged pion mass [GeV]."""
NEUTRAL_PION_MASS = 0.1349768
"""Neutral pion mass [GeV]."""
EARTH_RADIUS_KM = 6371.0
"""Mean Earth radius [km]."""
PRODUCTION_HEIGHT_KM = 15.0
"""Typical production height of atmospheric neutrinos above the surface [km]."""
HOMESTAKE_DEPTH_KM = 1.48
"""Depth of the Homestake (SURF 4850 ft) caverns [km]."""


def momentum_components(
    p: np.ndarray, cos_theta: np.ndarray, phi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cartesian (px, py, pz) [GeV/c] from |p| [GeV/c], cos(theta) to the beam (+z) and azimuth phi [rad].

    >>> [round(float(c), 6) for c in momentum_components(2.0, 0.0, np.pi / 2)]
    [0.0, 2.0, 0.0]
    """
    p, cos_theta, phi = np.asarray(p, float), np.asarray(cos_theta, float), np.asarray(phi, float)
    sin_theta = np.sqrt(np.clip(1.0 - cos_theta**2, 0.0, None))
    return p * sin_theta * np.cos(phi), p * sin_theta * np.sin(phi), p * cos_theta


def spherical_components(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`momentum_components`: (|p| [GeV/c], cos theta, phi [rad] in (-pi, pi]).

    A zero vector has cos theta = 1 and phi = 0 (the direction is undefined; callers mask such rows).

    >>> [round(float(c), 6) for c in spherical_components(0.0, 3.0, 4.0)]
    [5.0, 0.8, 1.570796]
    """
    px, py, pz = np.asarray(px, float), np.asarray(py, float), np.asarray(pz, float)
    p = np.sqrt(px**2 + py**2 + pz**2)
    cos_theta = np.divide(pz, p, out=np.ones_like(p), where=p > 0)
    return p, np.clip(cos_theta, -1.0, 1.0), np.arctan2(py, px)


def energy_from_momentum(p: np.ndarray, mass: float | np.ndarray) -> np.ndarray:
    """Total energy E = sqrt(p^2 + m^2) [GeV] from momentum [GeV/c] and mass [GeV].

    >>> round(float(energy_from_momentum(0.3, MUON_MASS)), 6)
    0.318062
    """
    return np.sqrt(np.asarray(p, float) ** 2 + np.asarray(mass, float) ** 2)


def kinetic_energy(p: np.ndarray, mass: float | np.ndarray) -> np.ndarray:
    """Kinetic energy T = E - m [GeV] from momentum [GeV/c] and mass [GeV].

    >>> round(float(kinetic_energy(0.0, NUCLEON_MASS)), 12)
    0.0
    """
    return energy_from_momentum(p, mass) - np.asarray(mass, float)


def q2_cc(
    enu: np.ndarray, e_lep: np.ndarray, p_lep: np.ndarray, cos_lep: np.ndarray, m_lep: float | np.ndarray
) -> np.ndarray:
    """Four-momentum transfer Q^2 = -q^2 = 2 E_nu (E_l - p_l cos theta_l) - m_l^2 [GeV^2].

    Inputs: neutrino energy [GeV], charged-lepton energy [GeV], momentum [GeV/c], cos theta to the beam,
    lepton mass [GeV] (0 for a neutral-current outgoing neutrino).

    >>> round(float(q2_cc(1.0, 0.6, 0.6, 0.5, 0.0)), 6)
    0.6
    """
    return 2.0 * np.asarray(enu, float) * (np.asarray(e_lep, float) - np.asarray(p_lep, float) * cos_lep) - (
        np.asarray(m_lep, float) ** 2
    )


def energy_transfer(enu: np.ndarray, e_lep: np.ndarray) -> np.ndarray:
    """Energy transfer omega = E_nu - E_l [GeV].

    >>> float(energy_transfer(1.0, 0.75))
    0.25
    """
    return np.asarray(enu, float) - np.asarray(e_lep, float)


def transverse_imbalance(
    mu_p: np.ndarray,
    mu_cos: np.ndarray,
    mu_phi: np.ndarray,
    p_p: np.ndarray,
    p_cos: np.ndarray,
    p_phi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Single-transverse kinematic imbalance of a muon and a proton (Lu et al., PRC 94, 015503 (2016)).

    Inputs are (|p| [GeV/c], cos theta, phi [rad]) of the muon and of the proton. Returns
    ``dpt`` = |p_T^mu + p_T^p| [GeV/c],
    ``dalphat`` = arccos(-p_T^mu . dp_T / (|p_T^mu| |dp_T|)) [rad] in [0, pi],
    ``dphit`` = arccos(-p_T^mu . p_T^p / (|p_T^mu| |p_T^p|)) [rad] in [0, pi] (0 for back-to-back
    transverse momenta). Angles whose defining vectors vanish (to 1e-12 of the transverse momenta, i.e.
    rounding) are NaN: undefined, not a sentinel.

    >>> dpt, dalphat, dphit = transverse_imbalance(1.0, 0.0, 0.0, 1.0, 0.0, np.pi / 2)
    >>> round(float(dpt), 6), round(float(dalphat), 6), round(float(dphit), 6)
    (1.414214, 2.356194, 1.570796)
    """
    mux, muy, _ = momentum_components(mu_p, mu_cos, mu_phi)
    ppx, ppy, _ = momentum_components(p_p, p_cos, p_phi)
    dx, dy = mux + ppx, muy + ppy
    mu_t, p_t = np.hypot(mux, muy), np.hypot(ppx, ppy)
    dpt = np.hypot(dx, dy)
    dpt = np.where(dpt > 1e-12 * (mu_t + p_t), dpt, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_alpha = np.where(dpt > 0, -(mux * dx + muy * dy) / (mu_t * dpt), np.nan)
        cos_phi = -(mux * ppx + muy * ppy) / (mu_t * p_t)
    return dpt, np.arccos(np.clip(cos_alpha, -1.0, 1.0)), np.arccos(np.clip(cos_phi, -1.0, 1.0))


def minkowski_square(p4: np.ndarray) -> np.ndarray:
    """Invariant mass squared E^2 - |p|^2 [GeV^2] of four-vectors ``(..., 4)``.

    >>> float(minkowski_square(np.array([5.0, 0.0, 3.0, 0.0])))
    16.0
    """
    p4 = np.asarray(p4, float)
    return p4[..., 0] ** 2 - np.sum(p4[..., 1:] ** 2, axis=-1)


def boost(p4: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Lorentz-boost four-vectors ``(n, 4)`` [GeV] by velocities ``beta`` ``(n, 3)`` (|beta| < 1).

    A particle at rest boosted by beta acquires velocity +beta (active boost).

    >>> p = boost(np.array([[1.0, 0.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 0.6]]))
    >>> [round(float(c), 6) for c in p[0]]
    [1.25, 0.0, 0.0, 0.75]
    """
    p4, beta = np.asarray(p4, float), np.asarray(beta, float)
    b2 = np.sum(beta**2, axis=-1)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = np.sum(beta * p4[..., 1:], axis=-1)
    gamma2 = np.divide(gamma - 1.0, b2, out=np.zeros_like(b2), where=b2 > 0)
    out = np.empty_like(p4)
    out[..., 0] = gamma * (p4[..., 0] + bp)
    out[..., 1:] = p4[..., 1:] + (gamma2 * bp + gamma * p4[..., 0])[..., None] * beta
    return out


def two_body_momentum(mass: np.ndarray, m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """Momentum [GeV/c] of either daughter in the rest frame of a parent of invariant mass ``mass`` [GeV].

    Below threshold (mass < m1 + m2) the result is NaN.

    >>> round(float(two_body_momentum(1.232, NUCLEON_MASS, CHARGED_PION_MASS)), 4)
    0.2266
    """
    mass, m1, m2 = np.asarray(mass, float), np.asarray(m1, float), np.asarray(m2, float)
    arg = (mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2)
    with np.errstate(invalid="ignore"):
        return np.where(arg >= 0, np.sqrt(np.abs(arg)), np.nan) / (2.0 * mass)


def baseline_km(
    cos_zenith: np.ndarray,
    depth_km: float = HOMESTAKE_DEPTH_KM,
    height_km: float = PRODUCTION_HEIGHT_KM,
    radius_km: float = EARTH_RADIUS_KM,
) -> np.ndarray:
    """Flight distance [km] from production height to a detector at depth, for cos(zenith) in [-1, 1].

    L = -(R - d) cos z + sqrt((R - d)^2 cos^2 z + (R + h)^2 - (R - d)^2): straight line from a sphere of
    radius R + h to a point at radius R - d (cos z = 1: downward-going, L = h + d).
    """
    c = np.asarray(cos_zenith, float)
    r_det = radius_km - depth_km
    return -r_det * c + np.sqrt(r_det**2 * c**2 + (radius_km + height_km) ** 2 - r_det**2)


def scaling_variable_psi(
    omega: np.ndarray, q2: np.ndarray, fermi_momentum: np.ndarray | float, shift: np.ndarray | float = 0.0
) -> np.ndarray:
    """The quasi-elastic scaling variable psi' of the relativistic Fermi gas (Alberico et al., PRC 38,
    1801 (1988); Maieron, Donnelly, Sick, PRC 65, 025502 (2002)): 0 at the quasi-elastic peak, -1 and +1
    at the edges of the Fermi-gas response, so spectra of different nuclei and kinematics line up.

    ``omega`` energy transfer [GeV], ``q2`` = Q^2 [GeV^2], ``fermi_momentum`` k_F [GeV/c] and the energy
    ``shift`` [GeV] (removal energy) per point: with lambda' = (omega - shift) / 2M, kappa = |q| / 2M,
    tau' = kappa^2 - lambda'^2 and xi_F = sqrt(1 + (k_F / M)^2) - 1,
    psi' = (lambda' - tau') / sqrt(xi_F ((1 + lambda') tau' + kappa sqrt(tau' (1 + tau')))).

    >>> q2 = np.array([0.2]); omega = q2 / (2 * NUCLEON_MASS)  # the free-nucleon peak
    >>> abs(float(scaling_variable_psi(omega, q2, 0.221)[0])) < 1e-9
    True
    """
    m = NUCLEON_MASS
    omega, q2 = np.asarray(omega, float), np.asarray(q2, float)
    kappa = np.sqrt(q2 + omega**2) / (2 * m)
    lam = (omega - shift) / (2 * m)
    tau = np.maximum(kappa**2 - lam**2, 1e-12)
    xi_f = np.sqrt(1 + (np.asarray(fermi_momentum, float) / m) ** 2) - 1
    return (lam - tau) / np.sqrt(xi_f * ((1 + lam) * tau + kappa * np.sqrt(tau * (1 + tau))))
