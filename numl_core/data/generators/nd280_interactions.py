"""Hard-scattering samplers of the ND280 carbon sample and the accept-reject loop that mixes them.

Each channel draws proposals (E_nu from the flux, Fermi-sea nucleons, Q^2 from a dipole-like proposal) and
returns the importance ratio r = (dsigma per nucleon) / (proposal density) [cm^2] for each. Accepting a
proposal of channel c with probability r / R_c after choosing c with probability R_c / sum(R) yields
unweighted events distributed as the flux-averaged cross section, whose total is
sum(R) * accepted / proposed. See :mod:`numl_core.data.generators.nd280_physics` for the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from numl_core.data.generators.nd280_physics import (
    DELTA_MASS,
    DELTA_MASS_MAX,
    DELTA_WIDTH,
    NEUTRON_FRACTION,
    PAIR_EXCITATION_SCALE,
    PP_PAIR_FRACTION,
    ND280Physics,
    fermi_momenta_at_vertex,
    nucleon_momenta,
)
from numl_core.data.generators.phase_space import (
    HistogramSampler,
    TwoBodyFrame,
    beam_four_vectors,
    dipole_q2_proposal,
    four_vectors,
    invariant_mass,
    isotropic_decay,
    scatter_at_q2,
    two_body_frame,
)
from numl_core.data.kinematics import (
    CHARGED_PION_MASS,
    MUON_MASS,
    NEUTRAL_PION_MASS,
    NUCLEON_MASS,
)
from numl_core.data.llewellyn_smith import ls_dsigma_dq2
from numl_core.data.reference import load_t2k_flux

log = logging.getLogger(__name__)

N_SLOTS = 6
"""Nucleon slots per event: the Delta nucleon, an absorbing pair and three rescattering partners fit."""
PROPOSAL_Q2_SCALE_SQ = 1.0
"""L^2 [GeV^2] of the dipole-like Q^2 proposal shared by all channels."""
BOUND_SAFETY = 1.3
"""Factor on the largest importance ratio seen in the pilot run."""


@dataclass
class FinalState:
    """Truth record of ``n`` events (arrays share the first axis; GeV, GeV/c).

    ``lepton`` (n, 4): muon (CC) or neutrino (NC); ``initial`` (n, 3): struck nucleon or pair momentum;
    ``nucleons`` (n, N_SLOTS, 4) with ``is_proton``/``present`` (n, N_SLOTS); ``pion`` (n, 4) with
    ``pion_charge`` (n,) and ``pion_present`` (n,); ``pion_p_produced`` (n,) is the pion momentum at the
    vertex (0 without a pion); ``proton_rescatters`` (n,) counts leading-proton rescatterings.
    """

    enu: np.ndarray
    mode: np.ndarray
    q2: np.ndarray
    lepton: np.ndarray
    initial: np.ndarray
    nucleons: np.ndarray
    is_proton: np.ndarray
    present: np.ndarray
    pion: np.ndarray
    pion_charge: np.ndarray
    pion_present: np.ndarray
    pion_p_produced: np.ndarray
    proton_rescatters: np.ndarray

    @classmethod
    def empty(
        cls, enu: np.ndarray, mode: int, q2: np.ndarray, lepton: np.ndarray, initial: np.ndarray
    ) -> FinalState:
        """A record with no hadrons yet."""
        n = len(enu)
        return cls(
            enu=enu,
            mode=np.full(n, mode, np.int8),
            q2=q2,
            lepton=lepton,
            initial=initial,
            nucleons=np.zeros((n, N_SLOTS, 4)),
            is_proton=np.zeros((n, N_SLOTS), bool),
            present=np.zeros((n, N_SLOTS), bool),
            pion=np.zeros((n, 4)),
            pion_charge=np.zeros(n, np.int8),
            pion_present=np.zeros(n, bool),
            pion_p_produced=np.zeros(n),
            proton_rescatters=np.zeros(n, np.int8),
        )

    def take(self, index: np.ndarray) -> FinalState:
        """Rows ``index`` (integer or boolean)."""
        return FinalState(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concatenate(cls, parts: list[FinalState]) -> FinalState:
        """Stack records along the event axis."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def __len__(self) -> int:
        return len(self.enu)


