"""Cross-section benchmark: DNN fits of the QES-archive carbon data and transfer to other nuclei.

0. the network's inputs: carbon fitted with each choice of :data:`~numl_core.xsec.model.INPUTS` on the
   same split, the one with the lowest chi2 per point on its validation points used for everything
   below (``input_selection``, ``inputs``);
1. Carbon, 10% of the points held out: chi2 per point on them (lambda_k from the training points), the
   mean over the :data:`COVERAGE_SEEDS` hold-outs (``*_by_seed``: each), for the bootstrap ensemble;
   for the first hold-out the MC-dropout network's too; the coverage of each method's predictive (fraction of
   held-out points inside its central 68.27% and 95.45% intervals, a Student-t predictive fitted on
   the validation points, see ``coverage_definition``; targets 0.683 and 0.954; the Gaussian
   predictive's numbers as ``coverage_*_gaussian``); the coverage is averaged over
   :data:`COVERAGE_SEEDS` random 10% hold-outs (each refits both methods), since one split's 282 test
   points scatter by several points of coverage (``coverage_*_by_seed`` keeps each);
2. carbon, 10% of the (E, theta) settings held out: chi2 per point on those settings;
3. the model of (1) carried over to every other shipped nucleus with 10% of its points, over
   :data:`TRANSFER_SEEDS` (each its own 10 % and initialisation): chi2 per point on the other 90% for
   the fine-tuned model, a model trained from scratch on the same 10% (both choosing their learning
   rate and best report on a quarter of that 10%: the same search and early stopping for both), and the
   carbon model scaled by A / 12, each with lambda_k from its own predictions at the fine-tuning points
   (``transfer``: mean, std and each seed's value; ``transfer_profiled``: lambda_k profiled on the
   scored points, the older definition), whether the fine-tuned mean beats both
   (``transfer_targets_met``), each method's chi2 on its own training points and learning rates, and
   for the first seed the split into held-out points whose (E, theta) lies near a carbon setting
   (within 10 degrees and 20% in energy) and the rest (``transfer_by_carbon_coverage``); fine-tuning
   time (every learning rate tried) against pretraining time;
4. the raw coverage of each ensemble (``coverage_raw``: the members' spread, the point's error and the
   normalisation uncertainty, nothing fitted) next to the fitted predictive's.

Run it with ``python -m benchmarks.run_all [--quick] xsec``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from numl_core.device import resolve_device
from numl_core.jobs import Progress
from numl_core.xsec.config import XsecConfig
from numl_core.xsec.fit import chi2_held_out
from numl_core.xsec.model import INPUTS
from numl_core.xsec.points import load_table, normalisation_groups
from numl_core.xsec.result import XsecResult
from numl_core.xsec.transfer import covered_settings
from numl_core.xsec.workflow import fit_nucleus, transfer_all

logger = logging.getLogger(__name__)

QUICK = {"members": 3, "epochs": 60, "mc_samples": 20, "finetune_epochs": 20, "grid_points": 10}
FULL = {"members": 6, "epochs": 3000}
"""Full sizes: the workflow's default network trained 3000 passes (1000 leave the training chi2 per point
near 9: the fit is limited by optimisation steps, not capacity), with 6 bootstrap members so that two
carbon fits and four transfers stay within ten minutes on two CPU cores."""
TARGETS = ["O", "Al", "Ca", "Fe", "Au", "U", "He4", "He3", "H3", "H2"]
"""Every shipped nucleus but carbon (the base): the four of the reference study, the heavy ones and the
light ones, where a Fermi gas and carbon x A/12 are poor guides."""
TRANSFER_SEEDS = (3, 4, 5)
"""Seeds of the transfer: each draws its own 10 % of the target's points and initialises its own fits
(not seeds 0-2, whose scores were read while the fine-tuning defaults were set)."""
COVERAGE_SEEDS = (0, 1, 2, 3, 4)
"""Seeds of the random point hold-outs whose test coverage is averaged (seed 0 also gives the chi2s)."""
METHOD_NAMES = {"boot": "bootstrap", "mc": "mc_dropout"}


def config(quick: bool, **changes: Any) -> XsecConfig:
    """The benchmark's full or quick config (:data:`FULL`, :data:`QUICK`), with ``changes``."""
    base = {"nucleus": "C", "targets": TARGETS, **(QUICK if quick else FULL)}
    return XsecConfig(**{**base, **changes})


