"""The generator workflow: train a conditional flow on the exclusive 1p1h cross section, then use it as an
emulator and as an unbiased importance sampler, scored against accept-reject.

``run`` trains the flow (importance-weighted rounds, or maximum likelihood on accept-reject events),
then reports RESS, unweighting efficiency, capping bias, MNLL and bin pulls against a high-statistics
weighted reference, marginals flow vs reference, and (optionally) an accept-reject sample of the same
size; with a run directory it saves the flow as ``flow.pt``. ``sample`` loads a saved flow and writes N
events (emulated, or importance-weighted and unweighted) to a parquet, CSV or ROOT file.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import param
import torch

from numl_core.config import Config, ConfigError
from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.data.generators.exclusive_1p1h_current import AXIAL_PARAMETERS
from numl_core.data.io import write_table
from numl_core.device import resolve_device, seed_everything
from numl_core.generator import sampling as smp
from numl_core.generator.model import PRESETS, FlowSpec, GeneratorFlow, load_flow, save_flow, weighted_nll
from numl_core.jobs import Progress
from numl_core.training import TrainSettings, fit
from numl_core.workflows import Workflow

log = logging.getLogger(__name__)

FLOW_FILE = "flow.pt"


class GeneratorConfig(Config):
    """Inputs of a flow-generator run (training and evaluation) and of the ``sample`` action."""

    shells = param.Selector(
        default="1p3/2", objects=list(ex.SHELL_CHOICES), doc="Nuclear model: one carbon shell, both, or RFG."
    )
    axial = param.Selector(default="dipole", objects=["dipole", "zexp"], doc="Axial form factor.")
    parameter = param.Selector(
        default="none",
        objects=["none", *AXIAL_PARAMETERS],
        doc="Model parameter the flow is conditioned on (besides E_nu); 'none' for E_nu only.",
    )
    parameter_low = param.Number(default=0.9, doc="Lowest trained value of the parameter.")
    parameter_high = param.Number(default=1.2, doc="Highest trained value of the parameter.")
    parameter_eval = param.Number(default=1.05, doc="Parameter value used for the evaluation and sampling.")
    flux = param.Selector(default="flat", objects=["flat", "t2k"], doc="E_nu spectrum: flat or T2K ND280.")
    enu_low = param.Number(default=0.2, bounds=(0.15, 20.0), doc="Lowest neutrino energy [GeV].")
    enu_high = param.Number(default=1.0, bounds=(0.2, 30.0), doc="Highest neutrino energy [GeV].")
    preset = param.Selector(default="S", objects=[*PRESETS, "custom"], doc="Flow size (S/M/L or custom).")
    transforms = param.Integer(default=10, bounds=(1, 64), doc="Flow transforms (preset 'custom').")
    hidden = param.Integer(default=256, bounds=(4, 4096), doc="Hidden units per layer (preset 'custom').")
    bins = param.Integer(default=16, bounds=(2, 64), doc="Spline bins.")
    coupling = param.Boolean(default=True, doc="Coupling layers (fast sampling) instead of autoregressive.")
    training = param.Selector(
        default="importance",
        objects=["importance", "accept_reject"],
        doc="Train on importance-weighted rounds (forward KL to the known density) or accept-reject events.",
    )
    rounds = param.Integer(
        default=12, bounds=(1, 100), doc="Importance rounds (round 0 uses a uniform proposal)."
    )
    temper = param.Number(
        default=0.3,
        bounds=(0.05, 1.0),
        doc="Round 0 learns f^temper; the exponent then rises to 1 over the first half of the rounds.",
    )
    round_decay = param.Number(
        default=0.5,
        bounds=(0.05, 1.0),
        doc="Learning-rate factor per importance round once the target is f itself (1: every round "
        "starts at learning_rate).",
    )
    events_per_round = param.Integer(
        default=1_000_000,
        bounds=(100, 50_000_000),
        doc="Weighted events per round (fresh events are cheap: a round's events cost less to draw and "
        "weight than one training epoch over them).",
    )
    n_accept_reject_train = param.Integer(
        default=20_000,
        bounds=(100, 10_000_000),
        doc="Accept-reject training events (training 'accept_reject').",
    )
    epochs = param.Integer(
        default=1, bounds=(1, 1000), doc="Epochs per round (more fresh events beat more epochs)."
    )
    batch_size = param.Integer(default=512, bounds=(16, 1_000_000), doc="Mini-batch size.")
    learning_rate = param.Number(default=1e-3, bounds=(1e-6, 1.0), doc="Adam learning rate.")
    energy_sampling = param.Selector(
        default="event_rate",
        objects=["event_rate", "flux"],
        doc="Draw E_nu from the event rate flux x sigma (tabulated once from the flow; weights stay "
        "unbiased) or from the flux itself.",
    )
    n_eval = param.Integer(default=100_000, bounds=(100, 50_000_000), doc="Flow events for the evaluation.")
    n_reference = param.Integer(
        default=1_000_000, bounds=(1000, 100_000_000), doc="Weighted events in the high-statistics reference."
    )
    n_accept_reject = param.Integer(
        default=0,
        bounds=(0, 10_000_000),
        doc="Accept-reject events for comparison (0: expected optimum only).",
    )
    bins_per_dim = param.Integer(default=6, bounds=(2, 30), doc="Bins per variable of the 4-D histograms.")
    cap_quantile = param.Number(default=0.9999, bounds=(0.5, 1.0), doc="Weight-cap quantile.")
    flow_file = param.String(default="", doc="Saved flow for the 'sample' action (a run's flow.pt).")
    n_generate = param.Integer(default=100_000, bounds=(1, 1_000_000_000), doc="Events written by 'sample'.")
    sample_mode = param.Selector(
        default="importance", objects=["importance", "emulator"], doc="'sample': unweighted IS or raw flow."
    )
    output_file = param.String(default="events.parquet", doc="'sample' output (.parquet, .csv, .root).")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1), doc="Seed of sampling and training.")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda", "mps"], doc="Torch device.")

    def validate(self) -> None:
        if not self.enu_high > self.enu_low:
            raise ConfigError("GeneratorConfig.enu_high: must exceed enu_low")
        if self.parameter != "none" and not self.parameter_high > self.parameter_low:
            raise ConfigError("GeneratorConfig.parameter_high: must exceed parameter_low")
        if self.parameter != "none" and not self.parameter_low <= self.parameter_eval <= self.parameter_high:
            raise ConfigError("GeneratorConfig.parameter_eval: must lie in [parameter_low, parameter_high]")
        if self.parameter == "axial_mass" and self.axial != "dipole":
            raise ConfigError("GeneratorConfig.parameter: axial_mass needs the dipole axial form factor")
        if self.parameter.startswith("z_") and self.axial != "zexp":
            raise ConfigError("GeneratorConfig.parameter: z coefficients need axial 'zexp'")


def build_model(config: GeneratorConfig) -> ex.ExclusiveModel:
    """The cross-section model of a config."""
    return ex.carbon_model(config.shells, axial=config.axial)


def build_flux(config: GeneratorConfig) -> ex.Flux:
    """The E_nu spectrum of a config."""
    if config.flux == "flat":
        return ex.Flux.flat(config.enu_low, config.enu_high)
    return ex.Flux.t2k(config.enu_low, config.enu_high)


def build_spec(config: GeneratorConfig) -> FlowSpec:
    """Flow architecture and condition ranges of a config."""
    conditions = {"enu": (config.enu_low, config.enu_high)}
    if config.parameter != "none":
        conditions[config.parameter] = (config.parameter_low, config.parameter_high)
    passes = 2 if config.coupling else 4
    extra = {"shells": config.shells, "axial": config.axial}
    common = {"omega_low": ex.omega_threshold(build_model(config))}
    if config.preset == "custom":
        return FlowSpec(
            config.transforms,
            config.hidden,
            conditions,
            bins=config.bins,
            passes=passes,
            seed=config.seed,
            extra=extra,
            **common,
        )
    return FlowSpec.preset(
        config.preset, conditions, bins=config.bins, passes=passes, seed=config.seed, extra=extra, **common
    )


def eval_params(config: GeneratorConfig) -> dict[str, float]:
    """The parameter values used for evaluation and sampling ({} without a parameter)."""
    return {} if config.parameter == "none" else {config.parameter: config.parameter_eval}


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


def _training_set(
    config: GeneratorConfig,
    model: ex.ExclusiveModel,
    flow: GeneratorFlow,
    round_: int,
    n: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Weighted events (box coordinates y, standardised context c, weights mean 1) of one round.

    Energies and parameters are uniform over the trained ranges; round 0 proposes uniformly in the box
    (with weights tempered by ``config.temper``), later rounds from the current flow. Returns (y, c, w,
    raw weights f/g).
    """
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


