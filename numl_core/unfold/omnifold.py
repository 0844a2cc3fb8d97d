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
(:mod:`numl_core.unfold.ensemble`). Trial ``k`` starts from the same initial parameters in every
throw, so throw-to-throw differences reflect the weights, not the initialisation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from numl_core.device import resolve_device
from numl_core.jobs import Progress
from numl_core.stats import kish_ess
from numl_core.unfold.ensemble import ClassifierSettings, EnsembleMLP, derived_seed, train_classifiers

CHECKPOINT = "omnifold"
CHECKPOINT_FORMAT = 1
EXTREME_FACTOR = 1000.0
DIAGNOSTICS = ("finite", "n_extreme", "ess", "normalisation")


@dataclass
class OmniFoldSettings(ClassifierSettings):
    """OmniFold settings: the classifier ones (see :class:`ClassifierSettings`) plus

    ``iterations`` (pull + push each), ``trials`` classifier initialisations per throw,
    ``weight_clip`` (min, max) bounds on each step's likelihood ratio (``None``: no bounds),
    ``warm_start`` (start each iteration's classifiers from the previous iteration's, as the
    reference implementations do) and ``stop_on_convergence`` (end at the first iteration whose
    change falls below the spread across trials).
    """

    iterations: int = 15
    trials: int = 5
    weight_clip: tuple[float, float] | None = (0.0, 100.0)
    warm_start: bool = True
    stop_on_convergence: bool = False

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
        values = [
            self.lr,
            self.batch_size,
            self.epochs,
            self.patience,
            self.val_fraction,
            lo,
            hi,
            float(self.warm_start),
            self.seed,
            self.trials,
            *self.hidden,
        ]
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


def _per_throw(w: np.ndarray | None, n: int, name: str) -> np.ndarray:
    w = np.ones(n, np.float32) if w is None else np.asarray(w, np.float32)
    w = w[None] if w.ndim == 1 else w
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"{name} must have shape ({n},) or (T, {n}), got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"{name} holds non-finite weights")
    return w


