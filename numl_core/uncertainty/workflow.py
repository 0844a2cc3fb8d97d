"""The uncertainty workflow: are the systematic toys Gaussian, and what p-value does an observation get?

One run follows three steps on one toy set (built in, or a user's matrix with one universe per row):

1. non-Gaussianity: C2ST between the toys and samples of the Gaussian with their mean and covariance;
2. density estimation: a normalizing flow (train/validation split, early stopping, live NLL) next to
   the Gaussian and a per-dimension-transformed Gaussian; C2ST of each model's samples against held-out
   toys, held-out NLL, and a latent-space C2ST of the flow;
3. p-values of held-out toys (and of the user's observation): chi2 of the Gaussian, the Gaussian density
   ranked among the toys' own ("improved baseline"), the density rank under the transformed Gaussian and
   the flow; against the exact p-values
   where the toy's density is known (Pearson r, MSE, R2).

Optionally a near-to-far study trains the autoregressive transformer and a conditional flow on the
near/far toy (:mod:`numl_core.uncertainty.ndfd`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numl_core.config import ConfigError
from numl_core.data.generators import toys as toy_sets
from numl_core.data.schema import DataError
from numl_core.jobs import Progress
from numl_core.live import LivePlots, PlotSpec, plot_key, series
from numl_core.runs import RunDir, RunStore
from numl_core.training import FitResult
from numl_core.uncertainty import ndfd, train
from numl_core.uncertainty.c2st import c2st, latent_c2st
from numl_core.uncertainty.config import UncertaintyConfig, parse_observation
from numl_core.uncertainty.model import (
    MODELS_CHECKPOINT,
    FittedModels,
    FlowDensity,
    GaussianDensity,
    MarginalGaussianDensity,
    check_observation,
    density_pvalues,
    heldout_nll,
    models_from_state,
    models_state,
    pvalue_metrics,
    rank_pvalues,
)
from numl_core.uncertainty.result import C2ST, MODELS, ScoreResult, UncertaintyResult
from numl_core.workflows import Workflow

IMPROVED = "improved_baseline"
KEPT_SAMPLES = 2_000
"""Toys and model samples kept in the result for corner plots."""
C2ST_JOBS = -1
"""Threads of the C2ST random forests: all cores, like torch (the accuracies do not depend on it)."""


# -- toys -----------------------------------------------------------------------------------------
def load_toy_set(config: UncertaintyConfig) -> tuple[np.ndarray, np.ndarray, Any]:
    """(training toys (T, D), held-out toys (N, D), true density or None) for the configured set."""
    total = config.n_toys + config.n_test
    if config.toys in toy_sets.TOY_KINDS:
        truth = toy_sets.make_toy(config.toys, dim=config.dim, seed=config.seed)
        x = truth.sample(total, seed=config.seed + 1)
        return x[: config.n_toys], x[config.n_toys :], truth
    if config.toys.startswith("nd280_"):
        x = toy_sets.nd280_universes(
            total, config.toys.removeprefix("nd280_"), config.nd280_binning, config.nd280_events, config.seed
        )
        x = toy_sets.check_toys(x, source=f"ND280 {config.toys} universes")
        return x[: config.n_toys], x[config.n_toys :], None
    x = toy_sets.load_toys(Path(config.toy_file))
    if len(x) < 2 * x.shape[1] + 2:
        raise DataError(
            f"{config.toy_file}: {len(x)} toys for {x.shape[1]} dimensions; "
            f"need at least {2 * x.shape[1] + 2} rows to fit and test"
        )
    rng = np.random.default_rng(config.seed)
    x = x[rng.permutation(len(x))]  # a seeded shuffle: n_test held out, then up to n_toys for training
    n_test = min(config.n_test, len(x) // 2)
    return x[n_test : n_test + config.n_toys], x[:n_test], None


@dataclass
class ToySplit:
    """The toys of one run, one per row: ``toys`` (all training toys, which the Gaussians fit), their
    ``train`` and ``val`` parts (the flow's), the held-out ``test`` toys, the ``truth`` density where
    known and the ``observation`` (1, D) if one was given."""

    toys: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    truth: Any = None
    observation: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return self.toys.shape[1]


def split_toys(config: UncertaintyConfig) -> ToySplit:
    """The configured toys, checked, with the observation and a random validation split."""
    toys, test, truth = load_toy_set(config)
    toy_sets.check_toys(toys, source=f"toys '{config.toys}'")
    observation = None
    if config.observation.strip():
        if ";" in config.observation.strip().strip(";"):
            raise ConfigError(
                "UncertaintyConfig.observation: a run takes one observation; score several later"
            )
        observation = check_observation(parse_observation(config.observation.strip(";")), toys.shape[1])
    order = np.random.default_rng([config.seed, 5]).permutation(len(toys))
    n_val = max(1, int(round(config.val_fraction * len(toys))))
    val, fit = toys[order[:n_val]], toys[order[n_val:]]
    return ToySplit(toys, fit, val, test, truth, observation)


# -- one run --------------------------------------------------------------------------------------
def _model_row(
    name: str,
    model: Any,
    test: np.ndarray,
    config: UncertaintyConfig,
    seed: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """C2ST of ``n_test`` model samples against the held-out toys (reported to ``progress`` if given),
    and the held-out NLL."""
    samples = model.sample(len(test), seed)
    result = c2st(
        test,
        samples,
        seed=config.seed + 1,
        n_folds=config.c2st_folds,
        classifier=config.c2st_classifier,
        n_jobs=C2ST_JOBS,
    )
    if progress is not None:
        progress.metric(C2ST, result.accuracy, step=0, model=name)
    return {
        "model": name,
        C2ST: result.accuracy,
        "c2st_error": result.error,
        "c2st_pvalue": result.pvalue,
        "nll": heldout_nll(model, test),
        "samples": samples,
    }


def _train_flow(
    config: UncertaintyConfig, data: ToySplit, progress: Progress
) -> tuple[FlowDensity, FitResult, float]:
    """The flow trained on the training toys (validation: ``data.val``), its fit and training seconds."""
    progress.update(0.1, f"training the flow ({config.model})")
    t_fit = time.perf_counter()
    flow, fit_result = train.fit_flow(
        data.train, data.val, config.flow_settings(), progress.subrange(0.1, 0.75)
    )
    train_seconds = time.perf_counter() - t_fit
    progress.check_cancelled()
    progress.update(0.75, "evaluating the flow")
    return flow, fit_result, train_seconds


def _pvalue_table(
    data: ToySplit,
    gaussian: GaussianDensity,
    toy_reference: np.ndarray,
    models: dict[str, Any],
    config: UncertaintyConfig,
    progress: Progress,
) -> pd.DataFrame:
    """p-values of the held-out toys: chi2 of the Gaussian, the improved baseline (rank among the sorted
    Gaussian log-densities of the toys, ``toy_reference``), density rank (with errors) under each model."""
    pvalues = pd.DataFrame({"toy": np.arange(len(data.test))})
    pvalues["gaussian"] = gaussian.chi2_pvalue(data.test)
    pvalues[IMPROVED], pvalues[f"{IMPROVED}_error"] = rank_pvalues(
        toy_reference, gaussian.log_prob(data.test)
    )
    for k, (name, model) in enumerate(models.items()):
        progress.check_cancelled()
        pvalues[name], pvalues[f"{name}_error"] = density_pvalues(
            model, data.test, config.n_pvalue_samples, seed=config.seed + 20 + k
        )
    return pvalues


def _metrics_table(rows: dict[str, dict[str, Any]], pvalues: pd.DataFrame, has_truth: bool) -> pd.DataFrame:
    """One row per model: C2ST, NLL and the agreement of its p-values with the truth's (NaN without)."""
    metrics = pd.DataFrame(
        [{k: v for k, v in rows[m].items() if k != "samples"} for m in MODELS if m in rows]
    ).set_index("model")
    for m in metrics.index:
        if has_truth:
            for key, value in pvalue_metrics(pvalues[m], pvalues["truth"]).items():
                metrics.loc[m, key] = value
        else:
            for key in ("pvalue_r", "pvalue_mse", "pvalue_r2"):
                metrics.loc[m, key] = np.nan
    return metrics.reset_index()


def observation_pvalues(
    observation: np.ndarray,
    gaussian: GaussianDensity,
    models: dict[str, Any],
    n_samples: int,
    seed: int,
    toy_reference: np.ndarray,
) -> pd.DataFrame:
    """p-values of one observed vector (D,): chi2 of the Gaussian, the improved baseline (its density ranked
    among the sorted Gaussian log-densities of the toys, ``toy_reference``) and the density rank under each
    model, with Monte-Carlo errors; one row per model."""
    p_toys, err_toys = rank_pvalues(toy_reference, gaussian.log_prob(observation))
    rows = [
        {
            "model": "gaussian",
            "method": "chi2 (Mahalanobis)",
            "pvalue": float(gaussian.chi2_pvalue(observation)[0]),
            "error": 0.0,
            "chi2": float(gaussian.mahalanobis2(observation)[0]),
        },
        {
            "model": IMPROVED,
            "method": "density rank among the toys",
            "pvalue": float(p_toys[0]),
            "error": float(err_toys[0]),
            "chi2": float(gaussian.mahalanobis2(observation)[0]),
        },
    ]
    for k, (name, model) in enumerate(models.items()):
        p, err = density_pvalues(model, observation, n_samples, seed + k)
        rows.append(
            {
                "model": name,
                "method": "density rank",
                "pvalue": float(p[0]),
                "error": float(err[0]),
                "chi2": np.nan,
            }
        )
    return pd.DataFrame(rows)


def run_uncertainty(config: UncertaintyConfig, progress: Progress) -> UncertaintyResult:
    """Fit the densities of one toy set and compare their C2ST, NLL and p-values; see the module doc."""
    config.validate()
    t0 = time.perf_counter()
    progress.update(0.0, f"loading toys '{config.toys}'")
    data = split_toys(config)
    progress.log(
        f"{len(data.train)} training, {len(data.val)} validation, {len(data.test)} held-out toys "
        f"in {data.dim} dimensions"
    )
    progress.update(0.02, "fitting Gaussians")
    gaussian = GaussianDensity.fit(data.toys)
    marginal = MarginalGaussianDensity.fit(data.toys)
    progress.update(0.05, "non-Gaussianity C2ST")
    rows: dict[str, dict[str, Any]] = {}
    rows["gaussian"] = _model_row("gaussian", gaussian, data.test, config, config.seed + 10, progress)
    rows[IMPROVED] = {**rows["gaussian"], "model": IMPROVED}  # the same density: only its p-value differs
    rows["marginal_gaussian"] = _model_row(
        "marginal_gaussian", marginal, data.test, config, config.seed + 11, progress
    )

    flow, fit_result, train_seconds = _train_flow(config, data, progress)
    rows["flow"] = _model_row("flow", flow, data.test, config, config.seed + 12, progress)
    latent = latent_c2st(
        flow.to_latent, data.test, seed=config.seed + 1, n_folds=config.c2st_folds, n_jobs=C2ST_JOBS
    )
    models: dict[str, Any] = {"marginal_gaussian": marginal, "flow": flow}
    if data.truth is not None:
        rows["truth"] = _model_row("truth", data.truth, data.test, config, config.seed + 13)
        models["truth"] = data.truth

    toy_reference = np.sort(gaussian.log_prob(data.toys))  # the improved baseline's reference statistic
    if progress.run_dir is not None:
        fitted = FittedModels(gaussian, marginal, flow, toy_reference)
        progress.run_dir.save_checkpoint(MODELS_CHECKPOINT, models_state(fitted, config.flow_settings()))
    progress.update(0.85, "p-values")
    pvalues = _pvalue_table(data, gaussian, toy_reference, models, config, progress)
    observed = pd.DataFrame()
    if data.observation is not None:
        observed = observation_pvalues(
            data.observation,
            gaussian,
            models,
            config.n_pvalue_samples,
            config.seed + 30,
            toy_reference,
        )
    kept = min(KEPT_SAMPLES, len(data.test))
    result = UncertaintyResult(
        metrics=_metrics_table(rows, pvalues, data.truth is not None),
        pvalues=pvalues,
        observed=observed,
        history=pd.DataFrame(fit_result.history),
        toys_sample=data.test[:kept].astype(np.float32),
        flow_sample=rows["flow"]["samples"][:kept].astype(np.float32),
        gaussian_sample=rows["gaussian"]["samples"][:kept].astype(np.float32),
        non_gaussianity_c2st=rows["gaussian"][C2ST],
        non_gaussianity_pvalue=rows["gaussian"]["c2st_pvalue"],
        latent_c2st=latent.accuracy,
        latent_c2st_pvalue=latent.pvalue,
        c2st_classifier=config.c2st_classifier,
        toys=config.toys,
        dim=data.dim,
        n_train=len(data.train),
        n_test=len(data.test),
        has_truth=data.truth is not None,
        best_epoch=fit_result.best_epoch,
        train_seconds=train_seconds,
    )
    if config.run_near_far:
        progress.update(0.9, "near-to-far models")
        result.near_far = run_near_far(config, progress.subrange(0.9, 1.0))
    result.seconds = time.perf_counter() - t0
    progress.update(1.0, "done")
    return result


def run_near_far(config: UncertaintyConfig, progress: Progress) -> pd.DataFrame:
    """Train the transformer and the conditional flow on the near/far toy; the evaluation table."""
    toy = toy_sets.near_far_toy(dim=config.near_far_dim, seed=config.seed)
    near, far = toy.sample(config.near_far_events, seed=config.seed + 2)
    test_near, test_far = toy.sample(min(2_000, config.n_test), seed=config.seed + 3)
    n_val = max(1, int(round(config.val_fraction * len(near))))
    settings = ndfd.NearFarSettings(
        train=ndfd.near_far_training(epochs=config.near_far_epochs, device=config.device, seed=config.seed)
    )
    models = {}
    for k, kind in enumerate(ndfd.NDFD_MODELS):
        models[kind], _ = train.fit_near_far(
            kind,
            (near[n_val:], far[n_val:]),
            (near[:n_val], far[:n_val]),
            settings,
            progress.subrange(k / 2, (k + 1) / 2),
        )
    return ndfd.evaluate_near_far(models, toy, test_near, test_far, n_samples=500, seed=config.seed)


# -- live plots -----------------------------------------------------------------------------------
def _loss_series(prefix: str) -> list[str]:
    """The series of one fit's loss records: training and validation totals."""
    return [series(train.loss_name(prefix), split=split, term="total") for split in ("train", "val")]


def metric_group(record: dict[str, Any]) -> str | None:
    """The live plot of a metric record: the flow's NLL (``loss``), the near-to-far models' NLL
    (``near_far``); the per-model C2ST records are not drawn."""
    name = str(record["name"])
    if name == C2ST:
        return None
    if name in {train.loss_name(train.near_far_prefix(kind)) for kind in ndfd.NDFD_MODELS}:
        return "near_far"
    if name == train.loss_name(train.FLOW_PREFIX):
        return "loss"
    return plot_key(record)


def expected_series(config: Any) -> dict[str, list[str]]:
    """The live plots and series of an uncertainty job with ``config``."""
    out = {"loss": _loss_series(train.FLOW_PREFIX)}
    if getattr(config, "run_near_far", False):
        out["near_far"] = [s for kind in ndfd.NDFD_MODELS for s in _loss_series(train.near_far_prefix(kind))]
    return out


LIVE_PLOTS = LivePlots(
    group=metric_group,
    expected=expected_series,
    plots=(
        PlotSpec("loss", "flow NLL", xlabel="epoch", ylabel="NLL (nats per toy)"),
        PlotSpec("near_far", "near-to-far NLL", xlabel="epoch", ylabel="NLL (nats per event)"),
    ),
)


# -- scoring new observations with a finished run -------------------------------------------------
def load_observations(config: UncertaintyConfig) -> np.ndarray:
    """The observations to score (N, D'): ``observation_file`` (CSV with a header row, parquet, npz, or text
    with one comma-separated observation per line), else the ``observation`` field (several separated by
    ``;``)."""
    if not config.observation_file:
        if not config.observation.strip():
            raise ConfigError("UncertaintyConfig: give observation_file or observation to score")
        return np.vstack([parse_observation(part) for part in config.observation.split(";") if part.strip()])
    path = Path(config.observation_file)
    if not path.is_file():
        raise DataError(f"{path}: no observation file here")
    if path.suffix.lower() in (".csv", ".parquet", ".pq", ".npz"):
        return toy_sets.read_matrix(path)
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path}: no observation in the file")
    rows = []
    for i, line in enumerate(lines, start=1):
        try:
            rows.append(parse_observation(line))
        except ConfigError as exc:
            raise DataError(f"{path}:{i}: {exc}") from None
    return np.vstack(rows)