def run(quick: bool = False, device: str = "auto") -> dict[str, Any]:
    """Fit carbon twice (points and settings held out), transfer to four nuclei; return the numbers.

    ``device`` ("auto", "cpu", "cuda") runs every fit there; ``pretrain_seconds`` and each nucleus's
    ``finetune_seconds`` time the training. On the CPU torch runs one thread: the network's matrix
    products are small, and on a shared two-core machine two threads were measured 5x (one network)
    to 25x (ten members) slower.
    """
    device = resolve_device(device).type
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        return _run(quick, device)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool, device: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    by_inputs = {
        inputs: fit_nucleus(config(quick, split="points", inputs=inputs, device=device), Progress())
        for inputs in INPUTS
    }
    inputs = choose_inputs({k: fitted[0].summary["boot"] for k, fitted in by_inputs.items()})
    by_points, carbon_model = by_inputs[inputs]
    logger.info("carbon fits (points held out) done in %.0f s; inputs %s", time.perf_counter() - t0, inputs)
    by_settings, _ = fit_nucleus(
        config(quick, split="settings", mc_dropout=0.0, inputs=inputs, device=device), Progress()
    )
    logger.info("carbon fit (settings held out) done")
    boot = by_points.summary["boot"]
    pretrain_s = boot["seconds"]
    repeats = [by_points] + [
        fit_nucleus(config(quick, split="points", seed=seed, inputs=inputs, device=device), Progress())[0]
        for seed in COVERAGE_SEEDS[1:]
    ]
    logger.info("coverage repeats done")
    transfers = [
        transfer_all(
            carbon_model, 12, pretrain_s, config(quick, device=device, seed=seed, inputs=inputs), Progress()
        )
        for seed in TRANSFER_SEEDS
    ]
    logger.info("transfers done")
    heldout = [f.summary["boot"]["chi2_test"] for f in repeats]
    out: dict[str, Any] = {
        "quick": quick,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "sizes": {
            k: getattr(config(quick), k)
            for k in ("members", "depth", "width", "epochs", "batch_size", "finetune_epochs")
        },
        "carbon_points": by_points.n_points,
        "input_selection": {
            k: {f"chi2_per_point_{split}": fit.summary["boot"][f"chi2_{split}"] for split in ("val", "test")}
            for k, (fit, _) in by_inputs.items()
        },
        "inputs": inputs,
        "carbon_chi2_per_point_heldout_points": float(np.mean(heldout)),
        "carbon_chi2_per_point_heldout_points_by_seed": heldout,
        "carbon_chi2_per_point_heldout_points_profiled": boot["chi2_test_profiled"],
        "carbon_chi2_per_point_train": boot["chi2_train"],
        "carbon_chi2_per_point_heldout_settings": by_settings.summary["boot"]["chi2_test"],
        "carbon_chi2_per_point_heldout_settings_profiled": by_settings.summary["boot"]["chi2_test_profiled"],
        **_coverage(repeats),
        "coverage_seeds": list(COVERAGE_SEEDS[: len(repeats)]),
        "coverage_definition": (
            "fraction of held-out points inside the central interval of probability 0.6827 (1 sigma) / "
            "0.9545 (2 sigma) of a Student-t predictive: location = prediction lambda_k sigma, scale^2 "
            "= (kappa x model spread of lambda_k sigma)^2 + point error^2 + (misfit x prediction)^2, the "
            "relative misfit, the degrees of freedom nu in [2, 100] and the spread scale kappa fitted "
            "jointly by maximum likelihood on the validation points (never the test points); "
            "*_gaussian: a Gaussian with the same terms but kappa = 1, misfit fitted by Gaussian "
            "likelihood on the validation points, within k sigma; *_no_misfit: that Gaussian without "
            "the misfit term; each the mean over the random 10% hold-outs of coverage_seeds (*_by_seed: "
            "per hold-out), misfit_*, nu_* and spread_scale_* of seed 0"
        ),
        "misfit_relative_student_t": {
            METHOD_NAMES[m]: s["misfit_student_t"] for m, s in by_points.summary.items()
        },
        "nu_student_t": {METHOD_NAMES[m]: s["nu_student_t"] for m, s in by_points.summary.items()},
        "spread_scale_student_t": {
            METHOD_NAMES[m]: s["spread_scale_student_t"] for m, s in by_points.summary.items()
        },
        "misfit_relative": {METHOD_NAMES[m]: s["misfit"] for m, s in by_points.summary.items()},
        "chi2_per_point_heldout_points_by_method": {
            METHOD_NAMES[m]: s["chi2_test"] for m, s in by_points.summary.items()
        },
        "median_relative_band": {METHOD_NAMES[m]: s["median_rel_band"] for m, s in by_points.summary.items()},
        "pretrain_seconds": pretrain_s,
        "mc_dropout_seconds": by_points.summary.get("mc", {}).get("seconds", float("nan")),
        **transfer_summary([t.transfer for t in transfers]),
        "transfer_seeds": list(TRANSFER_SEEDS),
        "transfer_targets_met": transfer_targets_met(transfer_summary([t.transfer for t in transfers])),
        "transfer_by_carbon_coverage": _by_carbon_coverage(transfers[0].transfer_points, config(quick)),
        "coverage_raw": {
            METHOD_NAMES[m]: {
                "one_sigma": float(np.mean([f.summary[m]["coverage_1sigma_no_misfit"] for f in repeats])),
                "two_sigma": float(np.mean([f.summary[m]["coverage_2sigma_no_misfit"] for f in repeats])),
            }
            for m in by_points.summary
        },
        "cpu_seconds_per_1000_epochs": pretrain_s * 1000 / config(quick).epochs if device == "cpu" else None,
        "gpu_seconds_per_1000_epochs": pretrain_s * 1000 / config(quick).epochs if device == "cuda" else None,
        "card": torch.cuda.get_device_name() if device == "cuda" else None,
        "normalisations": by_points.normalisations[["data_set", "prior", "lambda", "lambda_error"]]
        .round(4)
        .to_dict("records"),
        "seconds": time.perf_counter() - t0,
    }
    return out