Sampler = Callable[[np.random.Generator, int, ND280Physics, HistogramSampler], tuple[FinalState, np.ndarray]]


def _bound_nucleon(rng: np.random.Generator, fermi_momentum: np.ndarray, phys: ND280Physics) -> np.ndarray:
    """Fermi-sea nucleons at points with Fermi momenta ``(n,)`` as four-vectors (sqrt(M^2+p^2) - E_b, p)."""
    p = nucleon_momenta(rng, fermi_momentum, phys)
    return four_vectors(np.sqrt(NUCLEON_MASS**2 + np.sum(p**2, axis=1)) - phys.binding_energy, p)


def _flux_factor(target: np.ndarray) -> np.ndarray:
    """k.P / (E_nu P^0) for a massless neutrino along +z hitting a moving target."""
    return (target[:, 0] - target[:, 3]) / target[:, 0]


def _lepton_scatter(
    rng: np.random.Generator, frame: TwoBodyFrame, scale_sq: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw Q^2 from the shared proposal; return (Q^2, 1/proposal density, lepton, X) four-vectors."""
    q2, inv_density = dipole_q2_proposal(rng, frame.q2_min, frame.q2_max, scale_sq)
    lepton, x = scatter_at_q2(frame, q2, rng.uniform(-np.pi, np.pi, len(q2)))
    return q2, np.where(frame.valid, inv_density, 0.0), lepton, x


def _dipole_shape(q2: np.ndarray, scale: float) -> np.ndarray:
    """(1 + Q^2/L^2)^-2 / L^2 [GeV^-2]: integrates to 1 over Q^2 in [0, inf)."""
    return 1.0 / (scale**2 * (1.0 + q2 / scale**2) ** 2)


def sample_ccqe(
    rng: np.random.Generator, n: int, phys: ND280Physics, flux: HistogramSampler
) -> tuple[FinalState, np.ndarray]:
    """CCQE nu_mu n -> mu- p on the Fermi gas; returns (events, importance ratios [cm^2])."""
    enu = flux.sample(rng, n)
    k4 = beam_four_vectors(enu)
    kf = fermi_momenta_at_vertex(rng, n, phys)
    target = _bound_nucleon(rng, kf, phys)
    frame = two_body_frame(k4, target, MUON_MASS, NUCLEON_MASS)
    q2, inv_density, muon, proton = _lepton_scatter(rng, frame, PROPOSAL_Q2_SCALE_SQ)
    off_shell_mass = invariant_mass(target)
    e_rest = enu * (target[:, 0] - target[:, 3]) / off_shell_mass
    dsigma = np.clip(ls_dsigma_dq2(e_rest, q2, phys.axial_mass), 0.0, None)
    pauli = np.linalg.norm(proton[:, 1:], axis=1) > kf
    ratio = NEUTRON_FRACTION * dsigma * _flux_factor(target) * inv_density * pauli
    events = FinalState.empty(enu, 1, q2, muon, target[:, 1:])
    events.nucleons[:, 0] = proton
    events.is_proton[:, 0] = events.present[:, 0] = True
    return events, np.where(frame.valid, ratio, 0.0)


def sample_2p2h(
    rng: np.random.Generator, n: int, phys: ND280Physics, flux: HistogramSampler
) -> tuple[FinalState, np.ndarray]:
    """CC 2p2h nu_mu (N N) -> mu- (N N); returns (events, importance ratios [cm^2])."""
    enu = flux.sample(rng, n)
    k4 = beam_four_vectors(enu)
    kf = fermi_momenta_at_vertex(rng, n, phys)
    pair = _bound_nucleon(rng, kf, phys) + _bound_nucleon(rng, kf, phys)
    final_mass = 2.0 * NUCLEON_MASS + rng.gamma(2.0, PAIR_EXCITATION_SCALE, n)
    frame = two_body_frame(k4, pair, MUON_MASS, final_mass)
    q2, inv_density, muon, x = _lepton_scatter(rng, frame, PROPOSAL_Q2_SCALE_SQ)
    x = np.where(frame.valid[:, None], x, four_vectors(np.full(n, 3.0), np.zeros((n, 3))))
    n1, n2 = isotropic_decay(rng, x, NUCLEON_MASS, NUCLEON_MASS)
    pauli = (np.linalg.norm(n1[:, 1:], axis=1) > kf) & (np.linalg.norm(n2[:, 1:], axis=1) > kf)
    dsigma = phys.sigma_2p2h * _dipole_shape(q2, phys.q2_scale_2p2h)
    ratio = dsigma * _flux_factor(pair) * inv_density * pauli
    events = FinalState.empty(enu, 2, q2, muon, pair[:, 1:])
    events.nucleons[:, 0], events.nucleons[:, 1] = n1, n2
    events.present[:, :2] = True
    events.is_proton[:, 0] = True
    events.is_proton[:, 1] = rng.random(n) < PP_PAIR_FRACTION
    return events, np.where(frame.valid, ratio, 0.0)


def _delta_masses(rng: np.random.Generator, n: int) -> np.ndarray:
    """Breit-Wigner (Cauchy) Delta masses [GeV] truncated to [M + m_pi, DELTA_MASS_MAX]."""
    half = 0.5 * DELTA_WIDTH
    lo = np.arctan((NUCLEON_MASS + CHARGED_PION_MASS - DELTA_MASS) / half)
    hi = np.arctan((DELTA_MASS_MAX - DELTA_MASS) / half)
    return DELTA_MASS + half * np.tan(rng.uniform(lo, hi, n))


def _delta_channels(rng: np.random.Generator, n: int, charged_current: bool) -> tuple[np.ndarray, np.ndarray]:
    """Isospin decomposition: (pion charge, nucleon is proton) for nu N -> l Delta -> l N pi."""
    u = rng.random(n)
    if charged_current:
        # Delta++ -> p pi+ (3/4); Delta+ -> p pi0 (1/4 * 2/3), n pi+ (1/4 * 1/3)
        charge = np.where(u < 0.75, 1, np.where(u < 0.75 + 0.25 * 2 / 3, 0, 1))
        return charge.astype(np.int8), u < 0.75 + 0.25 * 2 / 3
    # Delta+ -> p pi0 (1/2 * 2/3), n pi+ (1/2 * 1/3); Delta0 -> n pi0 (1/2 * 2/3), p pi- (1/2 * 1/3)
    edges = np.cumsum([1 / 3, 1 / 6, 1 / 3])
    charge = np.select([u < edges[0], u < edges[1], u < edges[2]], [0, 1, 0], -1).astype(np.int8)
    is_proton = (u < edges[0]) | (u >= edges[2])
    return charge, is_proton


def _sample_delta(
    rng: np.random.Generator,
    n: int,
    phys: ND280Physics,
    flux: HistogramSampler,
    charged_current: bool,
) -> tuple[FinalState, np.ndarray]:
    enu = flux.sample(rng, n)
    k4 = beam_four_vectors(enu)
    target = _bound_nucleon(rng, fermi_momenta_at_vertex(rng, n, phys), phys)
    mass = _delta_masses(rng, n)
    m_lep = MUON_MASS if charged_current else 0.0
    frame = two_body_frame(k4, target, m_lep, mass)
    q2, inv_density, lepton, delta = _lepton_scatter(rng, frame, PROPOSAL_Q2_SCALE_SQ)
    delta = np.where(frame.valid[:, None], delta, four_vectors(np.full(n, 2.0), np.zeros((n, 3))))
    charge, nucleon_is_proton = _delta_channels(rng, n, charged_current)
    m_pi = np.where(charge == 0, NEUTRAL_PION_MASS, CHARGED_PION_MASS)
    nucleon, pion = isotropic_decay(rng, delta, NUCLEON_MASS, m_pi)
    sigma = phys.sigma_res_cc if charged_current else phys.sigma_res_nc
    ratio = sigma * _dipole_shape(q2, phys.q2_scale_res) * _flux_factor(target) * inv_density
    events = FinalState.empty(enu, 4 if charged_current else 5, q2, lepton, target[:, 1:])
    events.nucleons[:, 0] = nucleon
    events.present[:, 0] = True
    events.is_proton[:, 0] = nucleon_is_proton
    events.pion, events.pion_charge, events.pion_present = pion, charge, np.ones(n, bool)
    events.pion_p_produced = np.linalg.norm(pion[:, 1:], axis=1)
    return events, np.where(frame.valid, ratio, 0.0)


def sample_cc_delta(
    rng: np.random.Generator, n: int, phys: ND280Physics, flux: HistogramSampler
) -> tuple[FinalState, np.ndarray]:
    """CC Delta(1232) production, nu_mu N -> mu- N pi (mode 4 before pion FSI)."""
    return _sample_delta(rng, n, phys, flux, charged_current=True)


def sample_nc_delta(
    rng: np.random.Generator, n: int, phys: ND280Physics, flux: HistogramSampler
) -> tuple[FinalState, np.ndarray]:
    """NC Delta(1232) production, nu_mu N -> nu_mu N pi (mode 5 before pion FSI)."""
    return _sample_delta(rng, n, phys, flux, charged_current=False)


CHANNELS: dict[str, Sampler] = {
    "ccqe": sample_ccqe,
    "2p2h": sample_2p2h,
    "cc_delta": sample_cc_delta,
    "nc_delta": sample_nc_delta,
}
"""Hard-scattering channels, each (rng, n, physics, flux) -> (events, importance ratios [cm^2])."""


@lru_cache(maxsize=1)
def nd280_flux_sampler() -> HistogramSampler:
    """E_nu sampler from the T2K ND280 nu_mu flux (+250 kA), 2016 release."""
    return HistogramSampler(*load_t2k_flux("nd280", "numu", "plus250kA"))


@lru_cache(maxsize=16)
def channel_bounds(phys: ND280Physics, n_pilot: int = 200_000) -> dict[str, float]:
    """Accept-reject bounds R_c [cm^2]: BOUND_SAFETY x the largest ratio in a fixed-seed pilot run."""
    rng = np.random.default_rng(20_160_503)
    return {
        name: BOUND_SAFETY * float(np.max(sampler(rng, n_pilot, phys, nd280_flux_sampler())[1]))
        for name, sampler in CHANNELS.items()
    }


def sample_hard_scatters(
    rng: np.random.Generator, n_events: int, phys: ND280Physics, batch_size: int = 400_000
) -> tuple[FinalState, float]:
    """Draw ``n_events`` unweighted events; return them (in proposal order) and the flux-averaged
    total cross section [cm^2/nucleon], estimated as sum(R) * n_events / (proposals used)."""
    bounds = channel_bounds(phys)
    names = list(CHANNELS)
    bound = np.array([bounds[k] for k in names])
    prob = bound / bound.sum()
    parts: list[FinalState] = []
    n_accepted, n_proposed, n_over = 0, 0, 0
    efficiency = 0.3
    while n_accepted < n_events:
        size = int(min(batch_size, max(10_000, 1.1 * (n_events - n_accepted) / efficiency)))
        label = rng.choice(len(names), size=size, p=prob)
        batch, positions = [], []
        for c, name in enumerate(names):
            where = np.flatnonzero(label == c)
            events, ratio = CHANNELS[name](rng, len(where), phys, nd280_flux_sampler())
            n_over += int(np.count_nonzero(ratio > bound[c]))
            keep = rng.random(len(where)) * bound[c] < ratio
            batch.append(events.take(keep))
            positions.append(where[keep])
        position = np.concatenate(positions)
        order = np.argsort(position)[: n_events - n_accepted]
        if len(order) == n_events - n_accepted:
            n_proposed += int(position[order[-1]]) + 1
        else:
            n_proposed += size
        parts.append(FinalState.concatenate(batch).take(order))
        n_accepted += len(order)
        efficiency = max(n_accepted / n_proposed, 0.01)
    if n_over:
        log.warning("%d proposals exceeded their accept-reject bound (clipped); raise BOUND_SAFETY", n_over)
    return FinalState.concatenate(parts), float(bound.sum() * n_events / n_proposed)
