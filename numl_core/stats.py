"""Statistics shared by several workflows: chi2 with a covariance, covariances of replicas and the
correction of their inverse, a leave-one-out check of a covariance, effective sample sizes and weight
capping. Pure NumPy functions, no workflow code (the definitions are stated in
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


def hartlap_factor(n_replicas: int, n_bins: int) -> float:
    """(N - p - 2) / (N - 1): the factor that makes the inverse of a sample covariance of ``n_replicas``
    N Gaussian replicas in ``n_bins`` p bins an unbiased estimate of the inverse covariance (Hartlap,
    Simon & Schneider, A&A 464, 399 (2007)). Without it, chi2 values are too large by (N - 1) / (N - p - 2),
    1.55 for 60 replicas in 20 bins. Needs N > p + 2.

    >>> round(hartlap_factor(100, 58), 4)
    0.404
    """
    if n_replicas <= n_bins + 2:
        raise ValueError(
            f"the Hartlap correction needs more replicas than bins + 2: {n_replicas} replicas, {n_bins} bins "
            "(use shrinkage, or more replicas)"
        )
    return (n_replicas - n_bins - 2) / (n_replicas - 1)


@dataclass(frozen=True)
class Chi2:
    """A chi2 with its number of degrees of freedom ``ndof``, the ``dropped`` bins (no variance: left
    out), the ``correction`` applied to the estimated inverse covariance (the Hartlap factor, or 1) and
    the ``method`` that estimated the covariance (``hartlap``, ``shrinkage``, ``none``), from
    ``n_replicas`` replicas (0 for a known covariance)."""

    chi2: float
    ndof: int
    dropped: tuple[int, ...]
    correction: float
    method: str = "hartlap"
    n_replicas: int = 0

    @property
    def per_ndof(self) -> float:
        """chi2 / ndof."""
        return self.chi2 / self.ndof

    @property
    def p_value(self) -> float:
        """Probability of a larger chi2 when the difference is Gaussian with the covariance estimated.

        With the Hartlap correction from N replicas in p bins, chi2 / h = x^T S^-1 x is Hotelling's T^2
        of a difference x independent of the replicas: T^2 (N - p) / (p (N - 1)) follows F(p, N - p), so
        a chi2 / ndof of 1.5 is less rare than with a known covariance (p 0.06 against 0.008 for 58 bins
        and 100 replicas); otherwise the chi2 distribution with ``ndof`` degrees of freedom.

        >>> round(Chi2(87.0, 58, (), hartlap_factor(100, 58), "hartlap", 100).p_value, 3)
        0.062
        >>> round(Chi2(87.0, 58, (), 1.0, "none").p_value, 3)
        0.008
        """
        from scipy import stats

        n, p = self.n_replicas, self.ndof
        if self.method == "hartlap" and n > p + 2:
            t2 = self.chi2 / self.correction
            return float(stats.f.sf(t2 * (n - p) / (p * (n - 1)), p, n - p))
        return float(stats.chi2.sf(self.chi2, p))


def chi2_from_replicas(
    data: np.ndarray,
    model: np.ndarray,
    replicas: np.ndarray,
    extra_cov: np.ndarray | None = None,
    method: str = "hartlap",
) -> Chi2:
    """chi2 of ``data`` against ``model`` (B,) with the covariance of ``replicas`` (R, B) about their mean
    (plus ``extra_cov`` (B, B), e.g. a known statistical term), on the bins with non-zero variance.

    ``method`` "hartlap": the inverse of the estimated covariance is scaled by :func:`hartlap_factor`
    (exact for Gaussian replicas when ``extra_cov`` is absent; with it, the factor applies to the whole
    covariance and is an approximation on the safe side); "shrinkage": the Ledoit-Wolf shrunk
    covariance, well conditioned even with fewer replicas than bins; "none": the plain sample covariance;
    "auto": "hartlap" when there are more replicas than used bins + 2, else "shrinkage".
    """
    if method not in ("hartlap", "shrinkage", "none", "auto"):
        raise ValueError(f"method={method!r}: expected 'hartlap', 'shrinkage', 'none' or 'auto'")
    data, model = np.asarray(data, float), np.asarray(model, float)
    used = np.flatnonzero(np.var(replicas, axis=0) + (0.0 if extra_cov is None else np.diag(extra_cov)) > 0)
    if method == "auto":
        method = "hartlap" if len(replicas) > len(used) + 2 else "shrinkage"
    cov = covariance_from_replicas(replicas) if method != "shrinkage" else _shrunk(replicas)
    if extra_cov is not None:
        cov = cov + np.asarray(extra_cov, float)
    factor = hartlap_factor(len(replicas), len(used)) if method == "hartlap" else 1.0
    chi2 = factor * chi2_with_covariance(data[used], model[used], cov[np.ix_(used, used)])
    dropped = tuple(int(i) for i in np.setdiff1d(np.arange(len(data)), used))
    return Chi2(chi2, len(used), dropped, factor, method, len(replicas))


def _shrunk(replicas: np.ndarray) -> np.ndarray:
    from sklearn.covariance import ledoit_wolf

    h = np.asarray(replicas, float)
    return ledoit_wolf(h - h.mean(axis=0), assume_centered=True)[0] * len(h) / (len(h) - 1)


def leave_one_out_chi2(
    replicas: np.ndarray, metric: np.ndarray | None = None, method: str = "hartlap"
) -> np.ndarray:
    """Each replica's chi2 against the mean of the others, with the covariance of the others corrected
    by ``method`` (:func:`chi2_from_replicas`), scaled by (R - 1) / R so that its mean is the number of
    bins p for Gaussian replicas whose covariance is right (the difference from the others' mean has
    covariance C R / (R - 1)). A mean over replicas well above p flags results that scatter more than
    their covariance says (outliers, heavy tails). Shape (R,).

    ``metric`` (R, B): replicas paired with ``replicas`` (the same throws of another quantity) whose
    covariance, without replica i, is the chi2's instead. The mean is then an estimate of
    tr(C_metric^-1 C), the chi2 that the scatter of ``replicas`` alone gives in the metric's covariance,
    without the bias of measuring the replicas in a covariance built from themselves.

    >>> x = np.random.default_rng(0).normal(size=(400, 3))
    >>> round(float(leave_one_out_chi2(x).mean()), 1), round(float(leave_one_out_chi2(x / 2, x).mean()), 2)
    (3.0, 0.75)
    """
    h = np.asarray(replicas, float)
    m = h if metric is None else np.asarray(metric, float)
    r = len(h)
    out = np.empty(r)
    for i in range(r):
        others = np.delete(h, i, axis=0)
        fit = chi2_from_replicas(h[i], others.mean(axis=0), np.delete(m, i, axis=0), method=method)
        out[i] = fit.chi2 * (r - 1) / r
    return out


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
