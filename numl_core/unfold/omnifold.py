"""OmniFold: unbinned unfolding by iterated classifier reweighting.

Andreassen, Komiske, Metodiev, Nachman, Thaler, PRL 124, 182001 (2020), arXiv:1911.09107.
With push weights ``nu_{n-1}`` on simulated truth (``nu_0`` = prior), iteration ``n`` does

* step 1 (pull): a classifier of data against simulated reco weighted by ``nu_{n-1}`` gives the
  likelihood ratio ``r1 = q / (1 - q)``; the pulled weights are ``omega_n = nu_{n-1} * r1(reco)``;
* step 2 (push): a classifier of simulated truth weighted by ``omega_n`` against the same truth
  weighted by ``nu_{n-1}`` gives ``r2``; the new push weights are ``nu_n = nu_{n-1} * r2(truth)``.

Step 2 compares against ``nu_{n-1}``, as in the paper; MultiFold compares against the prior
``nu_0`` and sets ``nu_n = nu_0 * r2`` instead, which has the same fixed point. Weights are tracked
and returned as factors ``nu_n / nu_0`` that multiply the prior weights.

Events that fail reco keep ``omega_n = nu_{n-1}`` in step 1 and are reweighted by the step-2
truth classifier, which carries the correction over from reconstructed events with similar
truth (acceptance). Events that fail truth (background, fakes) enter step 1 with their weight,
so data's background is matched at fixed prediction, and keep their weight in step 2; this
follows the MultiFold implementations (github.com/ViniciusMikuni/omnifold).

Every systematic throw ``t`` (its own prior and data weights) and classifier trial ``k`` (its
own initialisation) is one member ``m = t * trials + k`` of a batched classifier ensemble
(:mod:`numl_core.unfold.train`). Trial ``k`` starts from the same initial parameters in every
throw, so throw-to-throw differences reflect the weights, not the initialisation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from numl_core.device import resolve_device
from numl_core.jobs import Progress
from numl_core.stats import kish_ess
from numl_core.unfold.inputs import UnfoldingInputs
from numl_core.unfold.model import EnsembleMLP, derived_seed
from numl_core.unfold.train import (  # noqa: F401 - classifier_training: re-exported for callers
    ClassifierSettings,
    classifier_training,
    train_classifiers,
)

CHECKPOINT = "omnifold"
CHECKPOINT_FORMAT = 1
EXTREME_FACTOR = 1000.0
DIAGNOSTICS = ("finite", "n_extreme", "ess", "normalisation")
#: Live metrics per iteration: the change of the push factors between iterations and their spread
#: across trials (see :func:`unfold_omnifold`); per step, :func:`step_metric` names the others.
CHANGE_METRIC = "omnifold_change"
SPREAD_METRIC = "omnifold_trial_spread"


def step_metric(step: int, quantity: str) -> str:
    """Name of the live metric ``quantity`` (``loss``, or one of :data:`DIAGNOSTICS`) of OmniFold's ``step``.

    >>> step_metric(2, "ess")
    'step2_ess'
    """
    return f"step{step}_{quantity}"


@dataclass
class OmniFoldSettings(ClassifierSettings):
    """OmniFold settings: the classifier ones (see :class:`ClassifierSettings`) plus

    ``iterations`` (pull + push each), ``trials`` classifier initialisations per throw,
    ``weight_clip`` (min, max) bounds on each step's likelihood ratio (``None``: no bounds),
    ``warm_start`` (start each iteration's classifiers from the previous iteration's, as the
    reference implementations do) and ``stop_on_convergence`` (end at the first iteration whose
    change falls below the spread across trials). Each throw's classifiers start from their own
    initialisation, seeded by the throw's index in the whole ensemble (``first_throw`` is the index of
    the first throw of these inputs, when the ensemble is split into groups), so the spread of the throws
    also carries the classifier noise of a ``trials``-average.
    """

    iterations: int = 15
    trials: int = 5
    weight_clip: tuple[float, float] | None = (0.0, 100.0)
    warm_start: bool = True
    stop_on_convergence: bool = False
    first_throw: int = 0

    def validate(self) -> None:
        super().validate()
        if self.iterations < 1:
            raise ValueError(f"OmniFoldSettings.iterations = {self.iterations} must be >= 1")
        if self.trials < 1:
            raise ValueError(f"OmniFoldSettings.trials = {self.trials} must be >= 1")
        if self.weight_clip is not None and not (
            len(self.weight_clip) == 2 and self.weight_clip[0] < self.weight_clip[1]
        ):
            raise ValueError(
                f"OmniFoldSettings.weight_clip = {self.weight_clip!r} must be (min, max), min < max"
            )

    def fingerprint(self) -> Tensor:
        """The settings that change the result, as numbers (checkpoints refuse to resume on change)."""
        lo, hi = self.weight_clip if self.weight_clip is not None else (-math.inf, math.inf)
        t = self.train
        values = [t.lr, t.batch_size, t.epochs, t.patience, self.val_fraction, lo, hi, float(self.warm_start)]
        values += [t.seed, self.trials, *self.hidden]
        return torch.tensor(values, dtype=torch.float64)


@dataclass
class OmniFoldResult:
    """Weights from OmniFold, per iteration and step, with convergence and weight diagnostics.

    ``history`` (I, 2, T, N) float32: trial-averaged weight factors after step 1 (pull, index 0)
    and step 2 (push, index 1) of each iteration, per throw. They multiply the prior: the unfolded
    distribution is the truth histogram weighted by ``mc_weights * weights()``.
    ``trial_spread`` (I, T, N): standard deviation of the push factors across trials (0 with one
    trial). ``trial_weights`` (K, T, N): the last iteration's push factors of every trial.
    ``convergence``: one record per iteration (``change``, ``trial_spread``, ``converged``);
    ``converged_at``: first iteration (0-based) with change < trial spread, or None.
    ``diagnostics``: one record per iteration and step, each value an array over throws.
    ``losses``: mean train/validation loss curves per iteration and step.
    """

    history: np.ndarray
    trial_spread: np.ndarray
    trial_weights: np.ndarray
    convergence: list[dict[str, Any]]
    converged_at: int | None
    diagnostics: list[dict[str, Any]]
    losses: list[dict[str, Any]]
    settings: OmniFoldSettings = field(default_factory=OmniFoldSettings)

    @property
    def n_iterations(self) -> int:
        return self.history.shape[0]

    @property
    def n_throws(self) -> int:
        return self.history.shape[2]

    def weights(self, iteration: int = -1, step: int = 2) -> np.ndarray:
        """Trial-averaged weights after ``step`` (1 pull, 2 push) of ``iteration``: (T, N); (N,) if T = 1."""
        if step not in (1, 2):
            raise ValueError(f"step must be 1 (pull) or 2 (push), got {step}")
        w = self.history[iteration, step - 1]
        return w[0] if self.n_throws == 1 else w

    def diagnostics_frame(self) -> pd.DataFrame:
        """The weight diagnostics as a table: one row per iteration, step and throw."""
        return diagnostics_frame(self.diagnostics)

    def to_dict(self) -> dict[str, Any]:
        """Arrays and JSON-friendly records for ``RunDir.save_result``."""
        return {
            "history": self.history,
            "trial_spread": self.trial_spread,
            "trial_weights": self.trial_weights,
            "weights": self.weights(),
            "converged_at": self.converged_at,
            "convergence": self.convergence,
            "diagnostics": [{k: np.asarray(v).tolist() for k, v in d.items()} for d in self.diagnostics],
            "settings": dataclasses.asdict(self.settings),
        }


def weight_diagnostics(w: Tensor, prior: Tensor) -> dict[str, np.ndarray]:
    """Health of event weights ``w`` (T, N) against ``prior`` (T, N), one value per throw.

    ``finite``: all weights finite; ``n_extreme``: weights above ``EXTREME_FACTOR`` x the median
    |w|; ``ess``: effective sample size (sum w)^2 / sum w^2 (Kish); ``normalisation``: sum w / sum prior.

    >>> d = weight_diagnostics(torch.ones(1, 4), torch.ones(1, 4))
    >>> float(d["ess"][0]), float(d["normalisation"][0]), int(d["n_extreme"][0])
    (4.0, 1.0, 0)
    """
    w64 = w.double()
    med = w64.abs().median(dim=1).values
    total = w64.sum(dim=1)
    return {
        "finite": torch.isfinite(w64).all(dim=1).cpu().numpy(),
        "n_extreme": (w64.abs() > EXTREME_FACTOR * med[:, None]).sum(dim=1).cpu().numpy(),
        "ess": kish_ess(w64).cpu().numpy(),
        "normalisation": (total / prior.double().sum(dim=1)).cpu().numpy(),
    }


def diagnostics_frame(diagnostics: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per iteration, step and throw with the :func:`weight_diagnostics` columns."""
    rows = [
        {"iteration": d["iteration"], "step": d["step"], "throw": t, **{k: d[k][t] for k in DIAGNOSTICS}}
        for d in diagnostics
        for t in range(len(d["ess"]))
    ]
    return pd.DataFrame(rows, columns=["iteration", "step", "throw", *DIAGNOSTICS])


