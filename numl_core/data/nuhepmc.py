"""Read neutrino generator output in the NuHepMC (HepMC3) format into numl's per-particle event layout,
and write one-nucleon knockout events as NuHepMC (:func:`write_nuhepmc`).

NuHepMC: S. Gardiner, J. Isaacson, L. Pickering, arXiv:2310.13211. Files are read with ``pyhepmc``
(which also opens compressed files). Per event: the incoming neutrino is the status-4 particle, the
final state the status-1 particles; events with a Pauli-blocked (status 31) particle are skipped as the
convention asks. Momenta are converted to GeV. The result has the columns of
:mod:`numl_core.data.generators.atmospheric_events` that a detector and a regression need:
the visible lists ``part_*`` after kinetic-energy thresholds (neutrinos, neutrons and nuclei are never
seen; no smearing unless a detector model is given), ``vis_energy``, ``n_particles``, ``vis_p{x,y,z}``,
the targets ``enu_truth``, ``nu_p{x,y,z}_truth``, ``nu_dcos{x,y,z}_truth``, and ``event_id``,
``nu_pdg``, ``is_cc``, ``proc_id`` (the generator's process code: the event attribute
``signal_process_id`` of NuHepMC 1.0, or ``ProcID`` of earlier versions), ``topology``.

>>> from numl_core.data.reference import FILES_DIR
>>> events = read_nuhepmc(FILES_DIR / "neut_nuhepmc_events" / "neut.vect.hepmc", max_events=20)
>>> len(events), bool((events["enu_truth"] > 0).all())
(20, True)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from numl_core.data.generators.atmospheric_detector import DetectorModel, smear, visible
from numl_core.data.generators.atmospheric_events import attach_particle_lists, topology_labels
from numl_core.data.generators.atmospheric_interactions import Particles
from numl_core.data.particles import embedding_codes, is_nucleus
from numl_core.data.schema import DataError
from numl_core.runs import atomic_open

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
                    "proc_id": _attribute(event, "signal_process_id", _attribute(event, "ProcID", 0)),
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


# -- writing -----------------------------------------------------------------------------------
NUHEPMC_VERSION = (1, 0, 0)
"""The NuHepMC version :func:`write_nuhepmc` follows (github.com/NuHepMC/Spec)."""
STATUS_TARGET, STATUS_STRUCK = 20, 21
VERTEX_PRIMARY, VERTEX_SEPARATION = 1, 21
CM2_TO_PB = 1e36
PARTICLE_STATUSES = {
    STATUS_FINAL: ("UndecayedPhysicalParticle", "Physical final-state particle"),
    STATUS_BEAM: ("IncomingBeamParticle", "Incoming beam neutrino"),
    STATUS_TARGET: ("TargetParticle", "Target nucleus, at rest"),
    STATUS_STRUCK: ("StruckNucleon", "Bound nucleon struck by the neutrino (off shell)"),
}
VERTEX_STATUSES = {
    VERTEX_PRIMARY: ("PrimaryVertex", "The neutrino-nucleon hard scatter"),
    VERTEX_SEPARATION: ("NucleonSeparationVertex", "Separation of the struck nucleon from the nucleus"),
}


@dataclass(frozen=True)
class Track:
    """One particle of every event: its PDG code and lab-frame four-momenta (N, 4) = (E, px, py, pz) [GeV]."""

    pdg: int
    momentum: np.ndarray


@dataclass(frozen=True)
class KnockoutRun:
    """What a :func:`write_nuhepmc` run header holds: the flux-averaged total ``cross_section`` and its
    statistical ``cross_section_error`` [cm^2 per target nucleus], the one process (id, name, description),
    the generator's ``version`` and, optionally, the beam flux as a histogram (``flux_edges`` [GeV],
    ``flux_density`` per unit energy, arbitrary normalisation) of the beam's PDG code."""

    cross_section: float
    cross_section_error: float
    process_id: int
    process_name: str
    process_description: str
    version: str
    flux_edges: np.ndarray | None = None
    flux_density: np.ndarray | None = None


