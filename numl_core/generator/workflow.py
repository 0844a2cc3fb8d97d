"""The generator workflow: train a conditional flow on the exclusive 1p1h cross section, then use it as an
emulator and as an unbiased importance sampler, scored against accept-reject.

``run`` trains the flow (:mod:`~numl_core.generator.train`), then reports RESS, unweighting efficiency,
capping bias, MNLL and bin pulls against a high-statistics weighted reference, marginals flow vs
reference, and (optionally) an accept-reject sample of the same size, as a
:class:`~numl_core.generator.result.GeneratorResult`; with a run directory it saves the flow as
``flow.pt``. ``sample`` loads a saved flow and writes N events (emulated, or importance-weighted and
unweighted) to a parquet, CSV or ROOT file, or as lab-frame four-momenta to a NuHepMC file
(:class:`~numl_core.generator.result.SampleResult`).

Live plots: the training loss per epoch (all rounds end to end) and the RESS of each round's proposal.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from numl_core import __version__ as numl_version
from numl_core.config import ConfigError
from numl_core.data import nuhepmc
from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.data.io import write_table
from numl_core.device import resolve_device
from numl_core.generator import sampling as smp
from numl_core.generator import train
from numl_core.generator import vegas_baseline as vb
from numl_core.generator.config import (  # noqa: F401 - re-exported: the workflow's public names
    GeneratorConfig,
    build_flux,
    build_model,
    build_spec,
    eval_params,
)
from numl_core.generator.model import GeneratorFlow, load_flow, save_flow
from numl_core.generator.result import GeneratorResult, SampleResult
from numl_core.generator.shards import CrossSection, Setup, draw_events
from numl_core.generator.train import train_flow  # noqa: F401 - re-exported
from numl_core.jobs import Progress
from numl_core.live import LivePlots, PlotSpec, Record, series
from numl_core.workflows import Workflow

FLOW_FILE = "flow.pt"
#: Metrics of the evaluation sample's sampler report (one record each, step 0; not plotted live).
SAMPLER_METRICS = ("ress", "unweighting_efficiency", "cap_bias")
#: Output suffixes the ``sample`` action writes as NuHepMC (otherwise :func:`~numl_core.data.io.write_table`).
NUHEPMC_SUFFIXES = (".hepmc", ".hepmc3")
#: Weighted flow events for the cross section of an emulator-mode NuHepMC header.
CROSS_SECTION_EVENTS = 20_000


# -- run: training, then evaluation ------------------------------------------------------------
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


@dataclass(frozen=True)
class ReferenceHistogram:
    """The weighted reference's 4-D histogram (sums of w and of w²) on its own binning; scores other
    samples against it."""

    binning: smp.HistogramBinning
    counts: np.ndarray
    counts_sq: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, w: np.ndarray, bins_per_dim: int) -> ReferenceHistogram:
        binning = smp.HistogramBinning.from_reference(y, w, bins_per_dim)
        return cls(binning, binning.histogram(y, w), binning.histogram(y, w**2))

    def mnll_optimum(self) -> float:
        """Expected MNLL of a perfect sampler: the entropy of the reference's bin probabilities."""
        p = self.counts / self.counts.sum()
        nz = p > 0
        return float(-(p[nz] * np.log(p[nz])).sum())

    def quality(self, y: np.ndarray, weights: np.ndarray | None = None) -> smp.HistogramQuality:
        """MNLL and bin pulls of events ``y`` (box coordinates) of unit weight, or of ``weights`` (the
        over-weights of unweighted events)."""
        return smp.histogram_quality(self.binning.histogram(y, weights), self.counts, self.counts_sq)


