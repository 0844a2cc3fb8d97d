"""Random kinematics for event generators: directions, Fermi motion, two-body scattering and decays.

All functions are vectorised over events and take an explicit ``np.random.Generator``. Four-vectors are
``(n, 4)`` arrays ``(E, px, py, pz)`` in GeV; the beam is along +z.

>>> rng = np.random.default_rng(1)
>>> bool(np.all(np.linalg.norm(fermi_sphere_momenta(rng, 1000, 0.221), axis=1) <= 0.221))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numl_core.data.kinematics import boost, minkowski_square, two_body_momentum


def isotropic_directions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors ``(n, 3)`` uniform on the sphere."""
    cos_t = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    return np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)


def fermi_sphere_momenta(
    rng: np.random.Generator,
    n: int,
    fermi_momentum: float | np.ndarray,
    tail_fraction: float = 0.0,
    tail_cutoff: float = 0.5,
) -> np.ndarray:
    """Nucleon momenta ``(n, 3)`` [GeV/c] of a Fermi gas, optionally with a Bodek-Ritchie tail.

    ``fermi_momentum`` k_F [GeV/c] is a scalar or one value per nucleon (local Fermi gas). A fraction
    1 - ``tail_fraction`` is uniform in the sphere of radius k_F; the rest follows the short-range-correlation
    tail |phi(p)|^2 ~ p^-4 (dN/dp ~ p^-2) from k_F to ``tail_cutoff`` (Bodek & Ritchie, PRD 23, 1070 (1981),
    whose fraction is 6 (2 k_F / pi)^2, 0.12 for carbon).
    """
    kf = np.broadcast_to(np.asarray(fermi_momentum, float), (n,))
    radius = kf * rng.random(n) ** (1.0 / 3.0)
    u = rng.random(n)
    tail = rng.random(n) < tail_fraction
    radius[tail] = 1.0 / (1.0 / kf[tail] - u[tail] * (1.0 / kf[tail] - 1.0 / tail_cutoff))
    return radius[:, None] * isotropic_directions(rng, n)


def four_vectors(energy: np.ndarray, momentum: np.ndarray) -> np.ndarray:
    """Stack energies ``(n,)`` and momenta ``(n, 3)`` into four-vectors ``(n, 4)``."""
    return np.concatenate([np.asarray(energy, float)[:, None], momentum], axis=1)


def beam_four_vectors(enu: np.ndarray) -> np.ndarray:
    """Massless neutrinos of energies ``enu`` [GeV] along +z, ``(n, 4)``."""
    k = np.zeros((len(enu), 4))
    k[:, 0] = k[:, 3] = enu
    return k


def invariant_mass(p4: np.ndarray) -> np.ndarray:
    """sqrt(max(p^2, 0)) [GeV] of four-vectors ``(n, 4)``."""
    return np.sqrt(np.clip(minkowski_square(p4), 0.0, None))


