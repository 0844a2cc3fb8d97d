"""Covariances, chi2 and comparison metrics for unfolded distributions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from numl_core.data.binning import Binning
from numl_core.stats import chi2_with_covariance, covariance_from_replicas


def normalise_with_covariance(hist: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-area shape n / sum(n) and its covariance J C J^T, J_ij = (delta_ij - n_i / N) / N.

    The result is singular (the shape sums to 1 exactly): its null vector is (1, ..., 1).
    """
    n = np.asarray(hist, dtype=np.float64)
    total = n.sum()
    shape = n / total
    jac = (np.eye(len(n)) - shape[:, None]) / total
    return shape, jac @ np.asarray(cov, dtype=np.float64) @ jac.T


def shape_only_chi2(data: np.ndarray, model: np.ndarray, cov: np.ndarray) -> tuple[float, int]:
    """Shape-only chi2 and its degrees of freedom (bins - 1).

    Normalise data and model to unit area, propagate the data covariance with the Jacobian of the
    normalisation, drop the last bin (the normalised covariance is singular; any bin gives the same
    chi2, since the residual and the covariance's null space are both fixed by the unit-area constraint).

    >>> shape_only_chi2(np.array([10.0, 20.0]), np.array([1.0, 2.0]), np.diag([10.0, 20.0]))
    (0.0, 1)
    """
    d_shape, d_cov = normalise_with_covariance(data, cov)
    m = np.asarray(model, dtype=np.float64)
    m_shape = m / m.sum()
    keep = slice(0, len(d_shape) - 1)
    return chi2_with_covariance(d_shape[keep], m_shape[keep], d_cov[keep, keep]), len(d_shape) - 1


def chi2_table(
    results: dict[tuple[str, str], dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]],
    shape_only: bool = False,
) -> pd.DataFrame:
    """chi2 of unfolded results against truth: rows (fake_data, method), columns distributions.

    ``results[(fake_data, method)][distribution] = (unfolded, truth, cov)`` with ``cov`` the covariance of
    ``unfolded``. Missing entries are NaN. ``attrs["ndof"]`` maps each distribution to its degrees of
    freedom (bins, or bins - 1 when ``shape_only``).

    >>> t = chi2_table({("nominal", "ibu"): {"dpt": (np.array([1.0, 2.0]), np.zeros(2), np.eye(2))}})
    >>> float(t.loc[("nominal", "ibu"), "dpt"]), t.attrs["ndof"]
    (5.0, {'dpt': 2})
    """
    rows, ndof = {}, {}
    for key, per_dist in results.items():
        row = {}
        for dist, (unfolded, truth, cov) in per_dist.items():
            if shape_only:
                row[dist], ndof[dist] = shape_only_chi2(unfolded, truth, cov)
            else:
                row[dist], ndof[dist] = chi2_with_covariance(unfolded, truth, cov), len(unfolded)
        rows[key] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["fake_data", "method"])
    table.columns.name = "distribution"
    table.attrs["ndof"] = ndof
    return table


def uncertainty_budget(
    nominal: np.ndarray, throws: np.ndarray, initialisations: np.ndarray, n_averaged: int = 1
) -> pd.DataFrame:
    """Per-bin uncertainty budget: throws (systematic + statistical) against initialisation spread.

    ``nominal`` (B,); ``throws`` (T, B) unfolded results of systematic and statistical throws (their RMS
    about ``nominal``); ``initialisations`` (R, B) results of the same unfolding repeated with different
    classifier seeds (their sample standard deviation, divided by sqrt(n_averaged) when the nominal is the
    average of ``n_averaged`` such repeats). Columns: nominal, sigma_throws, sigma_init,
    sigma_total (quadrature sum), the three relative to ``nominal`` (rel_*) and init_fraction =
    sigma_init^2 / sigma_total^2.
    """
    nominal = np.asarray(nominal, dtype=np.float64)
    sigma_throws = np.sqrt(np.diag(covariance_from_replicas(throws, center=nominal)))
    sigma_init = np.sqrt(np.diag(covariance_from_replicas(initialisations)) / n_averaged)
    sigma_total = np.hypot(sigma_throws, sigma_init)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame = pd.DataFrame(
            {
                "nominal": nominal,
                "sigma_throws": sigma_throws,
                "sigma_init": sigma_init,
                "sigma_total": sigma_total,
                "rel_throws": sigma_throws / np.abs(nominal),
                "rel_init": sigma_init / np.abs(nominal),
                "rel_total": sigma_total / np.abs(nominal),
                "init_fraction": sigma_init**2 / sigma_total**2,
            }
        )
    frame.index.name = "bin"
    return frame


def cross_section_from_counts(hist: np.ndarray, binning: Binning, norm: float) -> np.ndarray:
    """Differential cross section per bin, hist / (norm * bin width), shape of ``hist`` (..., B).

    ``hist``: efficiency-corrected signal counts (e.g. unfolded); ``norm``: number of target nucleons
    times integrated flux [cm^-2], so the result is in cm^2 / nucleon / (x unit), with the bin area
    (e.g. GeV/c for (p, cos theta)) for 2-D binnings.

    >>> from numl_core.data.binning import BINNINGS
    >>> xsec = cross_section_from_counts(np.full(8, 10.0), BINNINGS["dpt_t2k"], 1e40)  # bin 1: 0.04 GeV/c
    >>> bool(np.isclose(xsec[1], 10.0 / (1e40 * 0.04), rtol=1e-12, atol=0.0))
    True
    """
    return np.asarray(hist, dtype=np.float64) / (norm * binning.widths)


def cross_section_covariance(cov: np.ndarray, binning: Binning, norm: float) -> np.ndarray:
    """Covariance of ``cross_section_from_counts``: cov_ij / (norm^2 w_i w_j)."""
    scale = 1.0 / (norm * binning.widths)
    return np.asarray(cov, dtype=np.float64) * np.outer(scale, scale)
