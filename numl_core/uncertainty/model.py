"""Densities of systematic toys and the p-values they give: Gaussian fits against normalizing flows.

An analysis that summarises toys by a covariance quotes the chi2 p-value of an observation x,
P(chi2_D > d^2(x)) with d^2 the Mahalanobis distance to the toys' mean. When the toys are not Gaussian
that number is wrong. A density model q gives instead the p-value
``p(x) = P_{y ~ q}(q(y) < q(x))``, the probability of a less probable toy, estimated as the fraction of
n model samples less probable than x (Monte-Carlo error sqrt(p (1 - p) / n)). Models:

* :class:`GaussianDensity`: the toys' mean and covariance; its chi2 p-value is the usual baseline, and
  the same Gaussian with its density ranked among the toys' own densities (:func:`toy_rank_pvalues`) is
  the "improved baseline";
* :class:`MarginalGaussianDensity`: a Yeo-Johnson transform per dimension (I.-K. Yeo, R. A. Johnson,
  Biometrika 87 (2000) 954), then a Gaussian;
* :class:`FlowDensity`: a zuko masked-autoregressive (affine, "maf") or neural-spline ("nsf") flow on
  standardised (optionally log-transformed) toys, trained by :func:`numl_core.uncertainty.train.fit_flow`.

Every model exposes ``dim``, ``log_prob(x) -> (N,)`` and ``sample(n, seed) -> (n, D)``.

>>> rng = np.random.default_rng(0)
>>> toys = rng.normal(size=(2000, 3))
>>> g = GaussianDensity.fit(toys)
>>> p_chi2 = g.chi2_pvalue(np.zeros((1, 3)))
>>> p_rank, err = density_pvalues(g, np.zeros((1, 3)), n_samples=20_000, seed=1)
>>> bool(p_chi2[0] > 0.99 and p_rank[0] > 0.99)
True
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import zuko
from scipy import stats
from scipy.linalg import solve_triangular
from torch import Tensor, nn

from numl_core.data.schema import DataError
from numl_core.training import TrainSettings

log = logging.getLogger(__name__)

FLOW_MODELS = ("maf", "nsf")
STANDARDISATIONS = ("whiten", "zscore", "log", "asinh", "none")
FLOW_GRAD_CLIP = 5.0
"""Maximum gradient norm when training a flow."""


class DensityModel(Protocol):
    """What p-values and metrics need from a density model."""

    @property
    def dim(self) -> int: ...

    def log_prob(self, x: np.ndarray) -> np.ndarray: ...

    def sample(self, n: int, seed: int) -> np.ndarray: ...


def check_observation(x: np.ndarray | list[float], dim: int) -> np.ndarray:
    """An observation (D,) or a batch (N, D) as (N, D) float64; a wrong length or NaN raises DataError."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if x.ndim != 2 or x.shape[1] != dim:
        raise DataError(f"observation has {x.shape[-1]} values per row; the toys have {dim} dimensions")
    if not np.isfinite(x).all():
        raise DataError(
            f"observation holds NaN or infinite values: every one of the {dim} values must be finite"
        )
    return x


