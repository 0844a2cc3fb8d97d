"""Neutrino-argon interactions for the atmospheric sample: cross sections, hard scatter, hadrons, FSI.

An approximate but physically grounded model, meant to give a regression the right structure (visible
and invisible energy, lepton and hadron kinematics, thresholds), not precision cross sections:

* cross sections per nucleon follow the shape of the world nu_mu CC data (Formaggio & Zeller, Rev. Mod.
  Phys. 84, 1307 (2012)): quasi-elastic saturating at ~1e-38 cm^2, Delta production from ~0.35 GeV, DIS
  rising linearly (sigma/E ~ 0.68e-38 cm^2/GeV); NC = CC / 3 in every mode;
* the struck nucleon moves in an argon Fermi gas (k_F 0.25 GeV/c, removal energy 30 MeV); the hard
  scatter k + N -> l + X is done in the lab with exact two-body kinematics (Q^2 from dipole-like
  proposals, DIS from flat y and x ~ Beta(0.5, 3));
* X decays: QE -> nucleon; Delta -> N pi isotropically; DIS -> leading nucleon + pions (multiplicity
  1 + Poisson(1.2 ln W^2), capped) by sequential two-body phase space;
* FSI: pions are absorbed with probability ``pion_absorption`` (their energy goes to a p n pair) and
  every event evaporates Poisson(1) neutrons and Poisson(0.3) protons with T ~ Exp(20 MeV).

Every momentum here is in a frame with the neutrino along +z; :mod:`atmospheric_events` rotates events
into the detector frame. Units: GeV, GeV/c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numl_core.data.generators.phase_space import (
    dipole_q2_proposal,
    fermi_sphere_momenta,
    four_vectors,
    invariant_mass,
    isotropic_decay,
    isotropic_directions,
    scatter_at_q2,
    two_body_frame,
)
from numl_core.data.particles import mass_of

M_P, M_N, M_PI, M_PI0, M_K = mass_of(np.array([2212, 2112, 211, 111, 321]))
LEPTON_OF = {14: 13, 12: 11, -14: -13, -12: -11}
MODES = ("QE", "RES", "DIS")
MAX_PIONS = 8


@dataclass(frozen=True)
class ArgonModel:
    """Nuclear and interaction parameters (GeV, GeV/c) of the argon target."""

    fermi_momentum: float = 0.25
    removal_energy: float = 0.030
    qe_scale_sq: float = 0.5
    res_scale_sq: float = 1.0
    pion_absorption: float = 0.2
    evaporation_neutrons: float = 1.0
    evaporation_protons: float = 0.3
    evaporation_temperature: float = 0.020


def mode_cross_sections(enu: np.ndarray) -> np.ndarray:
    """CC cross sections per nucleon [1e-38 cm^2] of QE, RES and DIS, ``(n, 3)`` (Formaggio-Zeller shapes).

    >>> mode_cross_sections(np.array([0.1, 1.0, 10.0])).round(2).tolist()
    [[0.25, 0.0, 0.0], [0.94, 0.31, 0.0], [1.0, 0.55, 6.78]]
    """
    e = np.asarray(enu, float)
    qe = 1.0 - np.exp(-e / 0.35)
    res = 0.55 * np.clip(1.0 - np.exp(-(e - 0.35) / 0.8), 0.0, None)
    dis = 0.68 * e * np.clip(1.0 - np.exp(-(e - 1.0) / 1.5), 0.0, None)
    return np.stack([qe, res, dis], axis=1)


@dataclass
class Particles:
    """A flat list of particles: owning ``event`` row, ``pdg`` and four-momentum ``p4`` ``(n, 4)`` [GeV]."""

    event: np.ndarray
    pdg: np.ndarray
    p4: np.ndarray

    @classmethod
    def empty(cls) -> Particles:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)))

    @classmethod
    def concat(cls, parts: list[Particles]) -> Particles:
        parts = [p for p in parts if len(p.event)] or [cls.empty()]
        return cls(
            np.concatenate([p.event for p in parts]),
            np.concatenate([p.pdg for p in parts]),
            np.concatenate([p.p4 for p in parts]),
        )

    def take(self, keep: np.ndarray) -> Particles:
        return Particles(self.event[keep], self.pdg[keep], self.p4[keep])


@dataclass
class HardScatter:
    """Per-event truth of the primary interaction (arrays over events)."""

    valid: np.ndarray
    lepton: np.ndarray
    hadrons: np.ndarray
    q2: np.ndarray
    w: np.ndarray


def struck_nucleons(rng: np.random.Generator, n: int, model: ArgonModel) -> np.ndarray:
    """Off-shell bound nucleons ``(n, 4)``: Fermi-gas momentum, energy sqrt(M^2 + p^2) - removal energy."""
    p = fermi_sphere_momenta(rng, n, model.fermi_momentum)
    energy = np.sqrt(M_N**2 + np.sum(p**2, axis=1)) - model.removal_energy
    return four_vectors(energy, p)


def hard_scatter(
    rng: np.random.Generator,
    enu: np.ndarray,
    mode: np.ndarray,
    lepton_mass: np.ndarray,
    model: ArgonModel,
) -> HardScatter:
    """k + N -> lepton + X for neutrinos of energy ``enu`` along +z; ``mode`` indexes :data:`MODES`."""
    n = len(enu)
    k4 = np.zeros((n, 4))
    k4[:, 0] = k4[:, 3] = enu
    target = struck_nucleons(rng, n, model)
    w = np.full(n, M_N)
    res = mode == 1
    w[res] = _delta_masses(rng, int(res.sum()))
    dis = mode == 2
    q2_dis = np.zeros(n)
    w[dis], q2_dis[dis] = _dis_w_q2(rng, enu[dis])
    valid = np.ones(n, bool)
    lepton = np.zeros((n, 4))
    hadrons = np.zeros((n, 4))
    q2 = np.zeros(n)
    for m_lep in np.unique(lepton_mass):
        rows = lepton_mass == m_lep
        frame = two_body_frame(k4[rows], target[rows], float(m_lep), w[rows])
        scale = np.where(mode[rows] == 0, model.qe_scale_sq, model.res_scale_sq)
        q2_prop, _ = dipole_q2_proposal(rng, frame.q2_min, frame.q2_max, scale)
        q2_rows = np.where(mode[rows] == 2, np.clip(q2_dis[rows], frame.q2_min, frame.q2_max), q2_prop)
        lep, had = scatter_at_q2(frame, q2_rows, rng.uniform(-np.pi, np.pi, int(rows.sum())))
        lepton[rows], hadrons[rows], q2[rows], valid[rows] = lep, had, q2_rows, frame.valid
    return HardScatter(valid, lepton, hadrons, q2, w)


def _delta_masses(rng: np.random.Generator, n: int) -> np.ndarray:
    """Delta(1232) invariant masses [GeV]: Breit-Wigner (Gamma 0.117 GeV) truncated to [1.09, 1.60]."""
    lo, hi = np.arctan((np.array([1.09, 1.60]) - 1.232) / 0.0585)
    return 1.232 + 0.0585 * np.tan(rng.uniform(lo, hi, n))


def _dis_w_q2(rng: np.random.Generator, enu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W [GeV], Q^2 [GeV^2]) with y flat and x ~ Beta(0.5, 3), W >= 1.4 GeV (redrawn up to 30 times)."""
    n = len(enu)
    w = np.full(n, 1.4)
    q2 = np.zeros(n)
    todo = np.ones(n, bool)
    for _ in range(30):
        idx = np.flatnonzero(todo)
        if not len(idx):
            break
        x = rng.beta(0.5, 3.0, len(idx))
        y = rng.random(len(idx))
        nu = y * enu[idx]
        w2 = M_N**2 + 2.0 * M_N * nu * (1.0 - x)
        ok = w2 > 1.4**2
        w[idx[ok]] = np.sqrt(w2[ok])
        q2[idx[ok]] = 2.0 * M_N * nu[ok] * x[ok]
        todo[idx[ok]] = False
    return w, q2


