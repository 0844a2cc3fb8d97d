"""Normalisation-aware chi2 for cross-section fits.

Each data set k (an experiment, or one kinematic setting) may be off by a common factor lambda_k with a
Gaussian prior of width Delta_k (the experiment's normalisation uncertainty). Following the DNN study
(Kowal, Graczyk et al., Phys. Rev. C 110, 025501 (2024), arXiv:2408.09936) the model, not the data, is
scaled, which avoids the normalisation bias discussed by D'Agostini (NIM A 346, 306 (1994)):

    chi2_tot = sum_k [ sum_{i in k} ((lambda_k sigma_i - d_i) / e_i)^2 + ((1 - lambda_k) / Delta_k)^2 ].

Training minimises half of it with the residual taken in log space,
``(log lambda_k + log sigma_i - log d_i) d_i / e_i``, equal to the linear residual to first order but
well behaved while the network is still orders of magnitude off. Reported chi2 values use the linear form.

>>> d = np.array([1.0, 2.0]); e = np.array([0.1, 0.2])
>>> lam = profile_normalisations(d * 1.1, d, e, np.array([0, 0]), np.array([1e-9]))
>>> round(float(lam[0]), 6)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from numl_core.xsec.model import XsecNet
from numl_core.xsec.points import PointSet


class NormalisedModel(nn.Module):
    """A :class:`XsecNet` with one normalisation factor per member and data set, ``lambda = exp(log_lambda)``.

    ``log_lambda`` has shape ``(M, K)`` and starts at zero (lambda = 1).
    """

    def __init__(self, net: XsecNet, n_sets: int) -> None:
        super().__init__()
        self.net = net
        self.log_lambda = nn.Parameter(torch.zeros(net.n_members, max(int(n_sets), 1)))

    @property
    def lambdas(self) -> Tensor:
        """Normalisation factors ``(M, K)``."""
        return self.log_lambda.exp()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@dataclass
class Chi2Loss:
    """``loss_fn(model, batch)`` for :func:`numl_core.training.fit` on a :class:`NormalisedModel`.

    Holds the whole data set on the training device: ``x`` (N, 5) features, ``log_xsec`` (N,) log data,
    ``rel_error`` (N,) error / value, ``group`` (N,) data-set index, ``prior`` (K,) relative normalisation
    uncertainties (``inf``: lambda free), and ``n_points``, the number of training points the prior is
    shared over; ``residual`` "log" (see the module docstring) or "linear". A batch is one
    tensor of point indices ``(B, M)``: column ``m`` is member ``m``'s
    (bootstrap) sample, so every member sees its own points and batch statistics.

    ``anchor``: the network's parameters to stay close to (fine-tuning: the pretrained ones, L2-SP of
    Li, Grandvalet, Davoine, ICML 2018, arXiv:1802.01483), penalised by ``anchor_strength`` / 2 x the
    squared distance per member, shared over the ``n_points`` like the priors: a Gaussian prior of
    variance 1 / ``anchor_strength`` on each weight's change, which matters with few points and fades with
    many.

    Returns ``loss`` (per member, summed over members: members are independent) and ``chi2``, the mean
    squared residual per point over members (comparable to chi2 per point).
    """

    x: Tensor
    log_xsec: Tensor
    rel_error: Tensor
    group: Tensor
    prior: Tensor
    n_points: int
    residual: str = "log"
    anchor: tuple[Tensor, ...] = ()
    anchor_strength: float = 0.0

    def __call__(self, model: NormalisedModel, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        idx = batch[0].T  # (M, B)
        log_pred = model.net(self.x[idx]).float()
        log_lambda = torch.gather(model.log_lambda, 1, self.group[idx])
        log_ratio = log_pred + log_lambda - self.log_xsec[idx]
        if self.residual == "linear":  # (lambda sigma - d) / e, with the ratio capped against overflow
            log_ratio = torch.expm1(log_ratio.clamp(max=20.0))
        r = log_ratio / self.rel_error[idx]
        prior = (((1.0 - model.lambdas) / self.prior) ** 2).sum(dim=1)  # (M,)
        per_member = 0.5 * (r**2).mean(dim=1) + 0.5 * prior / self.n_points
        if self.anchor_strength:
            per_member = per_member + 0.5 * self.anchor_strength * self.anchor_distance(model) / self.n_points
        return {"loss": per_member.sum(), "chi2": (r**2).mean()}

    def anchor_distance(self, model: NormalisedModel) -> Tensor:
        """Squared distance (M,) of each member's parameters from :attr:`anchor`."""
        parts = [
            ((p - a.to(p.device)) ** 2).flatten(1).sum(1)
            for p, a in zip(model.net.parameters(), self.anchor, strict=True)
        ]
        return torch.stack(parts).sum(0)

    @classmethod
    def from_points(
        cls, points: PointSet, n_points: int, device: torch.device, residual: str = "log"
    ) -> Chi2Loss:
        """The loss over ``points`` (all of them on ``device``), the prior shared over ``n_points``."""

        def t(a: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.tensor(np.asarray(a), dtype=dtype, device=device)

        return cls(
            t(points.x),
            t(np.log(points.xsec)),
            t(points.error / points.xsec),
            t(points.group, torch.long),
            t(points.prior),
            int(n_points),
            residual,
        )


def profile_normalisations(
    model: np.ndarray, data: np.ndarray, error: np.ndarray, group: np.ndarray, prior: np.ndarray
) -> np.ndarray:
    """The lambda_k minimising the linear chi2_tot for fixed predictions ``model`` (closed form).

    d chi2 / d lambda_k = 0 gives
    lambda_k = (sum m d / e^2 + 1 / Delta_k^2) / (sum m^2 / e^2 + 1 / Delta_k^2).
    ``model``, ``data``, ``error`` (N,), ``group`` (N,) ints in [0, K), ``prior`` (K,) Delta_k;
    returns (K,). Data sets without points get lambda = 1.
    """
    k = len(prior)
    w = 1.0 / np.asarray(error, float) ** 2
    p = 1.0 / np.asarray(prior, float) ** 2
    num = np.bincount(group, weights=model * data * w, minlength=k) + p
    den = np.bincount(group, weights=model**2 * w, minlength=k) + p
    return np.divide(num, den, out=np.ones(k), where=den > 0)


def chi2_per_point(
    model: np.ndarray,
    data: np.ndarray,
    error: np.ndarray,
    group: np.ndarray,
    prior: np.ndarray,
    lambdas: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """chi2_tot / N (linear residuals plus the priors of the data sets present) and the lambda_k used.

    Without ``lambdas`` they are profiled (:func:`profile_normalisations`) on these points. With all
    ``prior`` zero-width this reduces to the plain chi2 per point.

    >>> chi2, lam = chi2_per_point(np.array([1.0, 1.0]), np.array([1.1, 0.9]), np.array([0.1, 0.1]),
    ...                            np.array([0, 0]), np.array([1e-6]))
    >>> round(chi2, 6), round(float(lam[0]), 6)
    (1.0, 1.0)
    """
    group = np.asarray(group, int)
    lam = profile_normalisations(model, data, error, group, prior) if lambdas is None else lambdas
    r = (lam[group] * model - data) / error
    present = np.bincount(group, minlength=len(prior)) > 0
    penalty = (((1.0 - lam) / prior) ** 2)[present].sum()
    return float(((r**2).sum() + penalty) / len(data)), lam


def chi2_held_out(
    model: np.ndarray,
    data: np.ndarray,
    error: np.ndarray,
    group: np.ndarray,
    prior: np.ndarray,
    lambdas: np.ndarray,
    fitted: np.ndarray,
) -> float:
    """chi2 per point of scored points whose normalisations were fixed elsewhere: nothing is fitted here.

    ``lambdas`` (K,) come from the training (or fine-tuning) points; a data set with such points
    (``fitted`` (K,) true) scales the prediction by its lambda_k and pays its prior term
    ((1 - lambda_k) / Delta_k)^2; a data set without keeps lambda = 1 and its prior width enters as an
    uncertainty fully correlated across its points, covariance diag(e^2) + Delta_k^2 m m^T (inverted
    per data set by the Sherman-Morrison formula; a free normalisation, Delta_k = inf, is then left
    unconstrained and only the shape is scored). ``model``, ``data``, ``error``, ``group`` (N,).

    >>> m, d, e = np.array([1.0, 1.0]), np.array([1.1, 1.1]), np.array([0.1, 0.1])
    >>> g, prior = np.array([0, 0]), np.array([0.1])
    >>> round(chi2_held_out(m, d, e, g, prior, np.ones(1), np.array([True])), 6)  # lambda fixed at 1
    1.0
    >>> round(chi2_held_out(m, d, e, g, prior, np.ones(1), np.array([False])), 6)  # a 10 % prior absorbs it
    0.333333
    """
    group = np.asarray(group, int)
    fitted = np.asarray(fitted, bool)
    scale = np.where(fitted, lambdas, 1.0)[group]
    z = (scale * model - data) / error
    u = model / error
    k = len(prior)
    zz = np.bincount(group, weights=z**2, minlength=k)
    uz = np.bincount(group, weights=u * z, minlength=k)
    uu = np.bincount(group, weights=u**2, minlength=k)
    inv_prior2 = 1.0 / np.asarray(prior, float) ** 2
    # z^T (I + Delta^2 u u^T)^-1 z = z.z - (u.z)^2 / (1 / Delta^2 + u.u), per data set without lambdas
    correlated = np.divide(uz**2, inv_prior2 + uu, out=np.zeros(k), where=(inv_prior2 + uu) > 0)
    per_set = np.where(fitted, zz, zz - correlated)
    present = np.bincount(group, minlength=k) > 0
    penalty = (((1.0 - lambdas) / np.asarray(prior, float)) ** 2)[present & fitted & np.isfinite(prior)]
    return float((per_set.sum() + penalty.sum()) / len(data))


def lambdas_from_training(
    model: np.ndarray, data: np.ndarray, error: np.ndarray, group: np.ndarray, prior: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """lambda_k profiled on the training points (:func:`profile_normalisations`) and which data sets
    had training points to fix them (``fitted`` (K,)); returns ``(lambdas, fitted)`` for
    :func:`chi2_held_out`."""
    group = np.asarray(group, int)
    lam = profile_normalisations(model, data, error, group, prior)
    return lam, np.bincount(group, minlength=len(prior)) > 0


def normalisation_table(
    names: list[str], prior: np.ndarray, lambdas: np.ndarray, points: np.ndarray
) -> pd.DataFrame:
    """Fitted lambda_k per data set: mean and spread over members ``lambdas`` (M, K), prior width, points."""
    lambdas = np.atleast_2d(lambdas)
    spread = lambdas.std(axis=0, ddof=1) if len(lambdas) > 1 else np.full(lambdas.shape[1], np.nan)
    return pd.DataFrame(
        {
            "data_set": names,
            "points": points,
            "prior": prior,
            "lambda": lambdas.mean(axis=0),
            "lambda_error": spread,
            "pull": (lambdas.mean(axis=0) - 1.0) / prior,
        }
    )
