"""Training the generator's flow, in rounds.

Importance training (the default): round 0 proposes events uniformly in the phase-space box, every
later round from the flow trained so far; each round's events carry weights f^beta / q and the flow
minimises their weighted negative log-likelihood (forward KL to the tempered target). The exponent
beta anneals from ``temper`` to 1 over the first half of the rounds (:func:`annealing_exponent`); once
the target is f itself, each round starts at a lower learning rate (:func:`round_learning_rate`).
Accept-reject training is one round of maximum likelihood on unit-weight accept-reject events.

Every round reports the RESS of its proposal as metric :data:`PROPOSAL_RESS` (step: the round) and the
shared training loop's ``loss`` records (:data:`LOSS`) per epoch.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from numl_core.config import ConfigError
from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.device import resolve_device, seed_everything
from numl_core.generator.config import GeneratorConfig, build_spec
from numl_core.generator.model import GeneratorFlow, weighted_nll
from numl_core.jobs import Progress
from numl_core.stats import relative_ess
from numl_core.training import FitResult, fit

#: Metric: relative effective sample size of a round's proposal (one record per round).
PROPOSAL_RESS = "proposal_ress"
#: Metric of :func:`numl_core.training.fit`: the loss per epoch (tags ``split``, ``term``).
LOSS = "loss"
#: Share of a run's progress bar that the training rounds take.
TRAINING_SHARE = 0.7


def annealing_exponent(config: GeneratorConfig, round_: int) -> float:
    """Exponent beta of the target f^beta learnt in importance round ``round_`` (1 from mid-training on).

    >>> config = GeneratorConfig(rounds=5, temper=0.4)
    >>> [round(annealing_exponent(config, r), 2) for r in range(4)]
    [0.4, 0.7, 1.0, 1.0]
    """
    ramp = max(1.0, (config.rounds - 1) / 2)
    return min(1.0, config.temper + (1.0 - config.temper) * round_ / ramp)


def round_learning_rate(config: GeneratorConfig, round_: int) -> float:
    """Starting learning rate of round ``round_``: ``learning_rate`` while annealing, then times
    ``round_decay`` per round at the full target (the flow is by then a close proposal that later rounds
    refine rather than move).

    >>> config = GeneratorConfig(rounds=5, temper=0.4, learning_rate=1e-3, round_decay=0.5)
    >>> [round(round_learning_rate(config, r) * 1e3, 3) for r in range(5)]
    [1.0, 1.0, 0.5, 0.25, 0.125]
    """
    if config.training == "accept_reject":
        return config.learning_rate
    full = next(r for r in range(config.rounds + 1) if annealing_exponent(config, r) >= 1.0)
    return config.learning_rate * config.round_decay ** max(0, round_ - max(full, 1) + 1)


def _proposal(
    config: GeneratorConfig, model: ex.ExclusiveModel, flow: GeneratorFlow, round_: int, n: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """One round's proposed events: energies and parameters uniform over the trained ranges, x uniform in
    the box (round 0) or from the current flow. Returns (enu, params, x, log q(x))."""
    gen = torch.Generator().manual_seed(config.seed * 1000 + round_)
    lo, hi = config.enu_low, config.enu_high
    enu = (lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)).float()
    params: dict[str, torch.Tensor] = {}
    if config.parameter != "none":
        a, b = config.parameter_low, config.parameter_high
        params[config.parameter] = (a + (b - a) * torch.rand(n, generator=gen, dtype=torch.float64)).float()
    if round_ == 0:
        x = ex.uniform_proposal(enu.double(), model, gen)
        log_g = -torch.log(8 * math.pi * ex.omega_max(enu.double(), model))
    else:
        torch.manual_seed(config.seed * 1000 + round_)
        x, log_g = flow.sample_and_log_prob(
            enu.to(flow.ctx_low.device), {k: v.to(enu) for k, v in params.items()}
        )
        x, log_g = x.cpu().double(), log_g.cpu().double()
    return enu, params, x, log_g


def training_set(
    config: GeneratorConfig, model: ex.ExclusiveModel, flow: GeneratorFlow, round_: int, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Weighted events (box coordinates y, standardised context c, weights mean 1) of one importance
    round, tempered by :func:`annealing_exponent`. Returns (y, c, w, raw weights f/q)."""
    enu, params, x, log_g = _proposal(config, model, flow, round_, n)
    f = ex.differential_cross_section(x, enu.double(), model, {k: v.double() for k, v in params.items()})
    w = (f * torch.exp(-log_g)).numpy()
    ok = np.isfinite(w) & (w > 0)
    keep = torch.as_tensor(np.flatnonzero(ok))
    y, _ = flow.to_box(x[keep].float(), enu[keep])
    c = flow.context(
        enu[keep].to(flow.ctx_low.device), {k: v[keep].to(flow.ctx_low.device) for k, v in params.items()}
    )
    # annealing: round r learns f^beta_r, beta rising from ``temper`` to 1. Uniform-proposal weights are too
    # uneven to learn f itself (a large flow overfits the few heavy events), and each broader flow is a
    # proposal that covers the next, sharper target
    beta = annealing_exponent(config, round_)
    log_w = beta * torch.log(f[keep]) - log_g[keep]
    w_train = torch.exp(log_w - log_w.max()).numpy()
    wt = torch.as_tensor(w_train / w_train.mean(), dtype=torch.float32)
    return y.clamp(-1 + 1e-6, 1 - 1e-6), c.cpu(), wt, w