def isotropic_decay(
    rng: np.random.Generator, parent: np.ndarray, m1: np.ndarray | float, m2: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Two-body decay isotropic in the parent's rest frame; returns the daughters' lab four-vectors.

    ``parent`` ``(n, 4)`` must be above threshold (mass >= m1 + m2) on every row.
    """
    n = len(parent)
    mass = invariant_mass(parent)
    p_star = two_body_momentum(mass, m1, m2)
    direction = isotropic_directions(rng, n)
    d1 = four_vectors(np.sqrt(p_star**2 + np.asarray(m1) ** 2), p_star[:, None] * direction)
    d2 = four_vectors(np.sqrt(p_star**2 + np.asarray(m2) ** 2), -p_star[:, None] * direction)
    beta = parent[:, 1:] / parent[:, :1]
    return boost(d1, beta), boost(d2, beta)


@dataclass(frozen=True)
class TwoBodyFrame:
    """Centre-of-mass description of k + P -> l + X for a massless projectile k (all arrays ``(n, ...)``).

    ``q2_min``/``q2_max`` [GeV^2] bound Q^2 = -(k - l)^2; ``valid`` marks rows above threshold.
    """

    total: np.ndarray
    beta: np.ndarray
    k_cm: np.ndarray
    e_lep: np.ndarray
    p_lep: np.ndarray
    m_lep: float
    q2_min: np.ndarray
    q2_max: np.ndarray
    valid: np.ndarray


def two_body_frame(k4: np.ndarray, target: np.ndarray, m_lep: float, m_x: np.ndarray | float) -> TwoBodyFrame:
    """Set up k + target -> lepton (mass m_lep) + X (mass m_x) in the centre-of-mass frame."""
    total = k4 + target
    s = minkowski_square(total)
    valid = (s > 0) & (np.sqrt(np.clip(s, 0, None)) > m_lep + np.asarray(m_x)) & (total[:, 0] > 0)
    rs = np.sqrt(np.where(valid, s, 1.0))
    beta = np.where(valid[:, None], total[:, 1:] / total[:, :1], 0.0)
    k_cm = boost(k4, -beta)
    e_lep = (rs**2 + m_lep**2 - np.asarray(m_x) ** 2) / (2.0 * rs)
    p_lep = np.sqrt(np.clip(e_lep**2 - m_lep**2, 0.0, None))
    k_star = k_cm[:, 0]
    q2_min = np.where(valid, -(m_lep**2) + 2.0 * k_star * (e_lep - p_lep), 0.0)
    q2_max = np.where(valid, -(m_lep**2) + 2.0 * k_star * (e_lep + p_lep), 0.0)
    return TwoBodyFrame(total, beta, k_cm, e_lep, p_lep, m_lep, q2_min, q2_max, valid)


def _perpendicular_basis(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors completing the unit vectors ``axis`` ``(n, 3)`` to right-handed bases."""
    helper = np.zeros_like(axis)
    use_x = np.abs(axis[:, 0]) < 0.9
    helper[use_x, 0] = 1.0
    helper[~use_x, 1] = 1.0
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(axis, e1)


def scatter_at_q2(frame: TwoBodyFrame, q2: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lab four-vectors (lepton, X) for given Q^2 [GeV^2] and CM azimuth ``phi`` [rad] about the beam.

    Rows outside ``frame.valid`` carry meaningless numbers; callers mask them.
    """
    k_star = np.where(frame.valid, frame.k_cm[:, 0], 1.0)
    p_lep = np.where(frame.p_lep > 0, frame.p_lep, 1.0)
    cos_t = np.clip((frame.e_lep - (q2 + frame.m_lep**2) / (2.0 * k_star)) / p_lep, -1.0, 1.0)
    sin_t = np.sqrt(1.0 - cos_t**2)
    axis = frame.k_cm[:, 1:] / k_star[:, None]
    axis = np.where(frame.valid[:, None], axis, np.array([0.0, 0.0, 1.0]))
    e1, e2 = _perpendicular_basis(axis)
    direction = (
        (sin_t * np.cos(phi))[:, None] * e1 + (sin_t * np.sin(phi))[:, None] * e2 + cos_t[:, None] * axis
    )
    lepton = boost(four_vectors(frame.e_lep, frame.p_lep[:, None] * direction), frame.beta)
    return lepton, frame.total - lepton


def dipole_q2_proposal(
    rng: np.random.Generator, q2_min: np.ndarray, q2_max: np.ndarray, scale_sq: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw Q^2 from g(Q^2) proportional to (1 + Q^2/L^2)^-2 truncated to [q2_min, q2_max] (L^2 = scale_sq).

    Returns (Q^2 [GeV^2], 1/g(Q^2) [GeV^2]) with g normalised on the interval, for importance ratios.
    The inverse CDF is analytic: G(Q^2) = L^2 Q^2 / (L^2 + Q^2).
    """

    def cdf(q2: np.ndarray) -> np.ndarray:
        return scale_sq * q2 / (scale_sq + q2)

    lo, hi = cdf(np.clip(q2_min, 0.0, None)), cdf(np.clip(q2_max, 0.0, None))
    g = lo + (hi - lo) * rng.random(len(lo))
    q2 = scale_sq * g / (scale_sq - g)
    return q2, (hi - lo) * (1.0 + q2 / scale_sq) ** 2


class HistogramSampler:
    """Sample x from a histogram density (piecewise constant): ``edges`` ``(k+1,)``, ``density`` ``(k,)``."""

    def __init__(self, edges: np.ndarray, density: np.ndarray) -> None:
        self.edges = np.asarray(edges, float)
        content = np.clip(np.asarray(density, float), 0.0, None) * np.diff(self.edges)
        self.cdf = np.concatenate([[0.0], np.cumsum(content)]) / content.sum()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws [units of the edges]."""
        u = rng.random(n)
        i = np.clip(np.searchsorted(self.cdf, u, side="right") - 1, 0, len(self.edges) - 2)
        frac = (u - self.cdf[i]) / np.maximum(self.cdf[i + 1] - self.cdf[i], 1e-300)
        return self.edges[i] + np.clip(frac, 0.0, 1.0) * (self.edges[i + 1] - self.edges[i])
