"""Predictions of a fitted cross-section ensemble and their scores: bands, chi2 per point, coverage.

A fitted ensemble predicts log cross sections per member (or per dropout sample); :func:`band` turns
them into a mean and a spread, :func:`normalised_band` into the prediction for a measured point
(scaled by its data set's normalisation factor). The predictive of a measured point (:func:`coverage`)
adds the point's error, a relative model misfit and the prior widths of unfitted normalisations, with
Student-t tails fitted on validation points (:func:`fit_student_t`); :func:`method_summary` collects
chi2 per point and coverage of one method.

>>> band(np.log(np.array([[1.0, 2.0], [3.0, 2.0]])))[0].tolist()
[2.0, 2.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import optimize, stats

from numl_core.xsec.fit import chi2_held_out, chi2_per_point
from numl_core.xsec.model import XsecNet
from numl_core.xsec.points import PointSet


@torch.no_grad()
def predict_log(net: XsecNet, x: np.ndarray, mc_samples: int = 0, seed: int = 0) -> np.ndarray:
    """Log cross sections: ``(M, N)`` from the members, or ``(M * mc_samples, N)`` with MC dropout on."""
    net = net.cpu().eval()
    xt = torch.tensor(np.asarray(x), dtype=torch.float32)
    if mc_samples <= 0:
        return net(xt).numpy().astype(float)
    torch.manual_seed(seed)
    return torch.cat([net(xt, mc_dropout=True) for _ in range(mc_samples)]).numpy().astype(float)


def band(log_samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictive mean and standard deviation of the cross section over samples ``(S, N)`` of its log.

    Logs are clipped to [-80, 80] so that a network extrapolating far outside its data stays finite.
    """
    values = np.exp(np.clip(log_samples, -80.0, 80.0))
    spread = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
    return values.mean(axis=0), spread