def _flow_quality(
    config: GeneratorConfig, sample: smp.WeightedSample, y_flow: np.ndarray, reference: ReferenceHistogram
) -> tuple[dict[str, float], np.ndarray]:
    """Histogram quality of the raw flow events (emulator) and of the same events unweighted by
    hit-or-miss (importance sampler); also returns the capped weights."""
    emu = reference.quality(y_flow)
    capped = smp.cap_weights(sample.weights, config.cap_quantile)
    unw = smp.unweighting_efficiency(capped.weights, seed=config.seed)
    keep, over = smp.unweight(capped.weights, unw.w_max, config.seed)
    ius = reference.quality(y_flow[keep], over)  # over-weights kept: the unweighted sample stays exact
    quality = {
        "mnll_flow": emu.mnll,
        "rms_pull_flow": emu.rms_pull,
        "mnll_unweighted": ius.mnll,
        "rms_pull_unweighted": ius.rms_pull,
        "n_unweighted": len(keep),
        "bins_used": emu.n_bins_used,
    }
    return quality, capped.weights


def _accept_reject_quality(
    config: GeneratorConfig, model: ex.ExclusiveModel, flux: ex.Flux, reference: ReferenceHistogram
) -> tuple[dict[str, float], Any]:
    """``n_accept_reject`` accept-reject events scored against the reference; returns the figures and
    the sample."""
    params = eval_params(config)
    n_probe = min(200_000, max(20_000, 100 * config.n_accept_reject))  # bound search scales with the sample
    bound = ex.density_bound(model, flux, n_probe=n_probe, seed=config.seed + 3, params=params)
    ar = ex.accept_reject(model, config.n_accept_reject, flux, bound, seed=config.seed + 5, params=params)
    arq = reference.quality(smp.box_coordinates(ar.x.numpy(), ar.enu.numpy(), model.m_lep))
    quality = {
        "mnll_accept_reject": arq.mnll,
        "rms_pull_accept_reject": arq.rms_pull,
        "accept_reject_acceptance": ar.acceptance,
        "accept_reject_events_per_s": ar.events_per_s,
        "accept_reject_overflow": ar.overflow_fraction,
    }
    return quality, ar


def weight_histogram(weights: np.ndarray, bins: int = 60) -> pd.DataFrame:
    """``low, high, count`` of log10(w / mean w).

    >>> weight_histogram(np.array([1.0, 1.0, 10.0]), bins=2)["count"].tolist()
    [2, 1]
    """
    hist_w = np.log10(np.clip(weights, 1e-300, None) / weights.mean())
    counts, edges = np.histogram(hist_w[np.isfinite(hist_w)], bins=bins)
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "count": counts})


def vegas_figures(
    config: GeneratorConfig,
    model: ex.ExclusiveModel,
    flux: ex.Flux,
    energies: ex.Flux | None,
    flow: GeneratorFlow,
) -> dict[str, float]:
    """The VEGAS baseline on the flow's own coordinates and energy proposal, with vegas's default settings
    (:mod:`~numl_core.generator.vegas_baseline`), its cross section evaluated on the flow's device:
    ``vegas_ress``, ``vegas_unweighting_efficiency``, ``vegas_unweighted_per_s`` and ``vegas_integral``."""
    integrand = vb.box_integrand(
        model, flux, energies or flux, flow.domain_map, str(flow.ctx_low.device), eval_params(config)
    )
    integ, _, _ = vb.adapt(integrand, config.vegas_neval, config.vegas_nitn, vb.DEFAULT_SETTINGS, config.seed)
    figures = vb.weighted_figures(*vb.draw(integ, integrand), config.cap_quantile, config.seed)
    keys = ("ress", "unweighting_efficiency", "unweighted_per_s", "integral", "integral_rel_error")
    return {f"vegas_{k}": figures[k] for k in keys}


