"""Generator benchmark: accept-reject, VEGAS and numl's flow (sampler and emulator) on one cross section.

The target is the exclusive 1p1h cross section of the carbon 1p3/2 shell (dipole axial form factor)
averaged over a flat 0.2-1.0 GeV flux, in the four variables (cos theta_mu, omega, cos theta_N, phi_N):

1. accept-reject with a uniform proposal and per-energy-bin bounds: acceptance and unweighted events/s;
2. VEGAS (the ``vegas`` package) over the 5-D unit cube (E_nu and the four variables), warmed up as its
   documentation recommends (a first ``integ(f, nitn, neval)`` call whose result is discarded), then
   ``random_batch`` points with weights wgt * f: RESS, robust unweighting efficiency, events/s;
3. numl's flow (a 6-layer, 64-unit coupling flow with the nucleon direction taken about q, trained for
   about ten minutes on 12 rounds of a million fresh weighted events, one epoch each) as importance
   sampler, energies drawn from the event rate flux x sigma tabulated from the flow
   (:func:`numl_core.generator.sampling.event_rate`; ``ress_flux_energies`` draws them from the flux):
   RESS, capped-weight bias, unweighting efficiency, unweighted events/s including the cross-section
   evaluations, unweighted events per cross-section evaluation, the cost per cross-section evaluation
   above which the flow outpaces VEGAS (``xsec_seconds_break_even_vs_vegas``), and where in the
   variables the weight variance sits;
4. MNLL and RMS of bin pulls of 4-D histograms against a high-statistics weighted reference, for
   flow-emulated, flow-unweighted and accept-reject events of the same size, next to the expected
   value of a perfect sampler;
   the same per shell and flux (1p3/2 with the T2K flux, a flow trained on the 1s1/2 shell, and one on
   both shells, whose cross section costs twice as much, against VEGAS again), and a
   model-parameter scan: one flow conditioned on (E_nu, M_A) sampled at new M_A without retraining,
   each point scored against accept-reject there;
5. seconds per million flow samples (sample + log-density) for presets S/M/L, untrained flows of the
   trained flows' size, on this CPU (and CUDA when present), next to the reference's figures.

Run it with ``python -m benchmarks.run_all [--quick] generator``.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import vegas

from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.generator import sampling as smp
from numl_core.generator import vegas_baseline as vb
from numl_core.generator.config import GeneratorConfig
from numl_core.generator.model import PRESETS, DomainMap, FlowSpec, GeneratorFlow, save_flow
from numl_core.generator.train import train_flow
from numl_core.generator.workflow import ReferenceHistogram, shard_timing
from numl_core.jobs import Progress

log = logging.getLogger(__name__)

REFERENCE_SECONDS_PER_MILLION = {
    "cpu": {"S": 141.8, "M": 235.6, "L": 669.3},
    "gpu": {"S": 12.5, "M": 23.6, "L": 70.7},
}
"""Per-million-sample times of the reference study's small/medium/large flows."""
ENU = (0.2, 1.0)
FLOW_ROUNDS, FLOW_EVENTS, FLOW_EPOCHS = 12, 1_000_000, 1
SCAN_RANGE = (0.9, 1.2)
"""Trained axial-mass range [GeV] of the parameter-conditioned flow; the scan samples inside it."""
SCAN_POINTS = (0.95, 1.03, 1.15)
CAP_QUANTILE = 0.9999
"""Weight cap of the capped figures, the same for every sampler (``numl generator sample``'s default)."""


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        flow = dict(preset="custom", transforms=4, hidden=32, rounds=2, events_per_round=20_000, epochs=2)
        return dict(
            flow=flow,
            scan_flow=flow,
            n_eval=20_000,
            n_reference=50_000,
            n_accept_reject=200,
            vegas_neval=20_000,
            vegas_nitn=5,
            vegas_grid=vb.GRID[:2],
            n_timing=5_000,
            shards=dict(n_events=20_000, shard_events=5_000),
        )
    # a small coupling flow trained on more events beats preset S trained briefly, and samples ~4x faster;
    # one epoch over a million fresh events per round beats five over 100k (conditional RESS 0.989 vs 0.978)
    flow = dict(
        preset="custom",
        transforms=6,
        hidden=64,
        rounds=FLOW_ROUNDS,
        events_per_round=FLOW_EVENTS,
        epochs=FLOW_EPOCHS,
        batch_size=512,
    )
    return dict(
        flow=flow,
        scan_flow=flow | dict(rounds=4),
        n_eval=100_000,
        n_reference=400_000,
        n_accept_reject=10_000,
        vegas_neval=100_000,
        vegas_nitn=10,
        vegas_grid=vb.GRID,
        n_timing=20_000,
        shards=dict(n_events=1_000_000, shard_events=250_000),
    )


