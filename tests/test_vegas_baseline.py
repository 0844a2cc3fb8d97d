"""VEGAS on the flow's coordinates: the integrand's Jacobians, the shared figures and the tuning."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import generator as bench
from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.generator import vegas_baseline as vb
from numl_core.generator.model import DomainMap

MODEL, FLUX = ex.carbon_model("1p3/2"), ex.Flux.flat(*bench.ENU)
ENERGIES = ex.Flux(FLUX.edges, np.linspace(1.0, 3.0, len(FLUX.density)))  # any energy proposal will do


def _box() -> vb.Integrand:
    return vb.box_integrand(MODEL, FLUX, ENERGIES, DomainMap(ex.omega_threshold(MODEL)))


def test_box_integrand_integrates_to_the_lab_frame_cross_section():
    # plain Monte Carlo over the unit cube of each parameterisation estimates the same flux-averaged
    # cross section: the flow's box (its energy proposal, q-frame nucleon, omega from threshold) only
    # changes variables, so its Jacobians must give the lab-frame value within the two errors
    rng = np.random.default_rng(0)
    estimates = []
    for integrand in (bench._lab_integrand(MODEL), _box()):
        f = np.concatenate([integrand(rng.random((100_000, 5))) for _ in range(4)])
        estimates.append((f.mean(), f.std() / np.sqrt(len(f))))
    (lab, lab_err), (box, box_err) = estimates
    assert abs(lab - box) < 4 * np.hypot(lab_err, box_err)
    assert box_err < lab_err  # the flow's coordinates already help a uniform sampler


def test_weighted_figures_of_constant_and_of_heavy_tailed_weights():
    figures = vb.weighted_figures(np.full(10_000, 2.0), seconds=0.5)
    assert figures["ress"] == pytest.approx(1.0)
    assert figures["unweighting_efficiency"] == figures["unweighting_efficiency_uncapped"] == 1.0
    assert figures["cap_bias"] == 0.0
    assert figures["unweighted_per_s"] == pytest.approx(20_000)
    heavy = vb.weighted_figures(np.r_[np.ones(9_990), np.full(10, 1e4)], seconds=1.0)
    assert heavy["unweighting_efficiency_uncapped"] < 0.01 and heavy["ress"] < 0.2


def test_tuned_vegas_picks_a_setting_from_its_grid_and_estimates_the_integral():
    integrand = _box()
    grid = [vb.DEFAULT_SETTINGS, {"alpha": 1.0, "beta": 0.0, "maxinc_axis": 200}]
    out = vb.tuned_vegas(integrand, n_eval=5_000, nitn=4, seed=1, grid=grid)
    assert out["settings_tried"] == 2
    assert {k: out["settings"][k] for k in grid[0]} in grid
    best = max(out["pilot_unweighted_per_s"].values())
    assert out["pilot_unweighted_per_s"][str({k: out["settings"][k] for k in grid[0]})] == best
    # the fresh draw's mean weight and the adapted estimate agree within their errors
    err = np.hypot(out["integral_rel_error"], out["integral_adapted_rel_error"]) * out["integral_adapted"]
    assert abs(out["integral"] - out["integral_adapted"]) < 4 * err
    assert 0 < out["ress"] <= 1 and 0 < out["unweighting_efficiency"] <= 1
