"""The one training loop every workflow uses: mini-batches, Adam, early stopping, checkpoints, live metrics.

A workflow supplies a model and a loss function ``loss_fn(model, batch) -> {"loss": ..., term: ...}``
over a tuple of tensors (features, targets, weights, masks ...); :func:`fit` does the rest and
reports through :class:`~numl_core.jobs.Progress`:

- one ``loss`` record per epoch and split (``split="train"|"val"``, ``term="total"`` or the term's
  name), ``progress.update`` with the completed fraction, ``check_cancelled`` every batch;
- with ``progress.run_dir`` set, the checkpoint ``{name}-last`` after every epoch (model, optimiser,
  scheduler, shuffle generator, history, best parameters) and ``{name}-best``; a cancelled or crashed
  run continues from ``{name}-last`` with ``resume=True``;
- the model returns holding its best-validation parameters.

>>> import torch
>>> from torch import nn
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> x = torch.linspace(-1, 1, 256).unsqueeze(1)
>>> y = 3 * x
>>> model = nn.Linear(1, 1)
>>> def mse(model, batch):
...     xb, yb = batch
...     return {"loss": ((model(xb) - yb) ** 2).mean()}
>>> out = fit(model, mse, (x, y), (x, y), TrainSettings(epochs=200, batch_size=64, lr=0.05, patience=0))
>>> round(model.weight.item(), 2), out.epochs_run
(3.0, 200)
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import param
import torch
from torch import Tensor, nn

from numl_core.config import Config
from numl_core.device import DEVICE_CHOICES, resolve_device
from numl_core.jobs import Progress

LossFn = Callable[[nn.Module, tuple[Tensor, ...]], dict[str, Tensor]]
SCHEDULES = ("constant", "cosine", "plateau")
CHECKPOINT_FORMAT = 1


@dataclass
class TrainSettings:
    """How to train: ``epochs`` at most; ``batch_size`` events per step; Adam with ``lr`` and
    ``weight_decay`` (AdamW); ``schedule`` of the learning rate (constant, cosine to zero over
    ``epochs``, or halved on a validation plateau); ``patience`` epochs without a lower validation
    loss before stopping (0: never stop early); ``grad_clip`` maximum gradient norm (0: off);
    ``mixed_precision`` bf16 autocast on CUDA (ignored elsewhere); ``seed`` of the shuffling
    generator (seed the model's initialisation yourself); ``eval_batch_size`` for validation.
    """

    epochs: int = 20
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"
    patience: int = 5
    grad_clip: float = 0.0
    mixed_precision: bool = True
    device: str = "auto"
    seed: int = 0
    eval_batch_size: int = 8192

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting outside its allowed range."""
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
        }
        for key, value in positive.items():
            if value < 1:
                raise ValueError(f"training setting {key}={value} must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"training setting lr={self.lr} must be > 0")
        for key in ("weight_decay", "patience", "grad_clip"):
            if getattr(self, key) < 0:
                raise ValueError(f"training setting {key}={getattr(self, key)} must be >= 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"training setting schedule={self.schedule!r} must be one of {SCHEDULES}")


class TrainingConfig(Config):
    """Fields that every training workflow's config shares: ``seed``, ``device`` and the training loop's
    ``epochs``, ``batch_size`` and ``learning_rate``.

    A workflow's config derives from it and sets its own defaults by plain assignment
    (``epochs = 3000``); :meth:`train_settings` gives the :class:`TrainSettings` of the loop, with the
    fields ``weight_decay``, ``schedule``, ``patience`` and ``eval_batch_size`` taken from the config
    where it declares them.

    >>> class Fit(TrainingConfig):
    ...     epochs = 7
    >>> Fit().train_settings(patience=0).epochs, Fit().train_settings().lr
    (7, 0.001)
    """

    LABELS = {
        "seed": "Random seed",
        "device": "Device",
        "epochs": "Epochs (at most)",
        "batch_size": "Batch size [events]",
        "learning_rate": "Learning rate",
    }

    seed = param.Integer(
        default=0,
        bounds=(0, 2**31 - 1),
        doc="Random seed of data, splits and training: the same seed and config give the same run.",
    )
    device = param.Selector(
        default="auto",
        objects=list(DEVICE_CHOICES),
        doc="Torch device; auto: CUDA, then MPS, then CPU (small jobs often run as fast on the CPU).",
    )
    epochs = param.Integer(
        default=20,
        bounds=(1, 100_000),
        doc="Training epochs (passes over the data) at most; early stopping may end training sooner.",
    )
    batch_size = param.Integer(
        default=512,
        bounds=(8, 1_000_000),
        doc="Events per optimiser step; typical 64-4096 (larger batches suit GPUs, with a larger learning "
        "rate).",
    )
    learning_rate = param.Number(
        default=1e-3, bounds=(1e-7, 1.0), doc="Adam(W) learning rate; typical 1e-4 to 1e-2."
    )

    OPTIONAL_TRAIN_FIELDS = ("weight_decay", "schedule", "patience", "eval_batch_size", "grad_clip")

    def train_settings(self, **changes: Any) -> TrainSettings:
        """The training loop's settings from this config's fields, then ``changes``."""
        values: dict[str, Any] = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.learning_rate,
            "device": self.device,
            "seed": self.seed,
        }
        values.update({k: getattr(self, k) for k in self.OPTIONAL_TRAIN_FIELDS if k in self.param})
        values.update(changes)
        return TrainSettings(**values)


@dataclass
class FitResult:
    """What a fit did: per-epoch ``history`` (epoch, train_loss, val_loss, train_/val_ terms, lr,
    seconds), the ``best_epoch`` and its ``best_val_loss`` (inf without validation data), whether
    it ``stopped_early``, ``epochs_run`` in total (including resumed ones) and the training
    throughput ``train_events_per_s`` of this call.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False
    epochs_run: int = 0
    train_events_per_s: float = 0.0


def _check_tensors(tensors: Sequence[Tensor], what: str) -> int:
    if len(tensors) == 0:
        raise ValueError(f"{what} data is an empty tuple of tensors")
    n = {int(t.shape[0]) for t in tensors}
    if len(n) != 1:
        raise ValueError(f"{what} tensors differ in their first dimension: {sorted(n)}")
    (size,) = n
    if size == 0:
        raise ValueError(f"{what} data has no events")
    return size


def _batch(tensors: Sequence[Tensor], idx: Tensor, device: torch.device) -> tuple[Tensor, ...]:
    return tuple(t[idx.to(t.device)].to(device, non_blocking=True) for t in tensors)


def _autocast(device: torch.device, enabled: bool) -> Any:
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def _require_loss(terms: dict[str, Tensor]) -> Tensor:
    if "loss" not in terms:
        raise KeyError(f"the loss function returned {sorted(terms)}; it must return a 'loss' entry")
    return terms["loss"]


def _scalars(terms: dict[str, Tensor], what: str) -> dict[str, float]:
    _require_loss(terms)
    out = {}
    for key, value in terms.items():
        v = float(value.detach())
        if not math.isfinite(v):
            raise FloatingPointError(
                f"{what}: loss term {key!r} is {v}; lower the learning rate or check the inputs"
            )
        out[key] = v
    return out


def evaluate(
    model: nn.Module, loss_fn: LossFn, data: Sequence[Tensor], batch_size: int = 8192, device: str = "auto"
) -> dict[str, float]:
    """Event-weighted mean of every loss term over ``data`` (in batches, no gradients)."""
    dev = resolve_device(device) if isinstance(device, str) else device
    n = _check_tensors(data, "evaluation")
    sums: dict[str, float] = {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n))
            terms = _scalars(loss_fn(model, _batch(data, idx, dev)), "evaluation")
            for key, v in terms.items():
                sums[key] = sums.get(key, 0.0) + v * len(idx)
    model.train(was_training)
    return {k: v / n for k, v in sums.items()}


def predict(
    fn: Callable[[tuple[Tensor, ...]], Tensor],
    inputs: Sequence[Tensor],
    batch_size: int = 8192,
    device: str | torch.device = "auto",
) -> Tensor:
    """``fn`` applied batch-wise to ``inputs`` under ``torch.no_grad()``, concatenated on the CPU.

    >>> predict(lambda b: b[0] * 2, (torch.arange(5.0),), batch_size=2).tolist()
    [0.0, 2.0, 4.0, 6.0, 8.0]
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    n = _check_tensors(inputs, "prediction")
    out = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            out.append(fn(_batch(inputs, torch.arange(start, min(start + batch_size, n)), dev)).cpu())
    return torch.cat(out)


def _scheduler(opt: torch.optim.Optimizer, settings: TrainSettings) -> Any:
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.epochs)
    if settings.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=max(settings.patience // 2, 1)
        )
    return None


