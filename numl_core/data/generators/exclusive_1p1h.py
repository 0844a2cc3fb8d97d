"""Exclusive CCQE (1p1h) cross section of nu_mu on carbon in a factorised shell model, and its sampler.

The plane-wave impulse approximation (Benhar et al., Phys. Rev. D 72, 053005 (2005)) with a mean-field
spectral function S(p, E) = sum_alpha n_alpha(p) f_alpha(E): knockout of a neutron from the 1s1/2 or
1p3/2 shell of carbon with (2j+1) occupancy, a harmonic-oscillator momentum density n_alpha(p)
(Bohr & Mottelson, Nuclear Structure I, ch. 2) and a Gaussian distribution f_alpha(E) of the removal
energy E; a relativistic Fermi gas (Smith & Moniz, Nucl. Phys. B 43, 605 (1972)) is the second option.
Energy conservation fixes the outgoing nucleon's energy E' = omega + M - E, so the fully differential
cross section per nucleus in the four variables x = (cos theta_mu, omega [GeV], cos theta_N, phi_N [rad])
at neutrino energy E_nu [GeV] is

d^4 sigma / (dcos theta_mu domega dcos theta_N dphi_N)
    = sum_alpha integral dE f_alpha(E) |k'| |p'| |M|^2 n_alpha(|p' - q|) / (32 pi E_nu E_p)

in cm^2 / GeV / rad, with |M|^2 from :mod:`numl_core.data.generators.exclusive_1p1h_current`; the
E integral runs over E < omega only (the nucleon must leave above its mass shell), by default with a
per-point rule continuous in omega (``ExclusiveModel.removal_quadrature``). The beam
runs along z; the muon lies in the x-z plane (its azimuth is integrated, a factor 2 pi); theta_N is the
nucleon's polar angle to the beam and phi_N its azimuth about the beam, measured from the muon's plane.

>>> model = carbon_model("1p3/2")
>>> x = torch.tensor([[0.9, 0.25, 0.8, 3.1]], dtype=torch.float64)
>>> float(differential_cross_section(x, torch.tensor([1.0], dtype=torch.float64), model)[0]) > 0
True
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from numl_core.data.generators.exclusive_1p1h_current import (
    AXIAL_PARAMETERS,
    Z_COEFFICIENTS,
    axial_form_factor_t,
    squared_amplitude,
)
from numl_core.data.kinematics import (
    MUON_MASS,
    NUCLEON_MASS,
    energy_from_momentum,
    momentum_components,
)
from numl_core.data.llewellyn_smith import AXIAL_MASS, GEV2_TO_CM2

log = logging.getLogger(__name__)

HBARC = 0.1973269804
"""hbar c [GeV fm]."""
CARBON_OSCILLATOR_LENGTH = 1.64 / HBARC
"""Harmonic-oscillator length b of carbon [GeV^-1] (1.64 fm, from its charge radius)."""
CARBON_FERMI_MOMENTUM = 0.221
"""Relativistic-Fermi-gas k_F of carbon [GeV/c]."""
VARIABLES = ("cos_mu", "omega", "cos_n", "phi_n")
"""Names of the four variables, in order; omega in GeV, phi_n in radians in [-pi, pi)."""


@dataclass(frozen=True)
class Shell:
    """One single-particle level: ``occupancy`` nucleons, mean removal energy and Gaussian spread [GeV],
    momentum density ``momentum`` "1s" / "1p" (harmonic oscillator of length ``oscillator_length``
    [GeV^-1]) or "rfg" (uniform below ``fermi_momentum`` [GeV/c], with Pauli blocking of the final state).
    """

    name: str
    occupancy: float
    removal_energy: float
    removal_width: float
    momentum: str
    oscillator_length: float = CARBON_OSCILLATOR_LENGTH
    fermi_momentum: float = CARBON_FERMI_MOMENTUM

    def __post_init__(self) -> None:
        if self.momentum not in ("1s", "1p", "rfg"):
            raise ValueError(f"shell {self.name!r}: momentum {self.momentum!r} is not '1s', '1p' or 'rfg'")
        if not (self.occupancy > 0 and self.removal_energy >= 0 and self.removal_width >= 0):
            raise ValueError(f"shell {self.name!r}: occupancy must be > 0, removal energy and width >= 0")


CARBON_SHELLS = {
    # neutron levels of 12C: 1p3/2 at the neutron separation energy (18.7 MeV), 1s1/2 deep and broad
    # as (e,e'p) finds it for protons (~39 MeV, ~20 MeV wide) plus the ~3 MeV Coulomb shift
    "1s1/2": Shell("1s1/2", 2.0, 0.042, 0.010, "1s"),
    "1p3/2": Shell("1p3/2", 4.0, 0.0187, 0.002, "1p"),
    "rfg": Shell("rfg", 6.0, 0.025, 0.0, "rfg"),
}
SHELL_CHOICES = ("1s1/2", "1p3/2", "shell_model", "rfg")
"""``carbon_model`` choices: one shell, both shells (the full mean-field model), or the Fermi gas."""


REMOVAL_QUADRATURES = ("smooth", "hermite")
"""``ExclusiveModel.removal_quadrature`` choices for the removal-energy integral (:func:`_removal_nodes`)."""
REMOVAL_SPAN = 4.0
"""The "smooth" rule integrates a shell's f(E) over mean +- REMOVAL_SPAN widths (cut at E = 0) and
renormalises it there; beyond 4 widths a Gaussian holds 6e-5 of its mass."""
DEFAULT_ENERGY_NODES = {"smooth": 12, "hermite": 8}
"""Removal-energy nodes per shell when ``ExclusiveModel.energy_nodes`` is None. "smooth" with 12 is
within 7e-4 (relative, at points above 1e-3 of the largest value) of a 64-node rule everywhere, near
the thresholds included, and within 4e-6 well above them; 8 would be 4e-2 and 2e-3 (see
:func:`_smooth_nodes`). "hermite" with 8 is converged well above the thresholds and steps near them."""


@dataclass(frozen=True)
class ExclusiveModel:
    """A cross-section model: its shells, the axial form factor ``axial`` ("dipole" or "zexp") with its
    default parameters, and the removal-energy integral: ``removal_quadrature`` "smooth" (the default, a
    per-point Gauss-Legendre rule over the open part of f(E), continuous in omega) or "hermite" (fixed
    Gauss-Hermite nodes, a step in omega at each), with ``energy_nodes`` nodes per shell (None: the
    quadrature's :data:`DEFAULT_ENERGY_NODES`)."""

    shells: tuple[Shell, ...]
    axial: str = "dipole"
    axial_mass: float = AXIAL_MASS
    z_coefficients: tuple[float, ...] = Z_COEFFICIENTS
    energy_nodes: int | None = None
    m_lep: float = MUON_MASS
    removal_quadrature: str = "smooth"
    parameters: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.axial not in ("dipole", "zexp"):
            raise ValueError(f"axial form factor {self.axial!r} is not 'dipole' or 'zexp'")
        if self.removal_quadrature not in REMOVAL_QUADRATURES:
            raise ValueError(
                f"removal_quadrature={self.removal_quadrature!r} is not one of {REMOVAL_QUADRATURES}"
            )
        if self.energy_nodes is not None and not (
            isinstance(self.energy_nodes, numbers.Integral) and self.energy_nodes >= 1
        ):
            raise ValueError(f"energy_nodes={self.energy_nodes!r} must be None or an integer >= 1")
        if not self.shells:
            raise ValueError("a cross-section model needs at least one shell")
        defaults = {"axial_mass": self.axial_mass}
        defaults.update({f"z_a{k + 1}": c for k, c in enumerate(self.z_coefficients)})
        object.__setattr__(self, "parameters", defaults)

    @property
    def n_energy_nodes(self) -> int:
        """Removal-energy nodes per shell: ``energy_nodes``, or the quadrature's default."""
        if self.energy_nodes is None:
            return DEFAULT_ENERGY_NODES[self.removal_quadrature]
        return int(self.energy_nodes)

    @property
    def min_removal_energy(self) -> float:
        """Lowest mean removal energy [GeV]; omega below it is (almost) empty."""
        return min(s.removal_energy for s in self.shells)


def carbon_model(shells: str = "shell_model", axial: str = "dipole", **kwargs: object) -> ExclusiveModel:
    """The carbon model with ``shells`` one of :data:`SHELL_CHOICES`; kwargs go to :class:`ExclusiveModel`.

    >>> [s.name for s in carbon_model().shells]
    ['1s1/2', '1p3/2']
    """
    if shells not in SHELL_CHOICES:
        raise ValueError(f"shells={shells!r} is not one of {SHELL_CHOICES}")
    chosen = ("1s1/2", "1p3/2") if shells == "shell_model" else (shells,)
    return ExclusiveModel(tuple(CARBON_SHELLS[s] for s in chosen), axial=axial, **kwargs)


def momentum_density(p: Tensor, shell: Shell) -> Tensor:
    """n(p) [GeV^-3] with integral d^3p n = occupancy; p [GeV/c], any shape.

    >>> s = CARBON_SHELLS["1p3/2"]
    >>> p = torch.linspace(0, 1.5, 20001, dtype=torch.float64)
    >>> round(float(torch.trapezoid(4 * math.pi * p**2 * momentum_density(p, s), p)), 6)
    4.0
    """
    if shell.momentum == "rfg":
        kf = shell.fermi_momentum
        return torch.where(p < kf, 3.0 * shell.occupancy / (4.0 * math.pi * kf**3), torch.zeros_like(p))
    b2 = shell.oscillator_length**2
    gauss = (b2 / math.pi) ** 1.5 * torch.exp(-b2 * p**2)
    if shell.momentum == "1s":
        return shell.occupancy * gauss
    return shell.occupancy * (2.0 / 3.0) * b2 * p**2 * gauss


def _energy_nodes(shell: Shell, n_nodes: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Removal energies [GeV] and weights (K,) of a Gauss-Hermite rule for the shell's Gaussian f(E)."""
    if shell.removal_width == 0.0 or n_nodes == 1:
        return torch.tensor([shell.removal_energy], dtype=dtype), torch.ones(1, dtype=dtype)
    x, w = np.polynomial.hermite.hermgauss(n_nodes)
    energies = shell.removal_energy + math.sqrt(2.0) * shell.removal_width * x
    return torch.as_tensor(energies, dtype=dtype), torch.as_tensor(w / math.sqrt(math.pi), dtype=dtype)


def removal_support(shell: Shell) -> tuple[float, float]:
    """The "smooth" rule's range [E_lo, E_hi] of the shell's removal energy [GeV]: mean -+ REMOVAL_SPAN
    widths, E_lo at least 0 (a single point for a shell of zero width).

    >>> [round(e, 4) for e in removal_support(CARBON_SHELLS["1s1/2"])]
    [0.002, 0.082]
    """
    mean, width = shell.removal_energy, shell.removal_width
    return max(0.0, mean - REMOVAL_SPAN * width), mean + REMOVAL_SPAN * width


def _gaussian(e: Tensor, shell: Shell) -> Tensor:
    """The shell's removal-energy density f(E) [1/GeV] (width > 0)."""
    z = (e - shell.removal_energy) / shell.removal_width
    return torch.exp(-0.5 * z**2) / (shell.removal_width * math.sqrt(2.0 * math.pi))


def _support_mass(shell: Shell) -> float:
    """The integral of f(E) over :func:`removal_support` (width > 0)."""
    lo, hi = removal_support(shell)
    mean, width = shell.removal_energy, shell.removal_width
    return 0.5 * (
        math.erf((hi - mean) / (width * math.sqrt(2.0))) - math.erf((lo - mean) / (width * math.sqrt(2.0)))
    )


def _smooth_nodes(shell: Shell, n_nodes: int, omega: Tensor | None) -> tuple[Tensor, Tensor]:
    """Removal energies [GeV] and weights (K, *) of the "smooth" rule at energy transfers ``omega`` (*,).

    f(E) is integrated over the open part [E_lo, min(E_hi, omega)] of :func:`removal_support` by a K-point
    Gauss-Legendre rule in s = sqrt(omega - E) (E = omega - s^2, dE = 2 s ds): the knocked-out nucleon's
    momentum |p'| = s sqrt(s^2 + 2M) is smooth in s, where in E it has a square-root edge at E = omega
    that a Legendre rule in E resolves slowly. Weights are f(E) 2 s times the interval's Jacobian over
    the integral of f on [E_lo, E_hi], so they add up to 1 above the range and to less (down to exactly
    0 at omega <= E_lo) inside it. The nodes and weights move continuously with omega and the integrand
    vanishes at E = omega, so the cross section is continuous in omega. Against a 64-node rule (carbon
    shells, E_nu 0.3-1.5 GeV, relative errors at points above 1e-3 of the largest value) 12 nodes are
    within 3e-4 for both shells together and 7e-4 for 1s1/2 alone near the thresholds, within 4e-6 well
    above them, and the summed absolute error is 1e-5 to 5e-5 of the summed cross section; 8 nodes are
    within 4e-2 and 2e-3, and a Legendre rule linear in E needs 16 nodes for 3e-3.
    ``omega=None`` gives the prior, a Legendre rule in E over the whole range, shape (K,). A shell of
    zero width has the one node at its mean, weight 1, shape (1,).
    """
    dtype = omega.dtype if omega is not None else torch.float64
    if shell.removal_width == 0.0:
        return torch.tensor([shell.removal_energy], dtype=dtype), torch.ones(1, dtype=dtype)
    lo, hi = removal_support(shell)
    x, w = (torch.as_tensor(a, dtype=dtype) for a in np.polynomial.legendre.leggauss(n_nodes))
    mass = _support_mass(shell)
    if omega is None:
        energies = (lo + hi) / 2 + (hi - lo) / 2 * x
        return energies, w * (hi - lo) / 2 * _gaussian(energies, shell) / mass
    # both ends at least `tiny` under the root: equal (an empty interval) below E_lo, finite gradients
    tiny = torch.finfo(dtype).tiny
    s_top = torch.sqrt(torch.clamp(omega - lo, min=tiny))
    s_bottom = torch.sqrt(torch.clamp(omega - hi, min=tiny))
    half = (s_top - s_bottom) / 2
    node = (slice(None),) + (None,) * omega.dim()  # nodes first: each node's row is contiguous
    s = s_bottom + half * (x[node] + 1)
    energies = omega - s**2
    return energies, w[node] * half * 2 * s * _gaussian(energies, shell) / mass


def _removal_nodes(shell: Shell, model: ExclusiveModel, omega: Tensor) -> tuple[Tensor, Tensor]:
    """Removal energies [GeV] and weights of the model's quadrature at ``omega`` (*,): shape (K,) for
    "hermite" (the same nodes everywhere), (K, *) for "smooth" (or (1,) for a shell of zero width)."""
    if model.removal_quadrature == "hermite":
        return _energy_nodes(shell, model.n_energy_nodes, omega.dtype)
    return _smooth_nodes(shell, model.n_energy_nodes, omega)


def check_energies(enu: Tensor, model: ExclusiveModel) -> None:
    """Raise ``ValueError`` for non-finite energies or ones below the muon threshold m_mu + E_removal."""
    threshold = model.m_lep + model.min_removal_energy
    bad = ~torch.isfinite(enu) | (enu <= threshold)
    if bool(bad.any()):
        value = float(enu[bad].flatten()[0])
        raise ValueError(
            f"neutrino energy {value} GeV is unphysical: it must be finite and > {threshold:.4f} GeV"
        )


def omega_max(enu: Tensor, model: ExclusiveModel) -> Tensor:
    """Largest energy transfer E_nu - m_mu [GeV] (the domain's omega upper edge)."""
    return enu - model.m_lep


def omega_threshold(model: ExclusiveModel) -> float:
    """Lowest energy transfer [GeV] with a nonzero cross section: the smallest removal energy the
    quadrature reaches, at least 0; "smooth": the lowest E_lo of :func:`removal_support` (mean less
    REMOVAL_SPAN widths), "hermite": the lowest Gauss-Hermite node. Below it no nucleon is knocked out.

    >>> round(omega_threshold(carbon_model("rfg")), 4)
    0.025
    >>> round(omega_threshold(carbon_model("1p3/2")), 4), round(omega_threshold(carbon_model()), 4)
    (0.0107, 0.002)
    >>> round(omega_threshold(carbon_model("1p3/2", removal_quadrature="hermite")), 4)
    0.0104
    """
    if model.removal_quadrature == "smooth":
        return min(removal_support(s)[0] for s in model.shells)
    return max(
        0.0, min(float(_energy_nodes(s, model.n_energy_nodes, torch.float64)[0].min()) for s in model.shells)
    )


def in_domain(x: Tensor, enu: Tensor, model: ExclusiveModel) -> Tensor:
    """Boolean mask (*,) of points inside the sampling domain:
    |cos| <= 1, 0 <= omega <= E_nu - m_mu, -pi <= phi_n < pi."""
    cmu, w, cn, phi = x.unbind(-1)
    return (
        (cmu.abs() <= 1)
        & (cn.abs() <= 1)
        & (w >= 0)
        & (w <= omega_max(enu, model))
        & (phi >= -math.pi)
        & (phi < math.pi)
    )


class _Kinematics(NamedTuple):
    """Per-point inputs of the shell terms, shapes (*,): neutrino energy, muon momentum and energy [GeV],
    cos and sin of the muon angle, energy transfer [GeV] and the nucleon's unit vector (3 tensors)."""

    enu: Tensor
    k_mu: Tensor
    e_mu: Tensor
    cmu: Tensor
    smu: Tensor
    omega: Tensor
    n_hat: tuple[Tensor, Tensor, Tensor]


def _kinematics(x: Tensor, enu: Tensor, model: ExclusiveModel) -> _Kinematics:
    """The muon and nucleon kinematics of points ``x`` (*, 4) at energies ``enu`` (*,)."""
    cmu, omega, cn, phi = x.unbind(-1)
    e_mu = enu - omega
    k_mu = torch.sqrt(torch.clamp(e_mu**2 - model.m_lep**2, min=0.0))
    smu = torch.sqrt(torch.clamp(1.0 - cmu**2, min=0.0))
    sn = torch.sqrt(torch.clamp(1.0 - cn**2, min=0.0))
    n_hat = (sn * torch.cos(phi), sn * torch.sin(phi), cn)
    return _Kinematics(enu, k_mu, e_mu, cmu, smu, omega, n_hat)


def _node_term(
    shell: Shell,
    model: ExclusiveModel,
    e_rem: Tensor | float,
    kin: _Kinematics,
    params: Mapping[str, Tensor | float],
) -> Tensor:
    """The shell's contribution [GeV^-2/GeV/rad] at removal energy ``e_rem`` [GeV] (a number or a tensor
    that broadcasts with the points); shape (*,)."""
    enu, k_mu, e_mu, cmu, smu, omega, n_hat = kin
    qx, qz = -k_mu * smu, enu - k_mu * cmu
    e_n = omega + NUCLEON_MASS - e_rem
    open_ = e_n > NUCLEON_MASS
    # `tiny` under the root: a closed node (masked below) keeps a finite gradient
    p_n = torch.sqrt(torch.clamp(e_n**2 - NUCLEON_MASS**2, min=torch.finfo(e_n.dtype).tiny))
    px, py, pz = p_n * n_hat[0] - qx, p_n * n_hat[1], p_n * n_hat[2] - qz
    p = torch.sqrt(px**2 + py**2 + pz**2)
    e_p = torch.sqrt(NUCLEON_MASS**2 + p**2)
    omega_t = e_n - e_p  # de Forest: on-shell initial nucleon
    q2 = qx**2 + qz**2 - omega_t**2
    k_dot_p = enu * (e_p - pz)
    kmu_dot_p = e_mu * e_p - k_mu * (smu * px + cmu * pz)
    s_minus_u = 2.0 * (k_dot_p + kmu_dot_p) - model.m_lep**2
    ok = open_ & (q2 > 0)
    if shell.momentum == "rfg":
        ok = ok & (p_n > shell.fermi_momentum)
    q2 = torch.where(ok, q2, torch.ones_like(q2))
    amp = squared_amplitude(q2, s_minus_u, axial_form_factor_t(q2, model.axial, params), model.m_lep)
    term = k_mu * p_n * amp * momentum_density(p, shell) / (32.0 * math.pi * enu * e_p)
    return torch.where(ok, term, torch.zeros_like(term))


def _shell_term(
    shell: Shell, model: ExclusiveModel, kin: _Kinematics, params: Mapping[str, Tensor | float]
) -> Tensor:
    """The shell's contribution [cm^2/GeV/rad], integrated over its removal energy; inputs (*,)."""
    energies, weights = _removal_nodes(shell, model, kin.omega)
    out = torch.zeros_like(kin.enu)
    for e_rem, w_e in zip(energies, weights, strict=True):
        out = out + w_e * _node_term(shell, model, e_rem, kin, params)
    return out * GEV2_TO_CM2


def _merged_parameters(
    model: ExclusiveModel, params: Mapping[str, Tensor | float] | None
) -> dict[str, Tensor | float]:
    """The model's axial parameters overridden by ``params``; unknown names raise ``ValueError``."""
    params = dict(params or {})
    unknown = set(params) - set(AXIAL_PARAMETERS)
    if unknown:
        raise ValueError(f"unknown model parameter(s) {sorted(unknown)}; known: {AXIAL_PARAMETERS}")
    return {**model.parameters, **params}


def differential_cross_section(
    x: Tensor,
    enu: Tensor,
    model: ExclusiveModel,
    params: Mapping[str, Tensor | float] | None = None,
    check: bool = True,
) -> Tensor:
    """d^4 sigma / (dcos theta_mu domega dcos theta_N dphi_N) [cm^2/GeV/rad] per nucleus, shape (*,).

    ``x`` (*, 4) holds (cos theta_mu, omega [GeV], cos theta_N, phi_N [rad]); ``enu`` (*,) [GeV];
    ``params`` overrides the model's axial parameters (names in ``AXIAL_PARAMETERS``) per point. Points
    outside the domain or the physical region (muon below threshold, nucleon below its mass shell,
    timelike q~ after the off-shell prescription, Pauli-blocked for the Fermi gas) get exactly zero;
    unphysical neutrino energies raise ``ValueError`` when ``check`` is set.
    """
    if x.shape[-1] != 4:
        raise ValueError(f"x must have shape (*, 4) = {VARIABLES}, got {tuple(x.shape)}")
    if check:
        check_energies(enu, model)
    merged = _merged_parameters(model, params)
    inside = in_domain(x, enu, model)
    kin = _kinematics(x, enu, model)
    total = torch.zeros_like(enu)
    for shell in model.shells:
        total = total + _shell_term(shell, model, kin, merged)
    return torch.where(inside & (kin.e_mu > model.m_lep), total, torch.zeros_like(total))


def inclusive_cross_section(
    cos_mu: Tensor,
    omega: Tensor,
    enu: float,
    model: ExclusiveModel,
    n_momentum: int = 16,
    n_azimuth: int = 8,
) -> Tensor:
    """d^2 sigma / (dcos theta_mu domega) [cm^2/GeV] at points (*,), by integrating the nucleon angles.

    The nucleon sphere is integrated in coordinates about q: the initial momentum p = |p' - q| by
    Gauss-Legendre (dOmega_N = p dp dbeta / (|p'| |q|), the y-scaling substitution) per removal-energy
    node, and the azimuth beta about q by the trapezoidal rule. Used for muon marginals and as the
    free-nucleon test.
    """
    cos_mu, omega = torch.broadcast_tensors(cos_mu, omega)
    dtype = cos_mu.dtype
    e = torch.full_like(cos_mu, enu)
    check_energies(e, model)
    e_mu = e - omega
    k_mu = torch.sqrt(torch.clamp(e_mu**2 - model.m_lep**2, min=0.0))
    smu = torch.sqrt(torch.clamp(1.0 - cos_mu**2, min=0.0))
    qx, qz = -k_mu * smu, e - k_mu * cos_mu
    q = torch.sqrt(qx**2 + qz**2)
    xg, wg = (torch.as_tensor(a, dtype=dtype) for a in np.polynomial.legendre.leggauss(n_momentum))
    beta = torch.arange(n_azimuth, dtype=dtype) * (2 * math.pi / n_azimuth)
    merged = _merged_parameters(model, None)
    total = torch.zeros_like(cos_mu)
    for shell in model.shells:
        energies, weights = _removal_nodes(shell, model, omega)
        p_cut = shell.fermi_momentum if shell.momentum == "rfg" else 7.0 / shell.oscillator_length
        for e_rem, w_e in zip(energies.clamp(min=0.0), weights, strict=True):
            e_n = omega + NUCLEON_MASS - e_rem
            p_n = torch.sqrt(torch.clamp(e_n**2 - NUCLEON_MASS**2, min=1e-30))
            lo = torch.abs(p_n - q)
            hi = torch.minimum(p_n + q, torch.full_like(q, p_cut))
            width = torch.clamp(hi - lo, min=0.0)
            p = (lo + hi)[..., None] / 2 + width[..., None] / 2 * xg  # (*, P)
            cos_a = torch.clamp(
                (p_n[..., None] ** 2 + q[..., None] ** 2 - p**2) / (2 * p_n[..., None] * q[..., None]), -1, 1
            )
            sin_a = torch.sqrt(1 - cos_a**2)
            # nucleon direction: angle alpha to q-hat, azimuth beta about it; q-hat = (ux, 0, uz)
            ux, uz = (qx / q)[..., None, None], (qz / q)[..., None, None]
            ca, sa, cb, sb = cos_a[..., None], sin_a[..., None], torch.cos(beta), torch.sin(beta)
            nx = ca * ux + sa * cb * uz
            ny = sa * sb
            nz = ca * uz - sa * cb * ux
            shape = nx.shape
            x = torch.stack(
                [
                    cos_mu[..., None, None].expand(shape),
                    omega[..., None, None].expand(shape),
                    torch.clamp(nz, -1, 1),
                    torch.atan2(ny, nx).clamp(max=math.pi - 1e-12),
                ],
                dim=-1,
            )
            e_x = e[..., None, None].expand(shape)
            kin = _kinematics(x, e_x, model)
            e_rem_x = e_rem[..., None, None] if e_rem.dim() else e_rem
            f = _node_term(shell, model, e_rem_x, kin, merged) * GEV2_TO_CM2
            f = torch.where(in_domain(x, e_x, model) & (kin.e_mu > model.m_lep), f, torch.zeros_like(f))
            jac = (p / (p_n[..., None] * q[..., None]))[..., None]
            inner = (f * jac).mean(-1) * 2 * math.pi  # azimuth
            total = total + w_e * (width / 2) * torch.sum(wg * inner, dim=-1)
    return total


def total_cross_section(enu: float, model: ExclusiveModel, n_cos: int = 24, n_omega: int = 160) -> float:
    """sigma(E_nu) [cm^2] per nucleus by Gauss-Legendre integration of :func:`inclusive_cross_section`."""
    xc, wc = np.polynomial.legendre.leggauss(n_cos)
    xo, wo = np.polynomial.legendre.leggauss(n_omega)
    top = enu - model.m_lep
    omega = torch.as_tensor(top / 2 * (xo + 1), dtype=torch.float64)
    cos_mu = torch.as_tensor(xc, dtype=torch.float64)
    d2 = inclusive_cross_section(cos_mu[:, None], omega[None, :], enu, model)
    return float(np.einsum("i,j,ij->", wc, wo * top / 2, d2.numpy()))


@dataclass(frozen=True)
class Flux:
    """A neutrino energy spectrum as a histogram: ``edges`` (B+1,) [GeV] and ``density`` (B,) (any units).

    >>> Flux.flat(0.2, 1.0).sample(3, np.random.default_rng(0)).round(3)
    array([0.701, 0.441, 0.246])
    """

    edges: np.ndarray
    density: np.ndarray
    name: str = "flux"

    @classmethod
    def flat(cls, low: float, high: float, bins: int = 16) -> Flux:
        """A flat spectrum on [low, high] GeV, in ``bins`` equal bins (the accept-reject bound is per bin)."""
        if not 0 < low < high:
            raise ValueError(f"flat flux needs 0 < low < high, got [{low}, {high}]")
        return cls(np.linspace(low, high, bins + 1), np.ones(bins), f"flat {low}-{high} GeV")

    def bin_index(self, enu: Tensor) -> Tensor:
        """Bin (*,) of each energy [GeV]; energies outside the range go to the nearest end bin."""
        edges = torch.as_tensor(self.edges[1:-1], dtype=enu.dtype)
        return torch.bucketize(enu, edges, right=True)

    @classmethod
    def t2k(cls, low: float = 0.2, high: float = 3.0) -> Flux:
        """The T2K ND280 nu_mu flux (2016 release) restricted to [low, high] GeV."""
        from numl_core.data.reference import load_t2k_flux

        edges, density = load_t2k_flux()
        keep = (edges[:-1] >= low - 1e-9) & (edges[1:] <= high + 1e-9)
        idx = np.flatnonzero(keep)
        return cls(edges[idx[0] : idx[-1] + 2], density[idx], f"T2K ND280 nu_mu {low}-{high} GeV")

    @property
    def range(self) -> tuple[float, float]:
        """(lowest, highest) energy [GeV]."""
        return float(self.edges[0]), float(self.edges[-1])

    def pdf(self, enu: np.ndarray) -> np.ndarray:
        """Normalised density [1/GeV] at energies ``enu`` [GeV] (0 outside the range).

        >>> Flux.flat(0.2, 1.0).pdf(np.array([0.1, 0.5])).round(3)
        array([0.  , 1.25])
        """
        enu = np.asarray(enu, float)
        mass = self.density * np.diff(self.edges)
        b = np.clip(np.searchsorted(self.edges, enu, side="right") - 1, 0, len(self.density) - 1)
        inside = (enu >= self.edges[0]) & (enu <= self.edges[-1])
        return np.where(inside, self.density[b] / mass.sum(), 0.0)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n energies [GeV] drawn from the histogram (uniform within a bin)."""
        mass = self.density * np.diff(self.edges)
        b = rng.choice(len(mass), size=n, p=mass / mass.sum())
        return self.edges[b] + rng.random(n) * (self.edges[b + 1] - self.edges[b])

    def quantile(self, u: np.ndarray) -> np.ndarray:
        """Energies [GeV] at cumulative probabilities ``u`` in [0, 1]: the inverse of the histogram's CDF,
        linear within a bin, which maps a uniform variable onto the spectrum (density :meth:`pdf`).

        >>> Flux(np.array([0.2, 0.4, 1.0]), np.array([3.0, 0.5])).quantile(np.array([0.0, 0.5, 1.0]))
        array([0.2 , 0.35, 1.  ])
        """
        mass = self.density * np.diff(self.edges)
        cdf = np.r_[0.0, np.cumsum(mass)] / mass.sum()
        return np.interp(np.asarray(u, float), cdf, self.edges)


def uniform_proposal(enu: Tensor, model: ExclusiveModel, generator: torch.Generator) -> Tensor:
    """Points (N, 4) uniform in the domain box at energies ``enu`` (N,) [GeV]; its density is
    1 / (8 pi omega_max(E_nu)) per unit (cos, omega, cos, phi)."""
    u = torch.rand((enu.shape[0], 4), generator=generator, dtype=enu.dtype)
    return torch.stack(
        [2 * u[:, 0] - 1, u[:, 1] * omega_max(enu, model), 2 * u[:, 2] - 1, (2 * u[:, 3] - 1) * math.pi], 1
    )


def density_bound(
    model: ExclusiveModel,
    flux: Flux,
    n_probe: int = 200_000,
    seed: int = 0,
    safety: float = 2.0,
    params: Mapping[str, float] | None = None,
    n_local: int = 40,
) -> np.ndarray:
    """Upper bounds (B,) on f(x | E) omega_max(E) in each of the flux's B energy bins [cm^2/rad].

    Uniform probes per bin, then a local random search around each bin's 16 largest, the largest of
    each bin and its neighbours, times ``safety``; the sampler reports how often a proposal exceeds
    its bound (a bound too low biases accept-reject).
    """
    gen = torch.Generator().manual_seed(seed)
    n_bins = len(flux.density)
    per_bin = max(n_probe // n_bins, 64)
    lo = torch.as_tensor(flux.edges[:-1], dtype=torch.float64).repeat_interleave(per_bin)
    hi = torch.as_tensor(flux.edges[1:], dtype=torch.float64).repeat_interleave(per_bin)
    enu = lo + (hi - lo) * torch.rand(lo.shape, generator=gen, dtype=torch.float64)
    x = uniform_proposal(enu, model, gen)
    f = (differential_cross_section(x, enu, model, params) * omega_max(enu, model)).view(n_bins, per_bin)
    top = torch.topk(f, min(16, per_bin), dim=1).indices + per_bin * torch.arange(n_bins)[:, None]
    xs, es, lo_s, hi_s = x[top.flatten()], enu[top.flatten()], lo[top.flatten()], hi[top.flatten()]
    fc = differential_cross_section(xs, es, model, params) * omega_max(es, model)
    scale = torch.tensor([0.03, 0.01, 0.03, 0.05], dtype=x.dtype)
    for _ in range(n_local):
        trial = xs + scale * torch.randn(xs.shape, generator=gen, dtype=x.dtype)
        et = (es + 0.1 * (hi_s - lo_s) * torch.randn(es.shape, generator=gen, dtype=es.dtype)).clamp(
            lo_s, hi_s
        )
        trial[:, 0] = trial[:, 0].clamp(-1, 1)
        trial[:, 2] = trial[:, 2].clamp(-1, 1)
        trial[:, 3] = torch.remainder(trial[:, 3] + math.pi, 2 * math.pi) - math.pi
        trial[:, 1] = (
            trial[:, 1].clamp(0.0, 1.0) * omega_max(et, model) / omega_max(es, model).clamp(min=1e-9)
        )
        ft = differential_cross_section(trial, et, model, params) * omega_max(et, model)
        better = ft > fc
        xs = torch.where(better[:, None], trial, xs)
        es, fc = torch.where(better, et, es), torch.where(better, ft, fc)
    best = torch.maximum(f.max(dim=1).values, fc.view(n_bins, -1).max(dim=1).values).numpy()
    # the maximum varies smoothly with E: the neighbours' maxima cover a bin whose peak was missed
    padded = np.pad(best, 1, mode="edge")
    return np.maximum.reduce([padded[:-2], padded[1:-1], padded[2:]]) * safety


@dataclass
class AcceptRejectResult:
    """Unweighted events (N, 4) ``x`` at energies ``enu`` (N,), the acceptance rate, proposals made,
    cross-section evaluations per second, seconds, and the fraction of proposals above the bound."""

    x: Tensor
    enu: Tensor
    acceptance: float
    n_proposed: int
    seconds: float
    overflow_fraction: float
    max_ratio: float

    @property
    def events_per_s(self) -> float:
        """Unweighted events per second."""
        return len(self.enu) / max(self.seconds, 1e-12)


def accept_reject(
    model: ExclusiveModel,
    n: int,
    flux: Flux,
    bound: np.ndarray,
    seed: int = 0,
    batch: int = 200_000,
    params: Mapping[str, float] | None = None,
    max_proposals: int = 10**9,
) -> AcceptRejectResult:
    """Unbiased unweighted events from Phi(E) f(x | E) by hit-or-miss with a uniform proposal.

    ``bound`` (B,) per flux bin from :func:`density_bound`: energies are proposed from Phi(E) times the
    bin's bound and accepted with probability f(x | E) omega_max(E) / bound; more than ``max_proposals``
    proposals raise ``RuntimeError``.

    >>> m = carbon_model("1p3/2")
    >>> flux = Flux.flat(0.8, 1.0)
    >>> out = accept_reject(m, 20, flux, density_bound(m, flux, n_probe=20_000), seed=1)
    >>> tuple(out.x.shape), 0 < out.acceptance < 1
    ((20, 4), True)
    """
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    bound = np.broadcast_to(np.array(bound, float), flux.density.shape).copy()
    proposal = Flux(flux.edges, flux.density * bound, flux.name)
    bound_t = torch.as_tensor(bound)
    xs, es = [], []
    kept = proposed = over = 0
    max_ratio = 0.0
    t0 = time.perf_counter()
    while kept < n:
        if proposed >= max_proposals:
            raise RuntimeError(f"accept-reject: {kept} of {n} events after {proposed} proposals")
        enu = torch.as_tensor(proposal.sample(batch, rng))
        cap = bound_t[flux.bin_index(enu)]
        x = uniform_proposal(enu, model, gen)
        ratio = differential_cross_section(x, enu, model, params) * omega_max(enu, model) / cap
        over += int((ratio > 1).sum())
        max_ratio = max(max_ratio, float(ratio.max()))
        acc = torch.rand(batch, generator=gen, dtype=ratio.dtype) < ratio
        xs.append(x[acc])
        es.append(enu[acc])
        kept += int(acc.sum())
        proposed += batch
    seconds = time.perf_counter() - t0
    if over:
        log.warning(
            "accept-reject: %d proposals above the bound (max ratio %.3f): raise the bound", over, max_ratio
        )
    return AcceptRejectResult(
        torch.cat(xs)[:n], torch.cat(es)[:n], kept / proposed, proposed, seconds, over / proposed, max_ratio
    )


# -- lab-frame events --------------------------------------------------------------------------
CARBON_MASS = 11.174862
"""Mass of the 12C nucleus [GeV] (12 u less six electron masses and their binding)."""
PDG_NUMU, PDG_MUON, PDG_PROTON, PDG_NEUTRON = 14, 13, 2212, 2112
PDG_CARBON12, PDG_CARBON11 = 1000060120, 1000060110
"""PDG codes of the process nu_mu n -> mu- p on 12C, which leaves an (excited) 11C remnant."""


def removal_energy_sample(
    x: Tensor,
    enu: Tensor,
    model: ExclusiveModel,
    seed: int = 0,
    params: Mapping[str, float] | None = None,
) -> Tensor:
    """One removal energy E [GeV] per point (N,), drawn from its distribution given the point: the
    removal-energy nodes of all shells' quadratures at the point's omega with probabilities proportional
    to each node's share of d^4 sigma at x (the variables fix omega but not E, which the cross section
    integrates over). Points with zero cross section draw from the prior: each shell's nodes over its
    whole range (for "smooth" a Legendre rule in E on :func:`removal_support`, for "hermite" the same
    nodes), with probabilities occupancy times node weight.

    >>> m = carbon_model()
    >>> x = torch.tensor([[0.9, 0.25, 0.8, 3.1]], dtype=torch.float64)
    >>> e = removal_energy_sample(x, torch.tensor([1.0], dtype=torch.float64), m)
    >>> 0.0 < float(e[0]) < 0.1
    True
    """
    kin = _kinematics(x, enu, model)
    merged = _merged_parameters(model, params)
    energies, terms, prior_energies, prior = [], [], [], []
    for shell in model.shells:
        nodes, weights = _removal_nodes(shell, model, kin.omega)
        if model.removal_quadrature == "smooth":
            prior_nodes, prior_weights = _smooth_nodes(shell, model.n_energy_nodes, None)
        else:
            prior_nodes, prior_weights = nodes, weights
        for k in range(len(nodes)):
            e_rem = nodes[k].expand(enu.shape)
            energies.append(e_rem)
            terms.append(weights[k] * _node_term(shell, model, e_rem, kin, merged))
            prior_energies.append(float(prior_nodes[k]))
            prior.append(float(prior_weights[k]) * shell.occupancy)
    share = torch.stack(terms, -1).clamp(min=0.0)
    zero = share.sum(-1, keepdim=True) <= 0
    share = torch.where(zero, torch.tensor(prior, dtype=share.dtype), share)
    nodes = torch.where(zero, torch.tensor(prior_energies, dtype=enu.dtype), torch.stack(energies, -1))
    gen = torch.Generator().manual_seed(seed)
    pick = torch.multinomial(share.reshape(-1, len(prior)), 1, generator=gen).reshape(share.shape[:-1])
    return torch.gather(nodes, -1, pick[..., None])[..., 0]


@dataclass(frozen=True)
class KnockoutEvent:
    """Lab-frame four-momenta (N, 4) = (E, px, py, pz) [GeV] of nu_mu + 12C -> mu- + p + 11C*: the beam
    ``neutrino``, the ``target`` nucleus at rest, the struck bound ``neutron`` (off shell), the ``muon``,
    the ``proton`` and the ``remnant`` nucleus (target less the struck neutron)."""

    neutrino: np.ndarray
    target: np.ndarray
    neutron: np.ndarray
    muon: np.ndarray
    proton: np.ndarray
    remnant: np.ndarray


def knockout_momenta(
    enu: np.ndarray,
    cos_mu: np.ndarray,
    omega: np.ndarray,
    cos_n: np.ndarray,
    phi_n: np.ndarray,
    removal_energy: np.ndarray,
    phi_mu: np.ndarray | float = 0.0,
    m_lep: float = MUON_MASS,
) -> KnockoutEvent:
    """Lab-frame four-momenta [GeV] of events given by the model's variables, as the model defines them.

    Inputs (N,): E_nu [GeV] along +z, cos theta_mu, omega [GeV], the proton's cos theta_N and azimuth
    phi_N [rad] measured from the muon's plane, the removal energy E [GeV] (see
    :func:`removal_energy_sample`) and the muon's azimuth ``phi_mu`` [rad] (0: the muon in the x-z plane;
    the cross section does not depend on it). The muon has E_mu = E_nu - omega; the proton
    E' = omega + M - E (M the average nucleon mass, as in the cross section) and |p'| = sqrt(E'^2 - M^2)
    (0 below threshold); the bound neutron carries E = M - E_rem and the missing momentum p' - q; the
    remnant takes the rest, so four-momentum is conserved exactly. Its mass is M_A - M + E_rem up to the
    recoil energy p_miss^2 / (2 M_A-1) that the model neglects.

    >>> ev = knockout_momenta(*np.array([[1.0], [0.9], [0.25], [0.8], [3.1], [0.0187]]))
    >>> balance = ev.neutrino + ev.target - ev.muon - ev.proton - ev.remnant
    >>> float(np.abs(balance).max()) < 1e-12
    True
    >>> from numl_core.data.kinematics import minkowski_square
    >>> masses = np.sqrt(minkowski_square(np.stack([ev.muon, ev.proton])))
    >>> [round(float(m), 7) for m in masses[:, 0]] == [round(MUON_MASS, 7), round(NUCLEON_MASS, 7)]
    True
    >>> p_miss = np.linalg.norm(ev.neutron[0, 1:])
    >>> excess = np.sqrt(minkowski_square(ev.remnant))[0] - (CARBON_MASS - NUCLEON_MASS + 0.0187)
    >>> bool(-p_miss**2 / (2 * 10.2) - 1e-9 < excess <= 0)
    True
    """
    enu, omega, e_rem = (np.asarray(a, float) for a in (enu, omega, removal_energy))
    phi_mu = np.broadcast_to(np.asarray(phi_mu, float), enu.shape)
    zero = np.zeros_like(enu)
    neutrino = np.stack([enu, zero, zero, enu], -1)
    e_mu = enu - omega
    k_mu = np.sqrt(np.clip(e_mu**2 - m_lep**2, 0.0, None))
    muon = np.stack([e_mu, *momentum_components(k_mu, cos_mu, phi_mu)], -1)
    p_n = np.sqrt(np.clip((omega + NUCLEON_MASS - e_rem) ** 2 - NUCLEON_MASS**2, 0.0, None))
    proton = np.stack(
        [energy_from_momentum(p_n, NUCLEON_MASS), *momentum_components(p_n, cos_n, phi_n + phi_mu)], -1
    )
    target = np.stack([np.full_like(enu, CARBON_MASS), zero, zero, zero], -1)
    neutron = muon + proton - neutrino
    return KnockoutEvent(neutrino, target, neutron, muon, proton, target - neutron)
