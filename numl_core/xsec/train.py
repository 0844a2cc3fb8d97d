"""Training bootstrap ensembles and Monte-Carlo-dropout networks of cross sections.

A bootstrap ensemble of ``M`` members is one :class:`~numl_core.xsec.model.XsecNet` with stacked
weights trained in one loop by :func:`numl_core.training.fit`: member ``m`` is trained on its own
bootstrap resample of the training points (drawn with replacement, Efron 1979), so its batches and
batch-norm statistics are its own. The spread of the members' predictions estimates the model
uncertainty. Monte-Carlo dropout (Gal & Ghahramani, arXiv:1506.02142) instead trains one network with
dropout and samples predictions with dropout left on.

Training runs by default in two stages (``residual="hybrid"``): log residuals first, then linear ones.
The live metrics of a fit with prefix ``p`` are the training loop's ``{p}loss`` (linear stage) and
``{p}{LOG_STAGE}loss`` (log stage); :func:`loss_series` names them, so the workflow declares exactly
what :func:`train_model` reports.

>>> rng = np.random.default_rng(0)
>>> bootstrap_indices(5, 3, rng).shape
(5, 3)
>>> loss_series("boot_", "hybrid", ("val",))
['boot_log_loss (val, chi2)', 'boot_loss (val, chi2)']
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from numl_core.device import resolve_device
from numl_core.jobs import Progress
from numl_core.live import series
from numl_core.training import FitResult, TrainSettings, fit
from numl_core.xsec.fit import Chi2Loss, NormalisedModel
from numl_core.xsec.model import FEATURES, XsecNet
from numl_core.xsec.points import PointSet

FIXED_TRAINING: dict[str, Any] = {"schedule": "cosine", "patience": 0, "mixed_precision": False}
"""Training-loop settings every cross-section fit shares: cosine decay of the learning rate, no early
stopping, float32 (bf16 keeps ~3 digits: too coarse for percent-level residuals of log(xsec))."""
LOG_STAGE = "log_"
"""Metric-prefix infix of the log-residual stage of a hybrid fit."""
LOSS_METRIC = "loss"
"""The name :func:`numl_core.training.fit` gives its loss records after the metric prefix."""
CHI2_TERM = "chi2"
"""The loss term of :class:`~numl_core.xsec.fit.Chi2Loss` that the live plots draw."""


def train_settings(**changes: Any) -> TrainSettings:
    """The training loop's settings of a cross-section fit: :data:`FIXED_TRAINING`, 1000 passes of
    batches of 128 points at learning rate 3e-3, then ``changes``."""
    return TrainSettings(**{"epochs": 1000, "batch_size": 128, "lr": 3e-3, **FIXED_TRAINING, **changes})


@dataclass
class EnsembleSettings:
    """Network and training settings.

    ``members`` networks of ``depth`` blocks x ``width`` units with ``dropout``; ``bootstrap``: each
    member trains on a bootstrap resample (otherwise all see every point and differ by initialisation);
    ``train``: the training loop (``epochs`` passes over the training points, reported in at most
    ``max_reports`` trainer epochs, each then covering several passes, which keeps checkpoints and live
    metrics affordable; AdamW with ``lr``, ``weight_decay`` and ``schedule``; ``patience`` reports
    without a lower validation loss before stopping (0: never); ``device``; ``seed`` of initialisation
    and resampling); ``residual`` of the chi2, "log", "linear" (see :class:`~numl_core.xsec.fit.Chi2Loss`)
    or "hybrid" (log for the first half of the epochs, then linear); ``features`` the network's inputs
    (:data:`~numl_core.xsec.model.INPUTS`); ``anchor``: when continuing from a model (``init`` of
    :func:`train_model`), the strength of the pull back to its weights (see
    :class:`~numl_core.xsec.fit.Chi2Loss`; 0: none).
    """

    members: int = 10
    depth: int = 4
    width: int = 64
    dropout: float = 0.0
    batch_norm: bool = True
    bootstrap: bool = True
    max_reports: int = 150
    residual: str = "hybrid"
    features: tuple[str, ...] = FEATURES
    anchor: float = 0.0
    train: TrainSettings = field(default_factory=train_settings)

    @property
    def passes_per_report(self) -> int:
        return max(1, math.ceil(self.train.epochs / self.max_reports))

    def training(self, **changes: Any) -> EnsembleSettings:
        """A copy with the training loop's settings ``changes`` (e.g. ``epochs``, ``lr``)."""
        return replace(self, train=replace(self.train, **changes))


@dataclass
class TrainedModel:
    """A fitted :class:`NormalisedModel`, the trainer's record, the wall time [s] and the passes over
    the training points run."""

    model: NormalisedModel
    fit: FitResult
    seconds: float
    passes: int


def stage_prefixes(metric_prefix: str, residual: str) -> list[str]:
    """The metric prefixes a fit with ``metric_prefix`` and ``residual`` reports under, in order."""
    return [f"{metric_prefix}{LOG_STAGE}", metric_prefix] if residual == "hybrid" else [metric_prefix]