@dataclass
class _State:
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = -1
    best_state: dict[str, Tensor] | None = None
    since_best: int = 0


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _resume(
    run_dir: Any, name: str, stamp: dict, model: nn.Module, opt: Any, sched: Any, gen: torch.Generator
) -> _State | None:
    """Load ``{name}-last`` into the model, optimiser, scheduler and generator; None if there is none.

    A checkpoint made with other settings or inputs (``stamp``) is refused.
    """
    ckpt = run_dir.load_checkpoint(f"{name}-last")
    if ckpt is None:
        return None
    if ckpt["fingerprint"] != stamp:
        raise ValueError(
            f"checkpoint {name}-last in {run_dir.path} was made with other settings or inputs; "
            "start a new run or pass resume=False"
        )
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    if sched is not None:
        sched.load_state_dict(ckpt["scheduler"])
    gen.set_state(ckpt["generator"])
    keys = ("epoch", "history", "best_val", "best_epoch", "best_state", "since_best")
    return _State(*(ckpt[k] for k in keys))


@dataclass
class _Loop:
    """What one fit holds while it runs: the model and its data, the optimiser and the shuffling."""

    model: nn.Module
    loss_fn: LossFn
    train: Sequence[Tensor]
    val: Sequence[Tensor] | None
    settings: TrainSettings
    device: torch.device
    opt: Any
    sched: Any
    gen: torch.Generator
    progress: Progress
    name: str


