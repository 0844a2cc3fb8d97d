"""Free-nucleon charged-current quasi-elastic cross section (Llewellyn Smith, Phys. Rep. 3, 261 (1972)).

dsigma/dQ^2 = M^2 G_F^2 cos^2(theta_C) / (8 pi E^2) [A -+ B (s-u)/M^2 + C (s-u)^2/M^4] for nu_mu n -> mu- p
(upper sign) with dipole vector (M_V^2 = 0.71 GeV^2, G_E^n = 0) and axial (mass M_A) form factors and
the pion-pole induced pseudoscalar F_P = 2 M^2 F_A / (m_pi^2 + Q^2).

Because F_P is proportional to F_A, the cross section is a quadratic in F_A at fixed (E_nu, Q^2):
dsigma/dQ^2 = t0 + t1 F_A + t2 F_A^2. :func:`ls_terms` returns (t0, t1, t2), so reweighting to another
axial mass costs one form-factor evaluation per event.

>>> round(float(ls_total_sigma(1.0)) / 1e-38, 3)
1.094
"""

from __future__ import annotations

import numpy as np

from numl_core.data.kinematics import CHARGED_PION_MASS, MUON_MASS, NUCLEON_MASS

FERMI_CONSTANT = 1.1663787e-5
"""G_F [GeV^-2]."""
COS_CABIBBO = 0.97373
"""cos(theta_C)."""
AXIAL_COUPLING = -1.2723
"""g_A = F_A(0) (sign convention in which the neutrino takes the -B term)."""
VECTOR_MASS_SQ = 0.71
"""Dipole vector mass squared M_V^2 [GeV^2]."""
MU_PROTON, MU_NEUTRON = 2.7928473, -1.9130427
"""Nucleon magnetic moments [nuclear magnetons]."""
GEV2_TO_CM2 = 0.3893793721e-27
"""(hbar c)^2: 1 GeV^-2 in cm^2."""
AXIAL_MASS = 1.03
"""Default dipole axial mass M_A [GeV]."""


