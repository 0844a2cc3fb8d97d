"""What one uncertainty run produced: :class:`UncertaintyResult`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from numl_core.results import Result

MODELS = ("gaussian", "improved_baseline", "marginal_gaussian", "flow", "truth")
"""Rows of the metrics table; ``gaussian`` uses the chi2 p-value, the others the density rank."""
C2ST = "c2st"
"""The C2ST accuracy: a column of the metrics table and the name of its live records (one per model)."""


@dataclass
class UncertaintyResult(Result):
    """The densities of one toy set compared (see :mod:`numl_core.uncertainty.workflow`).

    Tables:

    - ``metrics``: one row per model of :data:`MODELS` that was fitted (``truth`` only where the toy's
      density is known): ``model``, ``c2st`` (held-out C2ST accuracy of the model's samples against the
      held-out toys; 0.5 = indistinguishable), ``c2st_error`` (its fold error), ``c2st_pvalue``, ``nll``
      (held-out NLL, nats per toy) and ``pvalue_r``, ``pvalue_mse``, ``pvalue_r2`` (agreement of its
      p-values with the exact ones; NaN without a truth);
    - ``pvalues``: one row per held-out toy (``toy``): the chi2 p-value ``gaussian`` and each density
      model's density-rank p-value with its Monte-Carlo error (``flow``, ``flow_error``, ...);
    - ``observed``: the observation's p-values (``model``, ``method``, ``pvalue``, ``error``, ``chi2``);
      empty without an observation;
    - ``history``: the flow's per-epoch training history (``epoch``, ``train_loss``, ``val_loss``, ``lr``,
      ``seconds``);
    - ``near_far``: the near-to-far evaluation (``model``, ``nll``, ``coverage_68``, ``coverage_95``,
      ``nll_minus_truth``), None unless the run trained the near-to-far models.

    Arrays (float32, at most 2 000 rows, for corner plots): ``toys_sample`` (held-out toys),
    ``flow_sample`` and ``gaussian_sample`` (samples of the flow and the Gaussian).

    Numbers: ``non_gaussianity_c2st`` and ``non_gaussianity_pvalue`` (C2ST of the toys against their
    Gaussian), ``latent_c2st`` and ``latent_c2st_pvalue`` (C2ST of the flow's latent image of the held-out
    toys against N(0, I)), ``c2st_classifier``, ``toys`` (the toy set), ``dim``, ``n_train`` and
    ``n_test`` (toys the flow trained on and held-out toys), ``has_truth``, ``best_epoch`` of the flow,
    ``train_seconds`` (the flow's training) and ``seconds`` (the whole run).
    """

    metrics: pd.DataFrame
    pvalues: pd.DataFrame
    observed: pd.DataFrame
    history: pd.DataFrame
    toys_sample: np.ndarray
    flow_sample: np.ndarray
    gaussian_sample: np.ndarray
    non_gaussianity_c2st: float
    non_gaussianity_pvalue: float
    latent_c2st: float
    latent_c2st_pvalue: float
    c2st_classifier: str
    toys: str
    dim: int
    n_train: int
    n_test: int
    has_truth: bool
    best_epoch: int
    train_seconds: float
    near_far: pd.DataFrame | None = None
    seconds: float = 0.0

    HEADLINE_FIELDS = ("metrics",)

    @classmethod
    def headline_of(cls, values: Mapping[str, Any]) -> dict[str, float | None]:
        """The held-out C2ST accuracy of the flow's and the Gaussian's samples (``C2ST flow``,
        ``C2ST Gaussian``; 0.5 = indistinguishable from the toys)."""
        metrics = values.get("metrics")
        if not isinstance(metrics, pd.DataFrame) or C2ST not in metrics:
            return {}
        by_model = dict(zip(metrics["model"], metrics[C2ST], strict=True))
        return {"C2ST flow": by_model.get("flow"), "C2ST Gaussian": by_model.get("gaussian")}


@dataclass
class ScoreResult(Result):
    """p-values of new observations under a finished run's densities (the ``score`` action).

    ``observed``: one row per observation and model: ``observation`` (row number), ``model``, ``method``
    (chi2, density rank among the toys for the improved baseline, or density rank among model samples),
    ``pvalue``, its Monte-Carlo ``error`` and the Mahalanobis ``chi2``; ``run``: the scored run's folder;
    ``n_observations``; ``seconds``.
    """

    observed: pd.DataFrame
    run: str
    n_observations: int
    seconds: float = 0.0
