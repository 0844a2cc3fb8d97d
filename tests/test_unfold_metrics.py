"""Covariances, chi2 (full and shape-only), comparison tables, budgets and cross-section conversion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from numl_core.data.binning import BINNINGS
from numl_core.stats import chi2_with_covariance, covariance_from_replicas
from numl_core.unfold.metrics import (
    chi2_table,
    cross_section_covariance,
    cross_section_from_counts,
    normalise_with_covariance,
    shape_only_chi2,
    uncertainty_budget,
)


def test_chi2_by_hand():
    # r = (2, 0); C^-1 = [[2, -1], [-1, 2]] / 3  ->  chi2 = 4 * 2 / 3
    cov = np.array([[2.0, 1.0], [1.0, 2.0]])
    assert chi2_with_covariance(np.array([3.0, 1.0]), np.array([1.0, 1.0]), cov) == pytest.approx(8 / 3)


def test_shape_only_chi2_by_hand():
    # d = (30, 10), C = diag(30, 10): shape (0.75, 0.25); J = (I - shape 1^T) / 40;
    # var(shape_0) = (0.25^2 * 30 + 0.75^2 * 10) / 40^2 = 7.5 / 1600. Model shape (0.5, 0.5).
    chi2, ndof = shape_only_chi2(np.array([30.0, 10.0]), np.array([1.0, 1.0]), np.diag([30.0, 10.0]))
    assert ndof == 1
    assert chi2 == pytest.approx(0.25**2 / (7.5 / 1600))


def test_shape_only_chi2_ignores_model_normalisation():
    rng = np.random.default_rng(0)
    data, model = rng.uniform(50, 150, 8), rng.uniform(50, 150, 8)
    a = rng.normal(size=(8, 8))
    cov = a @ a.T + np.diag(data)
    chi2, ndof = shape_only_chi2(data, model, cov)
    assert ndof == 7 and chi2 > 0
    for scale in [1e-3, 7.0, 1e5]:
        assert shape_only_chi2(data, scale * model, cov)[0] == pytest.approx(chi2, rel=1e-10)
    assert shape_only_chi2(data, 3.0 * data, cov)[0] == pytest.approx(0.0, abs=1e-20)


def test_shape_only_chi2_does_not_depend_on_the_dropped_bin():
    """The pseudo-inverse of the singular normalised covariance uses all bins at once."""
    rng = np.random.default_rng(1)
    data, model = rng.uniform(50, 150, 6), rng.uniform(50, 150, 6)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + np.diag(data)
    shape, shape_cov = normalise_with_covariance(data, cov)
    np.testing.assert_allclose(shape_cov @ np.ones(6), 0.0, atol=1e-15)
    r = shape - model / model.sum()
    assert shape_only_chi2(data, model, cov)[0] == pytest.approx(r @ np.linalg.pinv(shape_cov) @ r, rel=1e-8)


def test_shape_only_chi2_follows_chi2_distribution_with_bins_minus_one_dof():
    """Poisson data about a model with C = diag(model): the shape-only chi2 averages B - 1.

    Mean of 2000 draws of chi2(7): 7 +- sqrt(2 * 7 / 2000) = 7 +- 0.084; 4 sigma -> 0.34. Counts of
    ~1000 per bin keep the linearised normalisation accurate to ~0.1 %.
    """
    rng = np.random.default_rng(2)
    model = rng.uniform(800, 1200, 8)
    draws = rng.poisson(model, (2000, 8)).astype(float)
    chi2 = np.array([shape_only_chi2(d, model, np.diag(model))[0] for d in draws])
    assert chi2.mean() == pytest.approx(7.0, abs=0.34)


def test_covariance_from_replicas_matches_numpy():
    rng = np.random.default_rng(3)
    hists = rng.normal(size=(50, 5)) @ rng.normal(size=(5, 5))
    np.testing.assert_allclose(covariance_from_replicas(hists), np.cov(hists, rowvar=False), rtol=1e-12)
    center = rng.normal(size=5)
    r = hists - center
    expected = np.einsum("ri,rj->ij", r, r) / len(hists)
    np.testing.assert_allclose(covariance_from_replicas(hists, center=center), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        covariance_from_replicas(hists[:1])


def test_chi2_table_layout():
    eye = np.eye(2)
    results = {
        ("nominal", "omnifold"): {"dpt": (np.array([1.0, 1.0]), np.full(2, 0.5), eye)},
        ("nominal", "ibu"): {
            "dpt": (np.array([2.0, 0.0]), np.full(2, 0.5), eye),
            "dphit": (np.ones(2), np.ones(2), eye),
        },
        ("ma_shift", "ibu"): {"dphit": (np.array([3.0, 1.0]), np.array([1.0, 1.0]), 2 * eye)},
    }
    table = chi2_table(results)
    assert table.index.names == ["fake_data", "method"]
    assert list(table.columns) == ["dpt", "dphit"]
    assert table.loc[("nominal", "omnifold"), "dpt"] == pytest.approx(0.5)
    assert table.loc[("nominal", "ibu"), "dpt"] == pytest.approx(2.5)
    assert table.loc[("ma_shift", "ibu"), "dphit"] == pytest.approx(2.0)
    assert np.isnan(table.loc[("ma_shift", "ibu"), "dpt"])
    assert table.attrs["ndof"] == {"dpt": 2, "dphit": 2}
    shape = chi2_table(results, shape_only=True)
    assert shape.attrs["ndof"] == {"dpt": 1, "dphit": 1}
    assert isinstance(shape, pd.DataFrame) and shape.shape == table.shape
    assert shape.loc[("nominal", "omnifold"), "dpt"] == pytest.approx(0.0)  # same shape as its truth


def test_uncertainty_budget():
    rng = np.random.default_rng(4)
    nominal = np.array([100.0, 50.0, 10.0])
    throws = nominal + rng.normal(size=(400, 3)) * np.array([10.0, 5.0, 1.0])
    inits = nominal + rng.normal(size=(40, 3)) * np.array([1.0, 5.0, 3.0])
    budget = uncertainty_budget(nominal, throws, inits)
    assert list(budget.index) == [0, 1, 2]
    np.testing.assert_allclose(budget["sigma_throws"], np.sqrt(np.mean((throws - nominal) ** 2, axis=0)))
    np.testing.assert_allclose(budget["sigma_init"], inits.std(axis=0, ddof=1))
    np.testing.assert_allclose(
        budget["sigma_total"] ** 2, budget["sigma_throws"] ** 2 + budget["sigma_init"] ** 2
    )
    np.testing.assert_allclose(budget["rel_total"], budget["sigma_total"] / nominal)
    # the last bin is dominated by the initialisation spread, the first by the throws
    assert budget["init_fraction"].iloc[2] > 0.5 > budget["init_fraction"].iloc[0]


def test_cross_section_from_counts_uses_bin_area():
    b = BINNINGS["muon_p_cos"]
    counts = np.arange(1.0, 59.0)
    norm = 3.0e39  # nucleons x flux [cm^-2]
    xsec = cross_section_from_counts(counts, b, norm)
    # first bin: cos theta in [-1, 0.2], p in [0, 30] GeV/c -> area 36 (GeV/c)
    assert xsec[0] == pytest.approx(1.0 / (norm * 36.0))
    np.testing.assert_allclose(xsec * b.widths * norm, counts, rtol=1e-12)
    batched = cross_section_from_counts(np.stack([counts, 2 * counts]), b, norm)
    np.testing.assert_allclose(batched[1], 2 * xsec, rtol=1e-12)
    cov = np.diag(counts)
    jac = np.diag(1.0 / (norm * b.widths))
    np.testing.assert_allclose(cross_section_covariance(cov, b, norm), jac @ cov @ jac.T, rtol=1e-12)
