"""Physics model of the built-in ND280-like nu_mu-carbon sample: parameters, interaction modes, FSI rates.

The model (numbers per carbon nucleon, 6 protons + 6 neutrons):

* Nuclear ground state: a relativistic Fermi gas (Smith & Moniz, Nucl. Phys. B 43, 605 (1972)) with Fermi
  momentum k_F and removal energy E_b: nucleon momenta uniform in the Fermi sphere, energies
  sqrt(M^2 + p^2) - E_b. Options: ``fermi_gas="local"`` takes k_F(r) = hbar c (3 pi^2 rho(r) / 2)^(1/3)
  at a position drawn from carbon's density (modified harmonic oscillator, a = 1.687 fm, alpha = 1.067;
  De Vries et al., At. Data Nucl. Data Tables 36, 495 (1987)); ``momentum_tail_fraction`` moves nucleons
  into a Bodek-Ritchie p^-4 tail above k_F. Pauli blocking uses the k_F at the interaction point.
* CCQE: Llewellyn Smith on a Fermi-sea neutron: the free cross section is evaluated at the neutrino energy
  in the nucleon rest frame and multiplied by the flux factor k.P / (E_nu P^0); the proton is Pauli
  blocked below k_F.
* 2p2h: nu (N N) -> mu (N N) on a pair of Fermi-sea nucleons; the pair's final invariant mass is 2M + T with
  T ~ Gamma(2, 50 MeV); dsigma/dQ^2 = sigma_inf / L^2 (1 + Q^2/L^2)^-2 (saturating at sigma_inf at high
  energy, the behaviour of microscopic 2p2h models such as Nieves et al., PRC 83, 045501 (2011)); the
  final pair decays isotropically, pp for an initial np pair (fraction 0.8) and pn for nn; both nucleons
  Pauli blocked below k_F.
* Resonant single pion through the Delta(1232): Breit-Wigner mass (M = 1.232, Gamma = 0.117 GeV) and the
  same dipole-like Q^2 shape; isospin fixes the channels: CC nu p -> mu Delta++ -> p pi+ is 3/4 of CC
  Delta production, nu n -> mu Delta+ 1/4 (-> p pi0 2/3, n pi+ 1/3); NC: nu p -> Delta+ (p pi0 2/3,
  n pi+ 1/3) and nu n -> Delta0 (n pi0 2/3, p pi- 1/3) in equal parts.
* Pion absorption (FSI): probability ``pion_absorption_strength * P_abs(p_pi)``, peaked at the Delta region
  of pi-N scattering; an absorbed pion is taken by a Fermi-sea np pair, which leaves as two nucleons
  (pi+ -> pp, pi0 -> pn, pi- -> nn). A CC event whose pion is absorbed is CC0pi (mode 3).
* Proton FSI: a cascade of up to 3 steps; at each step, with probability p = ``proton_fsi_strength * 0.35``,
  the leading proton rescatters elastically (isotropic N N centre of mass) off a Fermi-sea nucleon (proton or
  neutron, equal odds), sharing its energy. At strength 1, p = 0.35 is 1 - T for carbon's measured proton
  transparency T ~ 0.6-0.65 (e.g. Dutta et al., PRC 68, 064603 (2003)).

Energies GeV, momenta GeV/c, cross sections cm^2 per carbon nucleon.

>>> ND280Physics().axial_mass
1.03
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from numl_core.data.generators.phase_space import fermi_sphere_momenta

MODES: dict[int, str] = {
    1: "CCQE",
    2: "CC 2p2h",
    3: "CC1pi, pion absorbed (CC0pi)",
    4: "CC1pi, pion in the final state",
    5: "NC1pi, pion in the final state",
    6: "NC1pi, pion absorbed",
}
"""Interaction mode codes (column ``mode``)."""
CC0PI_MODES = (1, 2, 3)
"""Modes with a muon and no pion in the final state (the signal, column ``pass_truth``)."""
CC_MODES = (1, 2, 3, 4)
"""Charged-current modes: the outgoing lepton is a muon (otherwise the outgoing neutrino)."""
MODEL_COLUMNS = ("true_pn_p", "true_pn_cos", "true_pn_phi", "true_pi_p", "true_proton_rescatters")
"""Truth columns of this model that its exact cross-section and FSI reweighting needs."""
PION_ABSORBED_MODES = (3, 6)
"""Modes whose vertex pion was absorbed in the nucleus."""
PION_SURVIVED_MODES = (4, 5)
"""Modes whose vertex pion left the nucleus."""

HBAR_C = 0.1973269804
"""hbar c [GeV fm]."""
CARBON_MHO_A, CARBON_MHO_ALPHA = 1.687, 1.067
"""Carbon-12 modified-harmonic-oscillator density parameters (a [fm], alpha)."""
NEUTRON_FRACTION = 0.5
"""Neutrons per carbon nucleon (CCQE targets for nu_mu)."""
PROTON_INTERACTION_PROBABILITY = 0.35
"""Probability of each leading-proton rescattering step at proton_fsi_strength = 1."""
MAX_PROTON_RESCATTERS = 3
"""Maximum number of steps of the leading-proton cascade."""
PP_PAIR_FRACTION = 0.8
"""2p2h: fraction of np initial pairs (-> pp); the rest are nn (-> pn)."""
DELTA_MASS, DELTA_WIDTH = 1.232, 0.117
"""Delta(1232) Breit-Wigner mass and width [GeV]."""
DELTA_MASS_MAX = 1.6
"""Upper cut on the Delta invariant mass [GeV]."""
PAIR_EXCITATION_SCALE = 0.05
"""2p2h: scale of the Gamma(2) distribution of the final pair's excitation T [GeV]."""