def accept_reject_training_set(
    config: GeneratorConfig, model: ex.ExclusiveModel, flow: GeneratorFlow
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit-weight accept-reject events over the trained energy range (no model parameter)."""
    if config.parameter != "none":
        raise ConfigError("GeneratorConfig.training: accept_reject training supports parameter 'none' only")
    flux = ex.Flux.flat(config.enu_low, config.enu_high)
    bound = ex.density_bound(model, flux, seed=config.seed)
    ar = ex.accept_reject(model, config.n_accept_reject_train, flux, bound, seed=config.seed)
    y, _ = flow.to_box(ar.x.float(), ar.enu.float())
    c = flow.context(ar.enu.float().to(flow.ctx_low.device)).cpu()
    return y.clamp(-1 + 1e-6, 1 - 1e-6), c, torch.ones(len(y))


def _split(
    tensors: tuple[torch.Tensor, ...], seed: int
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """A random 90/10 split into training and validation events."""
    n = len(tensors[0])
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, n // 10)
    return tuple(t[perm[n_val:]] for t in tensors), tuple(t[perm[:n_val]] for t in tensors)


def _round_events(
    config: GeneratorConfig, model: ex.ExclusiveModel, flow: GeneratorFlow, round_: int
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], float]:
    """The training events of one round and the RESS of their proposal (1 for accept-reject events)."""
    if config.training == "accept_reject":
        return accept_reject_training_set(config, model, flow), 1.0
    flow.eval()
    y, c, w, raw = training_set(config, model, flow, round_, config.events_per_round)
    return (y, c, w), relative_ess(raw)


def _round_row(
    config: GeneratorConfig, round_: int, ress: float, n_events: int, seconds_data: float, fitted: FitResult
) -> dict[str, Any]:
    """One row of the per-round table."""
    return {
        "round": round_,
        "proposal_ress": ress,
        "beta": 1.0 if config.training == "accept_reject" else annealing_exponent(config, round_),
        "lr": round_learning_rate(config, round_),
        "n_events": n_events,
        "best_val_loss": fitted.best_val_loss,
        "epochs": fitted.epochs_run,
        "seconds_data": seconds_data,
        "seconds_train": sum(h["seconds"] for h in fitted.history),
        "train_events_per_s": fitted.train_events_per_s,
    }


def train_flow(
    config: GeneratorConfig, progress: Progress, model: ex.ExclusiveModel
) -> tuple[GeneratorFlow, list[dict[str, float]]]:
    """Build and train the flow; returns it (eval mode, on the config's device) and a per-round table
    (round, proposal_ress, beta, lr, n_events, best_val_loss, epochs, seconds_data, seconds_train,
    train_events_per_s)."""
    seed_everything(config.seed)
    spec = build_spec(config)
    flow = GeneratorFlow(spec).to(resolve_device(config.device))
    rounds = 1 if config.training == "accept_reject" else config.rounds
    fingerprint = {"spec": spec.to_dict(), "training": config.training}
    table = []
    for r in range(rounds):
        progress.check_cancelled()
        sub = progress.subrange(TRAINING_SHARE * r / rounds, TRAINING_SHARE * (r + 1) / rounds)
        sub.update(0.0, f"round {r + 1}/{rounds}: drawing training events")
        t0 = time.perf_counter()
        events, ress = _round_events(config, model, flow, r)
        seconds_data = time.perf_counter() - t0
        progress.metric(PROPOSAL_RESS, ress, step=r)
        n_events = len(events[0])
        progress.log(f"round {r}: {n_events} events, proposal RESS {ress:.4f} ({seconds_data:.1f} s)")
        train, val = _split(events, config.seed + r)
        settings = config.train_settings(
            lr=round_learning_rate(config, r),
            schedule="cosine",
            patience=0,
            grad_clip=10.0,
            mixed_precision=False,
        )
        fitted = fit(
            flow,
            weighted_nll,
            train,
            val,
            settings,
            sub,
            name=f"flow-round{r}",
            fingerprint={**fingerprint, "round": r},
        )
        table.append(_round_row(config, r, ress, n_events, seconds_data, fitted))
    flow.eval()
    return flow, table
