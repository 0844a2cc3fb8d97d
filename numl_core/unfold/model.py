"""The classifier networks of OmniFold: ensembles of small MLPs with stacked parameters.

``M`` independent multilayer perceptrons keep their parameters in stacked tensors of shape
``(M, in, out)``; one forward pass evaluates all of them with a grouped matrix product, so an
ensemble of systematic throws x classifier trials trains in one loop on one device
(:mod:`numl_core.unfold.train`).

>>> net = EnsembleMLP(3, in_dim=2, hidden=(8,), seeds=[1, 2, 3])
>>> net(torch.zeros(5, 2)).shape
torch.Size([3, 5])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn


def derived_seed(*keys: int) -> int:
    """A 32-bit seed derived from integer keys (NumPy ``SeedSequence``), stable across runs.

    >>> derived_seed(0, 1) == derived_seed(0, 1) != derived_seed(0, 2)
    True
    """
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


class EnsembleMLP(nn.Module):
    """``n_members`` independent MLPs (ReLU hidden layers, one logit out) with stacked weights.

    Weights have shape ``(M, in, out)``, biases ``(M, 1, out)``; initialisation is Glorot-uniform
    weights and zero biases (the Keras default the reference implementations use), member ``m``
    drawn from its own generator seeded with ``seeds[m]`` (torch's global generator when
    ``seeds`` is not given). ``forward(x)`` takes ``x`` of shape ``(B, in)`` (shared by all
    members) or ``(M, B, in)`` and returns logits ``(M, B)``; ``sigmoid(logit)`` is the class-1
    probability.
    """

    def __init__(
        self,
        n_members: int,
        in_dim: int,
        hidden: Sequence[int] = (100, 100),
        seeds: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if n_members < 1 or in_dim < 1:
            raise ValueError(f"n_members and in_dim must be >= 1, got {n_members}, {in_dim}")
        if seeds is not None and len(seeds) != n_members:
            raise ValueError(f"got {len(seeds)} seeds for {n_members} members")
        dims = (in_dim, *(int(h) for h in hidden), 1)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_members, a, b)) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(n_members, 1, b)) for b in dims[1:])
        self.hidden = tuple(dims[1:-1])
        self._init_weights(seeds)

    @torch.no_grad()
    def _init_weights(self, seeds: Sequence[int] | None) -> None:
        for w in self.weights:
            limit = math.sqrt(6.0 / (w.shape[1] + w.shape[2]))
            if seeds is None:
                w.uniform_(-limit, limit)
        if seeds is not None:
            for m, seed in enumerate(seeds):
                gen = torch.Generator().manual_seed(int(seed))
                for w in self.weights:
                    limit = math.sqrt(6.0 / (w.shape[1] + w.shape[2]))
                    w[m] = (2.0 * torch.rand(w.shape[1:], generator=gen) - 1.0) * limit

    @property
    def n_members(self) -> int:
        return self.weights[0].shape[0]

    @property
    def in_dim(self) -> int:
        return self.weights[0].shape[1]

    def forward(self, x: Tensor) -> Tensor:
        # shared inputs are broadcast as a stride-0 view, not copied per member
        h = x.expand(self.n_members, *x.shape) if x.dim() == 2 else x
        last = len(self.weights) - 1
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if layer < last:
                h = torch.relu_(h)  # in place: one activation tensor per layer
        return h.squeeze(-1)

    @classmethod
    def from_parameters(cls, weights: Sequence[Tensor], biases: Sequence[Tensor]) -> EnsembleMLP:
        """An ensemble holding the given stacked weights (M, in, out) and biases (M, 1, out)."""
        net = cls.__new__(cls)
        nn.Module.__init__(net)
        net.weights = nn.ParameterList(nn.Parameter(w) for w in weights)
        net.biases = nn.ParameterList(nn.Parameter(b) for b in biases)
        net.hidden = tuple(w.shape[2] for w in weights[:-1])
        return net

    def select(self, members: Sequence[int] | slice) -> EnsembleMLP:
        """A new ensemble holding copies of the chosen members' parameters."""
        return self.from_parameters(
            [w.detach()[members].clone() for w in self.weights],
            [b.detach()[members].clone() for b in self.biases],
        )

    @classmethod
    def concat(cls, parts: Sequence[EnsembleMLP]) -> EnsembleMLP:
        """Join ensembles of the same architecture into one (members in order)."""
        layers = range(len(parts[0].weights))
        return cls.from_parameters(
            [torch.cat([p.weights[i].detach() for p in parts]) for i in layers],
            [torch.cat([p.biases[i].detach() for p in parts]) for i in layers],
        )
