"""Nucleon side of the exclusive 1p1h cross section in torch: form factors and the squared amplitude.

The spin-summed squared matrix element of nu_mu n -> mu- p with the Llewellyn Smith current
(Phys. Rep. 3, 261 (1972)) is a Lorentz invariant of Q^2 and s - u:

|M|^2 = 8 G_F^2 cos^2(theta_C) M^4 [A - B (s-u)/M^2 + C (s-u)^2/M^4],

so that dsigma/dQ^2 = |M|^2 / (64 pi M^2 E_nu^2) on a nucleon at rest reproduces
:func:`numl_core.data.llewellyn_smith.ls_dsigma_dq2`. On a bound nucleon the same expression is
evaluated with de Forest's off-shell prescription (Nucl. Phys. A 392, 232 (1983)): the initial nucleon
is put on shell and the energy transfer replaced by omega~ = E' - E_p.

Axial form factors: dipole, or the model-independent z expansion (Bhattacharya, Hill, Paz,
Phys. Rev. D 84, 073006 (2011)) with the deuterium-fit coefficients of Meyer, Betancourt, Gran, Hill,
Phys. Rev. D 93, 113015 (2016) in the convention F_A(0) = g_A = -1.2723.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from numl_core.data.kinematics import CHARGED_PION_MASS, NUCLEON_MASS
from numl_core.data.llewellyn_smith import (
    AXIAL_COUPLING,
    AXIAL_MASS,
    COS_CABIBBO,
    FERMI_CONSTANT,
    MU_NEUTRON,
    MU_PROTON,
    VECTOR_MASS_SQ,
)

Z_T_CUT = 9.0 * CHARGED_PION_MASS**2
"""Three-pion threshold t_cut of the z expansion [GeV^2]."""
Z_T0 = -0.28
"""Expansion point t_0 of the z expansion [GeV^2]."""
Z_COEFFICIENTS = (2.30, -0.6, -3.8, 2.3)
"""z-expansion coefficients a_1..a_4 (Meyer et al. 2016); a_0 follows from F_A(0) = g_A."""
AXIAL_PARAMETERS = ("axial_mass", "z_a1", "z_a2", "z_a3", "z_a4")
"""Model parameters a flow may be conditioned on."""


def vector_form_factors_t(q2: Tensor) -> tuple[Tensor, Tensor]:
    """Isovector F_1^V and xi F_2^V from dipole Sachs form factors (G_E^n = 0); Q^2 [GeV^2], any shape.

    >>> [round(float(f), 4) for f in vector_form_factors_t(torch.tensor(0.0))]
    [1.0, 3.7059]
    """
    tau = q2 / (4.0 * NUCLEON_MASS**2)
    g_d = 1.0 / (1.0 + q2 / VECTOR_MASS_SQ) ** 2
    g_m = (MU_PROTON - MU_NEUTRON) * g_d
    return (g_d + tau * g_m) / (1.0 + tau), (g_m - g_d) / (1.0 + tau)


def z_variable(q2: Tensor, t_cut: float = Z_T_CUT, t0: float = Z_T0) -> Tensor:
    """Conformal variable z = (sqrt(t_cut + Q^2) - sqrt(t_cut - t0)) / (sqrt(t_cut + Q^2) + sqrt(t_cut - t0)).

    >>> round(float(z_variable(torch.tensor(-Z_T0))), 12)
    0.0
    """
    a = torch.sqrt(t_cut + q2)
    b = math.sqrt(t_cut - t0)
    return (a - b) / (a + b)


def axial_form_factor_zexp(q2: Tensor, coefficients: Tensor) -> Tensor:
    """z-expansion F_A(Q^2) = sum_k a_k z^k with a_0 fixed by F_A(0) = g_A; Q^2 [GeV^2] (*,),
    coefficients a_1..a_K (*, K) or (K,).

    >>> round(float(axial_form_factor_zexp(torch.tensor(0.0), torch.tensor(Z_COEFFICIENTS))), 4)
    -1.2723
    """
    coefficients = torch.as_tensor(coefficients, dtype=q2.dtype)
    powers = torch.arange(1, coefficients.shape[-1] + 1, dtype=q2.dtype)
    z0 = z_variable(torch.zeros((), dtype=q2.dtype))
    a0 = AXIAL_COUPLING - torch.sum(coefficients * z0**powers, dim=-1)
    z = z_variable(q2)
    return a0 + torch.sum(coefficients * z[..., None] ** powers, dim=-1)


def axial_form_factor_t(q2: Tensor, kind: str, params: Mapping[str, Tensor | float]) -> Tensor:
    """F_A(Q^2) for ``kind`` "dipole" (uses params["axial_mass"] [GeV]) or "zexp" (params "z_a1".."z_a4").

    Parameters are floats or tensors broadcasting against ``q2`` [GeV^2].

    >>> round(float(axial_form_factor_t(torch.tensor(0.0), "dipole", {"axial_mass": 1.0})), 4)
    -1.2723
    """
    if kind == "dipole":
        ma = torch.as_tensor(params.get("axial_mass", AXIAL_MASS), dtype=q2.dtype)
        return AXIAL_COUPLING / (1.0 + q2 / ma**2) ** 2
    if kind == "zexp":
        coeffs = [
            torch.as_tensor(params.get(f"z_a{k + 1}", Z_COEFFICIENTS[k]), dtype=q2.dtype).expand(q2.shape)
            for k in range(len(Z_COEFFICIENTS))
        ]
        return axial_form_factor_zexp(q2, torch.stack(coeffs, dim=-1))
    raise ValueError(f"axial form factor kind {kind!r} is not one of ('dipole', 'zexp')")


def squared_amplitude(
    q2: Tensor, s_minus_u: Tensor, f_a: Tensor, m_lep: float, neutrino: bool = True
) -> Tensor:
    """Spin-summed |M|^2 (dimensionless) of the Llewellyn Smith current; Q^2, s - u [GeV^2], F_A at Q^2.

    >>> from numl_core.data.llewellyn_smith import ls_dsigma_dq2, GEV2_TO_CM2
    >>> from numl_core.data.kinematics import MUON_MASS
    >>> e, q2 = 1.0, torch.tensor(0.2, dtype=torch.float64)
    >>> su = 4 * NUCLEON_MASS * e - q2 - MUON_MASS**2
    >>> m2 = squared_amplitude(q2, su, axial_form_factor_t(q2, "dipole", {}), MUON_MASS)
    >>> dsig = float(m2 / (64 * math.pi * NUCLEON_MASS**2 * e**2)) * GEV2_TO_CM2
    >>> round(dsig / float(ls_dsigma_dq2(e, 0.2)), 10)
    1.0
    """
    m2 = NUCLEON_MASS**2
    ml2 = m_lep**2
    tau = q2 / (4.0 * m2)
    f1, xf2 = vector_form_factors_t(q2)
    f_p = 2.0 * m2 * f_a / (CHARGED_PION_MASS**2 + q2)
    su = s_minus_u / m2
    a = (
        (ml2 + q2)
        / m2
        * (
            (1.0 + tau) * f_a**2
            - (1.0 - tau) * f1**2
            + tau * (1.0 - tau) * xf2**2
            + 4.0 * tau * f1 * xf2
            - ml2 / (4.0 * m2) * ((f1 + xf2) ** 2 + (f_a + 2.0 * f_p) ** 2 - (q2 / m2 + 4.0) * f_p**2)
        )
    )
    b = q2 / m2 * f_a * (f1 + xf2)
    c = 0.25 * (f_a**2 + f1**2 + tau * xf2**2)
    sign = -1.0 if neutrino else 1.0
    return 8.0 * (FERMI_CONSTANT * COS_CABIBBO) ** 2 * m2**2 * (a + sign * b * su + c * su**2)
