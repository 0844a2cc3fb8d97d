"""A deep network for inclusive cross sections: (E, theta, omega, cos theta, Q2) -> log d2sigma/dOmega domega.

The architecture follows the DNN study of inclusive electron-carbon scattering (Kowal, Graczyk et al.,
Phys. Rev. C 110, 025501 (2024), arXiv:2408.09936): blocks of (linear, batch norm, activation, dropout),
here with residual connections from the second block on so that deep stacks train from the start.
The network predicts the natural log of the cross section [nb/sr/GeV per nucleus], so the cross section
stays positive across the eleven orders of magnitude of the archive.

``M`` ensemble members live in one module with stacked weights ``(M, in, out)`` and per-member batch
norm: activations are ``(M, B, H)`` and each member's batch statistics are a mean over its own ``B``
axis, so a stacked forward pass is exactly ``M`` independent networks (no ``vmap`` plumbing of
buffers is needed, and the running statistics ``(M, 1, H)`` are ordinary buffers in the state dict).

>>> net = XsecNet(n_members=3, depth=2, width=8)
>>> net(torch.zeros(4, len(FEATURES))).shape
torch.Size([3, 4])
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from numl_core.data.kinematics import scaling_variable_psi

FEATURES = ("energy", "theta", "omega", "cos_theta", "q2")
"""Network inputs (columns of a prepared table): E [GeV], theta [rad], omega [GeV], cos theta, Q2 [GeV^2]."""
INPUTS = {
    "kinematics": FEATURES,
    "scaling": (*FEATURES, "psi_prime"),
    "scaling_log": ("log_energy", "theta", "omega_over_energy", "cos_theta", "log_q2", "psi_prime"),
}
"""Input sets by name: the kinematics alone; with the quasi-elastic scaling variable psi'
(:func:`~numl_core.data.kinematics.scaling_variable_psi` with the nucleus's Fermi momentum and removal
energy), which lines up the quasi-elastic peaks of different nuclei and so carries across them; and
``scaling_log`` (the default of the workflow), the same with log E, omega / E and log Q2, which keep
beam energies and momentum transfers beyond the training range (Al reaches 14.7 GeV, carbon 5.8) within
a few standard deviations of the inputs the network saw."""


def features(table: pd.DataFrame, names: tuple[str, ...] = FEATURES) -> np.ndarray:
    """The columns ``names`` of a prepared table as float32 ``(N, len(names))``; ``psi_prime`` is computed
    from ``omega``, ``q2`` and the nucleus's ``fermi_momentum`` and ``binding`` columns when absent."""
    derived = {
        "psi_prime": lambda t: scaling_variable_psi(t["omega"], t["q2"], t["fermi_momentum"], t["binding"]),
        "log_energy": lambda t: np.log(t["energy"]),
        "log_q2": lambda t: np.log(t["q2"]),
        "omega_over_energy": lambda t: t["omega"] / t["energy"],
    }
    missing = {k: f(table) for k, f in derived.items() if k in names and k not in table}
    return table.assign(**missing)[list(names)].to_numpy(np.float32)


class EnsembleLinear(nn.Module):
    """``M`` affine maps with stacked weights ``(M, in, out)`` and biases ``(M, 1, out)``.

    Initialised like ``nn.Linear`` (Kaiming-uniform weights, uniform biases), member by member from
    torch's global generator. Input ``(M, B, in)`` -> output ``(M, B, out)``.
    """

    def __init__(self, n_members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n_members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, h: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, h, self.weight)