def hadronise(
    rng: np.random.Generator, hadrons: np.ndarray, mode: np.ndarray, is_cc: np.ndarray
) -> Particles:
    """Final-state hadrons of the system X ``(n, 4)`` before FSI, as a flat particle list."""
    n = len(hadrons)
    rows = np.arange(n)
    parts = []
    qe = mode == 0
    # QE: CC nu n -> l- p; NC elastic on p or n with equal probability
    nucleon = np.where(is_cc[qe] | (rng.random(int(qe.sum())) < 0.5), 2212, 2112)
    parts.append(Particles(rows[qe], nucleon, hadrons[qe]))
    res = mode == 1
    if res.any():
        parts.append(_delta_decay(rng, rows[res], hadrons[res], is_cc[res]))
    dis = mode == 2
    if dis.any():
        parts.append(_dis_hadrons(rng, rows[dis], hadrons[dis]))
    return Particles.concat(parts)


def _delta_decay(rng: np.random.Generator, rows: np.ndarray, x4: np.ndarray, is_cc: np.ndarray) -> Particles:
    """Delta -> N pi by isospin-weighted channels (CC: p pi+ 0.6, n pi+ 0.2, p pi0 0.2; NC: mostly pi0)."""
    n = len(rows)
    u = rng.random(n)
    cc_n = np.select([u < 0.6, u < 0.8], [2212, 2112], 2212)
    cc_pi = np.select([u < 0.6, u < 0.8], [211, 211], 111)
    nc_n = np.select([u < 0.35, u < 0.7, u < 0.85], [2212, 2112, 2212], 2112)
    nc_pi = np.select([u < 0.35, u < 0.7, u < 0.85], [111, 111, -211], 211)
    nucleon = np.where(is_cc, cc_n, nc_n)
    pion = np.where(is_cc, cc_pi, nc_pi)
    m_n = np.where(nucleon == 2212, M_P, M_N)
    m_pi = np.where(pion == 111, M_PI0, M_PI)
    d1, d2 = isotropic_decay(rng, x4, m_n, m_pi)
    return Particles(np.concatenate([rows, rows]), np.concatenate([nucleon, pion]), np.concatenate([d1, d2]))


