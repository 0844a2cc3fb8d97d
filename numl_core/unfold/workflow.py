"""The unfolding workflow: OmniFold against Iterative Bayesian Unfolding on the ND280 CC0pi sample.

One run unfolds one (fake-)data set with both methods and compares them with the
data's truth: the nominal result, systematic throws of the MC (flux, cross section,
detector) and Poisson bootstrap replicas of the data give the covariance used in chi2.
All histogram contents are in weighted events; ``xsec_scale`` (cm^2/nucleon per event)
converts them to cross sections. The live plots a run reports are declared here
(:data:`LIVE_PLOTS`), from the same names the code reports its metrics under.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from numl_core.data.binning import BINNINGS
from numl_core.jobs import Progress
from numl_core.live import LivePlots, PlotSpec, Record, series
from numl_core.overlays import ResultOverlay
from numl_core.unfold import compare, omnifold, validation
from numl_core.unfold.config import DISTRIBUTIONS, UnfoldingConfig
from numl_core.unfold.events import UnfoldingSample, prepare_sample
from numl_core.unfold.omnifold import OmniFoldResult, OmniFoldSettings, unfold_omnifold
from numl_core.unfold.omnifold_distributed import unfold_omnifold_distributed
from numl_core.unfold.result import UnfoldResult
from numl_core.workflows import Workflow

__all__ = ["DISTRIBUTIONS", "LIVE_PLOTS", "WORKFLOW", "UnfoldingConfig", "UnfoldResult", "run_unfolding"]


def omnifold_settings(config: UnfoldingConfig) -> OmniFoldSettings:
    """OmniFold's settings from the run's config."""
    return OmniFoldSettings(
        iterations=config.iterations,
        trials=config.trials,
        hidden=tuple([config.hidden_units] * config.hidden_layers),
        train=config.train_settings(),
        weight_clip=(0.0, config.weight_clip_max),
        warm_start=config.warm_start,
        stop_on_convergence=config.stop_on_convergence,
    )


def _run_omnifold(config: UnfoldingConfig, sample: UnfoldingSample, progress: Progress) -> OmniFoldResult:
    """OmniFold on every ensemble member: batched here, or in tasks on the config's Dask scheduler."""
    inputs, settings = sample.omnifold_inputs(), omnifold_settings(config)
    part = progress.subrange(0.05, 0.9)
    if config.scheduler:
        return unfold_omnifold_distributed(
            inputs, settings, part, scheduler=config.scheduler, throws_per_task=config.throws_per_task
        )
    return unfold_omnifold(inputs, settings, part)


@dataclass
class _Compared:
    """What the comparison of one distribution adds to the result's tables (lists of rows)."""

    histograms: list[pd.DataFrame] = field(default_factory=list)
    budgets: list[pd.DataFrame] = field(default_factory=list)
    calibration: list[dict] = field(default_factory=list)
    iterations: list[dict] = field(default_factory=list)


def _per_iteration(
    config: UnfoldingConfig, sample: UnfoldingSample, of: OmniFoldResult, name: str, progress: Progress
) -> tuple[dict[str, compare.Unfolded], dict[str, list[compare.Unfolded]], pd.DataFrame | None]:
    """Each method's final result, its result after every iteration (IBU up to the larger of its and
    OmniFold's iterations), and OmniFold's uncertainty budget, for one distribution."""
    binning = BINNINGS[name]
    push = of.history[:, 1]  # (iterations, members, N_mc)
    final, budget = compare.omnifold_histograms(sample, push[-1], of.trial_weights[:, 0], binning)
    estimates = {"omnifold": final}
    steps = {
        "omnifold": [compare.unfolded(sample, *compare.omnifold_members(sample, p, binning)) for p in push]
    }
    if config.run_ibu:
        compare.report_ibu_ts(sample, binning, config.ibu_iterations, progress, name)
        n_ibu = max(config.ibu_iterations, len(push))
        ibu_steps = [
            compare.unfolded(sample, *m) for m in compare.ibu_members(sample, binning, range(1, n_ibu + 1))
        ]
        estimates["ibu"], steps["ibu"] = ibu_steps[config.ibu_iterations - 1], ibu_steps
    return estimates, steps, budget


def _compare_one(
    config: UnfoldingConfig,
    sample: UnfoldingSample,
    of: OmniFoldResult,
    name: str,
    out: _Compared,
    progress: Progress,
) -> None:
    """Histograms, calibration and per-iteration rows of one distribution, appended to ``out``."""
    binning = BINNINGS[name]
    estimates, steps, budget = _per_iteration(config, sample, of, name, progress)
    if budget is not None:
        out.budgets.append(budget.reset_index().assign(distribution=name))
    truth, prior, rows = compare.truth_and_prior(sample, binning, name)
    used = compare.used_bins(estimates)
    if not used.all():
        progress.log(f"{name}: {int((~used).sum())} empty bin(s) left out of chi2")
    out.histograms += rows + compare.estimate_rows(name, binning, estimates)
    truth_throws = compare.truth_throws(sample, binning)
    out.calibration += validation.calibration_rows(name, estimates, truth, used, truth_throws)
    for method, per_iteration in steps.items():
        out.iterations += validation.iteration_rows(name, method, per_iteration, prior, truth, used)