def _lab_integrand(model: ex.ExclusiveModel) -> Callable[[np.ndarray], np.ndarray]:
    """The flux-averaged density on the lab-frame unit cube (E_nu flat, cos theta_mu, omega from 0,
    cos theta_N, phi_N): the secondary VEGAS row, which the flow's change of variables does not help."""
    lo, hi = ENU

    @vegas.lbatchintegrand
    def integrand(u: np.ndarray) -> np.ndarray:
        u = torch.as_tensor(u, dtype=torch.float64)
        enu = lo + (hi - lo) * u[:, 0]
        top = ex.omega_max(enu, model)
        x = torch.stack([2 * u[:, 1] - 1, u[:, 2] * top, 2 * u[:, 3] - 1, math.pi * (2 * u[:, 4] - 1)], 1)
        # flat flux normalised to 1, Jacobian (hi - lo) * 2 * omega_max * 2 * 2 pi
        return (ex.differential_cross_section(x, enu, model) * 8 * math.pi * top).numpy()

    return integrand


def vegas_fair(
    model: ex.ExclusiveModel,
    flux: ex.Flux,
    energies: ex.Flux,
    domain: DomainMap,
    sizes: dict[str, Any],
    seed: int,
    device: str = "cpu",
) -> dict[str, Any]:
    """VEGAS on the flow's own coordinates, tuned over ``sizes["vegas_grid"]``
    (:func:`~numl_core.generator.vegas_baseline.tuned_vegas`)."""
    integrand = vb.box_integrand(model, flux, energies, domain, device)
    tuned = vb.tuned_vegas(
        integrand, sizes["vegas_neval"], sizes["vegas_nitn"], seed, sizes["vegas_grid"], CAP_QUANTILE
    )
    return tuned | {"device": device}


def _vegas_sampler(model: ex.ExclusiveModel, n_eval: int, nitn: int, seed: int) -> dict[str, float]:
    """The lab-frame VEGAS (vegas's default settings): adapted, then one iteration of weighted points."""
    integrand = _lab_integrand(model)
    integ, result, seconds_adapt = vb.adapt(integrand, n_eval, nitn, vb.DEFAULT_SETTINGS, seed)
    w, seconds = vb.draw(integ, integrand)
    figures = vb.weighted_figures(w, seconds, CAP_QUANTILE, seed)
    return figures | {
        "integral_adapted": float(result.mean),
        "integral_adapted_error": float(result.sdev),
        "seconds_adapt": seconds_adapt,
        "seconds_sampling": seconds,
    }


def break_even_xsec_seconds(
    seconds_a: float, efficiency_a: float, seconds_b: float, efficiency_b: float
) -> float:
    """Cost of one cross-section evaluation [s] above which sampler a makes unweighted events faster than b.

    Each sampler spends ``seconds_*`` per point besides the cross section and keeps a fraction
    ``efficiency_*`` of its points after unweighting, so an unweighted event costs (s + t) / eff for a
    cross section costing t. Returns 0 if a is ahead at any cost, inf if it never is.

    >>> round(break_even_xsec_seconds(20e-6, 0.25, 1e-6, 0.05) * 1e6, 2)
    3.75
    """
    if efficiency_a <= efficiency_b:
        return 0.0 if seconds_a / efficiency_a <= seconds_b / efficiency_b else math.inf
    t = (seconds_a / efficiency_a - seconds_b / efficiency_b) / (1 / efficiency_b - 1 / efficiency_a)
    return max(0.0, t)


