"""Reference estimators on the same events as the transformer: calorimetric sum, GBDT, lepton direction.

* calorimetric energy: E_cal = sum over visible particles of the total energy for leptons, photons and
  mesons (their mass included) and kinetic energy plus a nucleon removal energy (30 MeV, argon) for
  baryons (cf. DUNE TDR vol. II, arXiv:2002.03005, sec. 5);
* GBDT: scikit-learn ``HistGradientBoostingRegressor`` on summed event features (:func:`summed_features`)
  regressing the median of log(E / E_cal): a learned correction to the calorimetric sum (the reference the
  transformer starts from);
* directions: the visible momentum sum, and the leading charged lepton (e or mu) where there is one,
  else the visible momentum sum.

All functions take the padded arrays of :mod:`numl_core.energy.data` and the names of the vector columns;
:func:`particle_roles` finds the PDG, energy and momentum columns by name.
"""

from __future__ import annotations

import numpy as np

from numl_core.data.particles import mass_of

REMOVAL_ENERGY = 0.030
ROLE_NAMES = {
    "pdg": ("pdg",),
    "energy": ("energy", "eng"),
    "px": ("px",),
    "py": ("py",),
    "pz": ("pz",),
}
LEPTONS = (11, -11, 13, -13)
BARYONS = (2212, -2212, 3122, 3222, 3212, 3112)


def particle_roles(vector_columns: list[str]) -> dict[str, int] | None:
    """Index of the pdg, energy, px, py, pz columns (matched by name fragment), or None if one is missing."""
    roles = {}
    for role, fragments in ROLE_NAMES.items():
        hits = [i for i, c in enumerate(vector_columns) if any(c.lower().endswith(f) for f in fragments)]
        if not hits:
            return None
        roles[role] = hits[0]
    return roles


def _parts(vector: np.ndarray, mask: np.ndarray, roles: dict[str, int]) -> tuple[np.ndarray, ...]:
    real = ~mask
    pdg = np.where(real, vector[..., roles["pdg"]], 0).astype(np.int64)
    energy = np.where(real, vector[..., roles["energy"]], 0.0).astype(float)
    p = np.stack([np.where(real, vector[..., roles[k]], 0.0) for k in ("px", "py", "pz")], axis=-1).astype(
        float
    )
    return real, pdg, energy, p


def _masses(pdg: np.ndarray, real: np.ndarray) -> np.ndarray:
    out = np.zeros(pdg.shape)
    out[real] = mass_of(pdg[real])
    return out


def calorimetric_energy(vector: np.ndarray, mask: np.ndarray, roles: dict[str, int]) -> np.ndarray:
    """E_cal (N,) [GeV]; see the module docstring."""
    real, pdg, energy, _ = _parts(vector, mask, roles)
    baryon = np.isin(pdg, BARYONS) & real
    per = np.where(baryon, energy - _masses(pdg, real) + REMOVAL_ENERGY, energy)
    return np.clip(np.where(real, per, 0.0).sum(axis=1), 1e-3, None)


def visible_momentum(vector: np.ndarray, mask: np.ndarray, roles: dict[str, int]) -> np.ndarray:
    """Sum of visible momenta (N, 3) [GeV/c]."""
    return _parts(vector, mask, roles)[3].sum(axis=1)


def leading_lepton(
    vector: np.ndarray, mask: np.ndarray, roles: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Most energetic visible e or mu per event: four-vector (N, 4) (zeros without one) and mass (N,)."""
    real, pdg, energy, p = _parts(vector, mask, roles)
    lep = np.isin(pdg, LEPTONS) & real
    score = np.where(lep, energy, -np.inf)
    idx = score.argmax(axis=1)
    has = lep.any(axis=1)
    rows = np.arange(len(idx))
    four = np.concatenate([energy[rows, idx][:, None], p[rows, idx]], axis=1) * has[:, None]
    mass = np.where(has, _masses(pdg, real)[rows, idx], 0.0)
    return four, mass


def lepton_or_visible_direction(vector: np.ndarray, mask: np.ndarray, roles: dict[str, int]) -> np.ndarray:
    """Unit vectors (N, 3): the leading lepton's direction where there is one, else the visible momentum's."""
    lep, _ = leading_lepton(vector, mask, roles)
    vis = visible_momentum(vector, mask, roles)
    d = np.where((lep[:, 0] > 0)[:, None], lep[:, 1:], vis)
    return d / np.clip(np.linalg.norm(d, axis=1, keepdims=True), 1e-12, None)


def summed_features(
    vector: np.ndarray, mask: np.ndarray, roles: dict[str, int], scalar: np.ndarray
) -> np.ndarray:
    """GBDT inputs (N, 16 + S): E_cal, visible momentum (3) and its magnitude, counts of p, pi+-, pi0,
    e/gamma, mu, other; summed kinetic energy of protons and total energy of pions; leading lepton E and
    cos angle to the visible momentum; particle count; the scalar features."""
    real, pdg, energy, p = _parts(vector, mask, roles)
    apdg = np.abs(pdg)
    vis = p.sum(axis=1)
    vis_norm = np.linalg.norm(vis, axis=1)
    kinds = [apdg == 2212, apdg == 211, apdg == 111, (apdg == 11) | (apdg == 22), apdg == 13]
    other = real & ~np.any(kinds, axis=0)
    counts = [(k & real).sum(axis=1) for k in [*kinds, other]]
    t_p = np.where(kinds[0] & real, energy - _masses(pdg, real), 0.0).sum(axis=1)
    e_pi = np.where((kinds[1] | kinds[2]) & real, energy, 0.0).sum(axis=1)
    lep, _ = leading_lepton(vector, mask, roles)
    lep_p = np.linalg.norm(lep[:, 1:], axis=1)
    cos_lep = np.where(
        lep_p * vis_norm > 0, (lep[:, 1:] * vis).sum(axis=1) / np.clip(lep_p * vis_norm, 1e-12, None), 1.0
    )
    columns = [
        calorimetric_energy(vector, mask, roles),
        *vis.T,
        vis_norm,
        *counts,
        t_p,
        e_pi,
        lep[:, 0],
        cos_lep,
        real.sum(axis=1),
    ]
    return np.concatenate([np.stack(columns, axis=1), scalar.astype(float)], axis=1)


def fit_gbdt(
    features: np.ndarray,
    energy: np.ndarray,
    reference: np.ndarray,
    weight: np.ndarray,
    seed: int,
    max_iter: int = 300,
):
    """A HistGradientBoostingRegressor of the median of log(E / reference) given ``features``.

    Absolute-error loss: neutral-current events, whose calorimetric sum misses the outgoing neutrino,
    make the residual heavy-tailed; early stopping uses 10% of the events.

    Runs on one OpenMP thread: next to torch's OpenMP pool in the same process, a multi-threaded
    fit was measured up to 100x slower (threads spinning against each other).
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    model = HistGradientBoostingRegressor(
        loss="absolute_error",
        max_iter=max_iter,
        learning_rate=0.1,
        max_leaf_nodes=63,
        early_stopping=True,
        random_state=seed,
    )
    with threadpool_limits(1, user_api="openmp"):
        model.fit(features, np.log(energy / np.clip(reference, 1e-3, None)), sample_weight=weight)
    return model


def predict_gbdt(model, features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Energies (N,) [GeV] from a model of :func:`fit_gbdt` and the same reference energies (N,)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="openmp"):
        return np.clip(reference, 1e-3, None) * np.exp(model.predict(features))