def evaluate(
    config: GeneratorConfig, progress: Progress, model: ex.ExclusiveModel, flow: GeneratorFlow
) -> dict[str, Any]:
    """Sampler figures (``report``), histogram quality (``quality``), marginals (``marginals``,
    ``marginals_2d``) and the ``weight_histogram`` of a trained flow."""
    flux = build_flux(config)
    smp.flux_averaged_bound_check(flow, model, flux)
    progress.update(0.72, "importance sampling")
    energies = energy_proposal(config, model, flux, flow)
    sample = smp.sample_flow(
        flow, config.n_eval, flux, config.seed + 1, eval_params(config), model, energies=energies
    )
    report = smp.sampler_report(sample, config.cap_quantile, config.seed)
    for key in SAMPLER_METRICS:
        progress.metric(key, getattr(report, key), step=0)
    baseline = {}
    if config.vegas_neval:
        progress.update(0.76, f"VEGAS on the flow's coordinates ({config.vegas_neval} points per iteration)")
        baseline = vegas_figures(config, model, flux, energies, flow)
    progress.update(0.8, "reference sample")
    ref = reference_sample(config, model, flux, flow, energies)
    ref_w = smp.cap_weights(ref.weights, 1.0).weights
    y_ref = smp.box_coordinates(ref.x.numpy(), ref.enu.numpy(), model.m_lep)
    reference = ReferenceHistogram.of(y_ref, ref_w, config.bins_per_dim)
    y_flow = smp.box_coordinates(sample.x.numpy(), sample.enu.numpy(), model.m_lep)
    flow_quality, capped = _flow_quality(config, sample, y_flow, reference)
    quality = {"mnll_optimum": reference.mnll_optimum(), **flow_quality}
    samples = {
        "reference": (ref.x.numpy(), ref.enu.numpy(), ref_w),
        "flow": (sample.x.numpy(), sample.enu.numpy(), None),
        "flow_reweighted": (sample.x.numpy(), sample.enu.numpy(), capped),
    }
    if config.n_accept_reject:
        progress.update(0.9, f"accept-reject reference ({config.n_accept_reject} events)")
        ar_quality, ar = _accept_reject_quality(config, model, flux, reference)
        quality |= ar_quality
        samples["accept_reject"] = (ar.x.numpy(), ar.enu.numpy(), None)
    marginals = smp.marginal_histograms(samples, model.m_lep)
    progress.artefact("marginals", marginals)
    marginals_2d = smp.marginal_histograms_2d(
        {k: v for k, v in samples.items() if k in ("reference", "flow", "accept_reject")}, model.m_lep
    )
    return {
        "report": report.to_dict() | baseline,
        "quality": quality,
        "marginals": marginals,
        "marginals_2d": marginals_2d,
        "weight_histogram": weight_histogram(sample.weights),
    }


def run_generator(config: GeneratorConfig, progress: Progress) -> GeneratorResult:
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
    progress.update(1.0, "done")
    return GeneratorResult(
        summary=pd.DataFrame({"metric": list(summary), "value": [float(v) for v in summary.values()]}),
        rounds=pd.DataFrame(rounds),
        marginals=out["marginals"],
        marginals_2d=out["marginals_2d"],
        weight_histogram=out["weight_histogram"],
        n_parameters=sum(p.numel() for p in flow.parameters()),
        seconds=time.perf_counter() - t0,
    )


# -- the sample action -------------------------------------------------------------------------
def load_trained_flow(config: GeneratorConfig) -> GeneratorFlow:
    """The flow of ``config.flow_file`` on the config's device, checked against the config (nuclear
    model, axial form factor, conditioning parameter)."""
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
    return flow


def sampling_setup(config: GeneratorConfig, flow: GeneratorFlow, model: ex.ExclusiveModel) -> Setup:
    """The flux, the parameter values and the energy proposal of the ``sample`` action, checked against
    the flow's trained ranges and conditions."""
    flux = build_flux(config)
    smp.flux_averaged_bound_check(flow, model, flux)
    params = eval_params(config)
    if set(params) != set(flow.spec.parameter_names):
        raise ConfigError(
            f"GeneratorConfig.parameter: the flow is conditioned on {list(flow.spec.conditions)}"
        )
    return flux, params, energy_proposal(config, model, flux, flow)