def _seconds_per_million(n: int, device: str) -> dict[str, float]:
    """Sampling time (sample + log q) of untrained S/M/L flows, scaled to 1e6 events."""
    out = {}
    for size in PRESETS:
        flow = GeneratorFlow(FlowSpec.preset(size, {"enu": ENU})).to(device)
        enu = torch.full((n,), 0.6, device=device)
        flow.sample_and_log_prob(enu[:100])  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        flow.sample_and_log_prob(enu)
        if device == "cuda":
            torch.cuda.synchronize()
        out[size] = (time.perf_counter() - t0) * 1e6 / n
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Run every part; returns the report (see the module docstring for the keys)."""
    sizes = _sizes(quick)
    seed = 0
    threads = torch.get_num_threads()
    # the benchmark machine's cores are shared: one thread is several times faster than two for the
    # flow's many small operations
    torch.set_num_threads(1)
    try:
        return _run(sizes, seed)
    finally:
        torch.set_num_threads(threads)


def _train(
    sizes: dict[str, Any], model_name: str, seed: int, device: str = "cpu", **extra: Any
) -> tuple[Any, list, float]:
    config = GeneratorConfig(
        shells=model_name,
        enu_low=ENU[0],
        enu_high=ENU[1],
        learning_rate=1e-3,
        temper=0.3,
        seed=seed,
        device=device,
        **({"batch_size": 256} | sizes | extra),
    )
    t0 = time.perf_counter()
    flow, rounds = train_flow(config, Progress(), ex.carbon_model(model_name, axial=config.axial))
    return flow, rounds, time.perf_counter() - t0


def _scores(
    flow: GeneratorFlow,
    model: ex.ExclusiveModel,
    flux: ex.Flux,
    sizes: dict[str, Any],
    seed: int,
    params: dict[str, float] | None = None,
) -> dict[str, float]:
    """Sampler figures and 4-D histogram quality (flow emulator, unweighted flow, accept-reject of the same
    size) against a weighted high-statistics reference, for one model, flux and parameter point."""
    t0 = time.perf_counter()
    energies = smp.event_rate(flow, flux, model, params, seed=seed + 13)
    seconds_event_rate = time.perf_counter() - t0
    sample = smp.sample_flow(flow, sizes["n_eval"], flux, seed + 11, params, target=model, energies=energies)
    report = smp.sampler_report(sample, CAP_QUANTILE, seed)
    flux_energies = smp.sample_flow(flow, sizes["n_eval"], flux, seed + 12, params, target=model)
    ref = smp.sample_flow(
        flow, sizes["n_reference"], flux, seed + 7919, params, target=model, energies=energies
    )
    y_ref = smp.box_coordinates(ref.x.numpy(), ref.enu.numpy(), model.m_lep)
    reference = ReferenceHistogram.of(y_ref, ref.weights, 4)
    bound = ex.density_bound(model, flux, seed=seed, params=params)
    ar = ex.accept_reject(model, sizes["n_accept_reject"], flux, bound, seed=seed + 1, params=params)
    n_same = len(ar.enu)
    y_flow = smp.box_coordinates(sample.x.numpy(), sample.enu.numpy(), model.m_lep)
    capped = smp.cap_weights(sample.weights, CAP_QUANTILE)
    keep, resid = smp.unweight(capped.weights, smp.unweighting_efficiency(capped.weights).w_max, seed)
    y_ar = smp.box_coordinates(ar.x.numpy(), ar.enu.numpy(), model.m_lep)
    q_emu = reference.quality(y_flow[:n_same])
    # unweighted flow events keep their over-weights (w / w_max > 1, rare): the sample is then exact
    q_unw = reference.quality(y_flow[keep][:n_same], resid[:n_same])
    q_ar = reference.quality(y_ar)
    q_emu_all = reference.quality(y_flow)
    return {
        "report": report,
        "sample": sample,
        "accept_reject": ar,
        "energies": energies,
        "ress": report.ress,
        "ress_capped": report.ress_capped,
        "cap_bias": report.cap_bias,
        "unweighting_efficiency": report.unweighting_efficiency,
        "ress_flux_energies": smp.relative_ess(flux_energies.weights),
        "seconds_event_rate_table": seconds_event_rate,
        "integral": report.integral,
        "integral_rel_error": report.integral_rel_error,
        "accept_reject_acceptance": ar.acceptance,
        "mnll_flow": q_emu.mnll,
        "mnll_flow_unweighted": q_unw.mnll,
        "mnll_accept_reject": q_ar.mnll,
        "mnll_optimum": reference.mnll_optimum(),
        "mnll_events": n_same,
        "mnll_flow_unweighted_error": q_unw.mnll_error,
        "mnll_accept_reject_error": q_ar.mnll_error,
        # how many standard errors the unweighted flow events sit above accept-reject's
        "mnll_flow_unweighted_minus_accept_reject_sigma": (q_unw.mnll - q_ar.mnll)
        / math.hypot(q_unw.mnll_error, q_ar.mnll_error),
        "rms_pull_flow": q_emu.rms_pull,
        "rms_pull_flow_unweighted": q_unw.rms_pull,
        "rms_pull_accept_reject": q_ar.rms_pull,
        "rms_pull_flow_all_events": q_emu_all.rms_pull,
    }


def _public(scores: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v) for k, v in scores.items() if k not in ("report", "sample", "accept_reject", "energies")
    }


def _rounds_table(rounds: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in r.items()} for r in rounds]


def _versus_vegas(report: smp.SamplerReport, vg: dict[str, float]) -> dict[str, float]:
    """The flow sampler against VEGAS on one cross section: efficiencies, rates, costs, integrals."""
    flow_s, xsec_s = report.seconds_sampling / report.n, report.seconds_target / report.n
    vegas_s = vg["seconds_sampling"] / vg["n_points"]
    return {
        "unweighting_efficiency_flow": report.unweighting_efficiency,
        "unweighting_efficiency_vegas": vg["unweighting_efficiency"],
        "ress_vegas": vg["ress"],
        "n_points_vegas": vg["n_points"],
        "unweighted_per_s_flow": report.unweighted_per_s,
        "unweighted_per_s_vegas": vg["unweighted_per_s"],
        "unweighted_rate_ratio_vs_vegas": report.unweighted_per_s / vg["unweighted_per_s"],
        # unweighted events per cross-section evaluation: what counts when f is expensive
        "unweighted_per_xsec_eval_flow": report.unweighting_efficiency,
        "unweighted_per_xsec_eval_vegas": vg["unweighting_efficiency"],
        "seconds_flow_sampling_per_event": flow_s,
        "seconds_xsec_per_event": xsec_s,
        "seconds_vegas_per_point": vegas_s,
        # the flow's sampling and VEGAS's map cost per point without the cross section: above this cost
        # per cross-section evaluation the flow makes unweighted events faster than VEGAS
        "xsec_seconds_break_even_vs_vegas": break_even_xsec_seconds(
            flow_s, report.unweighting_efficiency, max(0.0, vegas_s - xsec_s), vg["unweighting_efficiency"]
        ),
        "integral_flow": report.integral,
        "integral_flow_rel_error": report.integral_rel_error,
        "integral_vegas": vg["integral_adapted"],
        "integral_vegas_rel_error": vg["integral_adapted_error"] / vg["integral_adapted"],
    }


def fair_race(
    flow: GeneratorFlow,
    scores: dict[str, Any],
    model: ex.ExclusiveModel,
    flux: ex.Flux,
    sizes: dict[str, Any],
    seed: int,
    device: str = "cpu",
) -> dict[str, Any]:
    """The flow's weighted sample (``scores`` from :func:`_scores`) against the tuned VEGAS on the same
    coordinates and energy proposal: both sides' figures
    (:func:`~numl_core.generator.vegas_baseline.weighted_figures`), the ratios of unweighted rates (capped
    at the same quantile, and uncapped) and the break-even cost of one cross-section evaluation [s] above
    which the flow is ahead."""
    sample = scores["sample"]
    n = len(sample.enu)
    seconds = sample.seconds_sampling + sample.seconds_target
    flow_fig = vb.weighted_figures(sample.weights, seconds, CAP_QUANTILE, seed)
    flow_s, xsec_s = sample.seconds_sampling / n, sample.seconds_target / n
    vg = vegas_fair(model, flux, scores["energies"], flow.domain_map, sizes, seed, device)
    return {
        "flow": flow_fig | {"seconds_flow_per_point": flow_s, "seconds_xsec_per_point": xsec_s},
        "vegas": vg,
        "unweighted_rate_ratio": flow_fig["unweighted_per_s"] / vg["unweighted_per_s"],
        "unweighted_rate_ratio_uncapped": flow_fig["unweighted_per_s_uncapped"]
        / vg["unweighted_per_s_uncapped"],
        "xsec_seconds_break_even": break_even_xsec_seconds(
            flow_s,
            flow_fig["unweighting_efficiency"],
            max(0.0, vg["seconds_per_point"] - xsec_s),
            vg["unweighting_efficiency"],
        ),
    }


def race_keys(races: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The report's keys of the fair races, one entry per model (``one_shell``, ``two_shells``)."""
    one = races["one_shell"]
    return {
        "vegas_same_coordinates": {k: r["vegas"] for k, r in races.items()},
        "flow_same_coordinates": {k: r["flow"] for k, r in races.items()},
        "unweighted_rate_ratio_vs_vegas_same_coordinates": {
            k: r["unweighted_rate_ratio"] for k, r in races.items()
        },
        "unweighted_rate_ratio_vs_vegas_same_coordinates_uncapped": {
            k: r["unweighted_rate_ratio_uncapped"] for k, r in races.items()
        },
        "xsec_seconds_break_even_vs_fair_vegas": {k: r["xsec_seconds_break_even"] for k, r in races.items()},
        "unweighting_efficiency_flow_uncapped": one["flow"]["unweighting_efficiency_uncapped"],
        "cap_bias_vegas": one["vegas"]["cap_bias"],
    }


