"""Final-state interactions of the ND280 carbon sample: pion absorption and leading-proton rescattering.

Both act in place on a :class:`~numl_core.data.generators.nd280_interactions.FinalState`; the probabilities
are in :mod:`numl_core.data.generators.nd280_physics`. Each FSI decision is one uniform draw against a
probability that depends only on recorded truth (the pion momentum at the vertex, or nothing for protons),
so a change of FSI strength is exactly a reweighting of recorded events.
"""

from __future__ import annotations

import numpy as np

from numl_core.data.generators.nd280_interactions import FinalState
from numl_core.data.generators.nd280_physics import (
    MAX_PROTON_RESCATTERS,
    ND280Physics,
    fermi_momenta_at_vertex,
    nucleon_momenta,
    pion_absorption_probability,
    proton_interaction_probability,
)
from numl_core.data.generators.phase_space import (
    four_vectors,
    invariant_mass,
    isotropic_decay,
)
from numl_core.data.kinematics import NUCLEON_MASS


def _free_slot(events: FinalState) -> np.ndarray:
    """Index of the first empty nucleon slot of every event."""
    return np.argmin(events.present, axis=1)


def _add_nucleon(events: FinalState, rows: np.ndarray, p4: np.ndarray, is_proton: np.ndarray) -> None:
    slot = _free_slot(events)[rows]
    events.nucleons[rows, slot] = p4
    events.is_proton[rows, slot] = is_proton
    events.present[rows, slot] = True


def absorb_pions(rng: np.random.Generator, events: FinalState, phys: ND280Physics) -> None:
    """Absorb pions with probability P_abs(p_pi); an np pair (energy reduced by 2 E_b) takes the pion and
    leaves as two nucleons isotropic in their centre of mass (pi+ -> pp, pi0 -> pn, pi- -> nn).

    Absorbed CC events become mode 3, absorbed NC events mode 6.
    """
    prob = pion_absorption_probability(events.pion_p_produced, phys.pion_absorption_strength)
    absorbed = events.pion_present & (rng.random(len(events)) < prob)
    rows = np.flatnonzero(absorbed)
    n = len(rows)
    kf = fermi_momenta_at_vertex(rng, n, phys)
    p1, p2 = nucleon_momenta(rng, kf, phys), nucleon_momenta(rng, kf, phys)
    pair_e = np.sqrt(NUCLEON_MASS**2 + np.sum(p1**2, axis=1)) + np.sqrt(
        NUCLEON_MASS**2 + np.sum(p2**2, axis=1)
    )
    pair_p = p1 + p2
    system = events.pion[rows] + four_vectors(pair_e - 2.0 * phys.binding_energy, pair_p)
    # a pair moving against a slow pion can fall below 2M; absorb such pions on a pair at rest instead
    at_rest = events.pion[rows] + four_vectors(
        np.full(n, 2.0 * (NUCLEON_MASS - phys.binding_energy)), 0 * pair_p
    )
    system = np.where((invariant_mass(system) > 2.0 * NUCLEON_MASS + 1e-6)[:, None], system, at_rest)
    n1, n2 = isotropic_decay(rng, system, NUCLEON_MASS, NUCLEON_MASS)
    charge = events.pion_charge[rows]
    _add_nucleon(events, rows, n1, charge >= 0)
    _add_nucleon(events, rows, n2, charge > 0)
    events.pion_present[rows] = False
    events.pion[rows] = 0.0
    events.mode[rows] = np.where(events.mode[rows] == 4, 3, 6).astype(np.int8)


def leading_proton_slot(events: FinalState) -> tuple[np.ndarray, np.ndarray]:
    """(slot of the highest-momentum proton, whether the event has a proton)."""
    p = np.linalg.norm(events.nucleons[..., 1:], axis=2)
    p = np.where(events.present & events.is_proton, p, -np.inf)
    slot = np.argmax(p, axis=1)
    return slot, np.isfinite(p[np.arange(len(events)), slot])


def rescatter_protons(rng: np.random.Generator, events: FinalState, phys: ND280Physics) -> None:
    """Intranuclear cascade of the leading proton: up to MAX_PROTON_RESCATTERS steps, each taken with
    probability p = ``proton_interaction_probability(proton_fsi_strength)`` after the previous one.

    A step scatters the current leading proton elastically off an on-shell Fermi-sea nucleon (proton or
    neutron, equal odds), isotropically in their centre of mass; the proton keeps the first outgoing
    momentum and the partner joins the event. The number of steps k (``proton_rescatters``) has probability
    p^k (1 - p) for k < MAX_PROTON_RESCATTERS and p^k at the cap.
    """
    _, active = leading_proton_slot(events)
    prob = proton_interaction_probability(phys.proton_fsi_strength)
    for _ in range(MAX_PROTON_RESCATTERS):
        active &= rng.random(len(events)) < prob
        rows = np.flatnonzero(active)
        n = len(rows)
        slot = leading_proton_slot(events)[0][rows]
        partner_p = nucleon_momenta(rng, fermi_momenta_at_vertex(rng, n, phys), phys)
        partner = four_vectors(np.sqrt(NUCLEON_MASS**2 + np.sum(partner_p**2, axis=1)), partner_p)
        proton, other = isotropic_decay(
            rng, events.nucleons[rows, slot] + partner, NUCLEON_MASS, NUCLEON_MASS
        )
        events.nucleons[rows, slot] = proton
        _add_nucleon(events, rows, other, rng.random(n) < 0.5)
        events.proton_rescatters[rows] += 1