def _status_attributes(kind: str, statuses: dict[int, tuple[str, str]]) -> dict[str, object]:
    out: dict[str, object] = {f"NuHepMC.{kind}StatusIDs": sorted(statuses)}
    for code, (name, description) in statuses.items():
        out[f"NuHepMC.{kind}StatusInfo[{code}].Name"] = name
        out[f"NuHepMC.{kind}StatusInfo[{code}].Description"] = description
    return out


def nuhepmc_run_info(run: KnockoutRun, beam_pdg: int) -> object:
    """The ``pyhepmc.GenRunInfo`` of a knockout run: NuHepMC version (G.R.2), generator (G.R.3),
    conventions (G.R.4), cross-section units pb per atom (G.R.6), the ``CV`` weight (G.R.7), the process
    (G.R.8), vertex and particle statuses (G.R.9, G.R.10), the flux-averaged total cross section and its
    uncertainty (G.C.2) and, with a flux, the beam energy histogram in MeV (G.C.4)."""
    import pyhepmc

    info = pyhepmc.GenRunInfo()
    info.tools = [("numl", run.version, "numl flow event generator (exclusive CCQE on carbon)")]
    info.weight_names = ["CV"]
    conventions = ["G.C.2", "E.C.1", "V.C.1", "P.C.1"] + (["G.C.4"] if run.flux_edges is not None else [])
    pid = run.process_id
    attributes: dict[str, object] = {
        **{
            f"NuHepMC.Version.{k}": v
            for k, v in zip(("Major", "Minor", "Patch"), NUHEPMC_VERSION, strict=True)
        },
        "NuHepMC.Conventions": conventions,
        "NuHepMC.Units.CrossSection.Unit": "pb",
        "NuHepMC.Units.CrossSection.TargetScale": "PerAtom",
        "NuHepMC.FluxAveragedTotalCrossSection": float(run.cross_section) * CM2_TO_PB,
        "NuHepMC.FluxAveragedTotalCrossSectionUncertainty": float(run.cross_section_error) * CM2_TO_PB,
        "NuHepMC.ProcessIDs": [pid],
        f"NuHepMC.ProcessInfo[{pid}].Name": run.process_name,
        f"NuHepMC.ProcessInfo[{pid}].Description": run.process_description,
        **_status_attributes("Vertex", VERTEX_STATUSES),
        **_status_attributes("Particle", PARTICLE_STATUSES),
    }
    if run.flux_edges is not None:
        beam = f"NuHepMC.Beam[{beam_pdg}]"
        density = np.asarray(run.flux_density, float)
        attributes |= {
            "NuHepMC.Beam.EnergyUnit": "MEV",
            "NuHepMC.Beam.FluxUnit": "Arbitrary",
            f"{beam}.Type": "Histogram",
            f"{beam}.Histogram.BinEdges": [float(e) * 1e3 for e in run.flux_edges],
            # HepMC3 writes vector attributes with 6 decimals: the peak is scaled to 1
            f"{beam}.Histogram.BinContent": [float(d) for d in density / density.max()],
            f"{beam}.Histogram.ContentIsPerWidth": True,
        }
    for name, value in attributes.items():
        info.attributes[name] = value
    return info


def _particle(pyhepmc: object, track: Track, i: int, status: int) -> object:
    """The GenParticle of event ``i`` of a track, in MeV, with its generated mass from the four-momentum."""
    e, px, py, pz = (1e3 * track.momentum[i]).tolist()
    particle = pyhepmc.GenParticle(pyhepmc.FourVector(px, py, pz, e), track.pdg, status)
    particle.generated_mass = float(np.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0)))
    return particle