def mnll_keys(scores: dict[str, Any]) -> dict[str, float]:
    """The unweighted-sample quality at the benchmark's size (10^4 events): MNLL of unweighted flow events,
    accept-reject and a perfect sampler, with standard errors and the flow's distance in sigma."""
    names = ("flow_unweighted", "accept_reject", "optimum", "flow_unweighted_error", "accept_reject_error")
    return {f"mnll_{k}_10k": float(scores[f"mnll_{k}"]) for k in names} | {
        "mnll_flow_unweighted_minus_accept_reject_sigma_10k": float(
            scores["mnll_flow_unweighted_minus_accept_reject_sigma"]
        ),
        "mnll_events_10k": int(scores["mnll_events"]),
    }


def _race_summary(race: dict[str, Any]) -> dict[str, float]:
    return {
        "seconds_xsec_per_point": race["flow"]["seconds_xsec_per_point"],
        "ress_flow": race["flow"]["ress"],
        "ress_vegas": race["vegas"]["ress"],
        "unweighting_efficiency_flow": race["flow"]["unweighting_efficiency"],
        "unweighting_efficiency_vegas": race["vegas"]["unweighting_efficiency"],
        "unweighted_rate_ratio_vs_vegas_same_coordinates": race["unweighted_rate_ratio"],
        "xsec_seconds_break_even_vs_fair_vegas": race["xsec_seconds_break_even"],
    }