def chi2_table(calibration: pd.DataFrame, fake_data: str) -> pd.DataFrame:
    """chi2 against the truth as one row per method plus an ``ndof`` row, one column per distribution
    (empty for real data)."""
    if calibration.empty or calibration["chi2"].isna().all():
        return pd.DataFrame()
    chi2 = calibration.pivot(index="method", columns="distribution", values="chi2")
    ndof = calibration.groupby("distribution")["ndof"].first().rename("ndof").to_frame().T
    table = pd.concat([chi2, ndof])[list(dict.fromkeys(calibration["distribution"]))]
    table = table.reset_index(names="method")
    table.insert(0, "fake_data", fake_data)
    return table


def _compare(
    config: UnfoldingConfig, sample: UnfoldingSample, of: OmniFoldResult, progress: Progress
) -> _Compared:
    """Per distribution: truth, prior, OmniFold (and IBU) histograms, calibration, bias per iteration
    and OmniFold's uncertainty budget."""
    out = _Compared()
    for k, name in enumerate(config.distributions):
        progress.check_cancelled()
        progress.update(0.9 + 0.1 * k / len(config.distributions), f"comparing {name}")
        _compare_one(config, sample, of, name, out, progress)
    return out


def run_unfolding(config: UnfoldingConfig, progress: Progress) -> UnfoldResult:
    """Run OmniFold (and IBU) on one fake-data set; return histograms, chi2 table and weights."""
    t0 = time.perf_counter()
    sample = prepare_sample(config, progress)
    progress.update(0.05, "OmniFold")
    of = _run_omnifold(config, sample, progress)
    push = of.history[-1, 1]  # (members, N_mc), multiplies the prior
    compared = _compare(config, sample, of, progress)
    histograms = pd.concat(compared.histograms, ignore_index=True)
    progress.artefact("histograms", histograms)
    calibration = pd.DataFrame(compared.calibration)
    iterations = pd.DataFrame(compared.iterations)
    t2k_rows, t2k_chi2 = compare.t2k_overlay(sample, sample.mc_weights * push)
    return UnfoldResult(
        histograms=histograms,
        chi2_table=chi2_table(calibration, config.fake_data),
        diagnostics=of.diagnostics_frame(),
        uncertainty_budget=pd.concat(compared.budgets, ignore_index=True)
        if compared.budgets
        else pd.DataFrame(),
        t2k_comparison=t2k_rows,
        t2k_chi2=t2k_chi2,
        calibration=calibration,
        iterations=iterations,
        suggested_iterations=validation.suggested_iterations(iterations),
        weights=(sample.mc_prior * push[0]).astype(np.float32),
        converged_at=of.converged_at,
        xsec_scale=sample.xsec_scale,
        n_mc=len(sample.mc),
        n_data=len(sample.data),
        seconds=time.perf_counter() - t0,
    )


# -- live plots ------------------------------------------------------------------------------------
STEPS = (1, 2)


def metric_group(record: Record) -> str | None:
    """Plot of a live metric: classifier losses, ESS, convergence (change between iterations against the
    spread of trials) and IBU's test statistic. The other weight diagnostics are shown in the result's
    diagnostics table, not live: fewer live plots keep a busy server responsive.
    """
    name = record["name"]
    if name in (omnifold.CHANGE_METRIC, omnifold.SPREAD_METRIC):
        return "convergence"
    if name == compare.IBU_TS_METRIC:
        return "ibu_ts"
    for quantity in ("loss", "ess"):
        if name in {omnifold.step_metric(step, quantity) for step in STEPS}:
            return quantity
    return None


def expected_series(config: Any) -> dict[str, list[str]]:
    """The live plots and series of an unfolding job (see :func:`metric_group`); IBU's series when the
    config runs IBU."""
    expected = {
        "loss": [
            series(omnifold.step_metric(step, "loss"), split=split)
            for step in STEPS
            for split in ("train", "val")
        ],
        "ess": [series(omnifold.step_metric(step, "ess")) for step in STEPS],
        "convergence": [series(omnifold.CHANGE_METRIC), series(omnifold.SPREAD_METRIC)],
    }
    if config is not None and config.run_ibu:
        expected["ibu_ts"] = [series(compare.IBU_TS_METRIC, distribution=d) for d in config.distributions]
    return expected


LIVE_PLOTS = LivePlots(
    group=metric_group,
    expected=expected_series,
    plots=(
        PlotSpec(
            "loss",
            "Classifier loss (steps 1 and 2)",
            "epoch (iterations laid end to end; dotted line: next iteration)",
            "weighted BCE per event",
            boundaries=True,
        ),
        PlotSpec(
            "ess", "Effective sample size of the weights", "iteration", "Kish ESS [events]", markers=True
        ),
        PlotSpec(
            "convergence",
            "Change between iterations vs spread of trials",
            "iteration",
            "RMS of the push factors",
            logy=True,
            markers=True,
        ),
        PlotSpec(
            "ibu_ts",
            "IBU: test statistic between iterations",
            "iteration",
            "KS distance",
            logy=True,
            markers=True,
        ),
    ),
)

WORKFLOW = Workflow(
    name="unfold",
    title="Unfolding",
    description="OmniFold vs Iterative Bayesian Unfolding on a T2K-ND280-like CC0pi sample.",
    config_cls=UnfoldingConfig,
    run=run_unfolding,
    live_plots=LIVE_PLOTS,
    results=(UnfoldResult,),
    result_overlay=ResultOverlay(("histograms",), "numl_core.unfold.figures:result_curves"),
)
