"""The uncertainty workflow's inputs: :class:`UncertaintyConfig` and the observation it may carry."""

from __future__ import annotations

import numpy as np
import param

from numl_core.config import ConfigError
from numl_core.data.generators import toys as toy_sets
from numl_core.training import SCHEDULES, TrainingConfig
from numl_core.uncertainty.c2st import CLASSIFIERS
from numl_core.uncertainty.model import FLOW_GRAD_CLIP, FLOW_MODELS, STANDARDISATIONS, FlowSettings

FLOW_FIELDS = ("model", "transforms", "hidden_features", "hidden_layers", "coupling", "standardise")
"""The config fields that are :class:`~numl_core.uncertainty.model.FlowSettings` fields of the same name."""
TOY_SETS = [*toy_sets.TOY_KINDS, *(f"nd280_{k}" for k in toy_sets.UNIVERSE_KINDS), "file"]


class UncertaintyConfig(TrainingConfig):
    """Inputs of one toy-density and p-value study; ``seed`` (toys, splits and training), ``device``,
    ``epochs``, ``batch_size`` and ``learning_rate`` (of the flow) come from
    :class:`~numl_core.training.TrainingConfig`. Presets: "quick look" (the dashboard's sizes, a minute or
    two on a laptop) and "paper size" (the full benchmark of ``benchmarks/uncertainty.py``: 800,000 toys,
    batches of 2048, a cosine schedule over 10 epochs)."""

    epochs = 300
    ESSENTIALS = (
        "toys",
        "toy_file",
        "dim",
        "n_toys",
        "n_test",
        "model",
        "standardise",
        "epochs",
        "observation",
        "device",
    )
    LABELS = {
        "toys": "Toy set",
        "toy_file": "Toy file",
        "dim": "Dimensions",
        "n_toys": "Training toys",
        "n_test": "Held-out toys",
        "val_fraction": "Validation fraction",
        "nd280_binning": "ND280 binning",
        "nd280_events": "ND280 events per universe",
        "model": "Flow type",
        "transforms": "Flow transforms",
        "hidden_features": "Units per hidden layer",
        "hidden_layers": "Hidden layers per transform",
        "coupling": "Coupling masks (fast sampling)",
        "standardise": "Standardisation",
        "schedule": "Learning-rate schedule",
        "patience": "Early-stopping patience [epochs]",
        "n_pvalue_samples": "Samples per p-value",
        "c2st_classifier": "C2ST classifier",
        "c2st_folds": "C2ST folds",
        "observation": "Observation (comma-separated)",
        "score_run": "Run to score with (score)",
        "observation_file": "Observation file (score)",
        "run_near_far": "Also train near-to-far models",
        "near_far_dim": "Near/far quantities per detector",
        "near_far_events": "Near/far training pairs",
        "near_far_epochs": "Near/far epochs (at most)",
    }
    NAMED_PRESETS = {
        "quick look": {
            "n_toys": 10_000,
            "n_test": 1_000,
            "epochs": 40,
            "hidden_features": 128,
            "n_pvalue_samples": 20_000,
        },
        "paper size": {
            "n_toys": 800_000,
            "n_test": 2_000,
            "val_fraction": 0.1,
            "epochs": 10,
            "patience": 4,
            "batch_size": 2_048,
            "schedule": "cosine",
            "n_pvalue_samples": 100_000,
            "hidden_features": 128,
        },
    }

    toys = param.Selector(
        default="mixture",
        objects=TOY_SETS,
        doc="Toy set: 50-D Gaussian mixture, log-normal cases on the T2K covariance, the sinh-arcsinh toy "
        "(the T2K correlation bent into skewed, heavy-tailed marginals: the hard case), ND280 universes "
        "(flux, cross-section or detector throws) or a file.",
    )
    toy_file = param.String(
        default="", doc="Toy matrix (.csv, .parquet, .npz), one universe per row; used when toys is 'file'."
    )
    dim = param.Integer(
        default=50,
        bounds=(2, 71),
        doc="Dimensions of the built-in T2K-covariance toys (the mixture is always 50-D); typical 10-71.",
    )
    n_toys = param.Integer(
        default=50_000,
        bounds=(100, 5_000_000),
        doc="Toys drawn (built-in) or used (file: after a shuffle seeded by seed and the n_test held-out "
        "rows, the next n_toys rows; fewer if the file is shorter) for training.",
    )
    n_test = param.Integer(
        default=2_000,
        bounds=(20, 1_000_000),
        doc="Held-out toys for C2ST, NLL and the p-value comparison; typical 1,000-5,000.",
    )
    val_fraction = param.Number(
        default=0.2, bounds=(0.05, 0.5), doc="Fraction of training toys for validation; typical 0.1-0.2."
    )
    nd280_binning = param.Selector(
        default="dpt",
        objects=["dpt", "dalphat", "dphit", "dpt_t2k", "dphit_t2k"],
        doc="Binning of the ND280 universes (one dimension per bin).",
    )
    nd280_events = param.Integer(
        default=50_000,
        bounds=(1_000, 2_000_000),
        doc="ND280 events behind the universes; typical 10,000-200,000.",
    )
    model = param.Selector(
        default="maf",
        objects=list(FLOW_MODELS),
        doc="Flow: affine (maf) or spline (nsf; better for skewed, heavy-tailed toys).",
    )
    transforms = param.Integer(default=6, bounds=(1, 20), doc="Flow transforms; typical 4-10.")
    hidden_features = param.Integer(
        default=256, bounds=(8, 2048), doc="Units per hidden layer; typical 64-512."
    )
    hidden_layers = param.Integer(
        default=2, bounds=(1, 5), doc="Hidden layers per transform network; typical 2-3."
    )
    coupling = param.Boolean(default=True, doc="Coupling (two-pass) masks: fast sampling in many dimensions.")
    standardise = param.Selector(
        default="whiten",
        objects=list(STANDARDISATIONS),
        doc="Standardisation before the flow: whiten, per-dimension zscore, log (positive toys), asinh of "
        "robust z-scores (heavy tails) or none.",
    )
    schedule = param.Selector(
        default="plateau",
        objects=list(SCHEDULES),
        doc="Learning-rate schedule: constant, cosine to zero over the epochs, or halved on a plateau.",
    )
    patience = param.Integer(
        default=20,
        bounds=(0, 1_000),
        doc="Early-stopping patience: epochs without a lower validation loss before training stops; "
        "typical 4-20 (0: never).",
    )
    n_pvalue_samples = param.Integer(
        default=100_000,
        bounds=(1_000, 10_000_000),
        doc="Model samples behind each density-rank p-value; typical 20,000-1,000,000 (the Monte-Carlo "
        "error falls as one over the square root).",
    )
    c2st_classifier = param.Selector(
        default="rf",
        objects=list(CLASSIFIERS),
        doc="Classifier of the two-sample test (C2ST) that tells toys from model samples.",
    )
    c2st_folds = param.Integer(default=5, bounds=(2, 20), doc="C2ST cross-validation folds; typical 3-10.")
    observation = param.String(
        default="", doc="Observed vector, comma-separated, one value per dimension (optional)."
    )
    score_run = param.String(
        default="",
        doc="The 'score' action: a finished run (id in the runs folder, or its folder) whose densities score "
        "the observations.",
    )
    observation_file = param.String(
        default="",
        doc="The 'score' action: observations to score, one per row (CSV with a header, parquet, npz or "
        "text of comma-separated values); empty: the observation field.",
    )
    run_near_far = param.Boolean(default=False, doc="Also train the near-to-far transformer and flow.")
    near_far_dim = param.Integer(
        default=3, bounds=(1, 20), doc="Quantities per detector in the near/far toy; typical 2-5."
    )
    near_far_events = param.Integer(
        default=50_000,
        bounds=(200, 5_000_000),
        doc="Near/far training pairs; typical 20,000-100,000.",
    )
    near_far_epochs = param.Integer(
        default=100, bounds=(1, 5_000), doc="Maximum epochs of each near/far model; typical 30-200."
    )

    def validate(self) -> None:
        if self.toys == "file" and not self.toy_file:
            raise ConfigError("UncertaintyConfig.toy_file: required when toys is 'file'")
        if self.standardise == "log" and self.toys in ("mixture", "sinh_arcsinh"):
            raise ConfigError(
                f"UncertaintyConfig.standardise: 'log' needs positive toys; the {self.toys} toys are not"
            )
        for part in self.observation.split(";"):  # several only for the score action
            if part.strip():
                parse_observation(part)

    def flow_settings(self) -> FlowSettings:
        """The flow's architecture and training (schedule and patience from this config)."""
        return FlowSettings(
            **{name: getattr(self, name) for name in FLOW_FIELDS},
            train=self.train_settings(grad_clip=FLOW_GRAD_CLIP, mixed_precision=False),
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