def scored_run(config: UncertaintyConfig, progress: Progress) -> RunDir:
    """The finished run named by ``score_run``: a folder, or a run id in this job's runs folder."""
    if not config.score_run:
        raise ConfigError("UncertaintyConfig.score_run: name the finished run whose densities score")
    path = Path(config.score_run)
    if (path / "run.json").is_file():
        return RunDir(path)
    root = progress.run_dir.path.parent if progress.run_dir is not None else None
    try:
        return RunStore(root).get(config.score_run)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"UncertaintyConfig.score_run: {exc}") from None


def score_observations(config: UncertaintyConfig, progress: Progress) -> ScoreResult:
    """The ``score`` action: p-values of new observations under the densities a finished run saved."""
    t0 = time.perf_counter()
    run = scored_run(config, progress)
    state = run.load_checkpoint(MODELS_CHECKPOINT)
    if state is None:
        raise ConfigError(
            f"UncertaintyConfig.score_run: {run.path} holds no fitted densities (not finished?)"
        )
    fitted = models_from_state(state)
    x = check_observation(load_observations(config), fitted.gaussian.dim)
    models = {"marginal_gaussian": fitted.marginal, "flow": fitted.flow}
    tables = []
    for i, row in enumerate(x):
        progress.check_cancelled()
        progress.update(i / len(x), f"observation {i + 1} of {len(x)}")
        table = observation_pvalues(
            row, fitted.gaussian, models, config.n_pvalue_samples, config.seed + 30, fitted.toy_reference
        )
        tables.append(table.assign(observation=i))
    observed = pd.concat(tables, ignore_index=True)
    observed = observed[["observation", *[c for c in observed.columns if c != "observation"]]]
    progress.log(f"scored {len(x)} observation(s) with the densities of run {run.id}")
    return ScoreResult(observed, str(run.path), len(x), time.perf_counter() - t0)


WORKFLOW = Workflow(
    name="uncertainty",
    title="Uncertainties",
    description="Normalizing flows for non-Gaussian systematic toys: C2ST, flow vs Gaussian p-values, "
    "near-to-far prediction.",
    config_cls=UncertaintyConfig,
    run=run_uncertainty,
    actions={"score": score_observations},
    live_plots=LIVE_PLOTS,
    results=(UncertaintyResult, ScoreResult),
    cli_options={"score": {"--run": "score_run", "--observation": "observation_file"}},
)
