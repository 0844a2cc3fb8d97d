"""Energy benchmark: throughput of the default EnergyTransformer, data loading, and the resolution table.

1. CPU inference throughput of the default model size (d_model 64, 2 layers) on built-in events
   (``inference_events_per_s_cpu``; target >= 20k events/s) and, when CUDA is present, on the GPU;
2. the energy workflow on the built-in atmospheric sample with baselines and the ablation
   (energy-only loss, same data and budget): training throughput and the resolution table
   (``energy_res68_*_cc``, ``angle_res68_deg_*``);
3. loading events (read + padded arrays) from CSV (transformer_EE's layout) against parquet, reported per
   event and extrapolated to one million events.

Run it with ``python -m benchmarks.run_all [--quick] energy``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from numl_core.data.generators import atmospheric_events as atm
from numl_core.data.io import read_table, write_table
from numl_core.energy.config import EnergyConfig
from numl_core.energy.data import to_arrays
from numl_core.energy.train import build_model, predict, prepare
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


def loading(n_events: int) -> dict[str, float]:
    """Seconds to read + pad ``n_events`` from CSV and from parquet, and the same scaled to 1M events."""
    events = atm.generate(n_events, SEED)
    cfg = EnergyConfig()
    cols = ["event_id", *atm.VECTOR_COLUMNS, *atm.SCALAR_COLUMNS, *atm.TARGET_COLUMNS]
    out: dict[str, float] = {"load_events": n_events}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("csv", "parquet"):
            path = write_table(events[cols], Path(tmp) / f"events.{fmt}")
            t0 = time.perf_counter()
            table = read_table(path)
            to_arrays(table, cfg.vector, cfg.scalar, cfg.target, cfg.max_num_prongs)
            seconds = time.perf_counter() - t0
            out[f"load_{fmt}_s"] = seconds
            out[f"load_{fmt}_1M_s_extrapolated"] = seconds * 1e6 / n_events
            out[f"{fmt}_file_mb"] = path.stat().st_size / 1e6
    out["csv_over_parquet"] = out["load_csv_s"] / out["load_parquet_s"]
    return out


def resolution(n_events: int, epochs: int) -> dict[str, Any]:
    """The workflow with baselines and the ablation on the built-in sample (CPU)."""
    cfg = EnergyConfig(n_events=n_events, epochs=epochs, ablation=True, export=False, device="cpu", seed=SEED)
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
    out = {k: result[k] for k in keys}
    out["train_events_per_s_cpu"] = out.pop("train_events_per_s")
    table = result["resolution"]
    cc = table[(table["grouping"] == "channel") & (table["group"] == "CC")]
    out["resolution_cc"] = cc[["estimator", "bias", "res68", "angle68", "within15", "within7"]].to_dict(
        "records"
    )
    ranges = result["resolution_by_range"]
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
    n_infer, n_train, epochs, n_load = (20_000, 6_000, 2, 20_000) if quick else (200_000, 60_000, 12, 200_000)
    out: dict[str, Any] = {"device": "cpu", "torch_threads": torch.get_num_threads()}
    out["inference_events_per_s_cpu"] = inference_throughput(n_infer)
    if torch.cuda.is_available():
        out["inference_events_per_s_gpu"] = inference_throughput(n_infer, "cuda")
    logger.info("inference: %.0f events/s", out["inference_events_per_s_cpu"])
    out.update(resolution(n_train, epochs))
    out.update(loading(n_load))
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(run(quick=True))
