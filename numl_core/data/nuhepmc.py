"""Read neutrino generator output in the NuHepMC (HepMC3) format into numl's per-particle event layout.

NuHepMC: S. Gardiner, J. Isaacson, L. Pickering, arXiv:2310.13211. Files are read with ``pyhepmc``
(which also opens compressed files). Per event: the incoming neutrino is the status-4 particle, the
final state the status-1 particles; events with a Pauli-blocked (status 31) particle are skipped as the
convention asks. Momenta are converted to GeV. The result has the columns of
:mod:`numl_core.data.generators.atmospheric_events` that a detector and a regression need:
the visible lists ``part_*`` after kinetic-energy thresholds (neutrinos, neutrons and nuclei are never
seen; no smearing unless a detector model is given), ``vis_energy``, ``n_particles``, ``vis_p{x,y,z}``,
the targets ``enu_truth``, ``nu_p{x,y,z}_truth``, ``nu_dcos{x,y,z}_truth``, and ``event_id``,
``nu_pdg``, ``is_cc``, ``proc_id`` (the generator's process code), ``topology``.

>>> from numl_core.data.reference import FILES_DIR
>>> events = read_nuhepmc(FILES_DIR / "neut_nuhepmc_events" / "neut.vect.hepmc", max_events=20)
>>> len(events), bool((events["enu_truth"] > 0).all())
(20, True)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from numl_core.data.generators.atmospheric_detector import DetectorModel, smear, visible
from numl_core.data.generators.atmospheric_events import attach_particle_lists, topology_labels
from numl_core.data.generators.atmospheric_interactions import Particles
from numl_core.data.particles import embedding_codes, is_nucleus
from numl_core.data.schema import DataError

log = logging.getLogger(__name__)

STATUS_FINAL, STATUS_BEAM, STATUS_PAULI_BLOCKED = 1, 4, 31
CHARGED_LEPTONS = (11, 13, 15)


def _attribute(event: object, name: str, default: int) -> int:
    attributes = event.attributes
    return int(attributes[name].astype(int)) if name in list(attributes) else default


def read_nuhepmc(
    path: str | Path,
    *,
    thresholds_mev: dict[str, float] | None = None,
    detector: DetectorModel | None = None,
    seed: int = 0,
    max_events: int | None = None,
) -> pd.DataFrame:
    """One row per (non-Pauli-blocked) event of a NuHepMC file; see the module docstring.

    Raises :class:`DataError` naming the file and event for a missing beam neutrino or an unknown PDG code.
    """
    import pyhepmc

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    known = set(embedding_codes().tolist())
    rows: list[dict] = []
    owner: list[int] = []
    pdgs: list[int] = []
    p4s: list[tuple[float, float, float, float]] = []
    skipped = 0
    try:
        reader = pyhepmc.open(str(path))
    except Exception as exc:  # pyhepmc raises several types for unreadable input
        raise DataError(f"{path}: not a readable HepMC3 file ({type(exc).__name__}: {exc})") from None
    with reader as events:
        for i, event in enumerate(events):
            if max_events is not None and len(rows) >= max_events:
                break
            particles = list(event.particles)
            if any(p.status == STATUS_PAULI_BLOCKED for p in particles):
                skipped += 1
                continue
            scale = 1e-3 if str(event.momentum_unit).endswith("MEV") else 1.0
            beam = [p for p in particles if p.status == STATUS_BEAM]
            if not beam:
                raise DataError(
                    f"{path}: event {i} (number {event.event_number}) has no status-4 beam neutrino"
                )
            nu = beam[0]
            final = [p for p in particles if p.status == STATUS_FINAL]
            is_cc = any(abs(p.pid) in CHARGED_LEPTONS for p in final)
            for p in final:
                if is_nucleus(p.pid):
                    continue
                if p.pid not in known:
                    raise DataError(
                        f"{path}: event {i} (number {event.event_number}): unknown PDG code {p.pid}"
                    )
                m = p.momentum
                owner.append(len(rows))
                pdgs.append(p.pid)
                p4s.append((m.e * scale, m.px * scale, m.py * scale, m.pz * scale))
            k = nu.momentum
            enu = k.e * scale
            rows.append(
                {
                    "event_id": int(event.event_number) if event.event_number else i,
                    "nu_pdg": int(nu.pid),
                    "is_cc": is_cc,
                    "proc_id": _attribute(event, "ProcID", 0),
                    "enu_truth": enu,
                    "nu_px_truth": k.px * scale,
                    "nu_py_truth": k.py * scale,
                    "nu_pz_truth": k.pz * scale,
                }
            )
    if not rows:
        raise DataError(f"{path}: no usable events ({skipped} Pauli-blocked)")
    if skipped:
        log.info("%s: skipped %d Pauli-blocked event(s)", path, skipped)
    frame = pd.DataFrame(rows)
    if frame["event_id"].duplicated().any():
        frame["event_id"] = np.arange(len(frame))
    p = np.linalg.norm(frame[["nu_px_truth", "nu_py_truth", "nu_pz_truth"]].to_numpy(), axis=1)
    for axis in "xyz":
        frame[f"nu_dcos{axis}_truth"] = frame[f"nu_p{axis}_truth"] / np.where(p > 0, p, 1.0)
    final = Particles(
        np.array(owner, np.int64), np.array(pdgs, np.int64), np.array(p4s, float).reshape(-1, 4)
    )
    seen = final.take(visible(final, thresholds_mev))
    if detector is not None:
        seen = smear(np.random.default_rng([seed, 17]), seen, detector)
    attach_particle_lists(frame, seen, np.bincount(seen.event, minlength=len(frame)))
    frame["topology"] = topology_labels(frame)
    return frame