TRANSFER_METHODS = {"finetuned": "finetuned", "scratch": "scratch", "scaled_base": "scaled_carbon"}
"""Transfer-table columns and their names in the report."""


def choose_inputs(summaries: dict[str, dict[str, float]]) -> str:
    """The network inputs whose carbon fit has the lowest chi2 per point on its validation points (never
    the test points, nor any other nucleus's).

    >>> choose_inputs({"kinematics": {"chi2_val": 3.0}, "scaling": {"chi2_val": 2.5}})
    'scaling'
    """
    return min(summaries, key=lambda k: summaries[k]["chi2_val"])


def transfer_summary(tables: list[pd.DataFrame]) -> dict[str, Any]:
    """Per nucleus and method the held-out chi2 per point over the seeds' ``tables`` (mean, std, each
    seed's): ``transfer`` with lambda_k from the fine-tuning points (the headline) and
    ``transfer_profiled`` with lambda_k profiled on the scored points (the older definition); the
    fine-tuning points and seconds of the first seed."""
    rows = pd.concat(tables, ignore_index=True)
    out: dict[str, Any] = {"transfer": {}, "transfer_profiled": {}}
    for nucleus, part in rows.groupby("nucleus", sort=False):
        for key, suffix in (("transfer", ""), ("transfer_profiled", "_profiled")):
            out[key][nucleus] = {
                name: {
                    "mean": float(part[col + suffix].mean()),
                    "std": float(part[col + suffix].std(ddof=1)) if len(part) > 1 else float("nan"),
                    "seeds": [float(v) for v in part[col + suffix]],
                }
                for col, name in TRANSFER_METHODS.items()
            }
        for col, name in TRANSFER_METHODS.items():
            out["transfer"][nucleus][name]["train_points_chi2"] = float(part[f"{col}_train"].mean())
        first = part.iloc[0]
        out["transfer"][nucleus].update(
            train_points=int(first["train_points"]),
            finetune_seconds=float(first["finetune_seconds"]),
            scratch_seconds=float(first["scratch_seconds"]),
        )
    return out


def transfer_targets_met(summary: dict[str, Any]) -> dict[str, bool]:
    """Per nucleus: the fine-tuned mean below both the scratch and the scaled-carbon means."""
    return {
        nucleus: row["finetuned"]["mean"] < min(row["scratch"]["mean"], row["scaled_carbon"]["mean"])
        for nucleus, row in summary["transfer"].items()
    }


COVERAGE_KEYS = [f"coverage_{k}sigma{tag}" for tag in ("", "_gaussian", "_no_misfit") for k in (1, 2)]


def _coverage(fits: list[XsecResult]) -> dict[str, Any]:
    """Coverage per method, the mean over the hold-outs ``fits`` (``*_by_seed``: each one's)."""
    out: dict[str, Any] = {}
    for key in COVERAGE_KEYS:
        by_seed = {METHOD_NAMES[m]: [f.summary[m][key] for f in fits] for m in fits[0].summary}
        out[key] = {m: float(np.mean(v)) for m, v in by_seed.items()}
        out[f"{key}_by_seed"] = by_seed
    return out


def _by_carbon_coverage(points: pd.DataFrame, cfg: XsecConfig) -> dict[str, Any]:
    """Per nucleus: chi2 per point of each transfer method on the held-out points near a carbon setting
    (:func:`covered_settings`) and on the rest, with the point counts (lambda_k from the fine-tuning
    points, as in the headline)."""
    carbon = load_table(cfg)
    out: dict[str, Any] = {}
    for nucleus, part in points.groupby("nucleus", sort=False):
        prior = normalisation_groups(load_table(cfg, nucleus), cfg.normalise_by)[1]
        near = covered_settings(part, carbon)
        row: dict[str, Any] = {"points_near_carbon": int(near.sum()), "points_elsewhere": int((~near).sum())}
        for where, mask in (("near_carbon", near), ("elsewhere", ~near)):
            for method, name in TRANSFER_METHODS.items():
                row[f"{name}_{where}"] = _held_out_chi2(part[mask], method, prior)
        out[str(nucleus)] = row
    return out


def _held_out_chi2(part: pd.DataFrame, method: str, prior: np.ndarray) -> float:
    """:func:`chi2_held_out` of ``method`` on the held-out rows ``part`` with their stored lambda_k."""
    if part.empty:
        return float("nan")
    group = part["group"].to_numpy()
    lam, fitted = np.ones(len(prior)), np.zeros(len(prior), bool)
    lam[group], fitted[group] = part[f"lambda_{method}"].to_numpy(), part["norm_fitted"].to_numpy()
    pred, data, error = (part[c].to_numpy() for c in (f"pred_{method}", "xsec", "error"))
    return chi2_held_out(pred, data, error, group, prior, lam, fitted)
