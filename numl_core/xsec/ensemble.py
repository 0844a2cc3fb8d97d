"""Bootstrap ensembles and Monte-Carlo dropout for the cross-section network.

A bootstrap ensemble of ``M`` members is one :class:`~numl_core.xsec.model.XsecNet` with stacked
weights trained in one loop by :func:`numl_core.training.fit`: member ``m`` is trained on its own
bootstrap resample of the training points (drawn with replacement, Efron 1979), so its batches and
batch-norm statistics are its own. The spread of the members' predictions estimates the model
uncertainty. Monte-Carlo dropout (Gal & Ghahramani, arXiv:1506.02142) instead trains one network with
dropout and samples predictions with dropout left on.

>>> rng = np.random.default_rng(0)
>>> bootstrap_indices(5, 3, rng).shape
(5, 3)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import optimize, stats

from numl_core.device import resolve_device
from numl_core.jobs import Progress
from numl_core.training import FitResult, TrainSettings, fit
from numl_core.xsec.fit import Chi2Loss, NormalisedModel
from numl_core.xsec.model import XsecNet


@dataclass
class EnsembleSettings:
    """Network and training settings.

    ``members`` networks of ``depth`` blocks x ``width`` units with ``dropout``; ``bootstrap``: each
    member trains on a bootstrap resample (otherwise all see every point and differ by initialisation);
    ``epochs`` passes over the training points, reported in at most ``max_reports`` trainer epochs
    (each then covers several passes, which keeps checkpoints and live metrics affordable);
    AdamW with ``lr``, ``weight_decay`` and ``schedule``; ``patience`` reports without a lower
    validation loss before stopping (0: never); ``residual`` of the chi2, "log", "linear" (see
    :class:`~numl_core.xsec.fit.Chi2Loss`) or "hybrid" (log for the first half of the epochs, then
    linear); ``device``; ``seed`` of initialisation and resampling.
    """

    members: int = 10
    depth: int = 4
    width: int = 64
    dropout: float = 0.0
    batch_norm: bool = True
    bootstrap: bool = True
    epochs: int = 1000
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    patience: int = 0
    max_reports: int = 150
    residual: str = "hybrid"
    device: str = "auto"
    seed: int = 0

    @property
    def passes_per_report(self) -> int:
        return max(1, math.ceil(self.epochs / self.max_reports))


@dataclass
class TrainedModel:
    """A fitted :class:`NormalisedModel`, the trainer's record, the wall time [s] and the passes over
    the training points run."""

    model: NormalisedModel
    fit: FitResult
    seconds: float
    passes: int


def bootstrap_indices(n: int, members: int, rng: np.random.Generator, bootstrap: bool = True) -> np.ndarray:
    """Point indices ``(n, members)``: column ``m`` is member ``m``'s resample (or ``arange(n)``)."""
    if not bootstrap:
        return np.repeat(np.arange(n)[:, None], members, axis=1)
    return rng.integers(0, n, size=(n, members))


def train_model(
    x: np.ndarray,
    xsec: np.ndarray,
    error: np.ndarray,
    group: np.ndarray,
    prior: np.ndarray,
    train: np.ndarray,
    val: np.ndarray | None,
    settings: EnsembleSettings,
    progress: Progress | None = None,
    *,
    init: NormalisedModel | None = None,
    name: str = "ensemble",
    metric_prefix: str = "",
) -> TrainedModel:
    """Fit a (bootstrap) ensemble to the points ``train`` of a data set, validating on ``val``.

    ``x`` (N, 5) features, ``xsec``/``error`` (N,) [nb/sr/GeV], ``group`` (N,) data-set index into
    ``prior`` (K,) relative normalisation uncertainties; ``train``/``val`` index arrays into them.
    ``init`` continues from an existing model (transfer learning; its frozen blocks stay frozen);
    otherwise a new :class:`XsecNet` is built from ``settings`` and scaled to the training points.
    """
    progress = progress if progress is not None else Progress()
    if settings.residual == "hybrid":
        return _train_hybrid(
            x, xsec, error, group, prior, train, val, settings, progress, init, name, metric_prefix
        )
    device = resolve_device(settings.device)
    rng = np.random.default_rng([settings.seed, 11])
    if init is None:
        torch.manual_seed(settings.seed)
        net = XsecNet(settings.members, settings.depth, settings.width, settings.dropout, settings.batch_norm)
        net.set_scaling(torch.as_tensor(x[train]), torch.as_tensor(np.log(xsec[train])))
        model = NormalisedModel(net, len(prior))
    else:
        model = init
    members = model.net.n_members
    loss = Chi2Loss.from_arrays(x, xsec, error, group, prior, len(train), device, settings.residual)
    columns = bootstrap_indices(len(train), members, rng, settings.bootstrap and members > 1)
    train_idx = np.tile(np.asarray(train)[columns], (settings.passes_per_report, 1))
    val_data = None
    if val is not None and len(val):
        val_data = (torch.as_tensor(np.repeat(np.asarray(val)[:, None], members, axis=1)),)
    trainer = TrainSettings(
        epochs=math.ceil(settings.epochs / settings.passes_per_report),
        batch_size=settings.batch_size,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        schedule=settings.schedule,
        patience=settings.patience,
        mixed_precision=False,  # bf16 keeps ~3 digits: too coarse for percent-level residuals of log(xsec)
        device=settings.device,
        seed=settings.seed,
    )
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
    x: np.ndarray,
    xsec: np.ndarray,
    error: np.ndarray,
    group: np.ndarray,
    prior: np.ndarray,
    train: np.ndarray,
    val: np.ndarray | None,
    settings: EnsembleSettings,
    progress: Progress,
    init: NormalisedModel | None,
    name: str,
    metric_prefix: str,
) -> TrainedModel:
    """Half the epochs with log residuals (robust far from the data), the rest with linear ones (the
    chi2 that is reported); live metrics of the first half carry the prefix ``{metric_prefix}log_``."""
    first_epochs = max(1, settings.epochs // 2)
    first = train_model(
        x,
        xsec,
        error,
        group,
        prior,
        train,
        val,
        replace(settings, residual="log", epochs=first_epochs),
        progress.subrange(0.0, 0.5),
        init=init,
        name=f"{name}-log",
        metric_prefix=f"{metric_prefix}log_",
    )
    second = train_model(
        x,
        xsec,
        error,
        group,
        prior,
        train,
        val,
        replace(settings, residual="linear", epochs=max(1, settings.epochs - first_epochs)),
        progress.subrange(0.5, 1.0),
        init=first.model,
        name=name,
        metric_prefix=metric_prefix,
    )
    second.fit.history = first.fit.history + second.fit.history
    second.fit.epochs_run += first.fit.epochs_run
    return TrainedModel(
        second.model, second.fit, first.seconds + second.seconds, first.passes + second.passes
    )


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