def vector_form_factors(q2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isovector Dirac F_1^V and xi F_2^V (xi = mu_p - mu_n - 1) from dipole Sachs form factors; Q^2 [GeV^2].

    >>> [round(float(f), 4) for f in vector_form_factors(0.0)]
    [1.0, 3.7059]
    """
    q2 = np.asarray(q2, float)
    tau = q2 / (4.0 * NUCLEON_MASS**2)
    g_d = 1.0 / (1.0 + q2 / VECTOR_MASS_SQ) ** 2
    g_e, g_m = g_d, (MU_PROTON - MU_NEUTRON) * g_d
    return (g_e + tau * g_m) / (1.0 + tau), (g_m - g_e) / (1.0 + tau)


def axial_form_factor(q2: np.ndarray, axial_mass: float | np.ndarray = AXIAL_MASS) -> np.ndarray:
    """Dipole axial form factor F_A = g_A / (1 + Q^2/M_A^2)^2; Q^2 [GeV^2], M_A [GeV].

    >>> float(axial_form_factor(0.0))
    -1.2723
    """
    return AXIAL_COUPLING / (1.0 + np.asarray(q2, float) / np.asarray(axial_mass, float) ** 2) ** 2


def free_q2_range(
    enu: np.ndarray, m_lep: float = MUON_MASS, mass: float = NUCLEON_MASS
) -> tuple[np.ndarray, np.ndarray]:
    """Kinematic (Q^2_min, Q^2_max) [GeV^2] for nu N -> l N' on a free nucleon at rest; E_nu [GeV].

    Below threshold both limits are NaN.

    >>> [round(float(q), 4) for q in free_q2_range(1.0)]
    [0.0, 1.2631]
    """
    enu = np.asarray(enu, float)
    s = mass**2 + 2.0 * mass * enu
    rs = np.sqrt(s)
    k = (s - mass**2) / (2.0 * rs)
    e_l = (s + m_lep**2 - mass**2) / (2.0 * rs)
    with np.errstate(invalid="ignore"):
        p_l = np.sqrt(e_l**2 - m_lep**2)
    return -(m_lep**2) + 2.0 * k * (e_l - p_l), -(m_lep**2) + 2.0 * k * (e_l + p_l)


def ls_terms(
    enu: np.ndarray, q2: np.ndarray, m_lep: float = MUON_MASS, neutrino: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t0, t1, t2) [cm^2/GeV^2] with dsigma/dQ^2 = t0 + t1 F_A + t2 F_A^2 per target nucleon.

    E_nu [GeV], Q^2 [GeV^2], lepton mass [GeV]; ``neutrino`` picks the sign of the B term.
    """
    enu, q2 = np.asarray(enu, float), np.asarray(q2, float)
    m2, mm2, ml2 = NUCLEON_MASS**2, NUCLEON_MASS**2, m_lep**2
    tau = q2 / (4.0 * m2)
    f1, xf2 = vector_form_factors(q2)
    kappa = 2.0 * m2 / (CHARGED_PION_MASS**2 + q2)
    su = (4.0 * NUCLEON_MASS * enu - q2 - ml2) / mm2
    pre = (ml2 + q2) / m2
    a0 = pre * (
        -(1.0 - tau) * f1**2
        + tau * (1.0 - tau) * xf2**2
        + 4.0 * tau * f1 * xf2
        - ml2 / (4.0 * m2) * (f1 + xf2) ** 2
    )
    a2 = pre * ((1.0 + tau) - ml2 / (4.0 * m2) * ((1.0 + 2.0 * kappa) ** 2 - (q2 / m2 + 4.0) * kappa**2))
    b1 = q2 / m2 * (f1 + xf2)
    sign = -1.0 if neutrino else 1.0
    norm = GEV2_TO_CM2 * m2 * (FERMI_CONSTANT * COS_CABIBBO) ** 2 / (8.0 * np.pi * enu**2)
    t0 = norm * (a0 + 0.25 * (f1**2 + tau * xf2**2) * su**2)
    t1 = norm * sign * b1 * su
    t2 = norm * (a2 + 0.25 * su**2)
    return t0, t1, t2


def ls_dsigma_dq2(
    enu: np.ndarray,
    q2: np.ndarray,
    axial_mass: float | np.ndarray = AXIAL_MASS,
    m_lep: float = MUON_MASS,
    neutrino: bool = True,
) -> np.ndarray:
    """Llewellyn Smith dsigma/dQ^2 [cm^2/GeV^2] per neutron (nu) or proton (nubar); E_nu [GeV], Q^2 [GeV^2].

    The expression is evaluated as written; outside the kinematic range of :func:`free_q2_range` it has no
    physical meaning.

    >>> round(float(ls_dsigma_dq2(1.0, 0.2)) / 1e-38, 4)
    1.5926
    """
    t0, t1, t2 = ls_terms(enu, q2, m_lep, neutrino)
    fa = axial_form_factor(q2, axial_mass)
    return t0 + t1 * fa + t2 * fa**2


def ls_total_sigma(
    enu: np.ndarray,
    axial_mass: float = AXIAL_MASS,
    m_lep: float = MUON_MASS,
    neutrino: bool = True,
    n_nodes: int = 96,
) -> np.ndarray:
    """Free-nucleon CCQE cross section sigma(E_nu) [cm^2] by Gauss-Legendre integration over Q^2.

    Zero below threshold. E_nu [GeV], any shape.

    >>> round(float(ls_total_sigma(0.1)), 12)
    0.0
    """
    enu = np.asarray(enu, float)
    lo, hi = free_q2_range(np.maximum(enu, 1e-9), m_lep)
    ok = np.isfinite(lo) & (hi > lo)
    lo, hi = np.where(ok, lo, 0.0), np.where(ok, hi, 0.0)
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    half = 0.5 * (hi - lo)
    q2 = (0.5 * (hi + lo))[..., None] + half[..., None] * x
    dsig = ls_dsigma_dq2(np.maximum(enu, 1e-9)[..., None], q2, axial_mass, m_lep, neutrino)
    return np.where(ok, half * np.sum(w * dsig, axis=-1), 0.0)