def quadrature_race(
    flow: GeneratorFlow,
    scores: dict[str, Any],
    model: ex.ExclusiveModel,
    flux: ex.Flux,
    sizes: dict[str, Any],
    seed: int,
    smooth_race: dict[str, Any],
) -> dict[str, Any]:
    """How the removal-energy treatment changes the race: ``smooth_race`` (:func:`fair_race` on the
    smooth quadrature, the default, which the flows are trained on) next to the race on the Gauss-Hermite
    quadrature (whose steps in omega the flow cannot follow): the same flow draws weighted by that model,
    VEGAS tuned on it, and each evaluation's cost."""
    hermite = replace(model, removal_quadrature="hermite")
    sample = scores["sample"]
    t0 = time.perf_counter()
    f = ex.differential_cross_section(sample.x.double(), sample.enu.double(), hermite).float()
    sample = replace(sample, f=f, seconds_target=time.perf_counter() - t0)
    race = fair_race(flow, scores | {"sample": sample}, hermite, flux, sizes, seed)
    return {"smooth": _race_summary(smooth_race), "hermite": _race_summary(race)}


def shard_case(flow: GeneratorFlow, seed: int, n_events: int, shard_events: int) -> dict[str, float]:
    """``numl generator sample``'s draw of ``n_events`` unweighted events from ``flow`` (the 1p3/2 shell,
    flat flux) in shards of ``shard_events``, on a two-worker LocalCluster and in this process
    (:func:`~numl_core.generator.workflow.shard_timing`)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = GeneratorConfig(
            shells="1p3/2",
            enu_low=ENU[0],
            enu_high=ENU[1],
            seed=seed,
            flow_file=str(Path(tmp) / "flow.pt"),
            n_generate=n_events,
            shard_events=shard_events,
        )
        save_flow(flow, config.flow_file, {"config": config.to_dict()})
        return shard_timing(config, n_workers=2) | {"shard_events": shard_events}


def _run(sizes: dict[str, Any], seed: int) -> dict[str, Any]:
    model = ex.carbon_model("1p3/2")
    flux = ex.Flux.flat(*ENU)

    # 1. accept-reject (timed on its own: the bound search is a one-off cost)
    t0 = time.perf_counter()
    bound = ex.density_bound(model, flux, seed=seed)
    seconds_bound = time.perf_counter() - t0
    ar = ex.accept_reject(model, sizes["n_accept_reject"], flux, bound, seed=seed + 1)

    # 2. VEGAS in the lab frame (the secondary row; the fair race is below)
    vg = _vegas_sampler(model, sizes["vegas_neval"], sizes["vegas_nitn"], seed)

    # 3. flow as importance sampler and emulator; 4. histogram quality
    flow, rounds, seconds_train = _train(sizes["flow"], "1p3/2", seed)
    main = _scores(flow, model, flux, sizes, seed)
    report, sample = main["report"], main["sample"]
    diagnosis = smp.weight_concentration(sample.weights, sample.x.numpy(), sample.enu.numpy(), model.m_lep)
    shells, two_shells = _shells(flow, main, sizes, seed)
    races = {
        "one_shell": fair_race(flow, main, model, flux, sizes, seed),
        "two_shells": fair_race(*two_shells, flux, sizes, seed),
    }

    # 5. timings
    timing = {"cpu": _seconds_per_million(sizes["n_timing"], "cpu")}
    if torch.cuda.is_available():
        timing["cuda"] = _seconds_per_million(sizes["n_timing"] * 10, "cuda")

    ar_rate = ar.events_per_s
    return {
        "ress": report.ress,
        "ress_capped": report.ress_capped,
        "cap_bias": report.cap_bias,
        "ress_flux_energies": main["ress_flux_energies"],
        "seconds_event_rate_table": main["seconds_event_rate_table"],
        **race_keys(races),
        "vegas_lab_frame": {k: v for k, v in vg.items()},
        **_versus_vegas(report, vg),
        "overweight_fraction_flow": report.overweight_fraction,
        "accept_reject_acceptance": ar.acceptance,
        "unweighted_per_s_accept_reject": ar_rate,
        "unweighted_rate_ratio_vs_accept_reject": report.unweighted_per_s / ar_rate,
        "unweighted_per_xsec_eval_accept_reject": ar.acceptance,
        **{k: main[k] for k in main if k.startswith(("mnll_", "rms_pull_"))},
        **mnll_keys(main),
        "shards": shard_case(flow, seed, **sizes["shards"]),
        "removal_quadrature": quadrature_race(flow, main, model, flux, sizes, seed, races["one_shell"]),
        "per_shell_and_flux": shells,
        "parameter_scan": _scan(sizes, seed, model, flux),
        "weight_diagnosis": diagnosis.to_dict("records"),
        "seconds_per_million_cpu": timing["cpu"],
        "seconds_per_million_gpu": timing.get("cuda", {}),
        "seconds_per_million_benchmark_flow_cpu": 1e6 * report.seconds_sampling / report.n,
        "reference_seconds_per_million": REFERENCE_SECONDS_PER_MILLION,
        "flow_training_seconds": seconds_train,
        "flow_training_rounds": _rounds_table(rounds),
        "flow_config": sizes["flow"] | {"nucleon_frame": flow.spec.nucleon_frame},
        "accept_reject_bound_seconds": seconds_bound,
        "vegas_version": vegas.__version__,
        "n_eval": sizes["n_eval"],
        "n_reference": sizes["n_reference"],
        "cap_quantile": CAP_QUANTILE,
        "torch_threads": 1,
    }


def _shells(
    flow: GeneratorFlow, main: dict[str, Any], sizes: dict[str, Any], seed: int
) -> tuple[dict[str, dict[str, float]], tuple]:
    """Per shell and flux: the main flow on the T2K flux, a flow trained on the 1s1/2 shell and one on the
    full two-shell model (a cross section twice as costly, against the lab-frame VEGAS again). Returns
    the table and (flow, scores, model) of the two-shell case for the fair race."""
    model, flux = ex.carbon_model("1p3/2"), ex.Flux.flat(*ENU)
    shells = {
        "1p3/2 flat": _public(main),
        "1p3/2 T2K": _public(_scores(flow, model, ex.Flux.t2k(*ENU), sizes, seed)),
    }
    flow_s, _, seconds_s = _train(sizes["flow"], "1s1/2", seed)
    shells["1s1/2 flat"] = _public(_scores(flow_s, ex.carbon_model("1s1/2"), flux, sizes, seed))
    shells["1s1/2 flat"]["flow_training_seconds"] = seconds_s
    full = ex.carbon_model("shell_model")
    flow_f, _, seconds_f = _train(sizes["flow"], "shell_model", seed)
    scores_f = _scores(flow_f, full, flux, sizes, seed)
    vg_f = _vegas_sampler(full, sizes["vegas_neval"], sizes["vegas_nitn"], seed)
    shells["shell_model flat"] = (
        _public(scores_f) | _versus_vegas(scores_f["report"], vg_f) | {"flow_training_seconds": seconds_f}
    )
    return shells, (flow_f, scores_f, full)


def _scan(sizes: dict[str, Any], seed: int, model: ex.ExclusiveModel, flux: ex.Flux) -> dict[str, Any]:
    """Model-parameter scan: one flow conditioned on (E_nu, M_A), sampled at new M_A without retraining,
    each point scored against accept-reject there."""
    flow_p, _, seconds_p = _train(
        sizes["scan_flow"],
        "1p3/2",
        seed,
        parameter="axial_mass",
        parameter_low=SCAN_RANGE[0],
        parameter_high=SCAN_RANGE[1],
    )
    points = [
        {"axial_mass": m_a} | _public(_scores(flow_p, model, flux, sizes, seed + 100, {"axial_mass": m_a}))
        for m_a in SCAN_POINTS
    ]
    return {
        "parameter": "axial_mass",
        "trained_range": list(SCAN_RANGE),
        "flow_training_seconds": seconds_p,
        "points": points,
    }
