"""Iterative Bayesian Unfolding (D'Agostini) with Adye error propagation, numerically equal to PyUnfold.

References: G. D'Agostini, NIM A 362, 487 (1995) and arXiv:1010.0632; T. Adye, arXiv:1105.1160 (error
propagation through the iterations); J. Bourbeau and Z. Hampel-Arias, JOSS 3, 741 (2018) (PyUnfold,
whose ``iterative_unfold`` this module reproduces number for number).

Conventions (PyUnfold's): ``response[effect, cause] = P(effect | cause)``; its column sums are the
efficiencies; counts are events (weighted).

The response-matrix ("systematic", MC-statistics) covariance is ``V1 = (dc/dP) Cov(P) (dc/dP)^T``. PyUnfold
forms ``dc/dP`` as a dense (causes, effects * causes) array and ``Cov(P)`` as a dense
(effects * causes)^2 array, which stops at ~200 bins. Here both are kept factorised: ``Cov(P)`` is
block-diagonal per cause with blocks ``diag(s_k) - q_k q_k^T`` (multinomial) or ``diag(s_k)`` (Poisson),
and each iteration's derivative ``D_t[i, j, k]`` is ``-R_t[j, i] a_t[k] + delta_ik W_t[i, j]``. With
Adye's recursion ``dc/dP_t = D_t + G_t dc/dP_{t-1}``, ``V1`` follows from (causes x causes) products only:
memory O(t C^2 + C E), time O(t^2 C^2 (C + E)) for t iterations, C causes and E effects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import gammaln

from numl_core.data.binning import bincount_weighted

logger = logging.getLogger(__name__)

COV_TYPES = ("multinomial", "poisson")


def _safe_inverse(x: np.ndarray) -> np.ndarray:
    """1 / x with 0 where x == 0 (PyUnfold's convention for empty bins)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    np.divide(1.0, x, out=out, where=x != 0)
    return out


# Test statistics between successive iterations (PyUnfold's definitions; ``new`` is the latest).
def ts_ks(new: np.ndarray, old: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between the normalised cumulative distributions."""
    return float(np.max(np.abs(np.cumsum(new) / np.sum(new) - np.cumsum(old) / np.sum(old))))


def ts_chi2(new: np.ndarray, old: np.ndarray) -> float:
    """Reduced chi2 between the two shapes, per bin."""
    n1, n2 = np.sum(new), np.sum(old)
    h_sum = np.where(new + old < 1, 1.0, new + old)
    h_dif = n2 * new - n1 * old
    return float(np.sum(h_dif * h_dif / h_sum) / (n1 * n2) / len(new))


def ts_bf(new: np.ndarray, old: np.ndarray) -> float:
    """Log Bayes factor (BenZvi et al., ApJ 738, 82 (2011))."""
    n1, n2 = np.sum(new), np.sum(old)
    ln_b = gammaln(n1 + n2 + 2) - gammaln(n1 + 1) - gammaln(n2 + 1)
    return float(ln_b + np.sum(gammaln(new + 1) + gammaln(old + 1) - gammaln(new + old + 2)))


def ts_rmd(new: np.ndarray, old: np.ndarray) -> float:
    """Maximum relative difference."""
    h_sum = np.where(new + old < 1, 1.0, new + old)
    return float(np.max(np.abs(new - old) / h_sum))


TEST_STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "ks": ts_ks,
    "chi2": ts_chi2,
    "bf": ts_bf,
    "rmd": ts_rmd,
}


@dataclass
class ResponseInputs:
    """Everything IBU needs from simulated events; leading (T,) axis when built from (T, N) weights.

    ``response`` (T?, E, C): P(effect | cause). ``response_err``: sqrt(sum w^2) of the migration counts
    over the truth count. ``efficiencies`` (T?, C): column sums of ``response``. ``efficiencies_err``:
    eps / sqrt(N_eff), N_eff = (sum w)^2 / sum w^2 per cause, so that PyUnfold's multinomial term
    recovers N_eff as (eps / err)^2. ``background`` (T?, E): selected events that are not truth signal
    in range. ``truth`` (T?, C): truth signal counts. ``migrations`` (T?, E, C): signal counts per
    (effect, cause).
    """

    response: np.ndarray
    response_err: np.ndarray
    efficiencies: np.ndarray
    efficiencies_err: np.ndarray
    background: np.ndarray
    truth: np.ndarray
    migrations: np.ndarray


def response_from_events(
    truth_index: np.ndarray,
    truth_in: np.ndarray,
    reco_index: np.ndarray,
    reco_in: np.ndarray,
    pass_truth: np.ndarray,
    pass_reco: np.ndarray,
    weights: np.ndarray | None,
    n_causes: int,
    n_effects: int,
) -> ResponseInputs:
    """Response, efficiencies and background from simulated events.

    Per event (N,): truth/reco flat bin indices and in-range masks (``Binning.index``), the truth signal
    definition and the reco selection. ``weights``: None, (N,) or (T, N) for T throws. Truth signal in
    range defines the causes; such an event that fails the selection, or is reconstructed outside the
    reco binning, lowers its cause's efficiency. Selected events in the reco range that are not truth
    signal in range are background.

    >>> r = response_from_events(np.array([0, 1, 1]), np.ones(3, bool), np.array([0, 1, 0]),
    ...     np.ones(3, bool), np.array([True, True, False]), np.array([True, False, True]), None, 2, 2)
    >>> r.efficiencies.tolist(), r.background.tolist()
    ([1.0, 0.0], [1.0, 0.0])
    """
    n = len(truth_index)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    signal = np.asarray(pass_truth, bool) & np.asarray(truth_in, bool)
    selected = np.asarray(pass_reco, bool) & np.asarray(reco_in, bool)
    truth_index, reco_index = np.asarray(truth_index, np.int64), np.asarray(reco_index, np.int64)
    w2 = w * w

    truth = bincount_weighted(truth_index[signal], w[..., signal], n_causes)
    truth_w2 = bincount_weighted(truth_index[signal], w2[..., signal], n_causes)
    matched = signal & selected
    flat = reco_index[matched] * n_causes + truth_index[matched]
    shape = (*w.shape[:-1], n_effects, n_causes)
    migrations = bincount_weighted(flat, w[..., matched], n_effects * n_causes).reshape(shape)
    migrations_w2 = bincount_weighted(flat, w2[..., matched], n_effects * n_causes).reshape(shape)
    bkg = selected & ~signal
    background = bincount_weighted(reco_index[bkg], w[..., bkg], n_effects)

    inv_truth = _safe_inverse(truth)[..., None, :]
    response = migrations * inv_truth
    efficiencies = response.sum(axis=-2)
    return ResponseInputs(
        response=response,
        response_err=np.sqrt(migrations_w2) * inv_truth,
        efficiencies=efficiencies,
        efficiencies_err=efficiencies * np.sqrt(truth_w2) * _safe_inverse(truth),
        background=background,
        truth=truth,
        migrations=migrations,
    )


@dataclass
class IBUResult:
    """Unfolded counts per cause (C,) with errors and covariances (C, C) of the last iteration.

    ``stat_err`` / ``stat_covariance``: from the data errors; ``sys_err`` / ``sys_covariance``: from the
    response-matrix errors; ``covariance`` is their sum. ``iterations``: PyUnfold-style records (dicts
    with keys unfolded, stat_err, sys_err, num_iterations, unfolding_matrix, ts_iter, ts_stopping), all
    of them if requested, else the last.
    """

    unfolded: np.ndarray
    stat_err: np.ndarray
    sys_err: np.ndarray
    covariance: np.ndarray
    stat_covariance: np.ndarray
    sys_covariance: np.ndarray
    unfolding_matrix: np.ndarray
    n_iterations: int
    ts_values: np.ndarray
    iterations: list[dict] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """Records as a DataFrame, one row per iteration (PyUnfold's ``return_iterations=True`` layout)."""
        return pd.DataFrame.from_records(self.iterations)


class _AdyePropagation:
    """Adye's derivatives dc/dn (dense, (E, C)) and the response covariance term (factorised, see module)."""

    def __init__(self, response, response_err, efficiencies, efficiencies_err, data, cov_type: str):
        self.p = response
        self.eps = efficiencies
        self.eps_inv = _safe_inverse(efficiencies)
        self.n_obs = data
        if cov_type == "poisson":
            self.s, self.q = response_err**2, None
        else:
            # PyUnfold's effective number of simulated events per cause: (eps / eps_err)^2.
            nc_inv = _safe_inverse((efficiencies * _safe_inverse(efficiencies_err)) ** 2)
            self.s = nc_inv * response
            self.q = np.sqrt(nc_inv) * response
        self.history: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.dcdn: np.ndarray | None = None
        self.a_term: np.ndarray | None = None  # sum over P-elements of dc/dP * s * dc/dP^T
        self.z_term: np.ndarray | None = None  # dc/dP contracted with q per cause (multinomial)

    def _factors(self, a: np.ndarray, a_next: np.ndarray, f_inv: np.ndarray):
        """R (E, C), W (C, E) and H = s * W^T (E, C) of one iteration's derivative D."""
        m = self.p * (a * self.eps_inv) * f_inv[:, None]
        r = self.n_obs * f_inv
        big_r = r[:, None] * m
        w = (np.outer(a, r) - a_next[:, None]) * self.eps_inv[:, None]
        return big_r, w, self.s * w.T

    def _pair(self, s_iter, t_iter) -> np.ndarray:
        """F(s, t) = sum over P elements of D_s * s * D_t, (C, C)."""
        (a_s, rs, _, hs), (a_t, rt, wt, ht) = s_iter, t_iter
        v = self.s @ (a_s * a_t)
        out = (rs * v[:, None]).T @ rt
        out -= (rs.T @ ht) * a_s[None, :]
        out -= (hs.T @ rt) * a_t[:, None]
        out[np.diag_indices_from(out)] += np.einsum("ji,ij->i", hs, wt)
        return out

    def update(self, m: np.ndarray, f_inv: np.ndarray, n_new: np.ndarray, n_prev: np.ndarray) -> None:
        """Advance the derivatives by one iteration (PyUnfold's ``set_current_state``)."""
        big_r, w, h = self._factors(n_prev, n_new, f_inv)
        cur = (n_prev, big_r, w, h)
        f_tt = self._pair(cur, cur)
        z_new = None
        if self.q is not None:
            z_new = -(big_r.T @ self.q) * n_prev[None, :]
            z_new[np.diag_indices_from(z_new)] += np.einsum("ij,ji->i", w, self.q)
        g = None
        if self.dcdn is None:
            self.dcdn, self.a_term, self.z_term = m.copy(), f_tt, z_new
        else:
            n_prev_inv = _safe_inverse(n_prev)
            nc_r = n_new * n_prev_inv
            e_r = self.eps * n_prev_inv
            m2 = (-m * e_r).T * self.n_obs
            dcdn = m.copy()
            dcdn += m @ (m2 @ self.dcdn)
            dcdn += self.dcdn * nc_r
            g = np.diag(nc_r) - (m.T * self.n_obs) @ (m * e_r)
            # Horner sum over earlier iterations s of G_{t-1}...G_{s+1} F(s, t), i.e. dc/dP_{t-1} s D_t^T.
            b = None
            for a_s, a_next, f_inv_s, g_s in self.history:
                f_st = self._pair((a_s, *self._factors(a_s, a_next, f_inv_s)), cur)
                b = f_st if b is None else g_s @ b + f_st
            gb = g @ b
            self.a_term = g @ self.a_term @ g.T + gb + gb.T + f_tt
            if z_new is not None:
                z_new += g @ self.z_term
            self.dcdn, self.z_term = dcdn, z_new
        self.history.append((n_prev, n_new, f_inv, g))

    def stat_covariance(self, data_err: np.ndarray) -> np.ndarray:
        return (self.dcdn * (data_err**2)[:, None]).T @ self.dcdn

    def sys_covariance(self) -> np.ndarray:
        if self.z_term is None:
            return self.a_term.copy()
        return self.a_term - self.z_term @ self.z_term.T

    def sys_variance(self) -> np.ndarray:
        if self.z_term is None:
            return np.diag(self.a_term).copy()
        return np.diag(self.a_term) - np.einsum("ij,ij->i", self.z_term, self.z_term)


def _check_prior(prior: np.ndarray | None, n_causes: int) -> np.ndarray:
    """Uniform if None; otherwise probabilities over causes, (C,) or (T, C), each summing to 1."""
    if prior is None:
        return np.full(n_causes, 1.0 / n_causes)
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape[-1] != n_causes:
        raise ValueError(f"prior has {prior.shape[-1]} bins, the response {n_causes} causes")
    if not np.allclose(prior.sum(axis=-1), 1.0):
        raise ValueError(f"prior must sum to 1 (it is a probability per cause), sums to {prior.sum(axis=-1)}")
    if np.min(prior) < 0:
        raise ValueError("prior must be non-negative")
    return prior


def _checked_arrays(inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The array inputs of :func:`iterative_bayesian_unfold` by name, as float64 arrays checked for sign
    and shape."""
    arrays = {}
    for name, value in inputs.items():
        if value is None:
            raise ValueError(f"{name} must not be None")
        arrays[name] = np.asarray(value, dtype=np.float64)
        if np.min(arrays[name]) < 0:
            raise ValueError(f"{name} must be non-negative")
    p = arrays["response"]
    if p.ndim != 2:
        raise ValueError(f"response must be 2-D (effects, causes), got shape {p.shape}")
    n_effects, n_causes = p.shape
    expected = {
        "data": (n_effects,),
        "data_err": (n_effects,),
        "response_err": p.shape,
        "efficiencies": (n_causes,),
        "efficiencies_err": (n_causes,),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(
                f"{name} must have shape {shape} for a {p.shape} response, got {arrays[name].shape}"
            )
    return arrays


def _checked_options(ts: str, cov_type: str, max_iter: int) -> str:
    """Check the options of :func:`iterative_bayesian_unfold`; return ``cov_type`` in lower case."""
    if ts not in TEST_STATISTICS:
        raise ValueError(f"ts must be one of {sorted(TEST_STATISTICS)}, got {ts!r}")
    cov_type = cov_type.lower()
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type must be one of {COV_TYPES}, got {cov_type!r}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    return cov_type


def iterative_bayesian_unfold(
    data: np.ndarray,
    data_err: np.ndarray,
    response: np.ndarray,
    response_err: np.ndarray,
    efficiencies: np.ndarray,
    efficiencies_err: np.ndarray,
    prior: np.ndarray | None = None,
    ts: str = "ks",
    ts_stopping: float = 0.01,
    max_iter: int = 100,
    cov_type: str = "multinomial",
    background: np.ndarray | None = None,
    callback: Callable[[dict], None] | None = None,
    return_iterations: bool = False,
) -> IBUResult:
    """Unfold observed counts per effect (E,) to counts per cause (C,); same algorithm as PyUnfold.

    ``response`` (E, C) = P(effect | cause) with column sums ``efficiencies`` (C,); ``*_err`` are the
    matching uncertainties; ``prior`` (C,) sums to 1 (uniform if None). Iterates until the test statistic
    ``ts`` ("ks", "chi2", "bf", "rmd") between successive iterations drops below ``ts_stopping`` or
    ``max_iter`` is reached (a tiny ``ts_stopping`` fixes the count at ``max_iter``). ``cov_type`` is the
    response covariance, "multinomial" or "poisson". ``background`` (E,) is subtracted from ``data``
    first and the difference clipped at 0 (a bin cannot hold negative signal); ``data_err`` is used as
    given. ``callback(record)`` sees each iteration's PyUnfold-style record (for live plots).

    >>> r = iterative_bayesian_unfold([100, 150], [10, 12.2], [[0.9, 0.1], [0.1, 0.9]],
    ...     [[0.01, 0.01], [0.01, 0.01]], [1, 1], [0.01, 0.01])
    >>> r.n_iterations, np.round(r.unfolded, 4).tolist(), np.round(r.sys_err, 5).tolist()
    (4, [94.3209, 155.6791], [0.65571, 0.65571])
    """
    arrays = _checked_arrays(
        {
            "data": data,
            "data_err": data_err,
            "response": response,
            "response_err": response_err,
            "efficiencies": efficiencies,
            "efficiencies_err": efficiencies_err,
        }
    )
    p, eps = arrays["response"], arrays["efficiencies"]
    n_causes = p.shape[1]
    cov_type = _checked_options(ts, cov_type, max_iter)
    data = arrays["data"]
    if background is not None:
        data = np.clip(data - np.asarray(background, dtype=np.float64), 0.0, None)

    n_c = np.sum(data) * _check_prior(prior, n_causes)
    eps_inv = _safe_inverse(eps)
    prop = _AdyePropagation(p, arrays["response_err"], eps, arrays["efficiencies_err"], data, cov_type)
    ts_func = TEST_STATISTICS[ts]
    data_var = arrays["data_err"] ** 2
    records: list[dict] = []
    ts_values: list[float] = []
    ts_value = np.inf
    while not ts_value < ts_stopping and len(ts_values) < max_iter:
        f_inv = _safe_inverse(p @ n_c)
        m = p * (n_c * eps_inv) * f_inv[:, None]
        n_new = data @ m
        prop.update(m, f_inv, n_new, n_c)
        ts_value = ts_func(n_new, n_c)
        ts_values.append(ts_value)
        record = {
            "unfolded": n_new,
            "stat_err": np.sqrt(np.einsum("ji,j,ji->i", prop.dcdn, data_var, prop.dcdn)),
            # Rounding in the factorised sum can leave ~-1e-30 where the variance is 0.
            "sys_err": np.sqrt(np.clip(prop.sys_variance(), 0.0, None)),
            "num_iterations": len(ts_values),
            "unfolding_matrix": m,
            "ts_iter": ts_value,
            "ts_stopping": ts_stopping,
        }
        logger.debug("IBU iteration %d: %s = %.6g", len(ts_values), ts, ts_value)
        if callback is not None:
            callback(record)
        if return_iterations or not records:
            records.append(record)
        else:
            records[-1] = record
        n_c = n_new

    stat_cov = prop.stat_covariance(arrays["data_err"])
    sys_cov = prop.sys_covariance()
    return IBUResult(
        unfolded=n_c,
        stat_err=record["stat_err"],
        sys_err=record["sys_err"],
        covariance=stat_cov + sys_cov,
        stat_covariance=stat_cov,
        sys_covariance=sys_cov,
        unfolding_matrix=record["unfolding_matrix"],
        n_iterations=len(ts_values),
        ts_values=np.asarray(ts_values),
        iterations=records,
    )


def ibu_throws(
    data: np.ndarray,
    response: np.ndarray,
    efficiencies: np.ndarray,
    background: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    *,
    n_iterations: int,
) -> np.ndarray:
    """Unfold T throws at once with a fixed number of iterations (that of the nominal unfolding).

    ``data`` (T, E) or (E,); ``response`` (T, E, C) or (E, C); ``efficiencies`` (T, C) or (C,);
    ``background`` like ``data`` or None (subtracted, clipped at 0); ``prior`` (C,) or (T, C), uniform if
    None. Returns unfolded counts (T, C), equal to ``iterative_bayesian_unfold`` per throw with
    ``max_iter=n_iterations`` and ``ts_stopping=0`` (errors are not propagated: the spread of the throws
    is the uncertainty).

    >>> p = np.array([[[0.9, 0.1], [0.1, 0.9]]] * 2)
    >>> data = np.array([[100.0, 150.0], [150.0, 100.0]])
    >>> np.round(ibu_throws(data, p, np.ones((2, 2)), n_iterations=4), 4)
    array([[ 94.3209, 155.6791],
           [155.6791,  94.3209]])
    """
    if n_iterations < 1:
        raise ValueError(f"n_iterations must be >= 1, got {n_iterations}")
    response = np.asarray(response, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    if background is not None:
        data = np.clip(data - np.asarray(background, dtype=np.float64), 0.0, None)
    eps_inv = _safe_inverse(efficiencies)
    n_causes = response.shape[-1]
    n = np.sum(data, axis=-1, keepdims=True) * _check_prior(prior, n_causes)
    for _ in range(n_iterations):
        f_inv = _safe_inverse(np.matmul(response, n[..., None])[..., 0])
        n = n * eps_inv * np.matmul((data * f_inv)[..., None, :], response)[..., 0, :]
    return n
