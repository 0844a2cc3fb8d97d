"""Cross-section benchmark: DNN fits of the QES-archive carbon data and transfer to other nuclei.

1. Carbon, 10% of the points held out: chi2 per point on them (fitted lambda_k) for the bootstrap
   ensemble and the MC-dropout network, and the coverage of each method's band (fraction of held-out
   points within 1 and 2 sigma; targets 0.683 and 0.954);
2. carbon, 10% of the (E, theta) settings held out: chi2 per point on those settings;
3. the model of (1) carried over to O, Al, Ca and Fe with 10% of their points: chi2 per point on the
   other 90% for the fine-tuned model, a model trained from scratch on the same 10%, and the carbon
   model scaled by A / 12; fine-tuning time against pretraining time.

Run it with ``python -m benchmarks.run_all [--quick] xsec``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from numl_core.device import resolve_device
from numl_core.jobs import Progress
from numl_core.xsec.workflow import XsecConfig, fit_nucleus, transfer_all

logger = logging.getLogger(__name__)

QUICK = {"members": 3, "epochs": 60, "mc_samples": 20, "finetune_epochs": 20, "grid_points": 10}
TARGETS = ["O", "Al", "Ca", "Fe"]
METHOD_NAMES = {"boot": "bootstrap", "mc": "mc_dropout"}


def config(quick: bool, **changes: Any) -> XsecConfig:
    """The workflow's default (full) config, or the quick sizes, with ``changes``."""
    base = {"nucleus": "C", "targets": TARGETS, **(QUICK if quick else {})}
    return XsecConfig(**{**base, **changes})


def run(quick: bool = False) -> dict[str, Any]:
    """Fit carbon twice (points and settings held out), transfer to four nuclei; return the numbers.

    On the CPU torch runs one thread: the network's matrix products are small, and on a shared
    two-core machine two threads were measured 5x (one network) to 25x (ten members) slower.
    """
    device = str(resolve_device("auto"))
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        return _run(quick, device)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool, device: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    by_points = fit_nucleus(config(quick, split="points"), Progress())
    logger.info("carbon fit (points held out) done in %.0f s", time.perf_counter() - t0)
    by_settings = fit_nucleus(config(quick, split="settings", mc_dropout=0.0), Progress())
    logger.info("carbon fit (settings held out) done")
    boot = by_points["summary"]["boot"]
    pretrain_s = boot["seconds"]
    transfer = transfer_all(by_points["_model"], 12, pretrain_s, config(quick), Progress())["transfer"]
    out: dict[str, Any] = {
        "quick": quick,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "sizes": {
            k: getattr(config(quick), k) for k in ("members", "depth", "width", "epochs", "batch_size")
        },
        "carbon_points": by_points["n_points"],
        "carbon_chi2_per_point_heldout_points": boot["chi2_test"],
        "carbon_chi2_per_point_heldout_points_profiled": boot["chi2_test_profiled"],
        "carbon_chi2_per_point_train": boot["chi2_train"],
        "carbon_chi2_per_point_heldout_settings": by_settings["summary"]["boot"]["chi2_test"],
        "carbon_chi2_per_point_heldout_settings_profiled": by_settings["summary"]["boot"][
            "chi2_test_profiled"
        ],
        "coverage_1sigma": {METHOD_NAMES[m]: s["coverage_1sigma"] for m, s in by_points["summary"].items()},
        "coverage_2sigma": {METHOD_NAMES[m]: s["coverage_2sigma"] for m, s in by_points["summary"].items()},
        "chi2_per_point_heldout_points_by_method": {
            METHOD_NAMES[m]: s["chi2_test"] for m, s in by_points["summary"].items()
        },
        "median_relative_band": {
            METHOD_NAMES[m]: s["median_rel_band"] for m, s in by_points["summary"].items()
        },
        "pretrain_seconds": pretrain_s,
        "transfer": {
            row["nucleus"]: {
                "finetuned": row["finetuned"],
                "scratch": row["scratch"],
                "scaled_carbon": row["scaled_base"],
                "finetune_seconds": row["finetune_seconds"],
                "scratch_seconds": row["scratch_seconds"],
                "train_points": int(row["train_points"]),
            }
            for row in transfer.to_dict("records")
        },
        "normalisations": by_points["normalisations"][["data_set", "prior", "lambda", "lambda_error"]]
        .round(4)
        .to_dict("records"),
        "seconds": time.perf_counter() - t0,
    }
    return out
