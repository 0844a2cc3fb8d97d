"""VEGAS as the flow's baseline, on the flow's own coordinates.

The flow samples a box: E_nu from the event-rate table (:func:`~numl_core.generator.sampling.event_rate`),
omega from the removal threshold, the nucleon direction about q (:class:`~numl_core.generator.model.
DomainMap`). :func:`box_integrand` hands VEGAS (the ``vegas`` package, G. P. Lepage) the same box as the
unit 5-cube, so the two samplers differ only in how they adapt: VEGAS's separable grid (with optional
stratification) against the flow's learnt density. :func:`tuned_vegas` adapts every setting of a grid
with one budget, picks the best unweighted rate on a pilot draw and scores a fresh draw, so that no scored
point chose the settings. :func:`weighted_figures` gives both samplers' figures in one way.

>>> figures = weighted_figures(np.ones(1000), seconds=0.5)
>>> figures["ress"], figures["unweighting_efficiency"], figures["unweighted_per_s"]
(1.0, 1.0, 2000.0)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gvar
import numpy as np
import torch
import vegas

from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.generator import sampling as smp
from numl_core.generator.model import DomainMap

log = logging.getLogger(__name__)

Integrand = Callable[[np.ndarray], np.ndarray]

DEFAULT_SETTINGS: dict[str, float] = {"alpha": 0.5, "beta": 0.75, "maxinc_axis": 1000}
"""vegas's own defaults: grid damping ``alpha``, stratification ``beta`` (0: pure importance sampling)
and the most grid increments per axis ``maxinc_axis``."""
GRID = tuple(
    {"alpha": alpha, "beta": beta, "maxinc_axis": ninc}
    for alpha in (0.5, 1.0, 1.5)
    for beta in (0.0, 0.75)
    for ninc in (200, 1000)
)
"""The settings :func:`tuned_vegas` tries by default (12, the defaults among them)."""


def box_integrand(
    model: ex.ExclusiveModel,
    flux: ex.Flux,
    energies: ex.Flux,
    domain: DomainMap,
    device: str = "cpu",
    params: Mapping[str, float] | None = None,
) -> Integrand:
    """The flux-averaged density on the flow's coordinates, as a batch integrand over the unit 5-cube:
    u_0 -> E_nu [GeV] by the quantile of ``energies`` (the flow's energy proposal), (u_1 .. u_4) -> the
    box y = 2u - 1 -> x by ``domain``; the value f(x) |dx/dy| 2^4 flux(E) / energies(E) [cm^2]
    integrates to the flux-averaged cross section at the model ``params``. The cross section is evaluated
    on ``device``."""

    @vegas.lbatchintegrand
    def integrand(u: np.ndarray) -> np.ndarray:
        enu_np = energies.quantile(u[:, 0])
        enu = torch.as_tensor(enu_np, dtype=torch.float64, device=device)
        y = torch.as_tensor(2 * u[:, 1:] - 1, dtype=torch.float64, device=device)
        f = ex.differential_cross_section(domain.from_box(y, enu), enu, model, params)
        jacobian = 16 * torch.exp(-domain.log_jacobian(y, enu))
        return (f * jacobian).cpu().numpy() * flux.pdf(enu_np) / energies.pdf(enu_np)

    return integrand


def adapt(
    integrand: Integrand, n_eval: int, nitn: int, settings: Mapping[str, float], seed: int
) -> tuple[vegas.Integrator, Any, float]:
    """Adapt a VEGAS map on the unit 5-cube as its documentation recommends (a first
    ``integ(f, nitn, neval)`` call whose result is discarded, then a second); returns the integrator, the
    second call's result (a gvar) and the seconds both took."""
    gvar.ranseed(seed)  # vegas draws its random numbers through gvar
    integ = vegas.Integrator([[0.0, 1.0]] * 5, **settings)
    t0 = time.perf_counter()
    integ(integrand, nitn=nitn, neval=n_eval)
    result = integ(integrand, nitn=nitn, neval=n_eval)
    return integ, result, time.perf_counter() - t0


def draw(integ: vegas.Integrator, integrand: Integrand) -> tuple[np.ndarray, float]:
    """One iteration of points from an adapted map: per-point importance weights N wgt f (their mean is
    the integral) and the seconds it took, the integrand's evaluations included."""
    t0 = time.perf_counter()
    w = np.concatenate([wgt * integrand(u) for u, wgt in integ.random_batch()])
    return w * len(w), time.perf_counter() - t0


def weighted_figures(
    w: np.ndarray, seconds: float, cap_quantile: float = 0.9999, seed: int = 0
) -> dict[str, float]:
    """Unweighting figures of importance weights ``w`` (N,) drawn in ``seconds``: the efficiency with
    w_max from the replica method on the raw weights (``*_uncapped``) and after capping at
    ``cap_quantile`` (the cap's bias on the integral, ``cap_bias``), the RESS, and unweighted events per
    second, capped and uncapped."""
    capped = smp.cap_weights(w, cap_quantile)
    unw = smp.unweighting_efficiency(capped.weights, seed=seed)
    raw = smp.unweighting_efficiency(w, seed=seed)
    return {
        "n_points": len(w),
        "ress": smp.relative_ess(w),
        "unweighting_efficiency": unw.efficiency,
        "unweighting_efficiency_uncapped": raw.efficiency,
        "overweight_fraction_uncapped": raw.overweight_fraction,
        "overweight_bias_uncapped": raw.overweight_bias,
        "cap_bias": capped.bias,
        "unweighted_per_s": len(w) * unw.efficiency / seconds,
        "unweighted_per_s_uncapped": len(w) * raw.efficiency / seconds,
        "seconds_per_point": seconds / len(w),
        "integral": float(w.mean()),
        "integral_rel_error": smp.relative_integral_error(w),
    }


def tuned_vegas(
    integrand: Integrand,
    n_eval: int,
    nitn: int,
    seed: int,
    grid: Sequence[Mapping[str, float]] = GRID,
    cap_quantile: float = 0.9999,
) -> dict[str, Any]:
    """Adapt VEGAS with every setting of ``grid`` (``nitn`` iterations of ``n_eval`` points, twice),
    score each on a pilot draw by its unweighted rate, and return the best map's figures on a fresh draw
    (:func:`weighted_figures`) with its ``settings``, the pilots' rates, the adaptation time and the
    adapted integral."""
    trials = []
    for settings in grid:
        integ, result, seconds_adapt = adapt(integrand, n_eval, nitn, settings, seed)
        pilot = weighted_figures(*draw(integ, integrand), cap_quantile, seed)
        trials.append((pilot["unweighted_per_s"], dict(settings), integ, result, seconds_adapt))
        log.info("vegas %s: pilot %.0f unweighted/s", settings, pilot["unweighted_per_s"])
    _, settings, integ, result, seconds_adapt = max(trials, key=lambda t: t[0])
    w, seconds = draw(integ, integrand)
    return weighted_figures(w, seconds, cap_quantile, seed + 1) | {
        "settings": settings | {"nitn": nitn, "neval": n_eval},
        "settings_tried": len(trials),
        "pilot_unweighted_per_s": {str(t[1]): t[0] for t in trials},
        "seconds_adapt": seconds_adapt,
        "integral_adapted": float(result.mean),
        "integral_adapted_rel_error": float(result.sdev / result.mean),
    }
