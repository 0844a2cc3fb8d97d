"""The uncertainty workflow: are the systematic toys Gaussian, and what p-value does an observation get?

One run follows three steps on one toy set (built in, or a user's matrix with one universe per row):

1. non-Gaussianity: C2ST between the toys and samples of the Gaussian with their mean and covariance;
2. density estimation: a normalizing flow (train/validation split, early stopping, live NLL) next to
   the Gaussian and a per-dimension-transformed Gaussian; C2ST of each model's samples against held-out
   toys, held-out NLL, and a latent-space C2ST of the flow;
3. p-values of held-out toys (and of the user's observation): chi2 of the Gaussian, density rank under
   the Gaussian ("improved baseline"), the transformed Gaussian and the flow; against the exact p-values
   where the toy's density is known (Pearson r, MSE, R2).

Optionally a near-to-far study trains the autoregressive transformer and a conditional flow on the
near/far toy (:mod:`numl_core.uncertainty.ndfd`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import param

from numl_core.config import Config, ConfigError
from numl_core.data.generators import toys as toy_sets
from numl_core.data.schema import DataError
from numl_core.jobs import Progress
from numl_core.uncertainty import ndfd
from numl_core.uncertainty.c2st import CLASSIFIERS, c2st, latent_c2st
from numl_core.uncertainty.model import (
    FLOW_MODELS,
    STANDARDISATIONS,
    FlowSettings,
    GaussianDensity,
    MarginalGaussianDensity,
    check_observation,
    density_pvalues,
    fit_flow,
    heldout_nll,
    pvalue_metrics,
)
from numl_core.workflows import Workflow

TOY_SETS = [*toy_sets.TOY_KINDS, *(f"nd280_{k}" for k in toy_sets.UNIVERSE_KINDS), "file"]
MODELS = ("gaussian", "improved_baseline", "marginal_gaussian", "flow", "truth")
"""Rows of the metrics table; ``gaussian`` uses the chi2 p-value, the others the density rank."""
KEPT_SAMPLES = 2_000
"""Toys and model samples kept in the result for corner plots."""
C2ST_JOBS = -1
"""Threads of the C2ST random forests: all cores, like torch (the accuracies do not depend on it)."""


class UncertaintyConfig(Config):
    """Inputs of one toy-density and p-value study."""

    toys = param.Selector(
        default="mixture",
        objects=TOY_SETS,
        doc="Toy set: 50-D Gaussian mixture, log-normal cases on the T2K covariance, ND280 universes "
        "(flux, cross-section or detector throws) or a file.",
    )
    toy_file = param.String(
        default="", doc="Toy matrix (.csv, .parquet, .npz), one universe per row; used when toys is 'file'."
    )
    dim = param.Integer(default=50, bounds=(2, 71), doc="Dimensions of the built-in T2K-covariance toys.")
    n_toys = param.Integer(
        default=50_000, bounds=(100, 5_000_000), doc="Toys drawn (built-in) or used (file) for training."
    )
    n_test = param.Integer(
        default=2_000, bounds=(20, 1_000_000), doc="Held-out toys for C2ST, NLL and the p-value comparison."
    )
    val_fraction = param.Number(
        default=0.2, bounds=(0.05, 0.5), doc="Fraction of training toys for validation."
    )
    nd280_binning = param.Selector(
        default="dpt",
        objects=["dpt", "dalphat", "dphit", "dpt_t2k", "dphit_t2k"],
        doc="Bins of ND280 universes.",
    )
    nd280_events = param.Integer(
        default=50_000, bounds=(1_000, 2_000_000), doc="ND280 events behind the universes."
    )
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1), doc="Seed of toys, splits and training.")
    model = param.Selector(
        default="maf", objects=list(FLOW_MODELS), doc="Flow: affine (maf) or spline (nsf)."
    )
    transforms = param.Integer(default=6, bounds=(1, 20), doc="Flow transforms.")
    hidden_features = param.Integer(default=256, bounds=(8, 2048), doc="Units per hidden layer.")
    hidden_layers = param.Integer(default=2, bounds=(1, 5), doc="Hidden layers per transform network.")
    coupling = param.Boolean(default=True, doc="Coupling (two-pass) masks: fast sampling in many dimensions.")
    standardise = param.Selector(
        default="whiten", objects=list(STANDARDISATIONS), doc="Standardisation before the flow."
    )
    epochs = param.Integer(default=300, bounds=(1, 5_000), doc="Maximum training epochs.")
    batch_size = param.Integer(default=512, bounds=(16, 1_000_000), doc="Mini-batch size.")
    learning_rate = param.Number(default=1e-3, bounds=(1e-6, 1.0), doc="Adam learning rate.")
    schedule = param.Selector(
        default="plateau",
        objects=["constant", "cosine", "plateau"],
        doc="Learning-rate schedule: constant, cosine to zero over the epochs, or halved on a plateau.",
    )
    patience = param.Integer(
        default=20, bounds=(0, 1_000), doc="Early-stopping patience in epochs (0: never)."
    )
    n_pvalue_samples = param.Integer(
        default=100_000, bounds=(1_000, 10_000_000), doc="Model samples behind each density-rank p-value."
    )
    c2st_classifier = param.Selector(default="rf", objects=list(CLASSIFIERS), doc="C2ST classifier.")
    c2st_folds = param.Integer(default=5, bounds=(2, 20), doc="C2ST cross-validation folds.")
    observation = param.String(
        default="", doc="Observed vector, comma-separated, one value per dimension (optional)."
    )
    run_near_far = param.Boolean(default=False, doc="Also train the near-to-far transformer and flow.")
    near_far_dim = param.Integer(
        default=3, bounds=(1, 20), doc="Quantities per detector in the near/far toy."
    )
    near_far_events = param.Integer(default=50_000, bounds=(200, 5_000_000), doc="Near/far training pairs.")
    near_far_epochs = param.Integer(
        default=100, bounds=(1, 5_000), doc="Maximum epochs of each near/far model."
    )
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda", "mps"], doc="Torch device.")

    def validate(self) -> None:
        if self.toys == "file" and not self.toy_file:
            raise ConfigError("UncertaintyConfig.toy_file: required when toys is 'file'")
        if self.standardise == "log" and self.toys == "mixture":
            raise ConfigError(
                "UncertaintyConfig.standardise: 'log' needs positive toys; the mixture has none"
            )
        if self.observation.strip():
            parse_observation(self.observation)

    def flow_settings(self) -> FlowSettings:
        return FlowSettings(
            model=self.model,
            transforms=self.transforms,
            hidden_features=self.hidden_features,
            hidden_layers=self.hidden_layers,
            coupling=self.coupling,
            standardise=self.standardise,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.learning_rate,
            schedule=self.schedule,
            patience=self.patience,
            device=self.device,
            seed=self.seed,
        )


def parse_observation(text: str) -> np.ndarray:
    """A comma- or whitespace-separated vector of numbers (D,).

    >>> parse_observation("1, 2.5 3e-1").tolist()
    [1.0, 2.5, 0.3]
    """
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        return np.array([float(p) for p in parts])
    except ValueError as exc:
        raise ConfigError(f"UncertaintyConfig.observation: {exc}; give numbers separated by commas") from exc


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
    x = x[rng.permutation(len(x))]
    n_test = min(config.n_test, len(x) // 2)
    return x[n_test:], x[:n_test], None


def _model_row(
    name: str, model: Any, test: np.ndarray, config: UncertaintyConfig, seed: int
) -> dict[str, Any]:
    samples = model.sample(len(test), seed)
    result = c2st(
        test,
        samples,
        seed=config.seed + 1,
        n_folds=config.c2st_folds,
        classifier=config.c2st_classifier,
        n_jobs=C2ST_JOBS,
    )
    return {
        "model": name,
        "c2st": result.accuracy,
        "c2st_error": result.error,
        "c2st_pvalue": result.pvalue,
        "nll": heldout_nll(model, test),
        "samples": samples,
    }


def run_uncertainty(config: UncertaintyConfig, progress: Progress) -> dict[str, Any]:
    """Fit the densities of one toy set and compare their C2ST, NLL and p-values; see the module doc."""
    config.validate()
    t0 = time.perf_counter()
    progress.update(0.0, f"loading toys '{config.toys}'")
    train_all, test, truth = load_toy_set(config)
    dim = train_all.shape[1]
    toy_sets.check_toys(train_all, source=f"toys '{config.toys}'")
    observation = None
    if config.observation.strip():
        observation = check_observation(parse_observation(config.observation), dim)
    rng = np.random.default_rng([config.seed, 5])
    order = rng.permutation(len(train_all))
    n_val = max(1, int(round(config.val_fraction * len(train_all))))
    val, train = train_all[order[:n_val]], train_all[order[n_val:]]
    progress.log(
        f"{len(train)} training, {len(val)} validation, {len(test)} held-out toys in {dim} dimensions"
    )

    progress.update(0.02, "fitting Gaussians")
    gaussian = GaussianDensity.fit(train_all)
    marginal = MarginalGaussianDensity.fit(train_all)
    progress.update(0.05, "non-Gaussianity C2ST")
    rows = {"gaussian": _model_row("gaussian", gaussian, test, config, config.seed + 10)}
    progress.metric("c2st", rows["gaussian"]["c2st"], step=0, model="gaussian")
    rows["improved_baseline"] = {**rows["gaussian"], "model": "improved_baseline"}
    rows["marginal_gaussian"] = _model_row("marginal_gaussian", marginal, test, config, config.seed + 11)
    progress.metric("c2st", rows["marginal_gaussian"]["c2st"], step=0, model="marginal_gaussian")

    progress.update(0.1, f"training the flow ({config.model})")
    t_fit = time.perf_counter()
    flow, fit_result = fit_flow(train, val, config.flow_settings(), progress.subrange(0.1, 0.75))
    train_seconds = time.perf_counter() - t_fit
    progress.check_cancelled()
    progress.update(0.75, "evaluating the flow")
    rows["flow"] = _model_row("flow", flow, test, config, config.seed + 12)
    progress.metric("c2st", rows["flow"]["c2st"], step=0, model="flow")
    latent = latent_c2st(
        flow.to_latent, test, seed=config.seed + 1, n_folds=config.c2st_folds, n_jobs=C2ST_JOBS
    )
    if truth is not None:
        rows["truth"] = _model_row("truth", truth, test, config, config.seed + 13)

    progress.update(0.85, "p-values")
    n_mc = config.n_pvalue_samples
    pvalues = pd.DataFrame({"toy": np.arange(len(test))})
    pvalues["gaussian"] = gaussian.chi2_pvalue(test)
    models = {"improved_baseline": gaussian, "marginal_gaussian": marginal, "flow": flow}
    if truth is not None:
        models["truth"] = truth
    for k, (name, model) in enumerate(models.items()):
        progress.check_cancelled()
        pvalues[name], pvalues[f"{name}_error"] = density_pvalues(
            model, test, n_mc, seed=config.seed + 20 + k
        )

    metrics = pd.DataFrame(
        [{k: v for k, v in rows[m].items() if k != "samples"} for m in MODELS if m in rows]
    ).set_index("model")
    for m in metrics.index:
        if truth is not None:
            for key, value in pvalue_metrics(pvalues[m], pvalues["truth"]).items():
                metrics.loc[m, key] = value
        else:
            for key in ("pvalue_r", "pvalue_mse", "pvalue_r2"):
                metrics.loc[m, key] = np.nan
    metrics = metrics.reset_index()

    observed = pd.DataFrame()
    if observation is not None:
        observed = observation_pvalues(observation, gaussian, models, n_mc, config.seed + 30)

    history = pd.DataFrame(fit_result.history)
    kept = min(KEPT_SAMPLES, len(test))
    result: dict[str, Any] = {
        "metrics": metrics,
        "pvalues": pvalues,
        "observed": observed,
        "history": history,
        "toys_sample": test[:kept].astype(np.float32),
        "flow_sample": rows["flow"]["samples"][:kept].astype(np.float32),
        "gaussian_sample": rows["gaussian"]["samples"][:kept].astype(np.float32),
        "non_gaussianity_c2st": rows["gaussian"]["c2st"],
        "non_gaussianity_pvalue": rows["gaussian"]["c2st_pvalue"],
        "latent_c2st": latent.accuracy,
        "latent_c2st_pvalue": latent.pvalue,
        "c2st_classifier": config.c2st_classifier,
        "toys": config.toys,
        "dim": dim,
        "n_train": len(train),
        "n_test": len(test),
        "has_truth": truth is not None,
        "best_epoch": fit_result.best_epoch,
        "train_seconds": train_seconds,
    }
    if config.run_near_far:
        progress.update(0.9, "near-to-far models")
        result["near_far"] = run_near_far(config, progress.subrange(0.9, 1.0))
    result["seconds"] = time.perf_counter() - t0
    progress.update(1.0, "done")
    return result


def observation_pvalues(
    observation: np.ndarray, gaussian: GaussianDensity, models: dict[str, Any], n_samples: int, seed: int
) -> pd.DataFrame:
    """p-values of one observed vector (D,): chi2 of the Gaussian and the density rank under each model,
    with Monte-Carlo errors; one row per model."""
    rows = [
        {
            "model": "gaussian",
            "method": "chi2 (Mahalanobis)",
            "pvalue": float(gaussian.chi2_pvalue(observation)[0]),
            "error": 0.0,
            "chi2": float(gaussian.mahalanobis2(observation)[0]),
        }
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


def run_near_far(config: UncertaintyConfig, progress: Progress) -> pd.DataFrame:
    """Train the transformer and the conditional flow on the near/far toy; the evaluation table."""
    toy = toy_sets.near_far_toy(dim=config.near_far_dim, seed=config.seed)
    near, far = toy.sample(config.near_far_events, seed=config.seed + 2)
    test_near, test_far = toy.sample(min(2_000, config.n_test), seed=config.seed + 3)
    n_val = max(1, int(round(config.val_fraction * len(near))))
    settings = ndfd.NearFarSettings(epochs=config.near_far_epochs, device=config.device, seed=config.seed)
    models = {}
    for k, kind in enumerate(ndfd.NDFD_MODELS):
        models[kind], _ = ndfd.fit_near_far(
            kind,
            (near[n_val:], far[n_val:]),
            (near[:n_val], far[:n_val]),
            settings,
            progress.subrange(k / 2, (k + 1) / 2),
        )
    return ndfd.evaluate_near_far(models, toy, test_near, test_far, n_samples=500, seed=config.seed)


WORKFLOW = Workflow(
    name="uncertainty",
    title="Uncertainties",
    description="Normalizing flows for non-Gaussian systematic toys: C2ST, flow vs Gaussian p-values, "
    "near-to-far prediction.",
    config_cls=UncertaintyConfig,
    run=run_uncertainty,
)