def loss_series(metric_prefix: str, residual: str, splits: tuple[str, ...] = ("train", "val")) -> list[str]:
    """The live chi2 series (labels, see :func:`numl_core.live.series`) of a fit, stage by stage."""
    return [
        series(f"{prefix}{LOSS_METRIC}", split=split, term=CHI2_TERM)
        for prefix in stage_prefixes(metric_prefix, residual)
        for split in splits
    ]


def bootstrap_indices(n: int, members: int, rng: np.random.Generator, bootstrap: bool = True) -> np.ndarray:
    """Point indices ``(n, members)``: column ``m`` is member ``m``'s resample (or ``arange(n)``)."""
    if not bootstrap:
        return np.repeat(np.arange(n)[:, None], members, axis=1)
    return rng.integers(0, n, size=(n, members))


def new_model(points: PointSet, train: np.ndarray, settings: EnsembleSettings) -> NormalisedModel:
    """A fresh :class:`XsecNet` from ``settings`` (seeded), scaled to the training points, with one
    normalisation factor per member and data set."""
    torch.manual_seed(settings.train.seed)
    net = XsecNet(
        settings.members,
        settings.depth,
        settings.width,
        settings.dropout,
        settings.batch_norm,
        features=settings.features,
    )
    net.set_scaling(torch.as_tensor(points.x[train]), torch.as_tensor(np.log(points.xsec[train])))
    return NormalisedModel(net, points.n_sets)


def train_model(
    points: PointSet,
    train: np.ndarray,
    val: np.ndarray | None,
    settings: EnsembleSettings,
    progress: Progress | None = None,
    *,
    init: NormalisedModel | None = None,
    name: str = "ensemble",
    metric_prefix: str = "",
) -> TrainedModel:
    """Fit a (bootstrap) ensemble to the points ``train`` of ``points``, validating on ``val``.

    ``train``/``val`` are index arrays into ``points``. ``init`` continues from an existing model
    (transfer learning; its frozen blocks stay frozen); otherwise a new :class:`XsecNet` is built from
    ``settings`` and scaled to the training points (:func:`new_model`). Live metrics carry
    ``metric_prefix`` (:func:`stage_prefixes`).
    """
    points.validate()
    progress = progress if progress is not None else Progress()
    if settings.residual == "hybrid":
        return _train_hybrid(points, train, val, settings, progress, init, name, metric_prefix)
    device = resolve_device(settings.train.device)
    rng = np.random.default_rng([settings.train.seed, 11])
    model = new_model(points, train, settings) if init is None else init
    members = model.net.n_members
    loss = Chi2Loss.from_points(points, len(train), device, settings.residual)
    if settings.anchor and init is not None:  # fine-tuning: stay near the pretrained weights
        anchor = tuple(p.detach().clone() for p in model.net.parameters())
        loss = replace(loss, anchor=anchor, anchor_strength=settings.anchor)
    columns = bootstrap_indices(len(train), members, rng, settings.bootstrap and members > 1)
    train_idx = np.tile(np.asarray(train)[columns], (settings.passes_per_report, 1))
    val_data = None
    if val is not None and len(val):
        val_data = (torch.as_tensor(np.repeat(np.asarray(val)[:, None], members, axis=1)),)
    trainer = replace(settings.train, epochs=math.ceil(settings.train.epochs / settings.passes_per_report))
    t0 = time.perf_counter()
    result = fit(
        model,
        loss,
        (torch.as_tensor(train_idx),),
        val_data,
        trainer,
        progress,
        name=name,
        metric_prefix=metric_prefix,
        fingerprint={"members": members, "n_train": len(train), "passes": settings.passes_per_report},
    )
    passes = result.epochs_run * settings.passes_per_report
    return TrainedModel(model.cpu().eval(), result, time.perf_counter() - t0, passes)


def _train_hybrid(
    points: PointSet,
    train: np.ndarray,
    val: np.ndarray | None,
    settings: EnsembleSettings,
    progress: Progress,
    init: NormalisedModel | None,
    name: str,
    metric_prefix: str,
) -> TrainedModel:
    """Half the epochs with log residuals (robust far from the data), the rest with linear ones (the
    chi2 that is reported); live metrics of the first half carry the infix :data:`LOG_STAGE`."""
    log_prefix, linear_prefix = stage_prefixes(metric_prefix, "hybrid")
    first_epochs = max(1, settings.train.epochs // 2)
    first = train_model(
        points,
        train,
        val,
        replace(settings.training(epochs=first_epochs), residual="log"),
        progress.subrange(0.0, 0.5),
        init=init,
        name=f"{name}-log",
        metric_prefix=log_prefix,
    )
    second = train_model(
        points,
        train,
        val,
        replace(settings.training(epochs=max(1, settings.train.epochs - first_epochs)), residual="linear"),
        progress.subrange(0.5, 1.0),
        init=first.model,
        name=name,
        metric_prefix=linear_prefix,
    )
    second.fit.history = first.fit.history + second.fit.history
    second.fit.epochs_run += first.fit.epochs_run
    return TrainedModel(
        second.model, second.fit, first.seconds + second.seconds, first.passes + second.passes
    )
