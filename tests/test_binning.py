"""Binnings: flat indices, in-range masks, batched histograms and the predefined analysis binnings."""

from __future__ import annotations

import numpy as np
import pytest

from numl_core.data.binning import BINNINGS, Binning, bincount_weighted

# Edges from data/t2k_cc0pi_stv_2018/README.md (T2K, PRD 98, 032003).
T2K_EDGES = {
    "dpt_t2k": [1e-7, 0.08, 0.12, 0.155, 0.2, 0.26, 0.36, 0.51, 1.1],
    "dalphat_t2k": [1e-7, 0.47, 1.02, 1.54, 1.98, 2.34, 2.64, 2.89, 3.1416],
    "dphit_t2k": [1e-7, 0.067, 0.14, 0.225, 0.34, 0.52, 0.85, 1.5, 3.1416],
}


@pytest.mark.parametrize(
    "name,n_bins,variables,low,high",
    [
        ("muon_p_cos", 58, ("mu_p", "mu_cos"), (0.0, -1.0), (30.0, 1.0)),
        ("dpt", 14, ("dpt",), (0.0,), (1.1,)),
        ("dalphat", 18, ("dalphat",), (0.0,), (np.pi,)),
        ("dphit", 14, ("dphit",), (0.0,), (np.pi,)),
        ("dpt_t2k", 8, ("dpt",), (1e-7,), (1.1,)),
        ("dalphat_t2k", 8, ("dalphat",), (1e-7,), (3.1416,)),
        ("dphit_t2k", 8, ("dphit",), (1e-7,), (3.1416,)),
    ],
)
def test_predefined_binnings(name, n_bins, variables, low, high):
    b = BINNINGS[name]
    assert b.n_bins == n_bins and b.variables == variables
    assert b.columns("reco_") == tuple(f"reco_{v}" for v in variables)
    np.testing.assert_allclose(b.lower.min(axis=0), low)
    np.testing.assert_allclose(b.upper.max(axis=0), high)
    # the bins tile the box: widths (areas) add up to its volume
    assert b.widths.sum() == pytest.approx(np.prod(np.subtract(high, low)))
    assert len(b.labels) == len(b.units) == b.ndim
    if name in T2K_EDGES:
        assert b.edges == tuple(T2K_EDGES[name])


def test_muon_binning_has_t2k_slices():
    b = BINNINGS["muon_p_cos"]
    assert b.outer == 1 and b.edges == (-1.0, 0.2, 0.6, 0.7, 0.8, 0.85, 0.9, 0.94, 0.98, 1.0)
    assert [len(e) - 1 for e in b.inner_edges] == [1, 5, 6, 6, 7, 8, 7, 10, 8]


def test_1d_index_and_histogram_follow_numpy_histogram():
    b = BINNINGS["dpt"]
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-0.2, 1.3, 2000), np.asarray(b.edges), [np.nan, np.inf]])
    idx, ok = b.index(x)
    assert idx.dtype == np.int64 and idx.min() >= 0 and idx.max() < b.n_bins
    assert not ok[-2:].any()  # NaN and inf are out of range, with a valid placeholder index
    expected, _ = np.histogram(x[np.isfinite(x)], bins=np.asarray(b.edges))
    np.testing.assert_array_equal(b.histogram(x), expected)
    assert ok.sum() == expected.sum()


def test_regular_grid_matches_histogram2d():
    rng = np.random.default_rng(1)
    ex, ey = [0.0, 0.5, 1.0, 2.0], [-1.0, 0.0, 0.3, 1.0]
    b = Binning.grid(("x", "y"), ex, ey)
    x, y = rng.uniform(-0.5, 2.5, 3000), rng.uniform(-1.5, 1.5, 3000)
    w = rng.uniform(0.5, 1.5, 3000)
    expected, _, _ = np.histogram2d(x, y, bins=[ex, ey], weights=w)
    np.testing.assert_allclose(b.histogram(x, y, weights=w), expected.ravel(), rtol=1e-12)


def test_sliced_binning_puts_each_value_inside_its_bin():
    b = BINNINGS["muon_p_cos"]
    rng = np.random.default_rng(2)
    p = np.concatenate([rng.gamma(2.0, 0.4, 4000), rng.uniform(-1.0, 35.0, 1000)])
    cos = rng.uniform(-1.2, 1.2, 5000)
    idx, ok = b.index(p, cos)
    values = np.stack([p, cos], axis=1)[ok]
    assert np.all(b.lower[idx[ok]] <= values) and np.all(values <= b.upper[idx[ok]])
    inside = (p >= 0) & (p <= 30) & (cos >= -1) & (cos <= 1)
    np.testing.assert_array_equal(ok, inside)
    np.testing.assert_allclose(b.centers, 0.5 * (b.lower + b.upper))


def test_batched_weights_equal_one_histogram_per_throw():
    b = BINNINGS["muon_p_cos"]
    rng = np.random.default_rng(3)
    p, cos = rng.gamma(3.0, 0.3, 1000), rng.uniform(-1, 1, 1000)
    w = rng.uniform(0, 2, (5, 1000))
    batched = b.histogram(p, cos, weights=w)
    assert batched.shape == (5, 58)
    for t in range(5):
        np.testing.assert_allclose(batched[t], b.histogram(p, cos, weights=w[t]), rtol=1e-13)
    with pytest.raises(ValueError, match="events"):
        bincount_weighted(np.zeros(3, int), np.ones((2, 4)), 2)


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: Binning(("x",), (0.0, 1.0, 1.0)), "strictly increasing"),
        (lambda: Binning(("x", "y"), (0.0, 1.0)), "needs 1 variable"),
        (lambda: Binning(("x", "y"), (0.0, 1.0, 2.0), ((0.0, 1.0),)), "2 slices"),
        (lambda: Binning.sliced(("x", "y"), 1, [((0, 1), [0, 1]), ((1.5, 2), [0, 1])]), "contiguous"),
    ],
)
def test_invalid_binnings_are_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_binnings_are_hashable_values():
    a = Binning(("x",), [0, 1, 2])
    assert a == Binning(("x",), (0.0, 1.0, 2.0)) and hash(a) == hash(Binning(("x",), (0.0, 1.0, 2.0)))
    with pytest.raises(AttributeError):
        a.edges = (0.0, 2.0)