def _accept_reject_training_set(
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
    n = len(tensors[0])
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, n // 10)
    return tuple(t[perm[n_val:]] for t in tensors), tuple(t[perm[:n_val]] for t in tensors)


def train_flow(
    config: GeneratorConfig, progress: Progress, model: ex.ExclusiveModel
) -> tuple[GeneratorFlow, list[dict[str, float]]]:
    """Build and train the flow; returns it (eval mode, on the config's device) and a per-round table."""
    seed_everything(config.seed)
    spec = build_spec(config)
    flow = GeneratorFlow(spec).to(resolve_device(config.device))
    settings = TrainSettings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.learning_rate,
        schedule="cosine",
        patience=0,
        grad_clip=10.0,
        mixed_precision=False,
        device=config.device,
        seed=config.seed,
    )
    rounds = 1 if config.training == "accept_reject" else config.rounds
    table = []
    fingerprint = {"spec": spec.to_dict(), "training": config.training}
    for r in range(rounds):
        progress.check_cancelled()
        sub = progress.subrange(0.7 * r / rounds, 0.7 * (r + 1) / rounds)
        sub.update(0.0, f"round {r + 1}/{rounds}: drawing training events")
        t0 = time.perf_counter()
        if config.training == "accept_reject":
            y, c, w = _accept_reject_training_set(config, model, flow)
            ress = 1.0
        else:
            flow.eval()
            y, c, w, raw = _training_set(config, model, flow, r, config.events_per_round)
            ress = smp.relative_ess(raw)
        seconds_data = time.perf_counter() - t0
        progress.metric("proposal_ress", ress, step=r)
        beta = 1.0 if config.training == "accept_reject" else annealing_exponent(config, r)
        lr = round_learning_rate(config, r)
        progress.log(f"round {r}: {len(y)} events, proposal RESS {ress:.4f} ({seconds_data:.1f} s)")
        train, val = _split((y, c, w), config.seed + r)
        result = fit(
            flow,
            weighted_nll,
            train,
            val,
            replace(settings, lr=lr),
            sub,
            name=f"flow-round{r}",
            fingerprint={**fingerprint, "round": r},
        )
        table.append(
            {
                "round": r,
                "proposal_ress": ress,
                "beta": beta,
                "lr": lr,
                "n_events": len(y),
                "best_val_loss": result.best_val_loss,
                "epochs": result.epochs_run,
                "seconds_data": seconds_data,
                "seconds_train": sum(h["seconds"] for h in result.history),
                "train_events_per_s": result.train_events_per_s,
            }
        )
    flow.eval()
    return flow, table


