"""Near-to-far prediction: p(X_far | X_near) from an autoregressive transformer or a conditional flow.

:class:`NearFarTransformer` reads the near-detector quantities and the far quantities already
generated as a causal token sequence (one scalar per token, a learned position embedding) and predicts
each far quantity with a Gaussian-mixture head (K weights, means, widths): p(far | near) =
prod_j p(far_j | near, far_<j), exact log density and ancestral sampling (mixture-density networks,
C. M. Bishop, 1994; autoregressive transformers, Vaswani et al. arXiv:1706.03762).
:class:`ConditionalFlow` is a zuko flow with the near quantities as context. Both standardise inputs by
the training sample and report densities in the original units
(:func:`numl_core.uncertainty.train.fit_near_far` trains them). :func:`evaluate_near_far` gives the
held-out NLL against the toy's exact conditional and the coverage of central predictive intervals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor, nn

from numl_core.data.generators.toys import NearFarToy
from numl_core.training import TrainSettings
from numl_core.uncertainty.model import FlowSettings, build_flow, flow_training

log = logging.getLogger(__name__)

NDFD_MODELS = ("transformer", "flow")
COVERAGE_LEVELS = (0.68, 0.95)


class _Standardiser(nn.Module):
    def __init__(self, near: Tensor, far: Tensor) -> None:
        super().__init__()
        self.register_buffer("near_loc", near.mean(0))
        self.register_buffer("near_scale", near.std(0))
        self.register_buffer("far_loc", far.mean(0))
        self.register_buffer("far_scale", far.std(0))

    def near(self, x: Tensor) -> Tensor:
        return (x - self.near_loc) / self.near_scale

    def far(self, x: Tensor) -> Tensor:
        return (x - self.far_loc) / self.far_scale

    def far_back(self, y: Tensor) -> Tensor:
        return y * self.far_scale + self.far_loc

    def far_log_jacobian(self) -> Tensor:
        return -torch.log(self.far_scale).sum()


class NearFarTransformer(nn.Module):
    """Causal transformer over (near_1..near_Dn, far_1..far_{Df-1}) with a K-Gaussian head per far value.

    ``near`` (N, Dn) and ``far`` (N, Df) in original units; the first two arguments of the constructor's
    ``reference`` pair set the standardisation.
    """

    def __init__(
        self,
        reference: tuple[Tensor, Tensor],
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        n_components: int = 5,
    ) -> None:
        super().__init__()
        near, far = reference
        self.d_near, self.d_far, self.k = near.shape[1], far.shape[1], n_components
        self.norm = _Standardiser(near, far)
        length = self.d_near + self.d_far - 1
        self.value = nn.Linear(1, d_model)
        self.position = nn.Parameter(0.02 * torch.randn(length, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=4 * d_model, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 3 * n_components)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length), persistent=False)

    def mixture(self, near_s: Tensor, far_s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture parameters (N, Df, K): log weights, means, log widths, in standardised units."""
        tokens = torch.cat([near_s, far_s[:, :-1]], dim=1).unsqueeze(-1)
        h = self.encoder(self.value(tokens) + self.position, mask=self.mask, is_causal=True)
        out = self.head(h[:, self.d_near - 1 :]).view(len(near_s), self.d_far, 3, self.k)
        logits, means, log_widths = out.unbind(2)
        return torch.log_softmax(logits, -1), means, log_widths.clamp(-7.0, 5.0)

    def log_prob(self, far: Tensor, near: Tensor) -> Tensor:
        """log p(far | near) (N,) in original units."""
        far_s = self.norm.far(far)
        logw, mu, log_sd = self.mixture(self.norm.near(near), far_s)
        z = (far_s.unsqueeze(-1) - mu) / log_sd.exp()
        comp = logw - 0.5 * z**2 - log_sd - 0.5 * np.log(2 * np.pi)
        return torch.logsumexp(comp, -1).sum(-1) + self.norm.far_log_jacobian()

    def forward(self, far: Tensor, near: Tensor) -> Tensor:
        return self.log_prob(far, near)

    @torch.no_grad()
    def sample(self, near: Tensor, n: int) -> Tensor:
        """``n`` draws of far for each row of ``near``: (n, N, Df), one far value per pass."""
        rows = near.shape[0]
        near_s = self.norm.near(near).repeat(n, 1)
        far_s = torch.zeros(n * rows, self.d_far, device=near.device)
        for j in range(self.d_far):
            logw, mu, log_sd = self.mixture(near_s, far_s)
            comp = torch.distributions.Categorical(logits=logw[:, j]).sample()
            pick = comp.unsqueeze(-1)
            m, s = mu[:, j].gather(-1, pick).squeeze(-1), log_sd[:, j].gather(-1, pick).squeeze(-1).exp()
            far_s[:, j] = m + s * torch.randn_like(m)
        return self.norm.far_back(far_s).view(n, rows, self.d_far)


class ConditionalFlow(nn.Module):
    """A zuko flow on standardised far quantities with the standardised near quantities as context."""

    def __init__(self, reference: tuple[Tensor, Tensor], settings: FlowSettings) -> None:
        super().__init__()
        near, far = reference
        self.norm = _Standardiser(near, far)
        self.flow = build_flow(far.shape[1], settings, context=near.shape[1])

    def log_prob(self, far: Tensor, near: Tensor) -> Tensor:
        return self.flow(self.norm.near(near)).log_prob(self.norm.far(far)) + self.norm.far_log_jacobian()

    def forward(self, far: Tensor, near: Tensor) -> Tensor:
        return self.log_prob(far, near)

    @torch.no_grad()
    def sample(self, near: Tensor, n: int) -> Tensor:
        return self.norm.far_back(self.flow(self.norm.near(near)).sample((n,)))


