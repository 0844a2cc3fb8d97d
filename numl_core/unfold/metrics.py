"""Covariances, chi2 and comparison metrics for unfolded distributions."""

from __future__ import annotations

import numpy as np


def chi2_with_covariance(data: np.ndarray, model: np.ndarray, cov: np.ndarray) -> float:
    """chi2 = (d - m)^T C^-1 (d - m), solved without forming the inverse.

    >>> chi2_with_covariance(np.array([1.0, 2.0]), np.array([0.0, 0.0]), np.eye(2))
    5.0
    """
    r = np.asarray(data, float) - np.asarray(model, float)
    return float(r @ np.linalg.solve(np.asarray(cov, float), r))