class EnsembleBatchNorm(nn.Module):
    """Batch normalisation per member over the batch axis of ``(M, B, H)`` activations.

    Training mode normalises with each member's batch mean and (biased) variance and updates its
    running estimates (unbiased variance, exponential average with ``momentum``), as ``nn.BatchNorm1d``;
    evaluation mode uses the running estimates.
    """

    def __init__(self, n_members: int, width: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(n_members, 1, width))
        self.bias = nn.Parameter(torch.zeros(n_members, 1, width))
        self.register_buffer("running_mean", torch.zeros(n_members, 1, width))
        self.register_buffer("running_var", torch.ones(n_members, 1, width))

    def forward(self, h: Tensor) -> Tensor:
        if self.training and h.shape[1] > 1:
            mean = h.mean(dim=1, keepdim=True)
            var = h.var(dim=1, unbiased=False, keepdim=True)
            with torch.no_grad():
                n = h.shape[1]
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (h - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class Block(nn.Module):
    """Linear -> batch norm -> SiLU -> dropout, for ``M`` members at once; ``residual`` adds the input."""

    def __init__(
        self, n_members: int, in_dim: int, width: int, batch_norm: bool, dropout: float, residual: bool
    ) -> None:
        super().__init__()
        self.linear = EnsembleLinear(n_members, in_dim, width)
        self.norm = EnsembleBatchNorm(n_members, width) if batch_norm else nn.Identity()
        self.dropout = dropout
        self.residual = residual

    def forward(self, h: Tensor, mc_dropout: bool = False) -> Tensor:
        out = F.silu(self.norm(self.linear(h)))
        out = F.dropout(out, self.dropout, training=(self.training or mc_dropout) and self.dropout > 0)
        return h + out if self.residual else out


class XsecNet(nn.Module):
    """``n_members`` networks mapping ``features`` (:data:`INPUTS`) to log cross section [log(nb/sr/GeV)].

    ``depth`` blocks of ``width`` units (see :class:`Block`), then a linear head. Inputs are
    standardised with the stored ``x_mean``/``x_std`` (set by :meth:`set_scaling`); the head adds
    ``y_offset`` (mean log cross section of the training data) and ``log_shift`` (e.g. log(A/12)
    when a carbon model is carried over to a nucleus of mass number A).

    ``forward(x, mc_dropout=False)``: ``x`` of shape ``(B, F)`` for F inputs (shared by all members) or
    ``(M, B, F)`` -> log cross sections ``(M, B)``. ``mc_dropout`` keeps dropout active in
    evaluation mode (Monte-Carlo dropout, Gal & Ghahramani, ICML 2016, arXiv:1506.02142).
    """

    def __init__(
        self,
        n_members: int = 1,
        depth: int = 4,
        width: int = 64,
        dropout: float = 0.0,
        batch_norm: bool = True,
        residual: bool = True,
        features: tuple[str, ...] | list[str] = FEATURES,
    ) -> None:
        super().__init__()
        if n_members < 1 or depth < 1 or width < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"need n_members, depth, width >= 1 and 0 <= dropout < 1; "
                f"got {n_members}, {depth}, {width}, {dropout}"
            )
        self.features = tuple(features)
        dims = [len(self.features)] + [width] * depth
        self.blocks = nn.ModuleList(
            Block(n_members, a, width, batch_norm, dropout, residual and i > 0)
            for i, a in enumerate(dims[:-1])
        )
        self.head = EnsembleLinear(n_members, width, 1)
        self.register_buffer("x_mean", torch.zeros(len(self.features)))
        self.register_buffer("x_std", torch.ones(len(self.features)))
        self.register_buffer("y_offset", torch.zeros(()))
        self.register_buffer("log_shift", torch.zeros(()))
        self.hparams = {
            "n_members": n_members,
            "depth": depth,
            "width": width,
            "dropout": dropout,
            "batch_norm": batch_norm,
            "residual": residual,
            "features": list(self.features),
        }
        self.frozen_blocks = 0

    @property
    def n_members(self) -> int:
        return self.head.weight.shape[0]

    @torch.no_grad()
    def set_scaling(self, x: Tensor, log_xsec: Tensor) -> None:
        """Standardise inputs with the mean and std of ``x`` ``(N, F)``; centre the output on ``log_xsec``."""
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(1e-6))
        self.y_offset.fill_(float(log_xsec.mean()))

    def forward(self, x: Tensor, mc_dropout: bool = False) -> Tensor:
        h = (x - self.x_mean) / self.x_std
        if h.dim() == 2:
            h = h.expand(self.n_members, *h.shape)
        for block in self.blocks:
            h = block(h, mc_dropout)
        return self.head(h).squeeze(-1) + self.y_offset + self.log_shift

    def freeze_all_but_last(self, k: int) -> None:
        """Train only the last ``k`` blocks and the head; earlier blocks keep weights and batch statistics."""
        if not 0 <= k <= len(self.blocks):
            raise ValueError(f"k={k} must be in [0, {len(self.blocks)}]")
        self.frozen_blocks = len(self.blocks) - k
        for i, block in enumerate(self.blocks):
            for p in block.parameters():
                p.requires_grad_(i >= self.frozen_blocks)
        self.train(self.training)

    def train(self, mode: bool = True) -> XsecNet:
        super().train(mode)
        for block in self.blocks[: self.frozen_blocks]:
            block.eval()  # frozen blocks keep their running batch statistics
        return self

    def select(self, members: list[int]) -> XsecNet:
        """A new network holding copies of the chosen members (same architecture and scaling)."""
        out = XsecNet(**{**self.hparams, "n_members": len(members)})
        index = torch.as_tensor(members)
        state = {
            k: (v.detach()[index].clone() if v.dim() == 3 else v.detach().clone())
            for k, v in self.state_dict().items()
        }
        out.load_state_dict(state)
        return out