def flow_cross_section(
    config: GeneratorConfig,
    flow: GeneratorFlow,
    model: ex.ExclusiveModel,
    setup: Setup,
) -> CrossSection:
    """The flux-averaged cross section from :data:`CROSS_SECTION_EVENTS` weighted flow events (what the
    emulator mode, which evaluates no cross section, writes into a NuHepMC header)."""
    flux, params, energies = setup
    s = smp.sample_flow(
        flow, CROSS_SECTION_EVENTS, flux, config.seed + 104_729, params, model, energies=energies
    )
    w = s.weights
    return CrossSection.of(len(w), w.sum(), (w**2).sum())


def write_nuhepmc_events(
    events: pd.DataFrame, path: Path, config: GeneratorConfig, model: ex.ExclusiveModel, sigma: CrossSection
) -> Path:
    """Write events as NuHepMC: lab-frame four-momenta with a removal energy drawn per event given its
    variables and a uniform muon azimuth, the ``weight`` column (or 1) as the CV weight and ``sigma`` and
    the flux in the header (:func:`~numl_core.data.nuhepmc.write_nuhepmc`)."""
    x = torch.tensor(events[list(ex.VARIABLES)].to_numpy(), dtype=torch.float64)
    enu = torch.tensor(events["enu"].to_numpy(), dtype=torch.float64)
    e_rem = ex.removal_energy_sample(x, enu, model, config.seed + 31, eval_params(config)).numpy()
    phi_mu = np.random.default_rng([config.seed, 37]).uniform(-np.pi, np.pi, len(events))
    cols = [events[c].to_numpy() for c in ("enu", *ex.VARIABLES)]
    ev = ex.knockout_momenta(*cols, e_rem, phi_mu, m_lep=model.m_lep)
    flux = build_flux(config)
    run = nuhepmc.KnockoutRun(
        sigma.value,
        sigma.error,
        process_id=200,  # NuHepMC E.C.1: 200-249 charged-current quasi-elastic
        process_name="CCQE",
        process_description=f"nu_mu n -> mu- p on 12C, {config.shells} spectral function, "
        f"{config.axial} axial form factor ({config.sample_mode} flow events)",
        version=numl_version,
        flux_edges=flux.edges,
        flux_density=flux.density,
    )
    weights = events["weight"].to_numpy() if "weight" in events else None
    return nuhepmc.write_nuhepmc(path, run, **knockout_tracks(ev), weights=weights)


def knockout_tracks(ev: Any) -> dict[str, Any]:
    """The NuHepMC particles of knockout events (from ``exclusive_1p1h.knockout_momenta``): the beam,
    target, struck nucleon, remnant and outgoing tracks with their PDG codes."""
    track = nuhepmc.Track
    return {
        "beam": track(ex.PDG_NUMU, ev.neutrino),
        "target": track(ex.PDG_CARBON12, ev.target),
        "struck": track(ex.PDG_NEUTRON, ev.neutron),
        "remnant": track(ex.PDG_CARBON11, ev.remnant),
        "outgoing": [track(ex.PDG_MUON, ev.muon), track(ex.PDG_PROTON, ev.proton)],
    }


def sample_events(config: GeneratorConfig, progress: Progress) -> SampleResult:
    """Write ``n_generate`` events from a saved flow to ``output_file``: unweighted importance-sampled events
    (exact target, hit-or-miss on capped weights, over-weights kept as a weight column) or raw flow events,
    drawn in seeded shards here or on the config's Dask ``scheduler`` (:mod:`~numl_core.generator.shards`);
    a ``.hepmc``/``.hepmc3`` file is NuHepMC with the flux-averaged cross section in its header."""
    config.validate()
    flow = load_trained_flow(config)
    model = build_model(config)
    setup = sampling_setup(config, flow, model)
    t0 = time.perf_counter()
    events, drawn, sigma = draw_events(config, progress, flow, model, setup)
    path = Path(config.output_file)
    if path.suffix.lower() in NUHEPMC_SUFFIXES:
        sigma = sigma or flow_cross_section(config, flow, model, setup)
        path = write_nuhepmc_events(events, path, config, model, sigma)
    else:
        path = write_table(events, path)
    seconds = time.perf_counter() - t0
    progress.log(f"wrote {len(events)} events to {path} in {seconds:.1f} s")
    return SampleResult(
        events_head=events.head(1000),
        output_file=str(path),
        n_events=len(events),
        n_drawn=drawn,
        seconds=seconds,
        cross_section=None if sigma is None else sigma.value,
        cross_section_error=None if sigma is None else sigma.error,
    )