def energy_proposal(
    config: GeneratorConfig, model: ex.ExclusiveModel, flux: ex.Flux, flow: GeneratorFlow
) -> ex.Flux | None:
    """The energies to draw from: the event rate (:func:`~numl_core.generator.sampling.event_rate`) or, for
    ``energy_sampling="flux"``, None (the flux itself)."""
    if config.energy_sampling == "flux":
        return None
    return smp.event_rate(flow, flux, model, eval_params(config), seed=config.seed + 13)


def reference_sample(
    config: GeneratorConfig,
    model: ex.ExclusiveModel,
    flux: ex.Flux,
    flow: GeneratorFlow,
    energies: ex.Flux | None = None,
) -> smp.WeightedSample:
    """High-statistics weighted reference: flow proposals with exact weights f / q (unbiased wherever the
    flow covers f), drawn with a seed independent of the evaluation sample."""
    return smp.sample_flow(
        flow, config.n_reference, flux, config.seed + 7919, eval_params(config), model, energies=energies
    )


def evaluate(
    config: GeneratorConfig, progress: Progress, model: ex.ExclusiveModel, flow: GeneratorFlow
) -> dict[str, Any]:
    """Sampler figures, histogram quality and marginals of a trained flow."""
    flux = build_flux(config)
    smp.flux_averaged_bound_check(flow, model, flux)
    params = eval_params(config)
    progress.update(0.72, "importance sampling")
    energies = energy_proposal(config, model, flux, flow)
    sample = smp.sample_flow(flow, config.n_eval, flux, config.seed + 1, params, model, energies=energies)
    report = smp.sampler_report(sample, config.cap_quantile, config.seed)
    for key in ("ress", "unweighting_efficiency", "cap_bias"):
        progress.metric(key, getattr(report, key), step=0)
    progress.update(0.8, "reference sample")
    ref = reference_sample(config, model, flux, flow, energies)
    ref_w = smp.cap_weights(ref.weights, 1.0).weights
    y_ref = smp.box_coordinates(ref.x.numpy(), ref.enu.numpy(), model.m_lep)
    binning = smp.HistogramBinning.from_reference(y_ref, ref_w, config.bins_per_dim)
    href, href2 = binning.histogram(y_ref, ref_w), binning.histogram(y_ref, ref_w**2)
    p = href / href.sum()
    nz = p > 0
    quality = {"mnll_optimum": float(-(p[nz] * np.log(p[nz])).sum())}
    # emulator: raw flow events; importance sampler: the same events unweighted by hit-or-miss
    y_flow = smp.box_coordinates(sample.x.numpy(), sample.enu.numpy(), model.m_lep)
    emu = smp.histogram_quality(binning.histogram(y_flow), href, href2)
    capped = smp.cap_weights(sample.weights, config.cap_quantile)
    unw = smp.unweighting_efficiency(capped.weights, seed=config.seed)
    keep, _ = smp.unweight(capped.weights, unw.w_max, config.seed)
    ius = smp.histogram_quality(binning.histogram(y_flow[keep]), href, href2)
    quality |= {
        "mnll_flow": emu.mnll,
        "rms_pull_flow": emu.rms_pull,
        "mnll_unweighted": ius.mnll,
        "rms_pull_unweighted": ius.rms_pull,
        "n_unweighted": len(keep),
        "bins_used": emu.n_bins_used,
    }
    samples = {
        "reference": (ref.x.numpy(), ref.enu.numpy(), ref_w),
        "flow": (sample.x.numpy(), sample.enu.numpy(), None),
        "flow_reweighted": (sample.x.numpy(), sample.enu.numpy(), capped.weights),
    }
    if config.n_accept_reject:
        progress.update(0.9, f"accept-reject reference ({config.n_accept_reject} events)")
        n_probe = min(
            200_000, max(20_000, 100 * config.n_accept_reject)
        )  # bound search scales with the sample
        bound = ex.density_bound(model, flux, n_probe=n_probe, seed=config.seed + 3, params=params)
        ar = ex.accept_reject(model, config.n_accept_reject, flux, bound, seed=config.seed + 5, params=params)
        y_ar = smp.box_coordinates(ar.x.numpy(), ar.enu.numpy(), model.m_lep)
        arq = smp.histogram_quality(binning.histogram(y_ar), href, href2)
        quality |= {
            "mnll_accept_reject": arq.mnll,
            "rms_pull_accept_reject": arq.rms_pull,
            "accept_reject_acceptance": ar.acceptance,
            "accept_reject_events_per_s": ar.events_per_s,
            "accept_reject_overflow": ar.overflow_fraction,
        }
        samples["accept_reject"] = (ar.x.numpy(), ar.enu.numpy(), None)
    marginals = smp.marginal_histograms(samples, model.m_lep)
    progress.artefact("marginals", marginals)
    marginals_2d = smp.marginal_histograms_2d(
        {k: v for k, v in samples.items() if k in ("reference", "flow", "accept_reject")}, model.m_lep
    )
    hist_w = np.log10(np.clip(sample.weights, 1e-300, None) / sample.weights.mean())
    counts, edges = np.histogram(hist_w[np.isfinite(hist_w)], bins=60)
    weight_hist = pd.DataFrame({"low": edges[:-1], "high": edges[1:], "count": counts})
    return {
        "report": report.to_dict(),
        "quality": quality,
        "marginals": marginals,
        "marginals_2d": marginals_2d,
        "weight_histogram": weight_hist,
    }


