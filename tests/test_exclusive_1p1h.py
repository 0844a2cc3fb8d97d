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
    model = ex.carbon_model("1p3/2")
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
    model = ex.carbon_model("1p3/2")
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


def _line(model: ex.ExclusiveModel, point: tuple[float, float, float, float], omega: torch.Tensor):
    """d^4 sigma along omega at fixed (E_nu, cos theta_mu, cos theta_N, phi_N)."""
    enu, cmu, cn, phi = point
    x = torch.stack(
        [torch.full_like(omega, cmu), omega, torch.full_like(omega, cn), torch.full_like(omega, phi)], -1
    )
    return ex.differential_cross_section(x, torch.full_like(omega, enu), model)


@pytest.mark.parametrize("point", [(0.5, 0.99, 0.9, 3.0), (0.3, 0.9, 0.0, 3.0)])
def test_smooth_removal_quadrature_has_no_steps_at_threshold(point):
    # across both shells' thresholds (omega 0-100 MeV) on a 0.2 MeV grid: a cross section that varies on
    # the scale of the narrowest removal-energy width sigma (2 MeV) has second differences below
    # (h / sigma)^2 of its largest value; each Gauss-Hermite node opens with a square-root edge instead
    h, sigma = 2e-4, ex.CARBON_SHELLS["1p3/2"].removal_width
    omega = torch.arange(0.0, 0.1, h, dtype=torch.float64)
    rough = {}
    for quadrature in ex.REMOVAL_QUADRATURES:
        f = _line(ex.carbon_model(removal_quadrature=quadrature), point, omega)
        assert torch.isfinite(f).all() and f.max() > 0
        rough[quadrature] = float(f.diff(n=2).abs().max() / f.max())
    assert rough["smooth"] < (h / sigma) ** 2 < rough["hermite"], rough
    assert rough["hermite"] > 30 * rough["smooth"], rough


def _points(model: ex.ExclusiveModel, n: int, omega_low: float, omega_high: float | None, seed: int):
    """n uniform points at E_nu 0.3-1.5 GeV with omega uniform in [omega_low, omega_high or its maximum]."""
    gen = torch.Generator().manual_seed(seed)
    enu = 0.3 + 1.2 * torch.rand(n, generator=gen, dtype=torch.float64)
    x = ex.uniform_proposal(enu, model, gen)
    top = ex.omega_max(enu, model) if omega_high is None else torch.full_like(enu, omega_high)
    x[:, 1] = omega_low + (top - omega_low) * torch.rand(n, generator=gen, dtype=torch.float64)
    return x, enu


def test_smooth_and_hermite_agree_far_above_threshold():
    # both integrate the same Gaussian f(E) (the smooth one cut at 4 widths, 6e-5 of it): measured 4e-4
    # at most where d^4 sigma is above 1e-3 of its largest value (2 % of the points; the rest is the tail
    # of the momentum densities)
    model = ex.carbon_model()
    top = max(ex.removal_support(s)[1] for s in model.shells)
    x, enu = _points(model, 20_000, top + 0.05, None, seed=5)
    x, enu = x[x[:, 1] < ex.omega_max(enu, model)], enu[x[:, 1] < ex.omega_max(enu, model)]
    smooth = ex.differential_cross_section(x, enu, model)
    hermite = ex.differential_cross_section(x, enu, replace(model, removal_quadrature="hermite"))
    big = smooth > 1e-3 * smooth.max()
    assert int(big.sum()) > 200
    np.testing.assert_allclose(hermite[big].numpy(), smooth[big].numpy(), rtol=1e-3)


@pytest.mark.parametrize("shells", ["1s1/2", "1p3/2", "shell_model"])
def test_smooth_quadrature_is_exactly_zero_below_the_support(shells):
    model = ex.carbon_model(shells)
    low = ex.omega_threshold(model)
    assert low == min(ex.removal_support(s)[0] for s in model.shells)
    x, enu = _points(model, 2000, 0.0, low, seed=6)
    x[0, 1] = low  # the edge itself: an empty interval
    x.requires_grad_(True)
    f = ex.differential_cross_section(x, enu, model)
    assert float(f.detach().abs().max()) == 0.0
    f.sum().backward()
    assert torch.isfinite(x.grad).all()
    # points with no cross section draw their removal energy from the shells' prior
    e = ex.removal_energy_sample(x.detach(), enu, model, seed=2)
    supports = [ex.removal_support(s) for s in model.shells]
    assert all(any(lo <= v <= hi for lo, hi in supports) for v in e.tolist())


def test_default_smooth_nodes_match_a_64_node_rule():
    # DEFAULT_ENERGY_NODES["smooth"] (12) against 64 nodes, on uniform points and on points within the
    # thresholds' range: 7e-4 at worst (1s1/2 near its threshold), summed absolute error 5e-5
    model = ex.carbon_model()
    assert model.n_energy_nodes == ex.DEFAULT_ENERGY_NODES["smooth"] == 12
    fine = replace(model, energy_nodes=64)
    top = max(ex.removal_support(s)[1] for s in model.shells)
    for low, high in [(0.0, None), (ex.omega_threshold(model), top + 0.03)]:
        x, enu = _points(model, 4000, low, high, seed=7)
        f, ref = ex.differential_cross_section(x, enu, model), ex.differential_cross_section(x, enu, fine)
        big = ref > 1e-3 * ref.max()
        assert float(((f - ref).abs() / ref)[big].max()) < 2e-3
        assert float((f - ref).abs().sum() / ref.sum()) < 2e-4


def test_removal_quadrature_is_validated():
    with pytest.raises(ValueError, match=r"removal_quadrature='gauss'.*\('smooth', 'hermite'\)"):
        ex.carbon_model(removal_quadrature="gauss")
    with pytest.raises(ValueError, match="energy_nodes"):
        ex.carbon_model(energy_nodes=0)
    assert ex.carbon_model(removal_quadrature="hermite").n_energy_nodes == 8