@dataclass(frozen=True)
class ND280Physics:
    """Tunable physical parameters of the ND280 carbon sample (GeV, GeV/c, cm^2 per nucleon).

    Defaults: textbook carbon values for M_A, k_F and E_b; ``sigma_2p2h`` and ``proton_fsi_strength``
    tuned by hand to the T2K CC0pi-Np STV data (PRD 98, 032003), see ``compare_to_t2k_stv``.
    """

    axial_mass: float = 1.03
    """Dipole axial mass M_A of CCQE [GeV]."""
    fermi_momentum: float = 0.221
    """Carbon Fermi momentum k_F [GeV/c] (Smith-Moniz) of the global Fermi gas."""
    fermi_gas: str = "local"
    """"local" (k_F from the carbon density at the interaction point; the default, since it describes the
    T2K dpT and dphiT data far better: chi2/8 bins 10.9 and 8.7 against 80.6 and 35.4 for "global")
    or "global" (one k_F = ``fermi_momentum``)."""
    binding_energy: float = 0.025
    """Nucleon removal energy E_b [GeV]."""
    momentum_tail_fraction: float = 0.0
    """Fraction of nucleons in the Bodek-Ritchie high-momentum tail above k_F."""
    momentum_tail_cutoff: float = 0.5
    """Upper end of the high-momentum tail [GeV/c]."""
    sigma_2p2h: float = 0.15e-38
    """High-energy limit of the 2p2h cross section [cm^2/nucleon]."""
    q2_scale_2p2h: float = 0.9
    """Dipole-like Q^2 scale L of 2p2h [GeV]."""
    sigma_res_cc: float = 0.65e-38
    """High-energy limit of CC Delta production [cm^2/nucleon]."""
    sigma_res_nc: float = 0.2e-38
    """High-energy limit of NC Delta production [cm^2/nucleon]."""
    q2_scale_res: float = 0.8
    """Dipole-like Q^2 scale L of Delta production [GeV]."""
    pion_absorption_strength: float = 1.0
    """Scale of the pion absorption probability P_abs(p_pi)."""
    proton_fsi_strength: float = 1.3
    """Scale of the leading-proton rescattering probability."""


