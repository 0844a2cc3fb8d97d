"""Exclusive 1p1h cross section: free-nucleon limit, normalisations, masks, bad input, accept-reject."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.data.generators.exclusive_1p1h_current import (
    Z_COEFFICIENTS,
    axial_form_factor_t,
    squared_amplitude,
)
from numl_core.data.kinematics import MUON_MASS, NUCLEON_MASS
from numl_core.data.llewellyn_smith import GEV2_TO_CM2, axial_form_factor, ls_dsigma_dq2, ls_total_sigma


def _free_model(sigma_p: float) -> ex.ExclusiveModel:
    """One neutron with a narrow Gaussian momentum density and no removal energy: the free limit."""
    b = 1.0 / (sigma_p * math.sqrt(2.0))
    return ex.ExclusiveModel((ex.Shell("free", 1.0, 0.0, 0.0, "1s", oscillator_length=b),))


@pytest.mark.parametrize("enu", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("q2", [0.05, 0.3, 0.8])
def test_squared_amplitude_at_rest_is_llewellyn_smith(enu, q2):
    q2t = torch.tensor(q2, dtype=torch.float64)
    su = 4 * NUCLEON_MASS * enu - q2t - MUON_MASS**2
    amp = squared_amplitude(q2t, su, axial_form_factor_t(q2t, "dipole", {}), MUON_MASS)
    dsig = float(amp) / (64 * math.pi * NUCLEON_MASS**2 * enu**2) * GEV2_TO_CM2
    assert dsig == pytest.approx(float(ls_dsigma_dq2(enu, q2)), rel=1e-10)


@pytest.mark.parametrize("enu", [0.5, 1.0, 2.0])
def test_free_nucleon_limit_reproduces_llewellyn_smith_total(enu):
    # docs/physics.md#llewellyn-smith table: 0.842, 1.094, 1.089 x 1e-38 cm^2. Fermi smearing of width
    # sigma_p changes sigma by O((sigma_p / M)^2 ...): measured 0.3 % at 40 MeV/c and 0.07 % at 20 MeV/c.
    target = float(ls_total_sigma(enu))
    wide = ex.total_cross_section(enu, _free_model(0.04), n_cos=16, n_omega=120)
    narrow = ex.total_cross_section(enu, _free_model(0.02), n_cos=16, n_omega=120)
    assert abs(narrow / target - 1) < 2e-3
    assert abs(narrow / target - 1) < abs(wide / target - 1)


def test_momentum_densities_normalised_to_occupancy():
    p = torch.linspace(0, 1.5, 30001, dtype=torch.float64)
    for shell in ex.CARBON_SHELLS.values():
        n = float(torch.trapezoid(4 * math.pi * p**2 * ex.momentum_density(p, shell), p))
        assert n == pytest.approx(shell.occupancy, rel=2e-3)  # rfg: step at k_F on a 5e-5 GeV grid


def test_carbon_shells_below_free_and_approaching_it():
    # binding and Fermi motion suppress sigma per neutron, less so at higher energy
    model = replace(ex.carbon_model("1p3/2"), energy_nodes=2)
    ratios = [
        ex.total_cross_section(e, model, n_cos=12, n_omega=60) / 4 / float(ls_total_sigma(e))
        for e in (0.4, 1.5)
    ]
    assert 0.6 < ratios[0] < ratios[1] < 1.0


def test_zexp_matches_dipole_roughly_and_fixes_ga():
    q2 = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    z = axial_form_factor_t(q2, "zexp", {})
    assert float(z[0]) == pytest.approx(-1.2723, abs=1e-10)
    # Meyer et al. 2016 fit lies within ~15 % of a 1.03 GeV dipole up to 1 GeV^2
    np.testing.assert_allclose(z.numpy(), axial_form_factor(q2.numpy()), rtol=0.15)
    shifted = axial_form_factor_t(q2, "zexp", {"z_a1": Z_COEFFICIENTS[0] + 0.3})
    assert float(shifted[0]) == pytest.approx(-1.2723, abs=1e-10) and float(shifted[2]) != float(z[2])


def test_masks_give_exact_zeros_and_positive_inside():
    model = ex.carbon_model("1p3/2")
    enu = torch.full((4,), 1.0, dtype=torch.float64)
    x = torch.tensor(
        [
            [0.9, 0.25, 0.8, 3.1],  # physical
            [0.9, 0.95, 0.8, 0.0],  # omega > E - m_mu
            [0.9, 0.01, 0.8, 0.0],  # omega below the removal energy: nucleon below its mass shell
            [1.2, 0.25, 0.8, 0.0],  # |cos| > 1
        ],
        dtype=torch.float64,
    )
    f = ex.differential_cross_section(x, enu, model)
    assert f[0] > 0 and torch.all(f[1:] == 0)


def test_density_is_periodic_in_phi_and_differentiable():
    model = ex.carbon_model("1s1/2")
    x = torch.tensor([[0.8, 0.3, 0.7, -math.pi], [0.8, 0.3, 0.7, math.pi - 1e-9]], dtype=torch.float64)
    f = ex.differential_cross_section(x, torch.full((2,), 1.0, dtype=torch.float64), model)
    assert float(f[0]) == pytest.approx(float(f[1]), rel=1e-6)
    xg = x[:1].clone().requires_grad_(True)
    ex.differential_cross_section(xg, torch.tensor([1.0], dtype=torch.float64), model).sum().backward()
    assert torch.isfinite(xg.grad).all()


@pytest.mark.parametrize("enu", [0.05, float("nan"), -1.0])
def test_unphysical_energy_raises(enu):
    model = ex.carbon_model()
    with pytest.raises(ValueError, match="unphysical"):
        ex.differential_cross_section(torch.zeros(1, 4, dtype=torch.float64), torch.tensor([enu]), model)


def test_bad_model_inputs_raise():
    with pytest.raises(ValueError, match="shells"):
        ex.carbon_model("2d5/2")
    with pytest.raises(ValueError, match="axial"):
        ex.carbon_model(axial="monopole")
    with pytest.raises(ValueError, match="unknown model parameter"):
        ex.differential_cross_section(
            torch.zeros(1, 4), torch.tensor([1.0]), ex.carbon_model(), {"m_a": torch.tensor([1.0])}
        )
    with pytest.raises(ValueError, match="shape"):
        ex.differential_cross_section(torch.zeros(1, 3), torch.tensor([1.0]), ex.carbon_model())


def test_accept_reject_reproduces_the_inclusive_muon_distribution():
    # at fixed E_nu the accepted events' cos theta_mu histogram must follow the integrated cross section;
    # the tolerance is a chi2 test at 4 dof (p ~ 1e-4 threshold 23.5) on Poisson counts
    model = replace(ex.carbon_model("1p3/2"), energy_nodes=2)
    flux = ex.Flux.flat(0.79, 0.81, bins=1)
    bound = ex.density_bound(model, flux, n_probe=20_000, seed=0)
    ar = ex.accept_reject(model, 600, flux, bound, seed=3, batch=200_000)
    assert ar.overflow_fraction == 0.0 and 0 < ar.acceptance < 1
    edges = np.array([-1.0, 0.2, 0.5, 0.7, 0.85, 1.0])
    counts, _ = np.histogram(ar.x[:, 0].numpy(), edges)
    xc, wc = np.polynomial.legendre.leggauss(8)
    xo, wo = np.polynomial.legendre.leggauss(80)
    top = 0.8 - MUON_MASS
    omega = torch.as_tensor(top / 2 * (xo + 1))
    expected = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        c = torch.as_tensor((hi - lo) / 2 * xc + (hi + lo) / 2)
        d2 = ex.inclusive_cross_section(c[:, None], omega[None, :], 0.8, model).numpy()
        expected.append(np.einsum("i,j,ij->", wc * (hi - lo) / 2, wo * top / 2, d2))
    expected = np.array(expected) / np.sum(expected) * counts.sum()
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 23.5, (counts, expected)


@pytest.mark.parametrize("shells", ["1p3/2", "shell_model", "rfg"])
def test_cross_section_vanishes_below_the_removal_threshold(shells):
    # the flows start their omega box at omega_threshold: no event may lie below it
    model = ex.carbon_model(shells)
    low = ex.omega_threshold(model)
    assert 0 <= low <= model.min_removal_energy
    gen = torch.Generator().manual_seed(8)
    enu = torch.full((20_000,), 0.6, dtype=torch.float64)
    x = ex.uniform_proposal(enu, model, gen)
    x[:, 1] = low * torch.rand(20_000, generator=gen, dtype=torch.float64)
    assert float(ex.differential_cross_section(x, enu, model).abs().max()) == 0.0
    x[:, 1] = low + 0.03 * torch.rand(20_000, generator=gen, dtype=torch.float64)
    assert float(ex.differential_cross_section(x, enu, model).max()) > 0.0
