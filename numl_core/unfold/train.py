"""Training of classifier ensembles: every member in one batched loop.

The members of an :class:`~numl_core.unfold.model.EnsembleMLP` share mini-batches (the same event
indices) but carry their own event weights and initial parameters. Each member learns, by weighted
binary cross entropy, the likelihood ratio of two weighted samples (the reweighting step of OmniFold,
Andreassen et al., PRL 124, 182001 (2020), arXiv:1911.09107). Read top to bottom: the settings, the
two classes stacked into one weighted sample, the optimiser, one epoch, and :func:`train_classifiers`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from numl_core.device import resolve_device
from numl_core.jobs import Progress
from numl_core.training import TrainSettings
from numl_core.unfold.model import EnsembleMLP, derived_seed

GPU_MEMBERS_PER_CHUNK = 32


def classifier_training(**changes: Any) -> TrainSettings:
    """The training loop's settings for classifier ensembles: at most 50 epochs of 10 000-event batches,
    Adam with lr 1e-3, patience 5 (a member is frozen at its best parameters after ``patience`` epochs
    without a lower validation loss), then ``changes``.

    >>> classifier_training(epochs=2).batch_size
    10000
    """
    return TrainSettings(**{"epochs": 50, "batch_size": 10_000, "lr": 1e-3, "patience": 5, **changes})


@dataclass
class ClassifierSettings:
    """Settings of a classifier ensemble.

    ``hidden`` are the hidden-layer widths; ``train`` the loop's :class:`~numl_core.training.TrainSettings`
    (``epochs``, ``batch_size``, ``lr``, ``patience``, ``device`` for
    :func:`numl_core.device.resolve_device`, ``seed`` of splits, shuffles and initialisation; the others
    are not used here); ``val_fraction`` the share of events held out for validation;
    ``max_members_per_chunk`` bounds how many members are evaluated at once (memory ~ members x batch x
    width); when not given it is :data:`GPU_MEMBERS_PER_CHUNK` on a GPU and 1 on a CPU, where the work is
    memory-bound and one member's activations stay in cache (measured fastest).
    """

    hidden: tuple[int, ...] = (100, 100)
    train: TrainSettings = field(default_factory=classifier_training)
    val_fraction: float = 0.2
    max_members_per_chunk: int | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting outside its allowed range."""
        self.train.validate()
        checks = {
            "hidden": len(self.hidden) > 0 and all(int(h) >= 1 for h in self.hidden),
            "train.lr": math.isfinite(self.train.lr),
            "train.patience": self.train.patience >= 1,
            "val_fraction": 0.0 < self.val_fraction < 1.0,
            "max_members_per_chunk": self.max_members_per_chunk is None or self.max_members_per_chunk >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                value = getattr(self.train, name[6:]) if name.startswith("train.") else getattr(self, name)
                raise ValueError(f"{type(self).__name__}.{name} = {value!r} is not allowed")


def members_per_chunk(settings: ClassifierSettings, device: torch.device) -> int:
    """Members evaluated together: the setting, else by device (see :class:`ClassifierSettings`)."""
    if settings.max_members_per_chunk is not None:
        return settings.max_members_per_chunk
    return GPU_MEMBERS_PER_CHUNK if device.type != "cpu" else 1


class _MaskedAdam:
    """Adam (Kingma & Ba, arXiv:1412.6980) on stacked member parameters.

    ``step(active)`` updates only members with ``active[m]``; frozen members keep their
    parameters exactly. Every operation is elementwise, so each member follows the same
    trajectory it would follow when trained alone.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self, active: Tensor) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad
            m.lerp_(g, 1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            update = (m / c1) / ((v / c2).sqrt_() + self.eps)
            mask = active.view(-1, *([1] * (p.dim() - 1))).to(p.dtype)
            p.sub_(update.mul_(mask), alpha=self.lr)
            p.grad = None


@dataclass
class _Samples:
    """Training events and per-member weights of labels 0 (``neg``) and 1 (``pos``).

    With ``label`` given, each event has one label and ``neg`` holds its weight (``pos`` unused);
    otherwise every event enters with both labels and weights ``neg`` and ``pos``.
    """

    x: Tensor
    neg: Tensor
    pos: Tensor | None
    label: Tensor | None

    def weights(self, members: slice, idx: Tensor) -> tuple[Tensor, Tensor]:
        w = self.neg[members][:, idx]
        if self.pos is not None:
            return w, self.pos[members][:, idx]
        y = self.label[idx]
        return w * (1.0 - y), w * y


def _weighted_bce(logits: Tensor, w_neg: Tensor, w_pos: Tensor) -> Tensor:
    """Per-member sum over events of ``-w_pos log q - w_neg log(1 - q)``, ``q = sigmoid(logit)``."""
    return (w_neg * F.softplus(logits) + w_pos * F.softplus(-logits)).sum(dim=1)


@dataclass
class ClassifierFit:
    """A trained ensemble and its loss curves.

    ``model`` holds each member's parameters at its lowest validation loss; ``log_norm`` (M,)
    is ``log(W1 / W0)``, the log ratio of the class weight totals that training balanced out;
    ``train_loss``/``val_loss`` are ``(epochs run, M)`` per-event weighted BCE; ``best_epoch``
    (M,) the epoch whose parameters were kept.
    """

    model: EnsembleMLP
    log_norm: Tensor
    train_loss: np.ndarray
    val_loss: np.ndarray
    best_epoch: np.ndarray
    batch_size: int
    max_members_per_chunk: int

    @torch.no_grad()
    def logits(self, x: np.ndarray | Tensor) -> Tensor:
        """Classifier logits ``(M, N)`` for events ``x`` of shape ``(N, in)``, evaluated in chunks."""
        x = _as_tensor(x, self.log_norm.device)
        m_all = self.model.n_members
        out = torch.empty(m_all, x.shape[0], device=x.device)
        step_m = self.max_members_per_chunk
        step_n = self.batch_size
        for m0 in range(0, m_all, step_m):
            part = self.model.select(slice(m0, m0 + step_m)) if m_all > step_m else self.model
            for n0 in range(0, x.shape[0], step_n):
                out[m0 : m0 + step_m, n0 : n0 + step_n] = part(x[n0 : n0 + step_n])
        return out

    def log_ratio(self, x: np.ndarray | Tensor) -> Tensor:
        """Log likelihood ratio ``log(p1(x) W1 / (p0(x) W0))`` per member, shape ``(M, N)``.

        For a sigmoid output ``q``, ``q / (1 - q) = exp(logit)``; adding back ``log(W1/W0)``
        undoes the class balancing, so ``exp`` of this multiplies class-0 weights onto class 1.
        """
        return self.logits(x) + self.log_norm[:, None]


def _as_tensor(a: np.ndarray | Tensor, device: torch.device) -> Tensor:
    return torch.as_tensor(a).to(device=device, dtype=torch.float32)


def _as_members(w: Tensor, n: int, name: str) -> Tensor:
    w = w[None] if w.dim() == 1 else w
    if w.dim() != 2 or w.shape[1] != n:
        raise ValueError(f"{name} must have shape (M, {n}) or ({n},), got {tuple(w.shape)}")
    return w


def _balance(w: Tensor, n_events: int, name: str) -> tuple[Tensor, Tensor]:
    """Scale each member's weights to total ``n_events / 2``; return them and the log of the old total."""
    total = w.sum(dim=1, dtype=torch.float64)
    if not bool(torch.all(total > 0)):
        raise ValueError(f"{name}: every member needs a positive sum of weights")
    scale = (0.5 * n_events / total).to(w.dtype)
    return w * scale[:, None], torch.log(total)


def _samples(x0: Tensor, x1: Tensor | None, w0: Tensor, w1: Tensor) -> tuple[_Samples, Tensor]:
    """Stack both classes into one event set with class-balanced weights; also return log(W1/W0)."""
    if x1 is None:
        n = x0.shape[0]
        neg, log_w0 = _balance(w0, n, "w0")
        pos, log_w1 = _balance(w1, n, "w1")
        return _Samples(x0, neg, pos, None), (log_w1 - log_w0).float()
    if x1.shape[1] != x0.shape[1]:
        raise ValueError(f"x0 and x1 need the same features, got {x0.shape[1]} and {x1.shape[1]}")
    n = x0.shape[0] + x1.shape[0]
    neg, log_w0 = _balance(w0, n, "w0")
    pos, log_w1 = _balance(w1, n, "w1")
    label = torch.cat([torch.zeros(x0.shape[0], device=x0.device), torch.ones(x1.shape[0], device=x0.device)])
    sample = _Samples(torch.cat([x0, x1]), torch.cat([neg, pos], dim=1), None, label)
    return sample, (log_w1 - log_w0).float()


def _mean_loss(model: EnsembleMLP, data: _Samples, members: slice, idx: Tensor, batch: int) -> Tensor:
    """Weighted BCE per event over ``idx`` for the members in ``members``, without gradients."""
    total = torch.zeros(model.n_members, device=idx.device, dtype=torch.float64)
    with torch.no_grad():
        for s in range(0, idx.numel(), batch):
            b = idx[s : s + batch]
            total += _weighted_bce(model(data.x[b]), *data.weights(members, b)).double()
    return total / max(idx.numel(), 1)


def _stacked_inputs(
    x0: np.ndarray | Tensor,
    x1: np.ndarray | Tensor | None,
    w0: np.ndarray | Tensor,
    w1: np.ndarray | Tensor,
    device: torch.device,
) -> tuple[_Samples, Tensor]:
    """Both classes on ``device`` as one weighted sample (see :func:`_samples`), shapes checked."""
    x0_t = _as_tensor(x0, device)
    x1_t = None if x1 is None else _as_tensor(x1, device)
    w0_t = _as_members(_as_tensor(w0, device), x0_t.shape[0], "w0")
    w1_t = _as_members(_as_tensor(w1, device), x0_t.shape[0] if x1_t is None else x1_t.shape[0], "w1")
    if w0_t.shape[0] != w1_t.shape[0]:
        raise ValueError(f"w0 has {w0_t.shape[0]} members but w1 has {w1_t.shape[0]}")
    return _samples(x0_t, x1_t, w0_t, w1_t)


def _initial_ensemble(
    init: EnsembleMLP | None, n_members: int, in_dim: int, hidden: Sequence[int], seed: int
) -> EnsembleMLP:
    """``init``, checked against the inputs, or a new ensemble whose member ``m`` has seed
    ``derived_seed(seed, 1, m)``."""
    if init is None:
        init = EnsembleMLP(
            n_members, in_dim, hidden, seeds=[derived_seed(seed, 1, m) for m in range(n_members)]
        )
    if init.n_members != n_members or init.in_dim != in_dim:
        raise ValueError(
            f"init has {init.n_members} members of {init.in_dim} inputs; expected {n_members} of {in_dim}"
        )
    return init


class _EnsembleTraining:
    """The state of one ensemble's training: members in chunks, each chunk with its model, optimiser and
    best parameters; per member the best validation loss, its epoch, the epochs since and whether it
    still trains."""

    def __init__(self, init: EnsembleMLP, chunk_size: int, lr: float, device: torch.device) -> None:
        n = init.n_members
        self.chunks = [slice(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
        self.models = [init.select(c).to(device) for c in self.chunks]
        self.optims = [_MaskedAdam(list(m.parameters()), lr) for m in self.models]
        self.best = [[p.detach().clone() for p in m.parameters()] for m in self.models]
        self.best_val = torch.full((n,), math.inf, dtype=torch.float64, device=device)
        self.best_epoch = torch.zeros(n, dtype=torch.long, device=device)
        self.wait = torch.zeros(n, dtype=torch.long, device=device)
        self.active = torch.ones(n, dtype=torch.bool, device=device)
        self.train_hist: list[Tensor] = []
        self.val_hist: list[Tensor] = []

    def epoch(self, data: _Samples, order: Tensor, val_idx: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
        """One pass over the training events in ``order``, then the validation loss; per member."""
        n = self.best_val.shape[0]
        train_loss = torch.zeros(n, dtype=torch.float64, device=order.device)
        val_loss = torch.zeros(n, dtype=torch.float64, device=order.device)
        for chunk, model, opt in zip(self.chunks, self.models, self.optims, strict=True):
            if not bool(self.active[chunk].any()):  # frozen parameters: the loss cannot change
                train_loss[chunk], val_loss[chunk] = self.train_hist[-1][chunk], self.val_hist[-1][chunk]
                continue
            for s in range(0, order.numel(), batch_size):
                b = order[s : s + batch_size]
                loss = _weighted_bce(model(data.x[b]), *data.weights(chunk, b))
                (loss.sum() / b.numel()).backward()
                opt.step(self.active[chunk])
                train_loss[chunk] += loss.detach().double() / order.numel()
            val_loss[chunk] = _mean_loss(model, data, chunk, val_idx, batch_size)
        self.train_hist.append(train_loss)
        self.val_hist.append(val_loss)
        return train_loss, val_loss

    @torch.no_grad()
    def keep_best(self, epoch: int, val_loss: Tensor, patience: int) -> None:
        """Keep the parameters of members that improved; freeze those without improvement for ``patience``."""
        improved = (val_loss < self.best_val) & self.active
        self.best_val = torch.where(improved, val_loss, self.best_val)
        self.best_epoch = torch.where(improved, epoch, self.best_epoch)
        self.wait = torch.where(improved, 0, self.wait + 1)
        for chunk, model, kept in zip(self.chunks, self.models, self.best, strict=True):
            for p, q in zip(model.parameters(), kept, strict=True):
                q.copy_(torch.where(improved[chunk].view(-1, *([1] * (p.dim() - 1))), p, q))
        self.active &= self.wait < patience

    @torch.no_grad()
    def best_model(self) -> EnsembleMLP:
        """One ensemble holding every member's best parameters."""
        for model, kept in zip(self.models, self.best, strict=True):
            for p, q in zip(model.parameters(), kept, strict=True):
                p.copy_(q)
        return EnsembleMLP.concat(self.models).eval()


def train_classifiers(
    x0: np.ndarray | Tensor,
    x1: np.ndarray | Tensor | None,
    w0: np.ndarray | Tensor,
    w1: np.ndarray | Tensor,
    settings: ClassifierSettings,
    progress: Progress | None = None,
    metric: str = "classifier_loss",
    *,
    init: EnsembleMLP | None = None,
    seed: int | None = None,
    iteration: int = 0,
) -> ClassifierFit:
    """Train ``M`` classifiers of class 0 (``x0``, ``w0``) against class 1 (``x1``, ``w1``) at once.

    Parameters
    ----------
    x0, x1 : (N0, D), (N1, D) features. ``x1=None`` means class 1 is the same events as ``x0``
        with other weights (OmniFold's step 2): each event then enters once with both labels.
    w0, w1 : (M, N0), (M, N1) per-member event weights (``(N,)`` for one member). Each member's
        classes are rescaled to equal totals for training; ``ClassifierFit.log_ratio`` restores them.
    settings : widths, training loop (optimiser, batching, early stopping, device, seed), chunking.
    progress : receives ``metric`` (mean loss over members) per epoch with ``split`` "train"/"val";
        ``check_cancelled`` runs every epoch.
    init : initial ensemble (copied, e.g. a warm start); otherwise member ``m`` starts from seed
        ``derived_seed(seed, 1, m)``.
    seed : seeds the validation split and the shuffles (``settings.train.seed`` when not given).

    Members share the validation split and every mini-batch; each is frozen at its best
    validation loss once ``patience`` epochs pass without improvement. Members are processed
    in chunks of :func:`members_per_chunk`; the result does not depend on the chunking.

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(0, 1, (400, 1)), rng.normal(1, 1, (400, 1))
    >>> s = ClassifierSettings(hidden=(8,), train=classifier_training(batch_size=100, epochs=2, device="cpu"))
    >>> fit = train_classifiers(a, b, np.ones((2, 400)), np.ones((2, 400)), s)
    >>> fit.log_ratio(torch.zeros(3, 1)).shape, fit.train_loss.shape[1]
    (torch.Size([2, 3]), 2)
    """
    settings.validate()
    progress = progress if progress is not None else Progress()
    loop = settings.train
    device = resolve_device(loop.device)
    seed = loop.seed if seed is None else seed
    data, log_norm = _stacked_inputs(x0, x1, w0, w1, device)
    init = _initial_ensemble(init, log_norm.shape[0], data.x.shape[1], settings.hidden, seed)

    gen = torch.Generator().manual_seed(int(seed))
    n = data.x.shape[0]
    perm = torch.randperm(n, generator=gen)
    n_val = max(1, int(round(settings.val_fraction * n)))
    val_idx, train_idx = perm[:n_val].to(device), perm[n_val:].to(device)
    size = members_per_chunk(settings, device)
    state = _EnsembleTraining(init, size, loop.lr, device)
    for epoch in range(loop.epochs):
        progress.check_cancelled()
        order = train_idx[torch.randperm(train_idx.numel(), generator=gen).to(device)]
        train_loss, val_loss = state.epoch(data, order, val_idx, loop.batch_size)
        state.keep_best(epoch, val_loss, loop.patience)
        progress.metric(metric, float(train_loss.mean()), step=epoch, iteration=iteration, split="train")
        progress.metric(metric, float(val_loss.mean()), step=epoch, iteration=iteration, split="val")
        if not bool(state.active.any()):
            break
    return ClassifierFit(
        model=state.best_model(),
        log_norm=log_norm,
        train_loss=torch.stack(state.train_hist).float().cpu().numpy(),
        val_loss=torch.stack(state.val_hist).float().cpu().numpy(),
        best_epoch=state.best_epoch.cpu().numpy(),
        batch_size=loop.batch_size,
        max_members_per_chunk=size,
    )