def near_far_training(**changes: Any) -> TrainSettings:
    """The training loop's settings for a near-to-far model: those of a density flow
    (:func:`~numl_core.uncertainty.model.flow_training`) with at most 100 epochs and early stopping after
    10; ``changes`` override them.

    >>> near_far_training(epochs=6).epochs, near_far_training().patience
    (6, 10)
    """
    return flow_training(**{"epochs": 100, "patience": 10, **changes})


def _near_far_flow() -> FlowSettings:
    return FlowSettings(model="nsf", transforms=4, hidden_features=64, coupling=False)


@dataclass(frozen=True)
class NearFarSettings:
    """Sizes of both near-to-far models (``flow``: the conditional flow's architecture) and their
    training (``train``, :func:`near_far_training`; its ``seed`` also seeds the initialisation)."""

    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    n_components: int = 5
    flow: FlowSettings = field(default_factory=_near_far_flow)
    train: TrainSettings = field(default_factory=near_far_training)


def build_model(kind: str, reference: tuple[Tensor, Tensor], settings: NearFarSettings) -> nn.Module:
    """``"transformer"`` (:class:`NearFarTransformer`) or ``"flow"`` (:class:`ConditionalFlow`)."""
    torch.manual_seed(settings.train.seed)
    if kind == "transformer":
        return NearFarTransformer(
            reference, settings.d_model, settings.n_heads, settings.n_layers, settings.n_components
        )
    if kind == "flow":
        return ConditionalFlow(reference, settings.flow)
    raise ValueError(f"kind={kind!r} is not one of {NDFD_MODELS}")


def coverage(
    samples: np.ndarray, far: np.ndarray, levels: tuple[float, ...] = COVERAGE_LEVELS
) -> dict[str, float]:
    """Fraction of true far values (N, D) inside the central predictive interval of each level, from
    ``samples`` (S, N, D), averaged over dimensions; a calibrated model gives the level itself.

    >>> rng = np.random.default_rng(0)
    >>> cov = coverage(rng.normal(size=(2000, 500, 1)), rng.normal(size=(500, 1)))
    >>> bool(abs(cov["coverage_68"] - 0.68) < 0.05)
    True
    """
    out = {}
    for level in levels:
        lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
        out[f"coverage_{round(100 * level)}"] = float(np.mean((far >= lo) & (far <= hi)))
    return out


PIT_BINS = 10


def pit_calibration(samples: np.ndarray, far: np.ndarray, bins: int = PIT_BINS) -> dict[str, float]:
    """Probability integral transform of the true far values (N, D) under the predictive ``samples``
    (S, N, D): u = the fraction of samples below the true value, per event and dimension. A calibrated model
    gives uniform u: ``pit_ks_pvalue`` is the Kolmogorov-Smirnov p-value against U(0, 1) and ``pit_0`` ...
    the fraction of u in each of ``bins`` equal bins (1 / bins each when calibrated).

    >>> rng = np.random.default_rng(0)
    >>> out = pit_calibration(rng.normal(size=(400, 300, 1)), rng.normal(size=(300, 1)))
    >>> bool(out["pit_ks_pvalue"] > 0.01), round(sum(out[f"pit_{k}"] for k in range(10)), 6)
    (True, 1.0)
    """
    u = np.mean(samples < far[None], axis=0).ravel()
    u = u + np.random.default_rng(0).uniform(0, 1 / samples.shape[0], size=u.shape)  # break ties on the grid
    counts, _ = np.histogram(np.clip(u, 0, 1), bins=bins, range=(0.0, 1.0))
    out = {"pit_ks_pvalue": float(stats.kstest(u, "uniform").pvalue)}
    out.update({f"pit_{k}": float(c / len(u)) for k, c in enumerate(counts)})
    return out


def evaluate_near_far(
    models: dict[str, nn.Module],
    toy: NearFarToy,
    near: np.ndarray,
    far: np.ndarray,
    n_samples: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """Held-out NLL (nats per event), interval coverage and PIT calibration (:func:`pit_calibration`) of each
    model and of the toy's exact conditional (``truth``) on test pairs (near, far), one row per model."""
    rows = [
        {
            "model": "truth",
            "nll": float(-toy.conditional_log_prob(far, near).mean()),
            **coverage(truth_samples := toy.conditional_sample(near, n_samples, seed), far),
            **pit_calibration(truth_samples, far),
        }
    ]
    near_t, far_t = (torch.as_tensor(a, dtype=torch.float32) for a in (near, far))
    for name, model in models.items():
        model = model.cpu().eval()
        torch.manual_seed(seed)
        with torch.no_grad():
            nll = float(-model.log_prob(far_t, near_t).double().mean())
            samples = model.sample(near_t, n_samples).double().numpy()
        rows.append({"model": name, "nll": nll, **coverage(samples, far), **pit_calibration(samples, far)})
    table = pd.DataFrame(rows)
    table["nll_minus_truth"] = table["nll"] - table.loc[table["model"] == "truth", "nll"].iloc[0]
    return table