def run_generator(config: GeneratorConfig, progress: Progress) -> dict[str, Any]:
    """Train a flow on the exclusive 1p1h cross section and score it as emulator and importance sampler."""
    config.validate()
    t0 = time.perf_counter()
    model = build_model(config)
    ex.check_energies(torch.tensor([config.enu_low]), model)
    flow, rounds = train_flow(config, progress, model)
    if progress.run_dir is not None:
        save_flow(flow, progress.run_dir.path / FLOW_FILE, {"config": config.to_dict()})
    out = evaluate(config, progress, model, flow)
    summary = {**out["report"], **out["quality"]}
    summary_frame = pd.DataFrame({"metric": list(summary), "value": [float(v) for v in summary.values()]})
    progress.update(1.0, "done")
    return {
        "summary": summary_frame,
        "rounds": pd.DataFrame(rounds),
        "marginals": out["marginals"],
        "marginals_2d": out["marginals_2d"],
        "weight_histogram": out["weight_histogram"],
        "n_parameters": sum(p.numel() for p in flow.parameters()),
        "seconds": time.perf_counter() - t0,
    }


def sample_events(config: GeneratorConfig, progress: Progress) -> dict[str, Any]:
    """Write ``n_generate`` events from a saved flow to ``output_file``: unweighted importance-sampled events
    (exact target, hit-or-miss on capped weights, over-weights kept as a weight column) or raw flow events."""
    config.validate()
    if not config.flow_file:
        raise ConfigError(
            "GeneratorConfig.flow_file: the 'sample' action needs a saved flow (a run's flow.pt)"
        )
    flow, meta = load_flow(config.flow_file, domain="exclusive_1p1h")
    flow.to(resolve_device(config.device))
    trained = meta.get("config", {})
    for key in ("shells", "axial"):
        if trained.get(key, getattr(config, key)) != getattr(config, key):
            raise ConfigError(
                f"GeneratorConfig.{key}: the flow was trained for {trained[key]!r}, "
                f"not {getattr(config, key)!r}"
            )
    model = build_model(config)
    flux = build_flux(config)
    smp.flux_averaged_bound_check(flow, model, flux)
    params = eval_params(config)
    if set(params) != set(flow.spec.parameter_names):
        raise ConfigError(
            f"GeneratorConfig.parameter: the flow is conditioned on {list(flow.spec.conditions)}"
        )
    energies = energy_proposal(config, model, flux, flow)
    frames, kept, drawn, w_max = [], 0, 0, None
    t0 = time.perf_counter()
    while kept < config.n_generate:
        progress.check_cancelled()
        target = None if config.sample_mode == "emulator" else model
        remaining = config.n_generate - kept
        # importance mode keeps a fraction of the draws; emulator mode keeps them all
        chunk = min(100_000, remaining if target is None else max(5_000, 5 * remaining))
        s = smp.sample_flow(flow, chunk, flux, config.seed + len(frames), params, target, energies=energies)
        drawn += chunk
        if target is None:
            frame = smp.events_frame(s.x, s.enu)
        else:
            capped = smp.cap_weights(s.weights, config.cap_quantile)
            if w_max is None:  # fixed after the first chunk so all chunks are unweighted alike
                w_max = smp.unweighting_efficiency(capped.weights, seed=config.seed).w_max
            keep, resid = smp.unweight(capped.weights, w_max, config.seed + drawn)
            frame = smp.events_frame(s.x[keep], s.enu[keep], resid)
        frames.append(frame)
        kept += len(frame)
        progress.update(min(kept / config.n_generate, 1.0), f"{min(kept, config.n_generate)} events")
    events = pd.concat(frames, ignore_index=True).iloc[: config.n_generate]
    for name, value in params.items():
        events[name] = value
    path = write_table(events, Path(config.output_file))
    seconds = time.perf_counter() - t0
    progress.log(f"wrote {len(events)} events to {path} in {seconds:.1f} s")
    return {
        "events_head": events.head(1000),
        "output_file": str(path),
        "n_events": len(events),
        "n_drawn": drawn,
        "seconds": seconds,
    }


WORKFLOW = Workflow(
    name="generator",
    title="Flow event generator",
    description="Conditional normalizing flows as fast emulators and unbiased importance samplers of the "
    "exclusive CCQE (1p1h) cross section on carbon, scored against accept-reject.",
    config_cls=GeneratorConfig,
    run=run_generator,
    actions={"sample": sample_events},
)