def normalised_band(
    log_samples: np.ndarray, lambdas: np.ndarray, group: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of lambda_k sigma, the prediction for a measured point, over samples.

    ``log_samples`` (S, N) log cross sections of ``M`` members (S = M, or M * dropout samples ordered
    sample by sample as :func:`predict_log` returns them); ``lambdas`` (M, K) each member's fitted
    normalisation factors; ``group`` (N,) data-set index. Sample ``s`` is scaled by its member's
    lambda, so the spread holds the uncertainty of the normalisation as well as of the cross section.
    """
    lambdas = np.atleast_2d(lambdas)
    member = np.arange(len(log_samples)) % len(lambdas)
    scale = lambdas[member][:, np.asarray(group, int)]
    return band(log_samples + np.log(scale))


def predictive_sigma(
    mean: np.ndarray,
    spread: np.ndarray,
    error: np.ndarray,
    misfit: float = 0.0,
    norm: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Standard deviation of a measured point around the prediction ``mean`` (N,) [nb/sr/GeV].

    sigma^2 = spread^2 + error^2 + (misfit mean)^2 + (norm mean)^2: the model spread (members or
    dropout samples), the point's own error, a relative model-misfit width fitted on validation points
    (:func:`fit_misfit`) and the relative normalisation uncertainty of data sets whose lambda_k was not
    fitted (no training points: the prior width Delta_k; 0 otherwise, as the fitted lambda_k is in ``mean``).
    """
    return np.sqrt(spread**2 + error**2 + (misfit * mean) ** 2 + (norm * mean) ** 2)


def fit_misfit(mean: np.ndarray, spread: np.ndarray, data: np.ndarray, error: np.ndarray) -> float:
    """Relative model-misfit width tau maximising the Gaussian likelihood of ``data`` (N,).

    Each point is modelled as ``N(mean, spread^2 + error^2 + (tau mean)^2)``; tau in [0, 10] absorbs what
    the model spread and the quoted errors miss (limited flexibility, tension between experiments).
    Fit it on points the members were not trained on (validation points), never on the test points.

    >>> rng = np.random.default_rng(1)
    >>> m = np.ones(4000); d = rng.normal(m, np.hypot(0.01, 0.05))
    >>> round(fit_misfit(m, np.zeros(4000), d, np.full(4000, 0.01)), 2)
    0.05
    """

    def nll(tau: float) -> float:
        var = spread**2 + error**2 + (tau * mean) ** 2
        return float(np.sum(np.log(var) + (data - mean) ** 2 / var))

    return float(
        optimize.minimize_scalar(nll, bounds=(0.0, 10.0), method="bounded", options={"xatol": 1e-5}).x
    )


GAUSS_COVERAGE = {
    "1sigma": float(stats.norm.cdf(1) - stats.norm.cdf(-1)),
    "2sigma": float(stats.norm.cdf(2) - stats.norm.cdf(-2)),
}
"""Gaussian coverage of +-1 and +-2 sigma."""


NU_BOUNDS = (2.0, 100.0)
"""Bounds on the degrees of freedom of the Student-t predictive (nu > 2: finite variance)."""


SPREAD_SCALE_BOUNDS = (0.05, 20.0)
"""Bounds on the factor that recalibrates the model spread in :func:`fit_student_t`."""


def fit_student_t(
    mean: np.ndarray,
    spread: np.ndarray,
    data: np.ndarray,
    error: np.ndarray,
    norm: np.ndarray | float = 0.0,
    nu_bounds: tuple[float, float] = NU_BOUNDS,
) -> tuple[float, float, float]:
    """Misfit width tau, degrees of freedom nu and spread scale kappa of a Student-t predictive, by
    maximum likelihood.

    Each point is modelled as ``mean + s t_nu`` with scale ``s`` = :func:`predictive_sigma`
    (``kappa * spread``, ``error``, ``tau``, ``norm``): the terms of the Gaussian predictive, with tails
    whose weight nu sets (nu -> infinity is the Gaussian) and the model spread recalibrated by kappa
    (an ensemble's or MC dropout's spread is a heuristic width: kappa < 1 where it is wider than the
    residuals, > 1 where narrower). tau in [0, 10], nu in ``nu_bounds`` and kappa in
    :data:`SPREAD_SCALE_BOUNDS` are fitted jointly. Fit on points the members were not trained on
    (validation points), never on the test points. Returns ``(tau, nu, kappa)``.

    >>> rng = np.random.default_rng(1)
    >>> m = np.ones(20000); d = m + 0.05 * rng.standard_t(4, 20000)
    >>> tau, nu, kappa = fit_student_t(m, np.zeros(20000), d, np.full(20000, 1e-4))
    >>> round(tau, 2), 3 < nu < 5
    (0.05, True)
    """
    mean, spread, data, error = (np.asarray(a, float) for a in (mean, spread, data, error))
    resid = data - mean
    fixed = error**2 + (np.asarray(norm) * mean) ** 2
    lo, hi = np.log(nu_bounds[0]), np.log(nu_bounds[1])
    k_lo, k_hi = np.log(SPREAD_SCALE_BOUNDS[0]), np.log(SPREAD_SCALE_BOUNDS[1])

    def nll(params: np.ndarray) -> float:
        tau, lognu, logkappa = params
        scale = np.sqrt(fixed + (np.exp(logkappa) * spread) ** 2 + (tau * mean) ** 2)
        return -float(np.sum(stats.t.logpdf(resid, np.exp(lognu), scale=scale)))

    tau0 = fit_misfit(mean, spread, data, error) if np.ndim(norm) == 0 and norm == 0 else 0.0
    best = None
    for nu0 in (3.0, 10.0, 50.0):
        for kappa0 in (0.5, 1.0):
            res = optimize.minimize(
                nll,
                np.array([tau0, np.log(nu0), np.log(kappa0)]),
                method="L-BFGS-B",
                bounds=[(0.0, 10.0), (lo, hi), (k_lo, k_hi)],
            )
            if best is None or res.fun < best.fun:
                best = res
    tau, lognu, logkappa = best.x
    return float(tau), float(np.clip(np.exp(lognu), *nu_bounds)), float(np.exp(logkappa))


def coverage(
    mean: np.ndarray,
    spread: np.ndarray,
    scale: np.ndarray,
    data: np.ndarray,
    error: np.ndarray,
    misfit: float = 0.0,
    norm: np.ndarray | float = 0.0,
    nu: float = np.inf,
) -> dict[str, float]:
    """Fraction of points inside the central 1 and 2 sigma intervals of the predictive of a measured point.

    The predictive is ``scale * mean + s t_nu`` with ``s`` from :func:`predictive_sigma`: a Gaussian for
    ``nu`` = inf (within 1 and 2 s), else a Student-t (``misfit`` and ``nu`` from :func:`fit_student_t`,
    whose spread scale multiplies ``spread``)
    whose central intervals hold the Gaussian probabilities 0.6827 and 0.9545, i.e.
    ``|data - scale * mean| < s * t_nu.ppf((1 + p) / 2)``. ``scale`` (N,) is each point's normalisation
    factor lambda_k applied to the prediction ``mean`` and ``spread`` (ones when they already include it,
    see :func:`normalised_band`); ``misfit`` and ``norm`` as in :func:`predictive_sigma`. For a calibrated
    predictive the fractions are 0.6827 and 0.9545.

    >>> coverage(np.zeros(4), np.zeros(4), np.ones(4), np.array([0.5, -0.5, 1.5, 3.0]), np.ones(4))
    {'1sigma': 0.5, '2sigma': 0.75}
    """
    sigma = predictive_sigma(scale * mean, scale * spread, error, misfit, norm)
    z = np.abs(scale * mean - data) / sigma
    limits = (1.0, 2.0) if np.isinf(nu) else (stats.t.ppf(0.5 + p / 2, nu) for p in GAUSS_COVERAGE.values())
    return {key: float(np.mean(z < limit)) for key, limit in zip(GAUSS_COVERAGE, limits, strict=True)}


def method_summary(
    frame: pd.DataFrame, labels: np.ndarray, points: PointSet, method: str, lam: np.ndarray
) -> dict[str, float]:
    """chi2 per point per split (lambda fitted on the training points; the held-out splits by
    :func:`~numl_core.xsec.fit.chi2_held_out`, and profiled on the test points as a secondary figure) and
    test coverage.

    ``frame`` holds one row per point of ``points`` with the method's predictions: the mean and spread
    of sigma over members (``{method}_mean``, ``{method}_std``) and of lambda_k sigma (``{method}_pred``,
    ``{method}_pred_std``); ``labels`` (N,) the split of each point; ``lam`` (K,) the fitted lambda_k.

    Coverage uses the predictive distribution of a measured point, a Student-t located at the mean of
    lambda_k sigma over members (``{method}_pred``) with scale^2 = (kappa x spread of lambda_k sigma)^2
    (``{method}_pred_std``) + the point's error^2 + (tau prediction)^2 + (prior width of a data set
    without training points x prediction)^2; the relative misfit tau (``misfit_student_t``), the
    degrees of freedom nu (``nu_student_t``, in [2, 100]) and the spread scale kappa
    (``spread_scale_student_t``) are fitted jointly by maximum likelihood on
    the validation points. ``coverage_1sigma`` / ``coverage_2sigma`` are the fractions of test points
    inside its central intervals of probability 0.6827 / 0.9545 (:func:`coverage`).
    ``coverage_*_gaussian`` use a Gaussian with the same terms and tau fitted by Gaussian likelihood
    on the validation points (``misfit``; 0 without validation points); ``coverage_*_no_misfit`` a
    Gaussian without the misfit term.
    """
    out: dict[str, float] = {}
    mean = frame[f"{method}_mean"].to_numpy()
    spread = frame[f"{method}_std"].to_numpy()
    pred, pred_std = frame[f"{method}_pred"].to_numpy(), frame[f"{method}_pred_std"].to_numpy()
    xsec, err, group, prior = points.xsec, points.error, points.group, points.prior
    fitted = np.bincount(group[labels == "train"], minlength=len(prior)) > 0
    for split in ("train", "val", "test"):
        m = labels == split
        if m.any() and split == "train":
            out["chi2_train"] = chi2_per_point(mean[m], xsec[m], err[m], group[m], prior, lam)[0]
        elif m.any():  # lambda_k from the training points only (chi2_held_out)
            out[f"chi2_{split}"] = chi2_held_out(mean[m], xsec[m], err[m], group[m], prior, lam, fitted)
    test, val = labels == "test", labels == "val"
    out["chi2_test_profiled"] = chi2_per_point(mean[test], xsec[test], err[test], group[test], prior)[0]
    norm = np.where(fitted[group], 0.0, np.where(np.isfinite(prior), prior, 0.0)[group])
    misfit = fit_misfit(pred[val], pred_std[val], xsec[val], err[val]) if val.any() else 0.0
    if val.sum() >= 2:
        misfit_t, nu, kappa = fit_student_t(pred[val], pred_std[val], xsec[val], err[val], norm[val])
    else:  # nothing to fit the tails on: the Gaussian limit
        misfit_t, nu, kappa = misfit, float("inf"), 1.0
    ones = np.ones(int(test.sum()))
    args = (pred[test], pred_std[test], ones, xsec[test], err[test])
    cov = coverage(
        pred[test], kappa * pred_std[test], ones, xsec[test], err[test], misfit_t, norm[test], nu=nu
    )
    out.update({f"coverage_{k}": v for k, v in cov.items()})
    for tag, tau in (("_gaussian", misfit), ("_no_misfit", 0.0)):
        cov = coverage(*args, tau, norm[test])
        out.update({f"coverage_{k}{tag}": v for k, v in cov.items()})
    out["misfit"] = misfit
    out["misfit_student_t"] = misfit_t
    out["nu_student_t"] = nu
    out["spread_scale_student_t"] = kappa
    out["median_rel_band"] = float(np.median(spread / mean))
    return out