def _standardised(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(x - mean) / std with the moments of ``ref``; constant features keep unit scale."""
    ref64 = ref.astype(np.float64)
    mean, std = ref64.mean(axis=0), ref64.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return ((x - mean) / std).astype(np.float32)


def _features(x: np.ndarray, mask: np.ndarray, n: int, name: str) -> np.ndarray:
    x = np.asarray(x, np.float32)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, D), got {x.shape}")
    rows = x[mask]
    if not np.isfinite(rows).all():
        bad = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
        raise ValueError(f"{name}: row {int(np.flatnonzero(mask)[bad])} is selected but not finite")
    return rows


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


def _data_fingerprint(*arrays: np.ndarray) -> Tensor:
    values = []
    for a in arrays:
        a64 = np.asarray(a, np.float64)
        values += [float(a64.size), float(a64.sum()), float((a64**2).sum())]
    return torch.tensor(values, dtype=torch.float64)


def unfold_omnifold(
    reco_mc: np.ndarray,
    truth_mc: np.ndarray,
    pass_reco: np.ndarray,
    pass_truth: np.ndarray,
    reco_data: np.ndarray,
    mc_weights: np.ndarray | None = None,
    data_weights: np.ndarray | None = None,
    settings: OmniFoldSettings | None = None,
    progress: Progress | None = None,
    resume: bool = True,
) -> OmniFoldResult:
    """Unfold ``reco_data`` with simulated (reco, truth) pairs by OmniFold; see the module docstring.

    Parameters
    ----------
    reco_mc : (N, Dr) float32 reco features of simulated events (rows failing reco are ignored).
    truth_mc : (N, Dt) truth features (rows failing truth are ignored).
    pass_reco, pass_truth : (N,) bool; an event may fail either (inefficiency, background).
    reco_data : (Nd, Dr) measured reco features.
    mc_weights : (N,) or (T, N) prior weights per systematic throw (ones when not given).
    data_weights : (Nd,) or (T, Nd) data weights per throw (e.g. Poisson bootstrap; ones when not given).
    settings : :class:`OmniFoldSettings`.
    progress : receives losses, weight diagnostics and convergence metrics; its ``run_dir``, if
        set, gets a checkpoint after every iteration.
    resume : continue from the run directory's checkpoint when there is one.

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
    >>> s = OmniFoldSettings(iterations=1, trials=2, hidden=(8,), batch_size=200, epochs=2, device="cpu")
    >>> res = unfold_omnifold(r, t, ok, ok, r[:300], settings=s)
    >>> res.weights().shape, res.history.shape
    ((600,), (1, 2, 1, 600))
    """
    settings = OmniFoldSettings() if settings is None else settings
    settings.validate()
    progress = progress if progress is not None else Progress()
    device = resolve_device(settings.device)

    pass_reco = np.asarray(pass_reco, bool)
    pass_truth = np.asarray(pass_truth, bool)
    n = pass_reco.shape[0]
    if pass_truth.shape != (n,):
        raise ValueError(f"pass_truth must have shape ({n},), got {pass_truth.shape}")
    if not (pass_reco.any() and pass_truth.any()):
        raise ValueError("at least one simulated event must pass reco and one must pass truth")
    reco_sel = _features(reco_mc, pass_reco, n, "reco_mc")
    truth_sel = _features(truth_mc, pass_truth, n, "truth_mc")
    data = np.asarray(reco_data, np.float32)
    data = data[:, None] if data.ndim == 1 else data
    nd = data.shape[0]
    data = _features(data, np.ones(nd, bool), nd, "reco_data")
    if data.shape[1] != reco_sel.shape[1]:
        raise ValueError(f"reco_data has {data.shape[1]} features but reco_mc has {reco_sel.shape[1]}")
    prior = _per_throw(mc_weights, n, "mc_weights")
    dweights = _per_throw(data_weights, nd, "data_weights")
    n_throws = max(prior.shape[0], dweights.shape[0])
    if {prior.shape[0], dweights.shape[0]} - {1, n_throws}:
        raise ValueError(f"mc_weights has {prior.shape[0]} throws but data_weights has {dweights.shape[0]}")
    prior = np.array(np.broadcast_to(prior, (n_throws, n)))
    dweights = np.array(np.broadcast_to(dweights, (n_throws, nd)))
    fingerprint = _data_fingerprint(reco_sel, truth_sel, data, pass_reco, pass_truth, prior, dweights)

    k = settings.trials
    n_members = n_throws * k
    x_reco = torch.from_numpy(_standardised(reco_sel, reco_sel)).to(device)
    x_data = torch.from_numpy(_standardised(data, reco_sel)).to(device)
    x_truth = torch.from_numpy(_standardised(truth_sel, truth_sel)).to(device)
    reco_idx = torch.from_numpy(np.flatnonzero(pass_reco)).to(device)
    truth_idx = torch.from_numpy(np.flatnonzero(pass_truth)).to(device)
    prior_t = torch.from_numpy(prior).to(device)
    w_data = torch.from_numpy(dweights).to(device).repeat_interleave(k, dim=0)
    dims = (x_reco.shape[1], x_truth.shape[1])

    n_iter = settings.iterations
    state = _State(
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
    run_dir = progress.run_dir
    if resume and run_dir is not None:
        ckpt = run_dir.load_checkpoint(CHECKPOINT)
        if ckpt is not None:
            _from_checkpoint(ckpt, state, settings, fingerprint, dims, device)
            progress.log(f"omnifold: resuming after iteration {state.done}")

    def absolute(factors: Tensor, idx: Tensor) -> Tensor:
        """Event weights prior x factor of the events ``idx``, per member: (M, len(idx))."""
        per_throw = prior_t[:, None, idx] * factors[:, idx].view(n_throws, k, -1)
        return per_throw.reshape(n_members, -1)

    def record_step(i: int, step: int, w: Tensor, idx: Tensor) -> Tensor:
        """Trial-average ``w`` (M, N), store it, check and report its diagnostics; return the mean."""
        mean = w.view(n_throws, k, n).mean(dim=1)
        state.history[i, step - 1] = mean.cpu().numpy()
        diag = weight_diagnostics(prior_t[:, idx] * mean[:, idx], prior_t[:, idx])
        for j, name in enumerate(DIAGNOSTICS):
            state.diag[i, step - 1, j] = diag[name]
        progress.metric(f"step{step}_ess", float(diag["ess"].mean()), step=i, iteration=i)
        progress.metric(f"step{step}_normalisation", float(diag["normalisation"].mean()), step=i, iteration=i)
        progress.metric(f"step{step}_n_extreme", float(diag["n_extreme"].sum()), step=i, iteration=i)
        progress.metric(f"step{step}_finite", float(diag["finite"].all()), step=i, iteration=i)
        if not diag["finite"].all():
            raise FloatingPointError(f"omnifold: non-finite weights after step {step} of iteration {i}")
        return mean

    def fit(step: int, i: int, x0: Tensor, x1: Tensor | None, w0: Tensor, w1: Tensor) -> Tensor:
        """Train step ``step``'s ensemble at iteration ``i``; return the clipped ratio on ``x0``."""
        init = state.models[step - 1] if settings.warm_start else None
        if init is None:
            seeds = [
                derived_seed(settings.seed, i, step, 1, trial) for _ in range(n_throws) for trial in range(k)
            ]
            init = EnsembleMLP(n_members, x0.shape[1], settings.hidden, seeds=seeds)
        result = train_classifiers(
            x0,
            x1,
            w0,
            w1,
            settings,
            progress,
            f"step{step}",
            init=init,
            seed=derived_seed(settings.seed, i, step, 0),
            iteration=i,
        )
        if settings.warm_start:
            state.models[step - 1] = result.model
        state.losses.append(
            {
                "iteration": i,
                "step": step,
                "train": result.train_loss.mean(axis=1),
                "val": result.val_loss.mean(axis=1),
            }
        )
        # A classifier estimates the normalisation W1/W0 only as well as it is calibrated (an
        # under-trained one is biased); the totals are known exactly, so impose them per member, then clip.
        ratio = torch.exp(result.log_ratio(x0))
        total0 = (w0 * ratio).sum(dim=1, dtype=torch.float64)
        ratio = ratio * (w1.sum(dim=1, dtype=torch.float64) / total0).to(ratio.dtype)[:, None]
        return _clip(ratio, settings.weight_clip)

    start = state.done
    converged_at = _first_converged(state.change, state.trial_rms)
    if settings.stop_on_convergence and converged_at is not None:
        n_iter = state.done
    for i in range(start, n_iter):
        push = state.push
        progress.update(i / n_iter, f"omnifold iteration {i + 1}/{n_iter}: step 1")
        pull = push.clone()
        pull[:, reco_idx] = push[:, reco_idx] * fit(1, i, x_reco, x_data, absolute(push, reco_idx), w_data)
        record_step(i, 1, pull, reco_idx)

        progress.update((i + 0.5) / n_iter, f"omnifold iteration {i + 1}/{n_iter}: step 2")
        new = push.clone()
        new[:, truth_idx] = push[:, truth_idx] * fit(
            2, i, x_truth, None, absolute(push, truth_idx), absolute(pull, truth_idx)
        )
        mean = record_step(i, 2, new, truth_idx)

        per_trial = new[:, truth_idx].view(n_throws, k, -1)
        spread = per_trial.std(dim=1) if k > 1 else torch.zeros_like(per_trial[:, 0])
        state.spread[i][:, truth_idx.cpu().numpy()] = spread.cpu().numpy()
        previous = push[:, truth_idx].view(n_throws, k, -1).mean(dim=1)
        state.change.append(_rms(mean[:, truth_idx] - previous))
        state.trial_rms.append(_rms(spread))
        state.push = new
        state.done = i + 1
        if run_dir is not None:
            run_dir.save_checkpoint(CHECKPOINT, _to_checkpoint(state, settings, fingerprint))
        progress.metric("omnifold_change", state.change[-1], step=i, iteration=i)
        progress.metric("omnifold_trial_spread", state.trial_rms[-1], step=i, iteration=i)
        progress.log(
            f"omnifold: iteration {i + 1} change {state.change[-1]:.4g}, "
            f"trial spread {state.trial_rms[-1]:.4g}"
        )
        converged_at = _first_converged(state.change, state.trial_rms)
        if settings.stop_on_convergence and converged_at is not None:
            break
    progress.update(1.0, "omnifold done")
    return _result(state, settings, n_throws, k, n)


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
