"""Built-in atmospheric nu_e / nu_mu CC and NC sample on argon with per-particle lists, 0.1-100 GeV.

``generate(n_events, seed)`` returns one row per event. Energies are drawn log-uniformly (a flattened
spectrum, good for training a regression over three decades); ``weight_physical`` reweights to the
natural spectrum: Honda 2015 flux (Frejus table, see :mod:`atmospheric_flux`) x cross section, mean 1.
Directions are isotropic; the detector frame has y vertical (up), so cos(zenith) = -``nu_dcosy_truth``
and the flight distance L follows from the direction (detector at Homestake depth, production 15 km).
Interactions: :mod:`atmospheric_interactions`; detector: :mod:`atmospheric_detector`.

Columns (GeV, GeV/c, km):

* visible particle lists (what a detector sees, after thresholds and smearing), one entry per particle:
  ``part_pdg``, ``part_mass``, ``part_energy`` (total energy), ``part_px``, ``part_py``, ``part_pz``;
  scalars ``vis_energy`` (sum of E, kinetic energy for baryons), ``n_particles`` and the visible
  momentum sum ``vis_px``, ``vis_py``, ``vis_pz``;
* targets: ``enu_truth``, ``nu_px_truth``, ``nu_py_truth``, ``nu_pz_truth``, ``nu_dcos{x,y,z}_truth``;
* truth: ``event_id``, ``nu_pdg``, ``is_cc``, ``mode`` (QE/RES/DIS), ``topology`` (see
  :data:`TOPOLOGIES`), ``cos_zenith_truth``, ``baseline_km_truth``, ``q2_truth`` [GeV^2], ``w_truth``
  [GeV], outgoing lepton ``lep_energy_truth``, ``lep_p{x,y,z}_truth`` (the neutrino for NC; never an
  input), ``invisible_energy`` (E_nu minus the true calorimetric sum of the visible particles; neutrons,
  binding, sub-threshold particles, the NC neutrino), ``weight_physical``.

>>> events = generate(500, seed=1)
>>> sorted(set(events["topology"])) <= sorted(TOPOLOGIES)
True
>>> bool(((events["enu_truth"] >= 0.1) & (events["enu_truth"] <= 100)).all())
True
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from numl_core.data.generators.atmospheric_detector import DetectorModel, smear, visible
from numl_core.data.generators.atmospheric_flux import baseline_km, load_honda_table
from numl_core.data.generators.atmospheric_interactions import (
    LEPTON_OF,
    MODES,
    ArgonModel,
    Particles,
    final_state_interactions,
    hadronise,
    hard_scatter,
    mode_cross_sections,
)
from numl_core.data.particles import (  # noqa: F401 - the column schema, re-exported
    SCALAR_COLUMNS,
    TARGET_COLUMNS,
    VECTOR_COLUMNS,
    mass_of,
    thresholds_gev,
)

log = logging.getLogger(__name__)

TOPOLOGIES = ("CC1p0pi", "CCNp0pi", "CCX", "NC1p0pi", "NCNp0pi", "NCX")
ENERGY_RANGES = {"0.1-1": (0.1, 1.0), "0.1-5": (0.1, 5.0), "0.1-10": (0.1, 10.0), "0.1-100": (0.1, 100.0)}
"""Named true-energy ranges [GeV] used to select training and evaluation samples."""
NC_OVER_CC = 1.0 / 3.0
BARYONS = (2212, -2212, 3122, 3222, 3212, 3112)


def generate(
    n_events: int,
    seed: int,
    *,
    thresholds_mev: dict[str, float] | None = None,
    e_min: float = 0.1,
    e_max: float = 100.0,
    flavours: tuple[int, ...] = (12, 14),
    nc_fraction: float = 0.25,
    argon: ArgonModel = ArgonModel(),
    detector: DetectorModel = DetectorModel(),
) -> pd.DataFrame:
    """``n_events`` seeded events (see the module docstring); ``nc_fraction`` of them neutral current."""
    if n_events < 1:
        raise ValueError(f"n_events must be >= 1, got {n_events}")
    if not 0.0 < e_min < e_max:
        raise ValueError(f"need 0 < e_min < e_max, got e_min={e_min}, e_max={e_max}")
    if not 0.0 <= nc_fraction <= 1.0:
        raise ValueError(f"nc_fraction must be in [0, 1], got {nc_fraction}")
    thresholds_gev(np.array([2212]), thresholds_mev)  # validates the keys and values early
    rng = np.random.default_rng([seed, 5])
    frames = []
    total = 0
    while total < n_events:
        batch = _generate_batch(
            rng,
            int(1.1 * (n_events - total)) + 16,
            thresholds_mev,
            e_min,
            e_max,
            flavours,
            nc_fraction,
            argon,
            detector,
        )
        frames.append(batch)
        total += len(batch)
    events = pd.concat(frames, ignore_index=True).iloc[:n_events].reset_index(drop=True)
    events.insert(0, "event_id", np.arange(n_events, dtype=np.int64))
    events["weight_physical"] /= events["weight_physical"].mean()
    return events


def _generate_batch(
    rng: np.random.Generator,
    n: int,
    thresholds_mev: dict[str, float] | None,
    e_min: float,
    e_max: float,
    flavours: tuple[int, ...],
    nc_fraction: float,
    argon: ArgonModel,
    detector: DetectorModel,
) -> pd.DataFrame:
    enu = e_min * (e_max / e_min) ** rng.random(n)
    nu_pdg = rng.choice(np.asarray(flavours), n)
    is_cc = rng.random(n) >= nc_fraction
    sigma = mode_cross_sections(enu)
    cdf = np.cumsum(sigma, axis=1) / sigma.sum(axis=1, keepdims=True)
    mode = (rng.random(n)[:, None] > cdf).sum(axis=1)
    lep_pdg = np.where(is_cc, np.vectorize(LEPTON_OF.get, otypes=[int])(nu_pdg), nu_pdg)
    scatter = hard_scatter(rng, enu, mode, mass_of(lep_pdg), argon)
    keep = scatter.valid & np.isfinite(scatter.hadrons).all(axis=1)
    idx = np.flatnonzero(keep)
    n = len(idx)
    enu, nu_pdg, is_cc, mode, lep_pdg = enu[idx], nu_pdg[idx], is_cc[idx], mode[idx], lep_pdg[idx]
    lepton, hadrons4, q2, w = scatter.lepton[idx], scatter.hadrons[idx], scatter.q2[idx], scatter.w[idx]

    hadrons = final_state_interactions(rng, hadronise(rng, hadrons4, mode, is_cc), n, argon)
    cc_rows = np.flatnonzero(is_cc)
    leptons = Particles(cc_rows, lep_pdg[cc_rows], lepton[cc_rows])
    true_final = Particles.concat([leptons, hadrons])

    cos_zenith = rng.uniform(-1.0, 1.0, n)
    azimuth = rng.uniform(-np.pi, np.pi, n)
    sin_z = np.sqrt(1.0 - cos_zenith**2)
    direction = np.stack([-sin_z * np.cos(azimuth), -cos_zenith, -sin_z * np.sin(azimuth)], axis=1)
    basis = _frame(direction)
    true_final.p4[:, 1:] = _rotate(true_final.p4[:, 1:], basis[true_final.event])
    lepton[:, 1:] = _rotate(lepton[:, 1:], basis)

    seen = true_final.take(visible(true_final, thresholds_mev))
    calorimetric_true = np.bincount(seen.event, weights=_calorimetric(seen), minlength=n)
    reco = smear(rng, seen, detector)
    order = np.argsort(reco.event, kind="stable")
    reco = reco.take(order)

    flux = load_honda_table("frj").flux(nu_pdg, enu, cos_zenith)
    sigma_channel = sigma[idx].sum(axis=1) * np.where(is_cc, 1.0, NC_OVER_CC)
    p_channel = np.where(is_cc, 1.0 - nc_fraction, nc_fraction)
    pdf_energy = 1.0 / (enu * np.log(e_max / e_min))
    weight = flux * sigma_channel / (p_channel * pdf_energy * 0.5 / len(flavours))

    counts = np.bincount(reco.event, minlength=n)
    frame = pd.DataFrame(
        {
            "nu_pdg": nu_pdg.astype(np.int64),
            "is_cc": is_cc,
            "mode": np.asarray(MODES)[mode],
            "enu_truth": enu,
            "nu_px_truth": enu * direction[:, 0],
            "nu_py_truth": enu * direction[:, 1],
            "nu_pz_truth": enu * direction[:, 2],
            "nu_dcosx_truth": direction[:, 0],
            "nu_dcosy_truth": direction[:, 1],
            "nu_dcosz_truth": direction[:, 2],
            "cos_zenith_truth": cos_zenith,
            "baseline_km_truth": baseline_km(cos_zenith),
            "q2_truth": q2,
            "w_truth": w,
            "lep_energy_truth": lepton[:, 0],
            "lep_px_truth": lepton[:, 1],
            "lep_py_truth": lepton[:, 2],
            "lep_pz_truth": lepton[:, 3],
            "invisible_energy": enu - calorimetric_true,
            "weight_physical": weight,
        }
    )
    attach_particle_lists(frame, reco, counts)
    frame["topology"] = topology_labels(frame)
    return frame


def _frame(direction: np.ndarray) -> np.ndarray:
    """Orthonormal bases ``(n, 3, 3)`` whose rows are (e1, e2, direction)."""
    helper = np.where(np.abs(direction[:, :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    e1 = np.cross(direction, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return np.stack([e1, np.cross(direction, e1), direction], axis=1)


def _rotate(vectors: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Map beam-frame vectors (beam along +z) into the detector frame: v_x e1 + v_y e2 + v_z d."""
    return np.einsum("ni,nij->nj", vectors, basis)