def _dis_hadrons(rng: np.random.Generator, rows: np.ndarray, x4: np.ndarray) -> Particles:
    """Leading nucleon plus pions (5% of events trade one pion for a K+) by sequential phase space."""
    w = invariant_mass(x4)
    n_pi = 1 + rng.poisson(1.2 * np.log(w**2))
    n_pi = np.minimum(n_pi, np.clip(((w - M_N - 0.01) / M_PI).astype(int), 1, MAX_PIONS))
    parts = []
    for k in np.unique(n_pi):
        sel = np.flatnonzero(n_pi == k)
        m = len(sel)
        codes = np.empty((m, k + 1), np.int64)
        codes[:, 0] = np.where(rng.random(m) < 0.5, 2212, 2112)
        u = rng.random((m, k))
        codes[:, 1:] = np.select([u < 0.4, u < 0.65], [211, -211], 111)
        kaon = (rng.random(m) < 0.05) & (w[sel] > M_N + M_K + k * M_PI + 0.01)
        codes[kaon, 1] = 321
        masses = mass_of(codes)
        p4 = _sequential_decay(rng, x4[sel], masses)
        parts.append(Particles(np.repeat(rows[sel], k + 1), codes.ravel(), p4.reshape(-1, 4)))
    return Particles.concat(parts)


def _sequential_decay(rng: np.random.Generator, parent: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Split ``parent`` ``(n, 4)`` into ``masses`` ``(n, k)`` by chained isotropic two-body decays.

    Intermediate masses are uniform between the sum of the remaining masses and the kinematic limit.
    Returns ``(n, k, 4)`` lab four-vectors.
    """
    n, k = masses.shape
    out = np.empty((n, k, 4))
    current = parent
    for j in range(k - 1):
        if j < k - 2:
            rest_min = masses[:, j + 1 :].sum(axis=1)
            room = np.clip(invariant_mass(current) - masses[:, j] - rest_min, 0.0, None)
            m_rest = rest_min + rng.random(n) * room * 0.999
        else:
            m_rest = masses[:, k - 1]
        out[:, j], current = isotropic_decay(rng, current, masses[:, j], m_rest)
    out[:, k - 1] = current
    return out


def final_state_interactions(
    rng: np.random.Generator, hadrons: Particles, n_events: int, model: ArgonModel
) -> Particles:
    """Pion absorption into p n pairs and evaporation nucleons (see the module docstring)."""
    pions = np.isin(hadrons.pdg, [211, -211, 111])
    absorbed = pions & (rng.random(len(hadrons.pdg)) < model.pion_absorption)
    gone = hadrons.take(absorbed)
    kept = hadrons.take(~absorbed)
    share = np.clip((gone.p4[:, 0] - 2.0 * model.removal_energy) / 2.0, 0.001, None)
    pair = []
    for code, mass in ((2212, M_P), (2112, M_N)):
        p = np.sqrt((share + mass) ** 2 - mass**2)
        pair.append(
            Particles(
                gone.event,
                np.full(len(share), code),
                four_vectors(share + mass, p[:, None] * isotropic_directions(rng, len(share))),
            )
        )
    evaporated = []
    for code, mass, mean in ((2112, M_N, model.evaporation_neutrons), (2212, M_P, model.evaporation_protons)):
        counts = rng.poisson(mean, n_events)
        owner = np.repeat(np.arange(n_events), counts)
        t = rng.exponential(model.evaporation_temperature, len(owner))
        p = np.sqrt((t + mass) ** 2 - mass**2)
        evaporated.append(
            Particles(
                owner,
                np.full(len(owner), code),
                four_vectors(t + mass, p[:, None] * isotropic_directions(rng, len(owner))),
            )
        )
    return Particles.concat([kept, *pair, *evaporated])
