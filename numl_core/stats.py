"""Statistics shared by several workflows: chi2 with a covariance, covariances of replicas, effective
sample sizes and weight capping. Pure NumPy functions, no workflow code (the definitions are stated in
numl's documentation, ``docs/physics.md``).

>>> round(relative_ess(np.array([1.0, 3.0])), 3)
0.8
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def chi2_with_covariance(data: np.ndarray, model: np.ndarray, cov: np.ndarray) -> float:
    """chi2 = (d - m)^T C^-1 (d - m), solved without forming the inverse.

    >>> chi2_with_covariance(np.array([1.0, 2.0]), np.array([0.0, 0.0]), np.eye(2))
    5.0
    """
    r = np.asarray(data, float) - np.asarray(model, float)
    return float(r @ np.linalg.solve(np.asarray(cov, float), r))


def covariance_from_replicas(hists: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Covariance (B, B) of R replica histograms (R, B).

    ``center`` None: sample covariance about the replicas' mean (divides by R - 1, as ``np.cov``).
    ``center`` (B,), e.g. the nominal result: mean of (h - center)(h - center)^T (divides by R), the
    usual spread of systematic throws about the nominal.

    >>> covariance_from_replicas(np.array([[1.0, 2.0], [3.0, 2.0]])).tolist()
    [[2.0, 0.0], [0.0, 0.0]]
    """
    h = np.asarray(hists, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"replicas must have shape (R, B), got {h.shape}")
    if center is None:
        if len(h) < 2:
            raise ValueError("a sample covariance needs at least 2 replicas")
        r = h - h.mean(axis=0)
        return r.T @ r / (len(h) - 1)
    r = h - np.asarray(center, dtype=np.float64)
    return r.T @ r / len(h)


def kish_ess(w: Any) -> Any:
    """Kish's effective sample size (sum w)^2 / sum w^2 along the last axis (NumPy arrays or torch tensors).

    >>> float(kish_ess(np.array([1.0, 1.0, 2.0])))
    2.6666666666666665
    """
    return w.sum(-1) ** 2 / (w**2).sum(-1)


def relative_ess(w: np.ndarray) -> float:
    """RESS = (sum w)^2 / (N sum w^2) in (0, 1]: Kish's ESS per event; 1 for constant weights.

    >>> round(relative_ess(np.array([1.0, 3.0])), 3)
    0.8
    """
    w = np.asarray(w, float)
    return float(w.sum() ** 2 / (len(w) * np.sum(w**2)))  # kish_ess(w) / N, in this order of operations


@dataclass(frozen=True)
class CappedWeights:
    """Weights capped at ``cap`` (the ``quantile`` of the raw weights) and the relative bias of the
    integral that capping causes, (sum w - sum w_capped) / sum w."""

    weights: np.ndarray
    cap: float
    quantile: float
    bias: float


def cap_weights(w: np.ndarray, quantile: float = 0.9999) -> CappedWeights:
    """Cap weights at their ``quantile`` (1.0: no cap).

    >>> c = cap_weights(np.array([1.0, 1.0, 1.0, 5.0]), quantile=0.5)
    >>> c.cap, c.bias
    (1.0, 0.5)
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"weight cap quantile {quantile} must lie in (0, 1]")
    w = np.asarray(w, float)
    cap = float(np.quantile(w, quantile)) if quantile < 1.0 else float(w.max())
    capped = np.minimum(w, cap)
    return CappedWeights(capped, cap, quantile, float((w.sum() - capped.sum()) / w.sum()))