def _knockout_event(
    pyhepmc: object,
    info: object,
    run: KnockoutRun,
    tracks: dict[str, Track],
    outgoing: Sequence[Track],
    i: int,
) -> object:
    """Event ``i`` as a GenEvent: see :func:`write_nuhepmc`."""
    event = pyhepmc.GenEvent(pyhepmc.Units.MEV, pyhepmc.Units.MM)
    event.run_info = info
    event.event_number = i
    event.attributes["signal_process_id"] = int(run.process_id)
    event.attributes["lab_pos"] = [0.0, 0.0, 0.0]
    separation = pyhepmc.GenVertex()
    separation.status = VERTEX_SEPARATION
    separation.add_particle_in(_particle(pyhepmc, tracks["target"], i, STATUS_TARGET))
    nucleon = _particle(pyhepmc, tracks["struck"], i, STATUS_STRUCK)
    separation.add_particle_out(nucleon)
    separation.add_particle_out(_particle(pyhepmc, tracks["remnant"], i, STATUS_FINAL))
    primary = pyhepmc.GenVertex()
    primary.status = VERTEX_PRIMARY
    primary.add_particle_in(_particle(pyhepmc, tracks["beam"], i, STATUS_BEAM))
    primary.add_particle_in(nucleon)
    for track in outgoing:
        primary.add_particle_out(_particle(pyhepmc, track, i, STATUS_FINAL))
    event.add_vertex(separation)
    event.add_vertex(primary)
    return event


def write_nuhepmc(
    path: str | Path,
    run: KnockoutRun,
    *,
    beam: Track,
    target: Track,
    struck: Track,
    remnant: Track,
    outgoing: Sequence[Track],
    weights: np.ndarray | None = None,
) -> Path:
    """Write N one-nucleon knockout events as a NuHepMC 1.0 file (HepMC3 ASCII) atomically; return its path.

    Each event: the ``target`` nucleus (status 20) separates (vertex status 21) into the ``struck``
    nucleon (status 21) and the ``remnant`` (status 1); the ``beam`` (status 4) and the struck nucleon
    meet at the primary vertex (status 1), which emits the ``outgoing`` particles (status 1). Momenta in
    MeV, lengths in mm (E.R.4), ``lab_pos`` (0, 0, 0) (E.R.5), the process id as ``signal_process_id``
    (E.R.3) and the ``CV`` weight (1 without ``weights``). The header is :func:`nuhepmc_run_info`.

    >>> import tempfile
    >>> p4 = np.array([[1.0, 0.0, 0.0, 1.0]])
    >>> run = KnockoutRun(1e-38, 1e-40, 200, "CCQE", "quasi-elastic", "0")
    >>> tracks = dict(beam=Track(14, p4), target=Track(1000060120, p4), struck=Track(2112, p4))
    >>> tracks |= dict(remnant=Track(1000060110, p4), outgoing=[Track(13, p4)])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     text = write_nuhepmc(Path(tmp) / "ev.hepmc3", run, **tracks).read_text()
    >>> [s for s in text.splitlines() if ".Version." in s or s[:2] == "V "]  # doctest: +NORMALIZE_WHITESPACE
    ['A NuHepMC.Version.Major 1', 'A NuHepMC.Version.Minor 0', 'A NuHepMC.Version.Patch 0',
     'V -1 21 [1]', 'V -2 1 [2,4]']
    """
    import pyhepmc

    path = Path(path)
    tracks = {"beam": beam, "target": target, "struck": struck, "remnant": remnant}
    n = len(beam.momentum)
    if any(len(t.momentum) != n for t in (*tracks.values(), *outgoing)):
        raise ValueError("write_nuhepmc: every track needs one four-momentum per event")
    weights = np.ones(n) if weights is None else np.asarray(weights, float)
    if weights.shape != (n,):
        raise ValueError(f"write_nuhepmc: {weights.shape} weights for {n} events")
    info = nuhepmc_run_info(run, beam.pdg)
    with atomic_open(path, "wb") as fh, pyhepmc.open(fh, "w") as out:
        for i in range(n):
            event = _knockout_event(pyhepmc, info, run, tracks, outgoing, i)
            event.weights = [float(weights[i])]
            out.write(event)
    return path