def _calorimetric(particles: Particles) -> np.ndarray:
    """Per-particle calorimetric energy [GeV]: kinetic energy for baryons, total energy otherwise."""
    e = particles.p4[:, 0]
    return np.where(np.isin(particles.pdg, BARYONS), e - mass_of(particles.pdg), e)


def attach_particle_lists(frame: pd.DataFrame, reco: Particles, counts: np.ndarray) -> None:
    """Add the per-particle list columns and the visible scalars to ``frame`` (particles sorted by event)."""
    splits = np.cumsum(counts)[:-1]
    values = {
        "part_pdg": reco.pdg.astype(float),
        "part_mass": mass_of(reco.pdg),
        "part_energy": reco.p4[:, 0],
        "part_px": reco.p4[:, 1],
        "part_py": reco.p4[:, 2],
        "part_pz": reco.p4[:, 3],
    }
    for name in VECTOR_COLUMNS:
        column = np.empty(len(frame), dtype=object)
        column[:] = np.split(values[name], splits)
        frame[name] = column
    frame["vis_energy"] = np.bincount(reco.event, weights=_calorimetric(reco), minlength=len(frame))
    frame["n_particles"] = counts.astype(np.int64)
    for j, axis in enumerate("xyz"):
        frame[f"vis_p{axis}"] = np.bincount(reco.event, weights=reco.p4[:, 1 + j], minlength=len(frame))


