"""A small PDG particle table: masses, charges, detection thresholds and embedding indices.

Masses in GeV (PDG 2024 Review of Particle Physics, rounded to 1 keV or better); charges in units of e;
thresholds are kinetic energies in MeV below which a LArTPC does not reconstruct a particle (the energy
workflow's defaults: p 25, pi+- 70, pi0 50, K 50, mu 5, e 5 MeV; photons as electrons, other hadrons
as kaons). Neutrinos and neutrons are never seen.

>>> mass_of(np.array([13, 2212])).round(4).tolist()
[0.1057, 0.9383]
>>> embedding_index(np.array([2212, -13]))
array([14,  4])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numl_core.data.schema import DataError


@dataclass(frozen=True)
class Particle:
    """One PDG code: ``mass`` [GeV], ``charge`` [e], ``kind`` (threshold class), ``visible`` in a LArTPC."""

    pdg: int
    name: str
    mass: float
    charge: float
    kind: str
    visible: bool = True


PARTICLES: tuple[Particle, ...] = (
    Particle(11, "e-", 0.000510999, -1, "e"),
    Particle(-11, "e+", 0.000510999, 1, "e"),
    Particle(13, "mu-", 0.105658375, -1, "mu"),
    Particle(-13, "mu+", 0.105658375, 1, "mu"),
    Particle(15, "tau-", 1.77693, -1, "mu"),
    Particle(-15, "tau+", 1.77693, 1, "mu"),
    Particle(12, "nu_e", 0.0, 0, "nu", False),
    Particle(-12, "nu_e_bar", 0.0, 0, "nu", False),
    Particle(14, "nu_mu", 0.0, 0, "nu", False),
    Particle(-14, "nu_mu_bar", 0.0, 0, "nu", False),
    Particle(16, "nu_tau", 0.0, 0, "nu", False),
    Particle(-16, "nu_tau_bar", 0.0, 0, "nu", False),
    Particle(22, "gamma", 0.0, 0, "e"),
    Particle(2212, "p", 0.938272088, 1, "p"),
    Particle(-2212, "p_bar", 0.938272088, -1, "p"),
    Particle(2112, "n", 0.939565421, 0, "n", False),
    Particle(-2112, "n_bar", 0.939565421, 0, "n", False),
    Particle(211, "pi+", 0.13957039, 1, "pi"),
    Particle(-211, "pi-", 0.13957039, -1, "pi"),
    Particle(111, "pi0", 0.1349768, 0, "pi0"),
    Particle(321, "K+", 0.493677, 1, "K"),
    Particle(-321, "K-", 0.493677, -1, "K"),
    Particle(311, "K0", 0.497611, 0, "K"),
    Particle(-311, "K0_bar", 0.497611, 0, "K"),
    Particle(130, "K0_L", 0.497611, 0, "K"),
    Particle(310, "K0_S", 0.497611, 0, "K"),
    Particle(221, "eta", 0.547862, 0, "K"),
    Particle(3122, "Lambda", 1.115683, 0, "K"),
    Particle(3222, "Sigma+", 1.18937, 1, "K"),
    Particle(3212, "Sigma0", 1.192642, 0, "K"),
    Particle(3112, "Sigma-", 1.197449, -1, "K"),
)
"""Every particle numl knows, in embedding order (index 0 is reserved for padding)."""

DEFAULT_THRESHOLDS_MEV: dict[str, float] = {
    "p": 25.0,
    "pi": 70.0,
    "pi0": 50.0,
    "K": 50.0,
    "mu": 5.0,
    "e": 5.0,
}
"""Kinetic-energy detection thresholds [MeV] per particle kind (photons use ``e``, other hadrons ``K``)."""

_CODES = np.array(sorted(p.pdg for p in PARTICLES))
_BY_CODE = {p.pdg: p for p in PARTICLES}
_ORDER = {p.pdg: i + 1 for i, p in enumerate(PARTICLES)}
N_EMBEDDINGS = len(PARTICLES) + 1
"""Size of an embedding table over :data:`PARTICLES` plus the padding index 0."""
VECTOR_COLUMNS = ("part_pdg", "part_mass", "part_energy", "part_px", "part_py", "part_pz")
"""Per-particle list columns of an event table (PDG code, mass [GeV], energy [GeV], momentum [GeV/c])."""
SCALAR_COLUMNS = ("vis_energy", "n_particles", "vis_px", "vis_py", "vis_pz")
"""Per-event columns: visible energy [GeV], particle count and visible momentum [GeV/c]."""
TARGET_COLUMNS = ("enu_truth", "nu_px_truth", "nu_py_truth", "nu_pz_truth")
"""True neutrino energy [GeV] and momentum [GeV/c]: the energy workflow's physics targets."""