def _train_epoch(loop: _Loop, epoch: int) -> tuple[dict[str, float], int]:
    """One pass over the shuffled training data: event-weighted sums of the loss terms, and the events."""
    s, model, n_train = loop.settings, loop.model, int(loop.train[0].shape[0])
    model.train()
    perm = torch.randperm(n_train, generator=loop.gen)
    sums: dict[str, float] = {}
    for start in range(0, n_train, s.batch_size):
        loop.progress.check_cancelled()
        idx = perm[start : start + s.batch_size]
        with _autocast(loop.device, s.mixed_precision):
            terms = loop.loss_fn(model, _batch(loop.train, idx, loop.device))
        loop.opt.zero_grad(set_to_none=True)
        _require_loss(terms).backward()
        if s.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        loop.opt.step()
        for key, v in _scalars(terms, f"{loop.name} epoch {epoch}").items():
            sums[key] = sums.get(key, 0.0) + v * len(idx)
    return sums, n_train


def _epoch_row(loop: _Loop, epoch: int, sums: dict[str, float], n_train: int) -> dict[str, float]:
    """The history row of an epoch: learning rate, mean training terms and the validation terms."""
    row: dict[str, float] = {"epoch": float(epoch), "lr": float(loop.opt.param_groups[0]["lr"])}
    row.update({f"train_{k}": v / n_train for k, v in sums.items()})
    if loop.val is not None:
        with _autocast(loop.device, loop.settings.mixed_precision):
            terms = evaluate(loop.model, loop.loss_fn, loop.val, loop.settings.eval_batch_size, loop.device)
        row.update({f"val_{k}": v for k, v in terms.items()})
    return row


