"""Energy benchmark: throughput of the default EnergyTransformer, data loading, and the resolution table.

1. CPU inference throughput of the default model size (d_model 64, 2 layers) on built-in events
   (``inference_events_per_s_cpu``; target >= 20k events/s) and, when CUDA is present, on the GPU;
2. the energy workflow on the built-in atmospheric sample with baselines and the ablation
   (energy-only loss, same data and budget): training throughput and the resolution table
   (``energy_res68_*_cc``, ``angle_res68_deg_*``);
3. loading one million events (read + padded arrays) from CSV (transformer_EE's layout) against parquet;
   the files are written once per run, in chunks, and only the reading is timed;
4. a diagnosis of the energy resolution on the same kind of events: the calorimetric sum plus the true
   invisible energy (what is left is detector smearing: a floor for estimators that cannot see the
   invisible energy only in so far as they cannot undo smearing either), and a GBDT given per-particle
   quantities in the frame of the visible momentum (what trees reach with the transformer's inputs).

:func:`resolution` takes a ``device``, so that the same table can be produced at larger sizes on a GPU.

Run it with ``python -m benchmarks.run_all [--quick] energy``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from numl_core.data.generators import atmospheric_events as atm
from numl_core.data.io import read_table, write_table
from numl_core.energy import baselines, metrics
from numl_core.energy.config import EnergyConfig
from numl_core.energy.data import to_arrays
from numl_core.energy.train import build_model, predict, prepare, split_indices
from numl_core.energy.workflow import run_energy
from numl_core.jobs import Progress

logger = logging.getLogger(__name__)
SEED = 0


def inference_throughput(n_events: int, device: str = "cpu", repeats: int = 3) -> float:
    """Best of ``repeats`` events/s of the default-size model (untrained weights: speed only)."""
    cfg = EnergyConfig(n_events=n_events)
    events = atm.generate(n_events, SEED)
    prepared = prepare(events, cfg)
    a = prepared.arrays
    model = build_model(cfg, prepared, np.arange(len(a)), SEED).to(device)
    predict(model, a.vector[:2000], a.scalar[:2000], a.mask[:2000], device=device)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.inference_mode():
            predict(model, a.vector, a.scalar, a.mask, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = max(best, n_events / (time.perf_counter() - t0))
    return best


def write_event_files(n_events: int, folder: Path, chunk: int = 200_000) -> dict[str, Path]:
    """``events.csv`` and ``events.parquet`` with ``n_events`` built-in events, written chunk by chunk."""
    cols = ["event_id", *atm.VECTOR_COLUMNS, *atm.SCALAR_COLUMNS, *atm.TARGET_COLUMNS]
    paths = {"csv": folder / "events.csv", "parquet": folder / "events.parquet"}
    writer = None
    try:
        with paths["csv"].open("w") as csv:
            for k, start in enumerate(range(0, n_events, chunk)):
                events = atm.generate(min(chunk, n_events - start), SEED + k)[cols]
                events["event_id"] += start
                part = write_table(events, folder / "part.csv")
                with part.open() as fh:
                    if k:
                        fh.readline()
                    csv.write(fh.read())
                table = pq.read_table(write_table(events, folder / "part.parquet"))
                writer = writer or pq.ParquetWriter(paths["parquet"], table.schema)
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    for name in ("part.csv", "part.parquet"):
        (folder / name).unlink(missing_ok=True)
    return paths


def loading(n_events: int) -> dict[str, float]:
    """Seconds to read + pad ``n_events`` from CSV and from parquet (files written beforehand, untimed)."""
    cfg = EnergyConfig()
    out: dict[str, float] = {"load_events": n_events}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = write_event_files(n_events, Path(tmp))
        out["write_files_s"] = time.perf_counter() - t0
        for fmt, path in paths.items():
            t0 = time.perf_counter()
            table = read_table(path)
            arrays = to_arrays(table, cfg.vector, cfg.scalar, cfg.target, cfg.max_num_prongs)
            seconds = time.perf_counter() - t0
            if len(arrays) != n_events:
                raise RuntimeError(f"{path}: read {len(arrays)} events, wrote {n_events}")
            del table, arrays
            out[f"load_{fmt}_s"] = seconds
            out[f"load_{fmt}_events_per_s"] = n_events / seconds
            out[f"{fmt}_file_mb"] = path.stat().st_size / 1e6
    out["csv_over_parquet"] = out["load_csv_s"] / out["load_parquet_s"]
    return out


def frame_features(vector: np.ndarray, mask: np.ndarray, roles: dict[str, int], k: int = 6) -> np.ndarray:
    """Per-event (N, 2 + 5k): |p_vis| and the summed transverse momentum to it, and for the ``k`` most
    energetic particles PDG, E, |p|, cos angle to p_vis and transverse momentum [GeV, GeV/c]."""
    real = ~mask
    pdg = np.where(real, vector[..., roles["pdg"]], 0.0)
    energy = np.where(real, vector[..., roles["energy"]], 0.0)
    p = np.stack([np.where(real, vector[..., roles[c]], 0.0) for c in ("px", "py", "pz")], axis=-1)
    vis = p.sum(axis=1)
    u = vis / np.clip(np.linalg.norm(vis, axis=1, keepdims=True), 1e-9, None)
    magnitude = np.linalg.norm(p, axis=-1)
    along = (p * u[:, None]).sum(axis=-1)
    across = np.sqrt(np.clip(magnitude**2 - along**2, 0.0, None))
    cos = along / np.clip(magnitude, 1e-9, None)
    columns = [np.linalg.norm(vis, axis=1), across.sum(axis=1)]
    for j in range(min(k, vector.shape[1])):
        columns += [pdg[:, j], energy[:, j], magnitude[:, j], cos[:, j], across[:, j]]
    return np.stack(columns, axis=1)


def diagnosis(n_events: int) -> dict[str, float]:
    """CC energy res68 of estimators that bracket what is reachable (see the module docstring)."""
    cfg = EnergyConfig(n_events=n_events)
    events = atm.generate(n_events, SEED)
    prepared = prepare(events, cfg)
    a, roles = prepared.arrays, prepared.roles
    split = split_indices(n_events, cfg.test_size, cfg.valid_size, SEED)
    tr, te = split["train"], split["test"]
    e_true = a.target[:, 0].astype(float)
    cc = events["is_cc"].to_numpy(bool)[te]
    calorimetric = baselines.calorimetric_energy(a.vector, a.mask, roles)
    invisible = events["invisible_energy"].to_numpy()
    out = {
        "diag_energy_res68_calorimetric_plus_true_invisible_cc": metrics.energy_resolution(
            (calorimetric + invisible)[te][cc], e_true[te][cc]
        )["res68"]
    }
    summed = baselines.summed_features(a.vector, a.mask, roles, a.scalar)
    features = np.concatenate([summed, frame_features(a.vector, a.mask, roles)], axis=1)
    gbdt = baselines.fit_gbdt(features[tr], e_true[tr], calorimetric[tr], np.ones(len(tr)), SEED, 600)
    estimate = baselines.predict_gbdt(gbdt, features[te], calorimetric[te])
    out["diag_energy_res68_gbdt_frame_features_cc"] = metrics.energy_resolution(estimate[cc], e_true[te][cc])[
        "res68"
    ]
    topology = events["topology"].to_numpy()[te]
    for name in ("CC1p0pi", "CCNp0pi", "CCX"):
        sel = topology == name
        out[f"diag_energy_res68_calorimetric_{name}"] = metrics.energy_resolution(
            calorimetric[te][sel], e_true[te][sel]
        )["res68"]
        out[f"diag_energy_res68_calorimetric_plus_true_invisible_{name}"] = metrics.energy_resolution(
            (calorimetric + invisible)[te][sel], e_true[te][sel]
        )["res68"]
    return out


def resolution(n_events: int, epochs: int, device: str = "cpu", **config: Any) -> dict[str, Any]:
    """The workflow with baselines and the ablation on the built-in sample.

    ``device`` is a torch device name ("cpu", "cuda"); the training throughput is reported as
    ``train_events_per_s_cpu`` on the CPU and ``train_events_per_s_gpu`` otherwise. ``config`` overrides
    further :class:`EnergyConfig` fields (e.g. ``d_model``, ``batch_size``) for larger runs.
    """
    cfg = EnergyConfig(
        n_events=n_events, epochs=epochs, ablation=True, export=False, device=device, seed=SEED, **config
    )
    t0 = time.perf_counter()
    result = run_energy(cfg, Progress())
    keys = [
        "energy_res68_transformer_cc",
        "energy_res68_calorimetric_cc",
        "energy_res68_gbdt_cc",
        "energy_res68_energy_only_loss_cc",
        "angle_res68_deg_transformer",
        "angle_res68_deg_baseline",
        "train_events_per_s",
        "epochs_run",
        "n_train",
        "n_test",
    ]
    out = {k: getattr(result, k) for k in keys}
    out["train_events_per_s_" + ("cpu" if device == "cpu" else "gpu")] = out.pop("train_events_per_s")
    out["resolution_device"] = device
    out["resolution_seconds"] = time.perf_counter() - t0
    table = result.resolution
    cc = table[(table["grouping"] == "channel") & (table["group"] == "CC")]
    out["resolution_cc"] = cc[["estimator", "bias", "res68", "angle68", "within15", "within7"]].to_dict(
        "records"
    )
    ranges = result.resolution_by_range
    sub = ranges[(ranges["estimator"] == "transformer") & (ranges["grouping"] == "topology")]
    out["angle68_by_range_topology"] = sub[["energy_range", "group", "n", "angle68", "baseline68"]].to_dict(
        "records"
    )
    direction_only = table[
        (table["grouping"] == "channel") & (table["estimator"] == "transformer (energy-only loss)")
    ]
    out["angle68_energy_only_loss"] = direction_only[["group", "angle68"]].to_dict("records")
    return out


def run(quick: bool) -> dict[str, Any]:
    """All parts; quick sizes finish in about a minute on two cores."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    n_infer, n_train, epochs, n_load, n_diag = (
        (20_000, 6_000, 2, 20_000, 6_000) if quick else (200_000, 150_000, 12, 1_000_000, 60_000)
    )
    out: dict[str, Any] = {"device": "cpu", "torch_threads": torch.get_num_threads()}
    out["inference_events_per_s_cpu"] = inference_throughput(n_infer)
    if torch.cuda.is_available():
        out["inference_events_per_s_gpu"] = inference_throughput(n_infer, "cuda")
    logger.info("inference: %.0f events/s", out["inference_events_per_s_cpu"])
    out.update(resolution(n_train, epochs))
    out.update(diagnosis(n_diag))
    out.update(loading(n_load))
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(run(quick=True))