# -- Gaussian baselines ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GaussianDensity:
    """N(mean, cov): ``mean`` (D,), ``cov`` (D, D) positive definite."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def fit(cls, toys: np.ndarray) -> GaussianDensity:
        """The toys' (T, D) sample mean and covariance; a singular covariance raises DataError."""
        toys = np.asarray(toys, float)
        if len(toys) <= toys.shape[1]:
            raise DataError(
                f"{len(toys)} toys for {toys.shape[1]} dimensions; need at least {toys.shape[1] + 1}"
            )
        cov = np.atleast_2d(np.cov(toys, rowvar=False))
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError as exc:
            raise DataError(f"the toys' covariance ({toys.shape[1]} dimensions) is singular") from exc
        return cls(toys.mean(0), cov)

    @property
    def dim(self) -> int:
        return len(self.mean)

    def mahalanobis2(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance (N,) = chi2 of x against the mean with the covariance."""
        x = check_observation(x, self.dim)
        white = solve_triangular(np.linalg.cholesky(self.cov), (x - self.mean).T, lower=True)
        return np.sum(white**2, axis=0)

    def chi2_pvalue(self, x: np.ndarray) -> np.ndarray:
        """P(chi2 with D degrees of freedom > d^2(x)) (N,): the usual Gaussian p-value."""
        return stats.chi2.sf(self.mahalanobis2(x), df=self.dim)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        logdet = np.linalg.slogdet(self.cov)[1]
        return -0.5 * (self.mahalanobis2(x) + logdet + self.dim * np.log(2 * np.pi))

    def sample(self, n: int, seed: int | np.random.Generator) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return self.mean + rng.standard_normal((n, self.dim)) @ np.linalg.cholesky(self.cov).T


def _yeo_johnson(x: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yeo-Johnson transform of each column and log of its derivative, both (N, D)."""
    pos = x >= 0
    lam_b = np.broadcast_to(lam, x.shape)
    y = np.empty_like(x)
    small = np.isclose(lam_b, 0.0)
    two = np.isclose(lam_b, 2.0)
    with np.errstate(all="ignore"):
        y = np.where(
            pos,
            np.where(small, np.log1p(x), ((1 + x) ** lam_b - 1) / np.where(small, 1.0, lam_b)),
            np.where(two, -np.log1p(-x), -((1 - x) ** (2 - lam_b) - 1) / np.where(two, 1.0, 2 - lam_b)),
        )
        logd = np.where(pos, (lam_b - 1) * np.log1p(x), (1 - lam_b) * np.log1p(-x))
    return y, logd


def _yeo_johnson_inverse(y: np.ndarray, lam: np.ndarray) -> np.ndarray:
    pos = y >= 0
    lam_b = np.broadcast_to(lam, y.shape)
    small = np.isclose(lam_b, 0.0)
    two = np.isclose(lam_b, 2.0)
    with np.errstate(all="ignore"):
        return np.where(
            pos,
            np.where(small, np.expm1(y), (lam_b * y + 1) ** (1 / np.where(small, 1.0, lam_b)) - 1),
            np.where(two, -np.expm1(-y), 1 - (1 - (2 - lam_b) * y) ** (1 / np.where(two, 1.0, 2 - lam_b))),
        )


@dataclass(frozen=True)
class MarginalGaussianDensity:
    """Per-dimension transform then a Gaussian: u = (x - loc) / scale, y = YJ_lambda(u), y ~ N(m, C)."""

    loc: np.ndarray
    scale: np.ndarray
    lam: np.ndarray
    gaussian: GaussianDensity

    @classmethod
    def fit(cls, toys: np.ndarray) -> MarginalGaussianDensity:
        toys = np.asarray(toys, float)
        loc, scale = toys.mean(0), toys.std(0, ddof=1)
        u = (toys - loc) / scale
        lam = np.array([stats.yeojohnson_normmax(col) for col in u.T])
        y, _ = _yeo_johnson(u, lam)
        return cls(loc, scale, lam, GaussianDensity.fit(y))

    @property
    def dim(self) -> int:
        return len(self.loc)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        x = check_observation(x, self.dim)
        y, logd = _yeo_johnson((x - self.loc) / self.scale, self.lam)
        out = self.gaussian.log_prob(y) + logd.sum(1) - np.log(self.scale).sum()
        return np.where(np.isfinite(out), out, -np.inf)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` samples (n, D); Gaussian draws outside the transform's range (bounded for lambda < 0 or
        lambda > 2) have no preimage and are redrawn, i.e. the model is the Gaussian truncated to it."""
        rng = np.random.default_rng(seed)
        out = np.empty((0, self.dim))
        while len(out) < n:
            u = _yeo_johnson_inverse(self.gaussian.sample(2 * (n - len(out)) + 16, rng), self.lam)
            out = np.concatenate([out, u[np.isfinite(u).all(axis=1)]])
        return self.loc + self.scale * out[:n]


# -- flows ----------------------------------------------------------------------------------------
def flow_training(**changes: Any) -> TrainSettings:
    """The training loop's settings for a density flow: at most 300 epochs of 512 toys, Adam at 1e-3
    halved on a validation plateau, early stopping after 20 epochs, gradients clipped at norm 5, no mixed
    precision (densities need float32 log-determinants); ``changes`` override them.

    >>> flow_training(epochs=4).epochs, flow_training().grad_clip
    (4, 5.0)
    """
    values: dict[str, Any] = {
        "epochs": 300,
        "batch_size": 512,
        "lr": 1e-3,
        "schedule": "plateau",
        "patience": 20,
        "grad_clip": FLOW_GRAD_CLIP,
        "mixed_precision": False,
    }
    return TrainSettings(**{**values, **changes})


@dataclass(frozen=True)
class FlowSettings:
    """Flow architecture and training: ``model`` "maf" (affine) or "nsf" (rational-quadratic splines);
    ``coupling``: two-pass (coupling) masks, one network pass to sample instead of D;
    ``standardise``: "whiten" (by the training toys' mean and Cholesky factor of their covariance, so the
    untrained flow starts near the Gaussian fit), "zscore" (per dimension), "log" (log of positive toys,
    then whitened), "asinh" (asinh of each dimension's robust z-score, median and IQR / 1.349, then
    z-scored: heavy tails become logarithmic ones) or "none"; ``train``: the training loop's settings
    (:func:`flow_training`), whose ``seed`` also seeds the flow's initialisation.
    """

    model: str = "maf"
    transforms: int = 6
    hidden_features: int = 256
    hidden_layers: int = 2
    bins: int = 8
    coupling: bool = True
    standardise: str = "whiten"
    train: TrainSettings = field(default_factory=flow_training)

    def validate(self) -> None:
        if self.model not in FLOW_MODELS:
            raise ValueError(f"model={self.model!r} is not one of {FLOW_MODELS}")
        if self.standardise not in STANDARDISATIONS:
            raise ValueError(f"standardise={self.standardise!r} is not one of {STANDARDISATIONS}")


def build_flow(dim: int, settings: FlowSettings, context: int = 0) -> zuko.flows.Flow:
    """A zuko MAF or NSF with ``settings.transforms`` transforms (``passes=2`` for coupling)."""
    settings.validate()
    kwargs = {
        "transforms": settings.transforms,
        "hidden_features": (settings.hidden_features,) * settings.hidden_layers,
        "randperm": True,
    }
    if settings.coupling and dim > 1:
        kwargs["passes"] = 2
    if settings.model == "nsf":
        return zuko.flows.NSF(dim, context, bins=settings.bins, **kwargs)
    return zuko.flows.MAF(dim, context, **kwargs)


class StandardisedFlow(nn.Module):
    """A flow on x' = L^-1 (f(x) - loc), L lower triangular (the Cholesky factor of the training covariance,
    or a diagonal of standard deviations) and f per dimension: identity, log, or
    asinh((x - pre_loc) / pre_scale), which maps heavy tails onto logarithmic ones that the flow's
    splines can hold; log_prob includes the Jacobian."""

    def __init__(
        self,
        flow: zuko.flows.Flow,
        loc: Tensor,
        scale_tril: Tensor,
        transform: str | bool = "none",
        pre_loc: Tensor | None = None,
        pre_scale: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.flow = flow
        self.register_buffer("loc", loc)
        self.register_buffer("scale_tril", scale_tril)
        dim = loc.shape[-1]
        self.register_buffer("pre_loc", pre_loc if pre_loc is not None else torch.zeros(dim))
        self.register_buffer("pre_scale", pre_scale if pre_scale is not None else torch.ones(dim))
        self.transform = {True: "log", False: "none"}.get(transform, transform)

    @property
    def log_transform(self) -> bool:
        return self.transform == "log"

    def _log_det(self, n: int) -> Tensor:
        return torch.log(torch.diagonal(self.scale_tril)).sum().expand(n)

    def to_flow_space(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x' and log|dx'/dx| (N,)."""
        ladj = -self._log_det(x.shape[0])
        if self.transform == "log":
            ladj = ladj - torch.log(x).sum(-1)
            x = torch.log(x)
        elif self.transform == "asinh":
            z = (x - self.pre_loc) / self.pre_scale
            ladj = ladj - 0.5 * torch.log1p(z**2).sum(-1) - torch.log(self.pre_scale).sum()
            x = torch.asinh(z)
        white = torch.linalg.solve_triangular(self.scale_tril, (x - self.loc).T, upper=False).T
        return white, ladj

    def log_prob(self, x: Tensor) -> Tensor:
        xs, ladj = self.to_flow_space(x)
        return self.flow().log_prob(xs) + ladj

    def forward(self, x: Tensor) -> Tensor:
        return self.log_prob(x)

    def sample_and_log_prob(self, n: int) -> tuple[Tensor, Tensor]:
        xs, lp = self.flow().rsample_and_log_prob((n,))
        x = xs @ self.scale_tril.T + self.loc
        ladj = -self._log_det(n)
        if self.transform == "log":
            x = torch.exp(x)
            ladj = ladj - torch.log(x).sum(-1)
        elif self.transform == "asinh":
            z = torch.sinh(x)
            ladj = ladj - 0.5 * torch.log1p(z**2).sum(-1) - torch.log(self.pre_scale).sum()
            x = self.pre_loc + self.pre_scale * z
        return x, lp + ladj

    def to_latent(self, x: Tensor) -> Tensor:
        """The flow's base-space image of x (N, D): N(0, I) distributed for a perfect flow."""
        return self.flow().transform(self.to_flow_space(x)[0])


@dataclass
class FlowDensity:
    """A trained :class:`StandardisedFlow` with numpy in and out (batched, no gradients)."""

    module: StandardisedFlow
    dim: int
    device: str = "cpu"
    batch_size: int = 16_384

    def _device(self) -> torch.device:
        return next(self.module.parameters()).device

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        x = check_observation(x, self.dim)
        if self.module.log_transform and np.any(x <= 0):
            out = np.full(len(x), -np.inf)
            positive = np.all(x > 0, axis=1)
            if positive.any():
                out[positive] = self.log_prob(x[positive])
            return out
        out = []
        self.module.eval()
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                chunk = torch.as_tensor(
                    x[start : start + self.batch_size], dtype=torch.float32, device=self._device()
                )
                out.append(self.module.log_prob(chunk).double().cpu().numpy())
        return np.concatenate(out) if out else np.empty(0)

    def sample_and_log_prob(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples (n, D) and their log densities (n,), deterministic in ``seed`` (on one device)."""
        torch.manual_seed(seed)
        xs, lps = [], []
        self.module.eval()
        with torch.no_grad():
            for start in range(0, n, self.batch_size):
                x, lp = self.module.sample_and_log_prob(min(self.batch_size, n - start))
                xs.append(x.double().cpu().numpy())
                lps.append(lp.double().cpu().numpy())
        return np.concatenate(xs), np.concatenate(lps)

    def sample(self, n: int, seed: int) -> np.ndarray:
        return self.sample_and_log_prob(n, seed)[0]

    def to_latent(self, x: np.ndarray) -> np.ndarray:
        x = check_observation(x, self.dim)
        with torch.no_grad():
            z = self.module.to_latent(torch.as_tensor(x, dtype=torch.float32, device=self._device()))
        return z.double().cpu().numpy()


# -- p-values and metrics -------------------------------------------------------------------------
def density_pvalues(
    model: DensityModel, x: np.ndarray, n_samples: int = 100_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Density-rank p-values of observations ``x`` (N, D) under ``model``: the fraction of ``n_samples``
    model samples with a lower model density, and its binomial Monte-Carlo error (both (N,))."""
    x = check_observation(x, model.dim)
    if hasattr(model, "sample_and_log_prob"):
        _, reference = model.sample_and_log_prob(n_samples, seed)
    else:
        reference = model.log_prob(model.sample(n_samples, seed))
    return rank_pvalues(np.sort(reference), model.log_prob(x))


def toy_rank_pvalues(model: DensityModel, x: np.ndarray, toys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The improved baseline's p-values of observations ``x`` (N, D): the fraction of the ``toys`` (T, D)
    themselves, not of model samples, whose density under ``model`` is lower than the observation's, and
    its binomial error sqrt(p (1 - p) / T).

    With a Gaussian ``model`` the statistic is the Mahalanobis distance, but its distribution is the toys'
    empirical one instead of chi2_D: the two agree for Gaussian toys and differ when the toys are not
    Gaussian (docs/physics.md, "The improved baseline").

    >>> toys = np.random.default_rng(1).normal(size=(4000, 2))
    >>> g = GaussianDensity.fit(toys)
    >>> p, err = toy_rank_pvalues(g, np.zeros((1, 2)), toys)
    >>> bool(p[0] > 0.98)
    True
    """
    reference = np.sort(model.log_prob(check_observation(toys, model.dim)))
    return rank_pvalues(reference, model.log_prob(check_observation(x, model.dim)))


def rank_pvalues(reference: np.ndarray, log_density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fraction of the sorted ``reference`` log-densities (K,) below each of ``log_density`` (N,), and its
    binomial error sqrt(p (1 - p) / K).

    >>> rank_pvalues(np.array([-3.0, -2.0, -1.0, 0.0]), np.array([-1.5]))[0].tolist()
    [0.5]
    """
    p = np.searchsorted(reference, log_density, side="left") / len(reference)
    return p, np.sqrt(p * (1 - p) / len(reference))


def pvalue_metrics(p_model: np.ndarray, p_true: np.ndarray) -> dict[str, float]:
    """Agreement of p-values with the true ones: Pearson r, mean squared error, R2 = 1 - SS_res / SS_tot.

    >>> pvalue_metrics(np.array([0.1, 0.5, 0.9]), np.array([0.1, 0.5, 0.9]))
    {'pvalue_r': 1.0, 'pvalue_mse': 0.0, 'pvalue_r2': 1.0}
    """
    p_model, p_true = np.asarray(p_model, float), np.asarray(p_true, float)
    resid = np.sum((p_model - p_true) ** 2)
    total = np.sum((p_true - p_true.mean()) ** 2)
    return {
        "pvalue_r": float(np.corrcoef(p_model, p_true)[0, 1]),
        "pvalue_mse": float(resid / len(p_true)),
        "pvalue_r2": float(1.0 - resid / total),
    }


def heldout_nll(model: DensityModel, x: np.ndarray) -> float:
    """Mean negative log density (nats) of held-out toys ``x`` (N, D); inf if any has zero density."""
    return float(-np.mean(model.log_prob(x)))


# -- saved with a run -----------------------------------------------------------------------------
MODELS_CHECKPOINT = "uncertainty-models"
"""Checkpoint of a run's fitted densities (loaded with ``weights_only=True``): see :func:`models_state`."""


@dataclass
class FittedModels:
    """What a finished run keeps to score new observations: the ``gaussian``, the ``marginal`` Gaussian,
    the ``flow`` and the sorted Gaussian log-densities of the training toys (``toy_reference``, the
    improved baseline's reference distribution)."""

    gaussian: GaussianDensity
    marginal: MarginalGaussianDensity
    flow: FlowDensity
    toy_reference: np.ndarray


def _t(a: np.ndarray) -> Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def models_state(models: FittedModels, settings: FlowSettings) -> dict[str, Any]:
    """A checkpoint of ``models``: tensors and plain values only, so it loads with ``weights_only=True``."""
    m = models.marginal
    return {
        "format": 1,
        "gaussian": {"mean": _t(models.gaussian.mean), "cov": _t(models.gaussian.cov)},
        "marginal": {
            "loc": _t(m.loc),
            "scale": _t(m.scale),
            "lam": _t(m.lam),
            "mean": _t(m.gaussian.mean),
            "cov": _t(m.gaussian.cov),
        },
        "flow": {
            "state": {k: v.detach().cpu() for k, v in models.flow.module.state_dict().items()},
            "settings": dataclasses.asdict(settings),
            "dim": models.flow.dim,
            "transform": models.flow.module.transform,
        },
        "toy_reference": _t(models.toy_reference),
    }


def models_from_state(state: dict[str, Any]) -> FittedModels:
    """The :class:`FittedModels` of a :func:`models_state` checkpoint."""
    if state.get("format") != 1:
        raise DataError(f"not a numl uncertainty-models checkpoint (format {state.get('format')!r})")
    g, m, f = state["gaussian"], state["marginal"], state["flow"]
    values = dict(f["settings"])
    settings = FlowSettings(**{**values, "train": TrainSettings(**values["train"])})
    dim = int(f["dim"])
    module = StandardisedFlow(
        build_flow(dim, settings), torch.zeros(dim), torch.eye(dim), str(f["transform"])
    )
    module.load_state_dict(f["state"])
    module.eval()
    marginal = MarginalGaussianDensity(
        m["loc"].numpy(),
        m["scale"].numpy(),
        m["lam"].numpy(),
        GaussianDensity(m["mean"].numpy(), m["cov"].numpy()),
    )
    return FittedModels(
        GaussianDensity(g["mean"].numpy(), g["cov"].numpy()),
        marginal,
        FlowDensity(module, dim),
        state["toy_reference"].numpy(),
    )