def _track_best(loop: _Loop, state: _State, epoch: int, monitored: float) -> None:
    """Step the schedule on the monitored loss and keep the best parameters."""
    if loop.sched is not None:
        loop.sched.step(monitored) if loop.settings.schedule == "plateau" else loop.sched.step()
    if monitored < state.best_val:
        state.best_val, state.best_epoch, state.since_best = monitored, epoch, 0
        state.best_state = _cpu_state(loop.model)
    else:
        state.since_best += 1


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train: Sequence[Tensor],
    val: Sequence[Tensor] | None,
    settings: TrainSettings,
    progress: Progress | None = None,
    *,
    name: str = "model",
    metric_prefix: str = "",
    resume: bool = True,
    fingerprint: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``model`` by minimising ``loss_fn(model, batch)["loss"]``; see the module docstring."""
    settings.validate()
    progress = progress if progress is not None else Progress()
    _check_tensors(train, "training")
    if val is not None:
        _check_tensors(val, "validation")
    device = resolve_device(settings.device)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = _scheduler(opt, settings)
    gen = torch.Generator().manual_seed(settings.seed)
    stamp = {"format": CHECKPOINT_FORMAT, "settings": asdict(settings), "user": fingerprint or {}}
    stamp["settings"].pop("device")
    run_dir = progress.run_dir
    state = (
        _resume(run_dir, name, stamp, model, opt, sched, gen) if resume and run_dir else None
    ) or _State()
    if state.epoch:
        progress.log(f"{name}: resumed after epoch {state.epoch} of {settings.epochs}")
    loop = _Loop(model, loss_fn, train, val, settings, device, opt, sched, gen, progress, name)
    t_start, events, stop = time.perf_counter(), 0, False
    while state.epoch < settings.epochs and not stop:
        epoch, t0 = state.epoch, time.perf_counter()
        sums, n_train = _train_epoch(loop, epoch)
        events += n_train
        row = _epoch_row(loop, epoch, sums, n_train)
        monitored = row.get("val_loss", row["train_loss"])
        _track_best(loop, state, epoch, monitored)
        row["seconds"] = time.perf_counter() - t0
        state.history.append(row)
        state.epoch += 1
        stop = settings.patience > 0 and val is not None and state.since_best >= settings.patience
        _report(progress, row, metric_prefix, epoch)
        progress.update(
            state.epoch / settings.epochs,
            f"{name}: epoch {state.epoch}/{settings.epochs}, loss {monitored:.4g}",
        )
        if run_dir is not None:
            _save(run_dir, name, model, opt, sched, gen, state, stamp)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    elapsed = time.perf_counter() - t_start
    return FitResult(
        history=state.history,
        best_epoch=state.best_epoch,
        best_val_loss=state.best_val if val is not None else math.inf,
        stopped_early=stop,
        epochs_run=state.epoch,
        train_events_per_s=events / elapsed if elapsed > 0 and events else 0.0,
    )


def _report(progress: Progress, row: dict[str, float], prefix: str, epoch: int) -> None:
    for key, value in row.items():
        for split in ("train", "val"):
            if key.startswith(f"{split}_"):
                term = key[len(split) + 1 :]
                progress.metric(
                    f"{prefix}loss", value, step=epoch, split=split, term="total" if term == "loss" else term
                )


def _save(
    run_dir: Any,
    name: str,
    model: nn.Module,
    opt: Any,
    sched: Any,
    gen: torch.Generator,
    state: _State,
    stamp: dict,
) -> None:
    run_dir.save_checkpoint(
        f"{name}-last",
        {
            "model": _cpu_state(model),
            "optimizer": copy.deepcopy(opt.state_dict()),
            "scheduler": sched.state_dict() if sched is not None else {},
            "generator": gen.get_state(),
            "epoch": state.epoch,
            "history": state.history,
            "best_val": state.best_val,
            "best_epoch": state.best_epoch,
            "best_state": state.best_state,
            "since_best": state.since_best,
            "fingerprint": stamp,
        },
    )
    if state.best_epoch == state.epoch - 1 and state.best_state is not None:
        run_dir.save_checkpoint(
            f"{name}-best",
            {
                "model": state.best_state,
                "epoch": state.best_epoch,
                "val_loss": state.best_val,
                "fingerprint": stamp,
            },
        )
