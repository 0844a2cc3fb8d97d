"""Training of the uncertainty workflow's networks, top to bottom: the density flow on toys
(:func:`fit_flow`), then the near-to-far models on (near, far) pairs (:func:`fit_near_far`).

Both run the shared loop :func:`numl_core.training.fit`, which reports one loss record per epoch and
split, named ``{prefix}loss``: the names below are the only place these prefixes are spelled, and the
workflow's live plots (:data:`numl_core.uncertainty.workflow.LIVE_PLOTS`) are built from them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor, nn

from numl_core.data.schema import DataError
from numl_core.jobs import Progress
from numl_core.training import FitResult, fit
from numl_core.uncertainty.model import FlowDensity, FlowSettings, StandardisedFlow, build_flow
from numl_core.uncertainty.ndfd import NearFarSettings, build_model

FLOW_PREFIX = "flow_"
"""Prefix of the density flow's loss records."""
NEAR_FAR_PREFIX = "ndfd_"
"""Prefix of the near-to-far models' loss records (followed by the model kind)."""


def loss_name(prefix: str) -> str:
    """The name :func:`numl_core.training.fit` gives the loss records of a fit with ``metric_prefix``.

    >>> loss_name(FLOW_PREFIX)
    'flow_loss'
    """
    return f"{prefix}loss"


def near_far_prefix(kind: str) -> str:
    """The metric prefix of one near-to-far model (``"transformer"`` or ``"flow"``).

    >>> near_far_prefix("flow")
    'ndfd_flow_'
    """
    return f"{NEAR_FAR_PREFIX}{kind}_"


# -- the density flow -----------------------------------------------------------------------------
def _standardisation(ref: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(loc (D,), lower-triangular scale (D, D)) of a standardisation."""
    dim = ref.shape[1]
    if kind == "none":
        return np.zeros(dim), np.eye(dim)
    if kind == "zscore":
        return ref.mean(0), np.diag(ref.std(0, ddof=1))
    try:
        return ref.mean(0), np.linalg.cholesky(np.atleast_2d(np.cov(ref, rowvar=False)))
    except np.linalg.LinAlgError as exc:
        raise DataError(
            f"the toys' covariance ({dim} dimensions) is singular: they cannot be whitened"
        ) from exc


def _robust_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension median and interquartile range / 1.349 (the sd of a Gaussian; the sd where it is 0)."""
    q25, q50, q75 = np.percentile(x, [25, 50, 75], axis=0)
    scale = (q75 - q25) / 1.349
    scale = np.where(scale > 0, scale, x.std(axis=0))
    return q50, np.where(scale > 0, scale, 1.0)


def _flow_nll(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
    return {"loss": -model.log_prob(batch[0]).mean()}


def fit_flow(
    train: np.ndarray,
    val: np.ndarray,
    settings: FlowSettings,
    progress: Progress | None = None,
    *,
    name: str = "flow",
    metric_prefix: str | None = None,
) -> tuple[FlowDensity, FitResult]:
    """Train a flow on toys ``train`` (N, D) with early stopping on ``val`` (M, D); returns the model
    (best validation parameters) and :class:`numl_core.training.FitResult` (per-epoch NLL history).

    Loss records are named ``loss_name(metric_prefix)``, :data:`FLOW_PREFIX` by default; training never
    uses mixed precision (densities need float32 log-determinants)."""
    settings.validate()
    train, val = np.asarray(train, float), np.asarray(val, float)
    transform = settings.standardise if settings.standardise in ("log", "asinh") else "none"
    if transform == "log" and (np.any(train <= 0) or np.any(val <= 0)):
        raise DataError("standardise='log' needs positive toys; some values are zero or negative")
    pre_loc, pre_scale = _robust_scale(train)
    if transform == "log":
        mapped = np.log(train)
    elif transform == "asinh":
        mapped = np.arcsinh((train - pre_loc) / pre_scale)
    else:
        mapped = train
    kind = "zscore" if transform == "asinh" else settings.standardise
    loc, scale_tril = _standardisation(mapped, kind)
    torch.manual_seed(settings.train.seed)
    module = StandardisedFlow(
        build_flow(train.shape[1], settings),
        torch.as_tensor(loc, dtype=torch.float32),
        torch.as_tensor(scale_tril, dtype=torch.float32),
        transform,
        torch.as_tensor(pre_loc, dtype=torch.float32),
        torch.as_tensor(pre_scale, dtype=torch.float32),
    )
    result = fit(
        module,
        _flow_nll,
        (torch.as_tensor(train, dtype=torch.float32),),
        (torch.as_tensor(val, dtype=torch.float32),),
        dataclasses.replace(settings.train, mixed_precision=False),
        progress,
        name=name,
        metric_prefix=FLOW_PREFIX if metric_prefix is None else metric_prefix,
        fingerprint={"dim": train.shape[1], "n_train": len(train), **dataclasses.asdict(settings)},
    )
    return FlowDensity(module, train.shape[1]), result


# -- the near-to-far models -----------------------------------------------------------------------
def _pair_nll(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
    near, far = batch
    return {"loss": -model.log_prob(far, near).mean()}


def fit_near_far(
    kind: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    settings: NearFarSettings,
    progress: Progress | None = None,
) -> tuple[nn.Module, FitResult]:
    """Train one near-to-far model (:func:`numl_core.uncertainty.ndfd.build_model`) on (near, far)
    pairs; returns the model and the trainer's FitResult. Loss records: ``near_far_prefix(kind)``; no
    mixed precision (the conditional flow needs float32 log-determinants)."""
    as_t = [torch.as_tensor(a, dtype=torch.float32) for a in (*train, *val)]
    model = build_model(kind, (as_t[0], as_t[1]), settings)
    result = fit(
        model,
        _pair_nll,
        (as_t[0], as_t[1]),
        (as_t[2], as_t[3]),
        dataclasses.replace(settings.train, mixed_precision=False),
        progress,
        name=f"ndfd-{kind}",
        metric_prefix=near_far_prefix(kind),
        fingerprint={"kind": kind, "n": len(train[0]), **{k: str(v) for k, v in settings.__dict__.items()}},
    )
    return model, result
