"""The result of one unfolding run."""

from __future__ import annotations

from dataclasses import dataclass

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
      binning, in 1e-38 cm^2 per CH nucleon per bin; ``t2k_chi2``: chi2 of each against T2K.

    Arrays and numbers: ``weights`` (N_mc,) float32 final per-event weights of the MC (prior x push);
    ``xsec_scale`` cm^2/nucleon per event; ``n_mc`` and ``n_data`` events in the two halves; ``seconds``
    of wall time; ``converged_at`` the first OmniFold iteration (0-based) whose change fell below the
    trial spread, None if none did.
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