def topology_labels(events: pd.DataFrame) -> np.ndarray:
    """CC1p0pi / CCNp0pi / CCX / NC1p0pi / NCNp0pi / NCX from ``is_cc`` and the visible ``part_pdg`` lists.

    "0pi" means no visible meson (pi+-, pi0, K, eta); 1p / Np count visible protons (N >= 2); events
    with no visible proton, or with mesons, are CCX / NCX.
    """
    pdg = events["part_pdg"].to_numpy()
    lengths = np.array([len(x) for x in pdg])
    flat = np.concatenate(list(pdg)).astype(np.int64) if lengths.sum() else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(pdg)), lengths)
    n_p = np.bincount(owner, weights=flat == 2212, minlength=len(pdg))
    mesons = np.isin(np.abs(flat), [211, 111, 321, 311, 130, 310, 221])
    n_meson = np.bincount(owner, weights=mesons, minlength=len(pdg))
    suffix = np.where(n_meson > 0, "X", np.where(n_p == 1, "1p0pi", np.where(n_p >= 2, "Np0pi", "X")))
    prefix = np.where(events["is_cc"].to_numpy(bool), "CC", "NC")
    return np.char.add(prefix.astype(str), suffix.astype(str)).astype(object)


def apply_thresholds(events: pd.DataFrame, thresholds_mev: dict[str, float]) -> pd.DataFrame:
    """A copy with particles below the (reconstructed) kinetic-energy thresholds removed from the lists.

    Recomputes ``vis_energy``, ``n_particles``, ``vis_p{x,y,z}`` and (where ``is_cc`` exists)
    ``topology``. Thresholds can
    only remove particles: lowering them below the ones a sample was made with restores nothing.
    """
    out = events.copy()
    lengths = np.array([len(x) for x in out["part_pdg"]])
    owner = np.repeat(np.arange(len(out)), lengths)
    flat = {c: np.concatenate(list(out[c])) if lengths.sum() else np.zeros(0) for c in VECTOR_COLUMNS}
    pdg = flat["part_pdg"].astype(np.int64)
    kinetic = flat["part_energy"] - flat["part_mass"]
    keep = kinetic >= thresholds_gev(pdg, thresholds_mev)
    reco = Particles(owner[keep], pdg[keep], np.stack([flat[c][keep] for c in VECTOR_COLUMNS[2:]], axis=1))
    attach_particle_lists(out, reco, np.bincount(reco.event, minlength=len(out)))
    if "is_cc" in out.columns:
        out["topology"] = topology_labels(out)
    return out


def select(
    events: pd.DataFrame, topologies: list[str] | None = None, energy_range: str = "0.1-100"
) -> pd.DataFrame:
    """Events of the given topologies (all when None) with true energy in a named :data:`ENERGY_RANGES`."""
    if energy_range not in ENERGY_RANGES:
        raise ValueError(f"energy_range={energy_range!r} is not one of {list(ENERGY_RANGES)}")
    lo, hi = ENERGY_RANGES[energy_range]
    mask = (events["enu_truth"] >= lo) & (events["enu_truth"] <= hi)
    if topologies is not None:
        unknown = sorted(set(topologies) - set(TOPOLOGIES))
        if unknown:
            raise ValueError(f"unknown topologies {unknown}; expected a subset of {list(TOPOLOGIES)}")
        mask &= events["topology"].isin(topologies)
    return events[mask].reset_index(drop=True)