def carbon_density(r: np.ndarray) -> np.ndarray:
    """Carbon-12 nucleon density [fm^-3] at radius r [fm]: modified harmonic oscillator normalised to 12.

    >>> round(float(carbon_density(0.0)), 4)
    0.1726
    """
    x2 = (np.asarray(r, float) / CARBON_MHO_A) ** 2
    norm = 12.0 / (np.pi**1.5 * CARBON_MHO_A**3 * (1.0 + 1.5 * CARBON_MHO_ALPHA))
    return norm * (1.0 + CARBON_MHO_ALPHA * x2) * np.exp(-x2)


def local_fermi_momentum(r: np.ndarray) -> np.ndarray:
    """k_F(r) = hbar c (3 pi^2 rho(r) / 2)^(1/3) [GeV/c] for symmetric nuclear matter, r [fm].

    >>> round(float(local_fermi_momentum(0.0)), 3)
    0.27
    """
    return HBAR_C * (1.5 * np.pi**2 * carbon_density(r)) ** (1.0 / 3.0)


@lru_cache(maxsize=1)
def _radius_table() -> tuple[np.ndarray, np.ndarray]:
    """(cumulative distribution, radius [fm]) of nucleon positions, r^2 rho(r) on a fine grid."""
    r = np.linspace(0.0, 8.0 * CARBON_MHO_A, 4001)
    pdf = r**2 * carbon_density(r)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]))])
    return cdf / cdf[-1], r


def fermi_momenta_at_vertex(rng: np.random.Generator, n: int, phys: ND280Physics) -> np.ndarray:
    """k_F [GeV/c] at ``n`` interaction points: constant (global gas) or k_F(r) (local gas)."""
    if phys.fermi_gas == "global":
        return np.full(n, phys.fermi_momentum)
    if phys.fermi_gas == "local":
        cdf, r = _radius_table()
        return local_fermi_momentum(np.interp(rng.random(n), cdf, r))
    raise ValueError(f"fermi_gas must be 'global' or 'local', got {phys.fermi_gas!r}")


def nucleon_momenta(rng: np.random.Generator, fermi_momentum: np.ndarray, phys: ND280Physics) -> np.ndarray:
    """Momenta ``(n, 3)`` [GeV/c] of Fermi-sea nucleons at points with the given k_F ``(n,)`` [GeV/c]."""
    return fermi_sphere_momenta(
        rng, len(fermi_momentum), fermi_momentum, phys.momentum_tail_fraction, phys.momentum_tail_cutoff
    )


def pion_absorption_probability(p_pi: np.ndarray, strength: float | np.ndarray = 1.0) -> np.ndarray:
    """Probability that a pion of momentum p_pi [GeV/c] made in carbon is absorbed, clipped to [0, 1].

    0.2 + 0.15 exp(-((p - 0.25)/0.12)^2): a plateau plus the Delta peak of pi-N scattering at
    p_pi ~ 0.25 GeV/c (T_pi ~ 165 MeV), sized like carbon absorption data (Ashery et al., PRC 23, 2173 (1981))
    folded over production points.

    >>> round(float(pion_absorption_probability(0.25)), 3)
    0.35
    """
    base = 0.2 + 0.15 * np.exp(-(((np.asarray(p_pi, float) - 0.25) / 0.12) ** 2))
    return np.clip(np.asarray(strength, float) * base, 0.0, 1.0)


def proton_interaction_probability(strength: float | np.ndarray = 1.0) -> np.ndarray:
    """Probability of one leading-proton rescattering step, ``strength * 0.35`` clipped to [0, 1].

    >>> float(proton_interaction_probability(2.0))
    0.7
    """
    return np.clip(np.asarray(strength, float) * PROTON_INTERACTION_PROBABILITY, 0.0, 1.0)
