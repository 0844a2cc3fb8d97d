"""The arrays an unfolding takes, as one bundle.

Simulated events carry reco and truth features and the masks of the two levels; measured events carry
reco features; the weights of both may come per systematic throw or bootstrap replica (a leading axis
of T members).

>>> ok = np.ones(4, bool)
>>> x = np.arange(4.0)
>>> inputs = UnfoldingInputs(x, x, ok, ok, x[:3], mc_weights=np.ones((5, 4))).checked()
>>> inputs.n_throws, inputs.data_weights.shape, [g.n_throws for g in inputs.split_throws(2)]
(5, (5, 3), [2, 2, 1])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def _per_throw(w: np.ndarray | None, n: int, name: str) -> np.ndarray:
    w = np.ones(n, np.float32) if w is None else np.asarray(w, np.float32)
    w = w[None] if w.ndim == 1 else w
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"{name} must have shape ({n},) or (T, {n}), got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"{name} holds non-finite weights")
    return w


def _features(x: np.ndarray, n: int, name: str) -> np.ndarray:
    x = np.asarray(x, np.float32)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, D), got {x.shape}")
    return x


def _check_finite(x: np.ndarray, mask: np.ndarray, name: str) -> None:
    rows = x[mask]
    if not np.isfinite(rows).all():
        bad = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
        raise ValueError(f"{name}: row {int(np.flatnonzero(mask)[bad])} is selected but not finite")


@dataclass
class UnfoldingInputs:
    """Simulated and measured events for an unfolding.

    ``reco_mc`` (N, Dr) and ``truth_mc`` (N, Dt) features of simulated events; ``pass_reco`` and
    ``pass_truth`` (N,) bool (an event may fail either: inefficiency, background; rows failing a level
    are ignored at that level); ``reco_data`` (Nd, Dr) measured reco features; ``mc_weights`` (N,) or
    (T, N) prior weights per systematic throw and ``data_weights`` (Nd,) or (T, Nd) data weights per
    throw (e.g. Poisson bootstrap), ones when not given.
    """

    reco_mc: np.ndarray
    truth_mc: np.ndarray
    pass_reco: np.ndarray
    pass_truth: np.ndarray
    reco_data: np.ndarray
    mc_weights: np.ndarray | None = None
    data_weights: np.ndarray | None = None

    def checked(self) -> UnfoldingInputs:
        """A validated copy: bool masks, float32 (rows, features) arrays, weights (T, N) and (T, Nd)
        broadcast to a common number of throws T. Raises ``ValueError`` naming the first bad input."""
        pass_reco, pass_truth = np.asarray(self.pass_reco, bool), np.asarray(self.pass_truth, bool)
        n = pass_reco.shape[0]
        if pass_truth.shape != (n,):
            raise ValueError(f"pass_truth must have shape ({n},), got {pass_truth.shape}")
        if not (pass_reco.any() and pass_truth.any()):
            raise ValueError("at least one simulated event must pass reco and one must pass truth")
        reco, truth = _features(self.reco_mc, n, "reco_mc"), _features(self.truth_mc, n, "truth_mc")
        _check_finite(reco, pass_reco, "reco_mc")
        _check_finite(truth, pass_truth, "truth_mc")
        data = np.asarray(self.reco_data, np.float32)
        data = _features(data, len(data), "reco_data")
        _check_finite(data, np.ones(len(data), bool), "reco_data")
        if data.shape[1] != reco.shape[1]:
            raise ValueError(f"reco_data has {data.shape[1]} features but reco_mc has {reco.shape[1]}")
        prior = _per_throw(self.mc_weights, n, "mc_weights")
        dweights = _per_throw(self.data_weights, len(data), "data_weights")
        n_throws = max(prior.shape[0], dweights.shape[0])
        if {prior.shape[0], dweights.shape[0]} - {1, n_throws}:
            raise ValueError(
                f"mc_weights has {prior.shape[0]} throws but data_weights has {dweights.shape[0]}"
            )
        prior = np.array(np.broadcast_to(prior, (n_throws, n)))
        dweights = np.array(np.broadcast_to(dweights, (n_throws, len(data))))
        return UnfoldingInputs(reco, truth, pass_reco, pass_truth, data, prior, dweights)

    @property
    def n_throws(self) -> int:
        """Members T of the weights (1 when neither carries a throw axis)."""
        shapes = [np.shape(w) for w in (self.mc_weights, self.data_weights) if w is not None]
        return max([s[0] for s in shapes if len(s) == 2], default=1)

    def split_throws(self, size: int) -> list[UnfoldingInputs]:
        """Groups of at most ``size`` throws (in order), each with the same events; call on
        :meth:`checked` inputs."""
        if size < 1:
            raise ValueError(f"throws per group = {size} must be >= 1")
        return [
            dataclasses.replace(
                self,
                mc_weights=self.mc_weights[a : a + size].copy(),
                data_weights=self.data_weights[a : a + size].copy(),
            )
            for a in range(0, self.n_throws, size)
        ]

    def fingerprint(self) -> Tensor:
        """Size, sum and sum of squares of every (selected) array of :meth:`checked` inputs: a checkpoint
        made from other inputs is refused."""
        arrays = (
            self.reco_mc[self.pass_reco],
            self.truth_mc[self.pass_truth],
            self.reco_data,
            self.pass_reco,
            self.pass_truth,
            self.mc_weights,
            self.data_weights,
        )
        values = []
        for a in arrays:
            a64 = np.asarray(a, np.float64)
            values += [float(a64.size), float(a64.sum()), float((a64**2).sum())]
        return torch.tensor(values, dtype=torch.float64)