def is_nucleus(pdg: np.ndarray) -> np.ndarray:
    """True for PDG nuclear codes 10LZZZAAAI (e.g. 1000180400 for argon-40)."""
    return np.abs(np.asarray(pdg, np.int64)) >= 1_000_000_000


def check_known(pdg: np.ndarray, source: str = "<particles>", column: str = "pdg") -> np.ndarray:
    """Return ``pdg`` as int64, or raise :class:`DataError` naming the first unknown code and its position."""
    codes = np.asarray(pdg)
    as_int = codes.astype(np.int64)
    bad = (as_int != codes) | ~np.isin(as_int, _CODES)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{source}: column '{column}' entry {i}: unknown PDG code {codes.flat[i].item()!r}; "
            f"known codes: {_CODES.tolist()}"
        )
    return as_int


def _lookup(pdg: np.ndarray, attribute: str) -> np.ndarray:
    codes = check_known(pdg)
    return np.array([getattr(_BY_CODE[int(c)], attribute) for c in codes.ravel()]).reshape(codes.shape)


def mass_of(pdg: np.ndarray) -> np.ndarray:
    """Masses [GeV] of PDG codes (any shape)."""
    table = {c: _BY_CODE[c].mass for c in _BY_CODE}
    codes = check_known(pdg)
    uniq, inverse = np.unique(codes, return_inverse=True)
    return np.array([table[int(c)] for c in uniq], float)[inverse].reshape(codes.shape)


def charge_of(pdg: np.ndarray) -> np.ndarray:
    """Charges [e] of PDG codes (any shape)."""
    return _lookup(pdg, "charge").astype(float)


def embedding_index(pdg: np.ndarray) -> np.ndarray:
    """Index 1..len(PARTICLES) of each PDG code in :data:`PARTICLES` (0 is left for padding)."""
    codes = check_known(pdg)
    uniq, inverse = np.unique(codes, return_inverse=True)
    return np.array([_ORDER[int(c)] for c in uniq], np.int64)[inverse].reshape(codes.shape)


def embedding_codes() -> np.ndarray:
    """PDG codes in embedding order, ``(N_EMBEDDINGS - 1,)``; entry i has index i + 1."""
    return np.array([p.pdg for p in PARTICLES], np.int64)


def thresholds_gev(pdg: np.ndarray, thresholds_mev: dict[str, float] | None = None) -> np.ndarray:
    """Kinetic-energy threshold [GeV] per particle; invisible particles (nu, n) get +inf.

    ``thresholds_mev`` overrides :data:`DEFAULT_THRESHOLDS_MEV` per kind (keys p, pi, pi0, K, mu, e).

    >>> thresholds_gev(np.array([2212, 211, 2112]), {"p": 40.0}).tolist()
    [0.04, 0.07, inf]
    """
    table = dict(DEFAULT_THRESHOLDS_MEV)
    for key, value in (thresholds_mev or {}).items():
        if key not in table:
            raise ValueError(f"unknown threshold kind {key!r}; expected one of {sorted(table)}")
        if not value >= 0:
            raise ValueError(f"threshold for {key!r} must be >= 0 MeV, got {value!r}")
        table[key] = float(value)
    codes = check_known(pdg)
    uniq, inverse = np.unique(codes, return_inverse=True)
    per_code = np.array(
        [table[_BY_CODE[int(c)].kind] / 1000.0 if _BY_CODE[int(c)].visible else np.inf for c in uniq]
    )
    return per_code[inverse].reshape(codes.shape)