def shard_timing(config: GeneratorConfig, n_workers: int = 2) -> dict[str, float]:
    """The ``sample`` action's draw (no file written) timed on a LocalCluster of ``n_workers`` (cluster start
    included) and in this process: ``n_events``, ``n_workers``, ``seconds``, ``seconds_single_process`` and
    ``integral_rel_diff``, the relative difference of the two cross sections (0 up to rounding: the shards
    are the same; NaN in emulator mode, which has none)."""
    config.validate()
    flow = load_trained_flow(config)
    model = build_model(config)
    setup = sampling_setup(config, flow, model)
    seconds, sigmas = {}, {}
    for scheduler in ("local", ""):
        t0 = time.perf_counter()
        _, _, sigmas[scheduler] = draw_events(
            config.copy(scheduler=scheduler), Progress(), flow, model, setup, n_workers
        )
        seconds[scheduler] = time.perf_counter() - t0
    here, there = sigmas[""], sigmas["local"]
    return {
        "n_events": config.n_generate,
        "n_workers": n_workers,
        "seconds": seconds["local"],
        "seconds_single_process": seconds[""],
        "integral_rel_diff": math.nan if here is None else abs(there.value - here.value) / abs(here.value),
    }


# -- live plots --------------------------------------------------------------------------------
LOSS_PLOT = "loss"
PROPOSAL_PLOT = "proposal_ress"
LIVE_PLOTS = (
    PlotSpec(
        LOSS_PLOT,
        "training loss (all rounds)",
        xlabel="epoch (rounds laid end to end; dotted line: next round)",
        ylabel="weighted NLL per event",
        boundaries=True,
    ),
    PlotSpec(
        PROPOSAL_PLOT,
        "proposal quality per round",
        xlabel="round",
        ylabel="RESS of the proposal",
        markers=True,
    ),
)


def metric_group(record: Record) -> str | None:
    """The live plot of a metric record: the training loss, or the RESS of each round's proposal (the
    evaluation's single figures are not plotted).

    >>> metric_group({"name": "loss", "split": "val"}), metric_group({"name": "ress"})
    ('loss', None)
    """
    name = record["name"]
    if name == train.LOSS:
        return LOSS_PLOT
    return PROPOSAL_PLOT if name == train.PROPOSAL_RESS else None


def expected_series(config: GeneratorConfig | None = None) -> dict[str, list[str]]:
    """The series each live plot of a generator job shows (the same for every config)."""
    return {
        LOSS_PLOT: [series(train.LOSS, split=split, term="total") for split in ("train", "val")],
        PROPOSAL_PLOT: [series(train.PROPOSAL_RESS)],
    }


WORKFLOW = Workflow(
    name="generator",
    title="Flow event generator",
    description="Conditional normalizing flows as fast emulators and unbiased importance samplers of the "
    "exclusive CCQE (1p1h) cross section on carbon, scored against accept-reject.",
    config_cls=GeneratorConfig,
    run=run_generator,
    actions={"sample": sample_events},
    cli_options={"sample": {"--scheduler": "scheduler"}},
    live_plots=LivePlots(group=metric_group, expected=expected_series, plots=LIVE_PLOTS),
    results=(GeneratorResult, SampleResult),
)
