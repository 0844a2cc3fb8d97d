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
from typing import Any

import numpy as np
import pandas as pd

from numl_core.data.binning import BINNINGS
from numl_core.jobs import Progress
from numl_core.live import LivePlots, PlotSpec, Record, series
from numl_core.unfold import compare, omnifold
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


def _compare(
    config: UnfoldingConfig, sample: UnfoldingSample, of: OmniFoldResult, push: np.ndarray, progress: Progress
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per distribution: truth, prior, OmniFold (and IBU) histograms, chi2 against the truth and
    OmniFold's uncertainty budget."""
    histograms, budgets, chi2_rows = [], [], {}
    for k, name in enumerate(config.distributions):
        progress.check_cancelled()
        progress.update(0.9 + 0.1 * k / len(config.distributions), f"comparing {name}")
        binning = BINNINGS[name]
        *nominal_cov, budget = compare.omnifold_histograms(sample, push, of.trial_weights[:, 0], binning)
        estimates = {"omnifold": tuple(nominal_cov)}
        if budget is not None:
            budgets.append(budget.reset_index().assign(distribution=name))
        if config.run_ibu:
            estimates["ibu"] = compare.unfold_ibu(sample, binning, config.ibu_iterations, progress, name)
        truth, rows = compare.truth_and_prior(sample, binning, name)
        method_rows, chi2 = compare.chi2_against_truth(name, binning, truth, estimates, progress)
        histograms += rows + method_rows
        for method, value in chi2.items():
            chi2_rows.setdefault(method, {})[name] = value
    chi2_table = pd.DataFrame(chi2_rows).T.reset_index(names="method")
    chi2_table.insert(0, "fake_data", config.fake_data)
    budget_frame = pd.concat(budgets, ignore_index=True) if budgets else pd.DataFrame()
    return pd.concat(histograms, ignore_index=True), chi2_table, budget_frame


def run_unfolding(config: UnfoldingConfig, progress: Progress) -> UnfoldResult:
    """Run OmniFold (and IBU) on one fake-data set; return histograms, chi2 table and weights."""
    t0 = time.perf_counter()
    sample = prepare_sample(config, progress)
    progress.update(0.05, "OmniFold")
    of = _run_omnifold(config, sample, progress)
    push = np.atleast_2d(of.weights(iteration=-1, step=2))  # (members, N_mc), multiplies the prior
    histograms, chi2_table, budget = _compare(config, sample, of, push, progress)
    progress.artefact("histograms", histograms)
    t2k_rows, t2k_chi2 = compare.t2k_overlay(sample, sample.mc_weights * push)
    return UnfoldResult(
        histograms=histograms,
        chi2_table=chi2_table,
        diagnostics=of.diagnostics_frame(),
        uncertainty_budget=budget,
        t2k_comparison=t2k_rows,
        t2k_chi2=t2k_chi2,
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
        ),
        PlotSpec("ess", "Effective sample size of the weights", "iteration", "Kish ESS [events]"),
        PlotSpec(
            "convergence",
            "Change between iterations vs spread of trials",
            "iteration",
            "RMS of the push factors",
            logy=True,
        ),
        PlotSpec("ibu_ts", "IBU: test statistic between iterations", "iteration", "KS distance", logy=True),
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
)