def _standardised(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(x - mean) / std with the moments of ``ref``; constant features keep unit scale."""
    ref64 = ref.astype(np.float64)
    mean, std = ref64.mean(axis=0), ref64.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return ((x - mean) / std).astype(np.float32)


def _clip(r: Tensor, clip: tuple[float, float] | None) -> Tensor:
    return r if clip is None else r.clamp(min=clip[0], max=clip[1])


def _rms(x: Tensor) -> float:
    return float(torch.sqrt(torch.mean(x.double() ** 2)))


@dataclass
class _State:
    """Everything a finished iteration leaves for the next one and for the result."""

    done: int
    push: Tensor
    history: np.ndarray
    spread: np.ndarray
    change: list[float]
    trial_rms: list[float]
    diag: np.ndarray
    losses: list[dict[str, Any]]
    models: list[EnsembleMLP | None]


def _to_checkpoint(state: _State, settings: OmniFoldSettings, fingerprint: Tensor) -> dict[str, Any]:
    ckpt: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "done": state.done,
        "push": state.push.cpu(),
        "history": torch.from_numpy(state.history[: state.done].copy()),
        "spread": torch.from_numpy(state.spread[: state.done].copy()),
        "change": torch.tensor(state.change, dtype=torch.float64),
        "trial_rms": torch.tensor(state.trial_rms, dtype=torch.float64),
        "diag": torch.from_numpy(state.diag[: state.done].copy()),
        "settings": settings.fingerprint(),
        "data": fingerprint,
    }
    for rec in state.losses:
        for split in ("train", "val"):
            ckpt[f"loss.{rec['iteration']}.{rec['step']}.{split}"] = torch.from_numpy(rec[split])
    for s, model in enumerate(state.models):
        if model is not None:
            for key, value in model.state_dict().items():
                ckpt[f"model{s + 1}.{key}"] = value.cpu()
    return ckpt


def _from_checkpoint(
    ckpt: dict[str, Any],
    state: _State,
    settings: OmniFoldSettings,
    fingerprint: Tensor,
    dims: tuple[int, int],
    device: torch.device,
) -> None:
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"omnifold checkpoint format {ckpt.get('format')!r} is not {CHECKPOINT_FORMAT}")
    if not torch.equal(ckpt["settings"], settings.fingerprint()):
        raise ValueError("omnifold checkpoint was made with other settings; pass resume=False to start over")
    if ckpt["data"].shape != fingerprint.shape or not torch.allclose(ckpt["data"], fingerprint, rtol=1e-9):
        raise ValueError("omnifold checkpoint was made from other inputs; pass resume=False to start over")
    done = int(ckpt["done"])
    if done > state.history.shape[0]:
        raise ValueError(
            f"omnifold checkpoint holds {done} iterations, more than the {state.history.shape[0]} asked"
        )
    state.done = done
    state.push = ckpt["push"].to(device)
    state.history[:done] = ckpt["history"][:done].numpy()
    state.spread[:done] = ckpt["spread"][:done].numpy()
    state.change = ckpt["change"][:done].tolist()
    state.trial_rms = ckpt["trial_rms"][:done].tolist()
    state.diag[:done] = ckpt["diag"][:done].numpy()
    state.losses = [
        {
            "iteration": i,
            "step": s,
            "train": ckpt[f"loss.{i}.{s}.train"].numpy(),
            "val": ckpt[f"loss.{i}.{s}.val"].numpy(),
        }
        for i in range(done)
        for s in (1, 2)
    ]
    for s, in_dim in enumerate(dims):
        keys = {k.split(".", 1)[1]: v for k, v in ckpt.items() if k.startswith(f"model{s + 1}.")}
        if keys:
            model = EnsembleMLP(state.push.shape[0], in_dim, settings.hidden)
            model.load_state_dict(keys)
            state.models[s] = model.to(device)


def _initial_state(n_members: int, n_throws: int, n: int, n_iter: int, device: torch.device) -> _State:
    return _State(
        done=0,
        push=torch.ones(n_members, n, device=device),
        history=np.zeros((n_iter, 2, n_throws, n), np.float32),
        spread=np.zeros((n_iter, n_throws, n), np.float32),
        change=[],
        trial_rms=[],
        diag=np.zeros((n_iter, 2, len(DIAGNOSTICS), n_throws), np.float64),
        losses=[],
        models=[None, None],
    )


class _Iterations:
    """OmniFold's iterations on one batch of throws: standardised features and weights on the device,
    the :class:`_State` they advance, and the two steps of an iteration."""

    def __init__(self, inputs: UnfoldingInputs, settings: OmniFoldSettings, progress: Progress) -> None:
        self.settings, self.progress = settings, progress
        device = resolve_device(settings.train.device)
        reco_sel, truth_sel = inputs.reco_mc[inputs.pass_reco], inputs.truth_mc[inputs.pass_truth]
        self.n_throws, self.n = inputs.mc_weights.shape
        self.k = settings.trials
        self.n_members = self.n_throws * self.k
        self.x_reco = torch.from_numpy(_standardised(reco_sel, reco_sel)).to(device)
        self.x_data = torch.from_numpy(_standardised(inputs.reco_data, reco_sel)).to(device)
        self.x_truth = torch.from_numpy(_standardised(truth_sel, truth_sel)).to(device)
        self.reco_idx = torch.from_numpy(np.flatnonzero(inputs.pass_reco)).to(device)
        self.truth_idx = torch.from_numpy(np.flatnonzero(inputs.pass_truth)).to(device)
        self.prior = torch.from_numpy(inputs.mc_weights).to(device)
        self.w_data = torch.from_numpy(inputs.data_weights).to(device).repeat_interleave(self.k, dim=0)
        self.fingerprint = inputs.fingerprint()
        self.state = _initial_state(self.n_members, self.n_throws, self.n, settings.iterations, device)
        self.device = device

    def resume(self) -> None:
        """Continue from the run directory's checkpoint, if there is one."""
        run_dir = self.progress.run_dir
        ckpt = run_dir.load_checkpoint(CHECKPOINT) if run_dir is not None else None
        if ckpt is not None:
            dims = (self.x_reco.shape[1], self.x_truth.shape[1])
            _from_checkpoint(ckpt, self.state, self.settings, self.fingerprint, dims, self.device)
            self.progress.log(f"omnifold: resuming after iteration {self.state.done}")

    def absolute(self, factors: Tensor, idx: Tensor) -> Tensor:
        """Event weights prior x factor of the events ``idx``, per member: (M, len(idx))."""
        per_throw = self.prior[:, None, idx] * factors[:, idx].view(self.n_throws, self.k, -1)
        return per_throw.reshape(self.n_members, -1)

    def record_step(self, i: int, step: int, w: Tensor, idx: Tensor) -> Tensor:
        """Trial-average ``w`` (M, N), store it, check and report its diagnostics; return the mean."""
        mean = w.view(self.n_throws, self.k, self.n).mean(dim=1)
        self.state.history[i, step - 1] = mean.cpu().numpy()
        diag = weight_diagnostics(self.prior[:, idx] * mean[:, idx], self.prior[:, idx])
        for j, name in enumerate(DIAGNOSTICS):
            self.state.diag[i, step - 1, j] = diag[name]
        metric = partial(self.progress.metric, step=i, iteration=i)
        metric(step_metric(step, "ess"), float(diag["ess"].mean()))
        metric(step_metric(step, "normalisation"), float(diag["normalisation"].mean()))
        metric(step_metric(step, "n_extreme"), float(diag["n_extreme"].sum()))
        metric(step_metric(step, "finite"), float(diag["finite"].all()))
        if not diag["finite"].all():
            raise FloatingPointError(f"omnifold: non-finite weights after step {step} of iteration {i}")
        return mean

    def fit(self, step: int, i: int, x0: Tensor, x1: Tensor | None, w0: Tensor, w1: Tensor) -> Tensor:
        """Train step ``step``'s ensemble at iteration ``i``; return the clipped ratio on ``x0``."""
        settings, state = self.settings, self.state
        init = state.models[step - 1] if settings.warm_start else None
        if init is None:
            seed = settings.train.seed
            first = settings.first_throw
            seeds = [
                derived_seed(seed, i, step, 1, t, first + m)
                for m in range(self.n_throws)
                for t in range(self.k)
            ]
            init = EnsembleMLP(self.n_members, x0.shape[1], settings.hidden, seeds=seeds)
        result = train_classifiers(
            x0,
            x1,
            w0,
            w1,
            settings,
            self.progress,
            step_metric(step, "loss"),
            init=init,
            seed=derived_seed(settings.train.seed, i, step, 0),
            iteration=i,
        )
        if settings.warm_start:
            state.models[step - 1] = result.model
        losses = {"train": result.train_loss.mean(axis=1), "val": result.val_loss.mean(axis=1)}
        state.losses.append({"iteration": i, "step": step, **losses})
        # A classifier estimates the normalisation W1/W0 only as well as it is calibrated (an
        # under-trained one is biased); the totals are known exactly, so impose them per member, then clip.
        ratio = torch.exp(result.log_ratio(x0))
        total0 = (w0 * ratio).sum(dim=1, dtype=torch.float64)
        ratio = ratio * (w1.sum(dim=1, dtype=torch.float64) / total0).to(ratio.dtype)[:, None]
        return _clip(ratio, settings.weight_clip)

    def iterate(self, i: int, n_iter: int) -> None:
        """Iteration ``i``: pull (step 1) and push (step 2), then convergence and checkpoint."""
        state, push, reco_idx, truth_idx = self.state, self.state.push, self.reco_idx, self.truth_idx
        self.progress.update(i / n_iter, f"omnifold iteration {i + 1}/{n_iter}: step 1")
        pull = push.clone()
        w_reco = self.absolute(push, reco_idx)
        pull[:, reco_idx] = push[:, reco_idx] * self.fit(1, i, self.x_reco, self.x_data, w_reco, self.w_data)
        self.record_step(i, 1, pull, reco_idx)

        self.progress.update((i + 0.5) / n_iter, f"omnifold iteration {i + 1}/{n_iter}: step 2")
        new = push.clone()
        w_prior, w_pull = self.absolute(push, truth_idx), self.absolute(pull, truth_idx)
        new[:, truth_idx] = push[:, truth_idx] * self.fit(2, i, self.x_truth, None, w_prior, w_pull)
        mean = self.record_step(i, 2, new, truth_idx)

        per_trial = new[:, truth_idx].view(self.n_throws, self.k, -1)
        spread = per_trial.std(dim=1) if self.k > 1 else torch.zeros_like(per_trial[:, 0])
        state.spread[i][:, truth_idx.cpu().numpy()] = spread.cpu().numpy()
        previous = push[:, truth_idx].view(self.n_throws, self.k, -1).mean(dim=1)
        state.change.append(_rms(mean[:, truth_idx] - previous))
        state.trial_rms.append(_rms(spread))
        state.push = new
        state.done = i + 1
        if self.progress.run_dir is not None:
            self.progress.run_dir.save_checkpoint(
                CHECKPOINT, _to_checkpoint(state, self.settings, self.fingerprint)
            )
        self.progress.metric(CHANGE_METRIC, state.change[-1], step=i, iteration=i)
        self.progress.metric(SPREAD_METRIC, state.trial_rms[-1], step=i, iteration=i)
        self.progress.log(
            f"omnifold: iteration {i + 1} change {state.change[-1]:.4g}, "
            f"trial spread {state.trial_rms[-1]:.4g}"
        )

    def run(self) -> OmniFoldResult:
        """The remaining iterations (all, or up to the first converged one when asked to stop there)."""
        state, stop = self.state, self.settings.stop_on_convergence
        n_iter = self.settings.iterations
        if stop and _first_converged(state.change, state.trial_rms) is not None:
            n_iter = state.done
        for i in range(state.done, n_iter):
            self.iterate(i, n_iter)
            if stop and _first_converged(state.change, state.trial_rms) is not None:
                break
        self.progress.update(1.0, "omnifold done")
        return _result(state, self.settings, self.n_throws, self.k, self.n)


def unfold_throws(
    inputs: UnfoldingInputs, settings: OmniFoldSettings, progress: Progress, resume: bool = True
) -> OmniFoldResult:
    """Unfold every throw of checked ``inputs`` here, batched as one classifier ensemble per step."""
    iterations = _Iterations(inputs, settings, progress)
    if resume:
        iterations.resume()
    return iterations.run()


#: How a batch of throws is unfolded: ``(checked inputs, settings, progress, resume) -> result``.
TrainThrows = Callable[[UnfoldingInputs, OmniFoldSettings, Progress, bool], OmniFoldResult]


def unfold_omnifold(
    inputs: UnfoldingInputs,
    settings: OmniFoldSettings | None = None,
    progress: Progress | None = None,
    resume: bool = True,
    *,
    train_throws: TrainThrows = unfold_throws,
) -> OmniFoldResult:
    """Unfold ``inputs.reco_data`` with simulated (reco, truth) pairs by OmniFold; see the module docstring.

    ``inputs``: :class:`~numl_core.unfold.inputs.UnfoldingInputs` (features, masks, weights per throw).
    ``settings``: :class:`OmniFoldSettings`. ``progress`` receives losses, weight diagnostics and
    convergence metrics; its ``run_dir``, if set, gets a checkpoint after every iteration; with ``resume``
    the unfolding continues from that checkpoint when there is one. ``train_throws`` unfolds the batch
    of throws: all at once in this process (:func:`unfold_throws`), or split over a cluster
    (:func:`numl_core.unfold.omnifold_distributed.unfold_omnifold_distributed`).

    Features are standardised with the simulated events' moments. Returns an
    :class:`OmniFoldResult` whose ``weights()`` multiply ``mc_weights`` into the unfolded weights.

    Convergence per iteration: ``change`` is the RMS, over throws and events passing truth, of
    the trial-averaged push factors minus the previous iteration's (the prior's for the first);
    ``trial_spread`` the RMS of their standard deviation across trials. Since the change of a
    K-trial average carries classifier noise of about ``spread * sqrt(2 / K)``, the criterion
    ``change < spread`` needs a few trials to be met reliably.

    >>> rng = np.random.default_rng(1)
    >>> t = rng.normal(0, 1, (600, 1)).astype(np.float32)
    >>> r = t + rng.normal(0, 0.5, t.shape).astype(np.float32)
    >>> ok = np.ones(600, bool)
    >>> train = classifier_training(batch_size=200, epochs=2, device="cpu")
    >>> s = OmniFoldSettings(iterations=1, trials=2, hidden=(8,), train=train)
    >>> res = unfold_omnifold(UnfoldingInputs(r, t, ok, ok, r[:300]), settings=s)
    >>> res.weights().shape, res.history.shape
    ((600,), (1, 2, 1, 600))
    """
    settings = OmniFoldSettings() if settings is None else settings
    settings.validate()
    progress = progress if progress is not None else Progress()
    return train_throws(inputs.checked(), settings, progress, resume)


def _first_converged(change: list[float], spread: list[float]) -> int | None:
    """First iteration whose change between iterations is below the spread across trials."""
    for i, (c, s) in enumerate(zip(change, spread, strict=True)):
        if c < s:
            return i
    return None


def _result(state: _State, settings: OmniFoldSettings, n_throws: int, k: int, n: int) -> OmniFoldResult:
    done = state.done
    converged_at = _first_converged(state.change, state.trial_rms)
    convergence = [
        {
            "iteration": i,
            "change": state.change[i],
            "trial_spread": state.trial_rms[i],
            "converged": state.change[i] < state.trial_rms[i],
        }
        for i in range(done)
    ]
    kinds = {"finite": bool, "n_extreme": np.int64, "ess": np.float64, "normalisation": np.float64}
    diagnostics = [
        {
            "iteration": i,
            "step": s + 1,
            **{name: state.diag[i, s, j].astype(kinds[name]) for j, name in enumerate(DIAGNOSTICS)},
        }
        for i in range(done)
        for s in range(2)
    ]
    return OmniFoldResult(
        history=state.history[:done],
        trial_spread=state.spread[:done],
        trial_weights=state.push.view(n_throws, k, n).transpose(0, 1).cpu().numpy(),
        convergence=convergence,
        converged_at=converged_at,
        diagnostics=diagnostics,
        losses=state.losses,
        settings=settings,
    )
