"""The result of one unfolding run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from numl_core.results import Result


@dataclass
class UnfoldResult(Result):
    """OmniFold and IBU on one (fake-)data set, compared with the data's truth and with T2K's measurement.

    Tables (histogram tables in the long format of :func:`numl_core.unfold.compare.histogram_rows`,
    values in weighted events unless stated):

    - ``histograms``: per distribution, the fake data's ``truth``, the ``prior`` (MC) and the unfolded
      ``omnifold`` and ``ibu`` results, ``error`` from their total covariance;
    - ``chi2_table``: one row per method (``omnifold``, ``ibu``) and an ``ndof`` row, one column per
      distribution, chi2 against the truth with the full covariance; column ``fake_data`` names the set;
    - ``diagnostics``: OmniFold's weight diagnostics per iteration, step and throw (ESS, normalisation,
      extreme weights, finiteness);
    - ``uncertainty_budget``: per distribution and bin, OmniFold's uncertainty from the throws against the
      spread of classifier initialisations (empty with one trial or without throws);
    - ``t2k_comparison``: T2K's STV measurement, prior, truth and OmniFold in T2K's phase space and
      binning, in 1e-38 cm^2 per CH nucleon per bin; ``t2k_chi2``: chi2 of each against T2K;
    - ``calibration`` (:func:`numl_core.unfold.validation.calibration_rows`): per distribution and method,
      chi2 against the truth with its ``p_value``, ``ndof``, ``dropped_bins``, the ``covariance`` estimate
      (``hartlap``, ``shrinkage`` or ``parts``), its ``inverse_correction``, ``n_throws``,
      ``loo_chi2_per_ndof`` (the covariance check: about 1 when the covariance is right) and
      ``chi2_closure`` / ``p_closure`` (against the truth with the covariance of (result - truth), which
      carries the truth's own fluctuation);
    - ``iterations`` (:func:`numl_core.unfold.validation.iteration_rows`): per distribution, method and
      iteration (1-based), ``chi2_truth`` (the bias, with that iteration's covariance),
      ``chi2_truth_fixed`` (the same with the last iteration's covariance, one metric for all
      iterations), ``change_chi2`` (the change from the previous iteration), with ``ndof``,
      ``chi2_to_last`` (against the last iteration, in its metric) and ``estimated_chi2`` (the
      fixed-metric chi2 against the truth estimated without it; NaN without throws).

    Arrays and numbers: ``weights`` (N_mc,) float32 final per-event weights of the MC (prior x push);
    ``xsec_scale`` cm^2/nucleon per event; ``n_mc`` and ``n_data`` events in the two halves; ``seconds``
    of wall time; ``converged_at`` the first OmniFold iteration (0-based) whose change fell below the
    trial spread, None if none did; ``suggested_iterations`` per method the iteration with the smallest
    ``estimated_chi2`` summed over the distributions, None for "iterate more"
    (:func:`numl_core.unfold.validation.suggested_iterations`).
    Real data (no truth) leave ``chi2_table`` empty and ``chi2`` / ``chi2_truth`` / ``chi2_truth_fixed``
    None.
    """

    histograms: pd.DataFrame
    chi2_table: pd.DataFrame
    diagnostics: pd.DataFrame
    uncertainty_budget: pd.DataFrame
    t2k_comparison: pd.DataFrame
    t2k_chi2: pd.DataFrame
    weights: np.ndarray
    xsec_scale: float
    n_mc: int
    n_data: int
    seconds: float
    converged_at: int | None = None
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    iterations: pd.DataFrame = field(default_factory=pd.DataFrame)
    suggested_iterations: dict[str, int | None] = field(default_factory=dict)

    HEADLINE_FIELDS = ("chi2_table", "diagnostics")

    @classmethod
    def headline_of(cls, values: Mapping[str, Any]) -> dict[str, float | None]:
        """``OmniFold chi2/ndof`` and ``IBU chi2/ndof`` against the truth (chi2 and ndof summed over the
        distributions) and ``ESS``, the Kish effective sample size of OmniFold's last step-2 weights
        (mean over throws)."""
        out = _chi2_per_ndof(values.get("chi2_table"))
        diagnostics = values.get("diagnostics")
        if isinstance(diagnostics, pd.DataFrame) and len(diagnostics):
            last = diagnostics[diagnostics["iteration"] == diagnostics["iteration"].max()]
            out["ESS"] = float(last.loc[last["step"] == 2, "ess"].mean())
        return out


def _chi2_per_ndof(table: Any) -> dict[str, float | None]:
    """chi2/ndof per method of a ``chi2_table`` (rows ``omnifold``, ``ibu``, ``ndof``; one column per
    distribution), summed over the distributions.

    >>> t = pd.DataFrame({"fake_data": "x", "method": ["omnifold", "ndof"], "a": [4.0, 2.0], "b": [2.0, 4.0]})
    >>> _chi2_per_ndof(t)
    {'OmniFold chi2/ndof': 1.0}
    """
    if not isinstance(table, pd.DataFrame) or "method" not in table:
        return {}
    rows = table.drop(columns="fake_data", errors="ignore").set_index("method").astype(float)
    ndof = float(rows.loc["ndof"].sum()) if "ndof" in rows.index else 0.0
    names = {"omnifold": "OmniFold chi2/ndof", "ibu": "IBU chi2/ndof"}
    return {names[m]: float(rows.loc[m].sum()) / ndof for m in names if m in rows.index and ndof > 0}
