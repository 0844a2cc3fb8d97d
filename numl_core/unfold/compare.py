"""Unfolded histograms against the truth: per distribution, OmniFold's and IBU's nominal results with
their covariances from the ensemble members, and the T2K STV measurement in its own phase space.

Histogram tables are in long format: ``distribution, method, bin, low, high, value, error`` (plus
``slice_low, slice_high`` of the second variable of 2-D distributions), values in weighted events.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from numl_core.data.binning import BINNINGS, Binning, bincount_weighted
from numl_core.data.generators import nd280_cc0pi as nd280
from numl_core.data.reference import STV_VARIABLES, load_t2k_stv
from numl_core.jobs import Progress
from numl_core.stats import chi2_with_covariance, covariance_from_replicas
from numl_core.unfold import ibu
from numl_core.unfold.events import UnfoldingSample
from numl_core.unfold.metrics import uncertainty_budget

T2K_UNIT_CM2 = 1e-38
#: Live metric: IBU's test statistic between iterations, per distribution.
IBU_TS_METRIC = "ibu_ts"


def _values(events: pd.DataFrame, binning: Binning, level: str) -> list[np.ndarray]:
    return [events[c].to_numpy() for c in binning.columns(f"{level}_")]


def histogram_rows(
    name: str, method: str, binning: Binning, value: np.ndarray, error: np.ndarray
) -> pd.DataFrame:
    """Long-format rows: edges of the first variable (low, high) and of the second (slice_low, slice_high)."""
    frame = pd.DataFrame(
        {
            "distribution": name,
            "method": method,
            "bin": np.arange(binning.n_bins),
            "low": binning.lower[:, 0],
            "high": binning.upper[:, 0],
        }
    )
    if binning.ndim == 2:
        frame["slice_low"], frame["slice_high"] = binning.lower[:, 1], binning.upper[:, 1]
    frame["value"] = value
    frame["error"] = error
    return frame


def member_covariance(members: np.ndarray, n_syst: int, mc_stat_var: np.ndarray) -> np.ndarray:
    """Total covariance around the nominal member (index 0).

    Systematic from the throws (members 1..n_syst, about the nominal), statistical from the data's
    bootstrap replicas (the rest, about their mean), plus the MC's own statistical variance per bin
    (sum of squared weights), which keeps the matrix full rank when there are fewer replicas than bins.
    """
    nominal = members[0]
    cov = np.diag(np.asarray(mc_stat_var, float))
    syst, stat = members[1 : 1 + n_syst], members[1 + n_syst :]
    if len(syst) > 1:
        cov += covariance_from_replicas(syst, center=nominal)
    if len(stat) > 1:
        cov += covariance_from_replicas(stat)
    return cov


def omnifold_histograms(
    sample: UnfoldingSample, push: np.ndarray, trial_factors: np.ndarray, binning: Binning
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame | None]:
    """Truth-level histograms of the OmniFold-weighted MC: nominal, total covariance, uncertainty budget.

    ``push`` (M, N) unfolded factors per ensemble member (multiplying ``sample.mc_weights``);
    ``trial_factors`` (K, N): the nominal's push factors per classifier trial; their spread, divided
    by K for the trial average, adds the classifier-initialisation uncertainty.
    """
    mc, mc_weights = sample.mc, sample.mc_weights
    signal = mc["pass_truth"].to_numpy()
    values = _values(mc[signal], binning, "true")
    unfolded = mc_weights[:, signal] * push[:, signal]
    members = binning.histogram(*values, weights=unfolded)
    mc_var = binning.histogram(*values, weights=unfolded[0] ** 2)
    cov = member_covariance(members, sample.n_syst, mc_var)
    budget = None
    if len(trial_factors) > 1:
        trials = binning.histogram(*values, weights=mc_weights[0, signal] * trial_factors[:, signal])
        cov += covariance_from_replicas(trials) / len(trial_factors)
        if len(members) > 2:
            budget = uncertainty_budget(members[0], members[1:], trials, n_averaged=len(trial_factors))
    return members[0], cov, budget


def ibu_inputs(
    mc: pd.DataFrame, data: pd.DataFrame, binning: Binning, mc_weights: np.ndarray, data_weights: np.ndarray
) -> tuple[ibu.ResponseInputs, np.ndarray]:
    """Response from the MC and observed (selected, in-range) data counts for one binning.

    Weights are (N,) or (T, N) per ensemble member; counts come back as (E,) or (T, E).
    """
    t_idx, t_in = binning.index(*_values(mc, binning, "true"))
    r_idx, r_in = binning.index(*_values(mc, binning, "reco"))
    inputs = ibu.response_from_events(
        t_idx,
        t_in,
        r_idx,
        r_in,
        mc["pass_truth"].to_numpy(),
        mc["pass_reco"].to_numpy(),
        mc_weights,
        n_causes=binning.n_bins,
        n_effects=binning.n_bins,
    )
    d_idx, d_in = binning.index(*_values(data, binning, "reco"))
    sel = data["pass_reco"].to_numpy() & d_in
    observed = bincount_weighted(d_idx[sel], np.asarray(data_weights)[..., sel], binning.n_bins)
    return inputs, observed


def unfold_ibu(
    sample: UnfoldingSample, binning: Binning, iterations: int, progress: Progress, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """IBU of one distribution for every ensemble member at once, with the MC truth as prior.

    The nominal member is also unfolded iteration by iteration to report the test statistic
    between iterations (metric :data:`IBU_TS_METRIC`, PyUnfold's KS by default) for the live plots.
    """
    inputs, observed = ibu_inputs(sample.mc, sample.data, binning, sample.mc_weights, sample.data_weights)
    prior = inputs.truth / np.clip(inputs.truth.sum(axis=-1, keepdims=True), 1e-300, None)
    ibu.iterative_bayesian_unfold(
        observed[0],
        np.sqrt(observed[0]),
        inputs.response[0],
        inputs.response_err[0],
        inputs.efficiencies[0],
        inputs.efficiencies_err[0],
        prior=prior[0],
        ts_stopping=0.0,
        max_iter=iterations,
        background=inputs.background[0],
        callback=lambda record: progress.metric(
            IBU_TS_METRIC, record["ts_iter"], step=int(record["num_iterations"]), distribution=name
        ),
    )
    values = ibu.ibu_throws(
        observed, inputs.response, inputs.efficiencies, inputs.background, prior, n_iterations=iterations
    )
    # MC statistical variance of the nominal unfolded bins: relative error of the truth counts of the response
    signal = sample.mc["pass_truth"].to_numpy()
    truth_w2 = binning.histogram(
        *_values(sample.mc[signal], binning, "true"), weights=sample.mc_weights[0][signal] ** 2
    )
    rel_var = truth_w2 / np.clip(inputs.truth[0] ** 2, 1e-300, None)
    return values[0], member_covariance(values, sample.n_syst, values[0] ** 2 * rel_var)


def truth_and_prior(
    sample: UnfoldingSample, binning: Binning, name: str
) -> tuple[np.ndarray, list[pd.DataFrame]]:
    """The fake data's truth histogram and the rows of truth (with its statistical error) and prior."""
    data, mc = sample.data, sample.mc
    signal = data["pass_truth"].to_numpy()
    truth_values, truth_w = _values(data[signal], binning, "true"), sample.data_w[signal]
    truth = binning.histogram(*truth_values, weights=truth_w)
    truth_err = np.sqrt(binning.histogram(*truth_values, weights=truth_w**2))
    prior_mask = mc["pass_truth"].to_numpy()
    prior = binning.histogram(*_values(mc[prior_mask], binning, "true"), weights=sample.mc_prior[prior_mask])
    rows = [
        histogram_rows(name, "truth", binning, truth, truth_err),
        histogram_rows(name, "prior", binning, prior, np.zeros_like(prior)),
    ]
    return truth, rows


def chi2_against_truth(
    name: str,
    binning: Binning,
    truth: np.ndarray,
    estimates: dict[str, tuple[np.ndarray, np.ndarray]],
    progress: Progress,
) -> tuple[list[pd.DataFrame], dict[str, float]]:
    """Rows of each method's nominal result with its errors, and chi2 per method (plus ``ndof``).

    Bins no method populates (zero variance everywhere) carry no information and are left out.
    """
    used = np.all([np.diag(cov) > 0 for _, cov in estimates.values()], axis=0)
    if not used.all():
        progress.log(f"{name}: {int((~used).sum())} empty bin(s) left out of chi2")
    rows, chi2 = [], {}
    for method, (nominal, cov) in estimates.items():
        rows.append(histogram_rows(name, method, binning, nominal, np.sqrt(np.diag(cov))))
        chi2[method] = chi2_with_covariance(nominal[used], truth[used], cov[np.ix_(used, used)])
    chi2["ndof"] = float(used.sum())
    return rows, chi2


def _t2k_chi2_rows(name: str, t2k: np.ndarray, t2k_cov: np.ndarray, estimates: dict) -> list[dict]:
    return [
        {
            "distribution": name,
            "method": method,
            "chi2": chi2_with_covariance(t2k, value, cov),
            "ndof": len(t2k),
            "sigma_1e38": float(value.sum()),
            "sigma_t2k_1e38": float(t2k.sum()),
        }
        for method, (value, cov) in estimates.items()
    ]


def t2k_overlay(sample: UnfoldingSample, unfolded: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The T2K CC0pi-Np STV measurement (PRD 98, 032003) next to the prior, the fake data's truth and
    OmniFold's result, all restricted to its signal phase space and in its binning and units.

    ``unfolded`` (M, N_mc): OmniFold's weights per ensemble member, in events; ``sample.xsec_scale``
    converts events to cm^2 per carbon nucleon. Returns long-format histogram rows (``value``/``error``
    per bin in 1e-38 cm^2 per CH nucleon, distributions ``dpt_t2k`` ...) and a table of chi2 against
    T2K with its covariance (plus the unfolding's own covariance for OmniFold), with ndof = 8 bins. IBU
    is left out: it unfolds in the analysis binnings, not in T2K's phase space.
    """
    mc, data, data_w = sample.mc, sample.data, sample.data_w
    to_ch = nd280.CH_PER_CARBON_NUCLEON * sample.xsec_scale / T2K_UNIT_CM2
    mc_in = mc["in_stv_phase_space"].to_numpy(bool)
    data_in = data["in_stv_phase_space"].to_numpy(bool)
    rows, chi2 = [], []
    for variable in STV_VARIABLES:
        binning = BINNINGS[f"{variable}_t2k"]
        meas = load_t2k_stv(variable)
        widths = np.diff(meas.edges)
        t2k = meas.values * widths / T2K_UNIT_CM2
        t2k_cov = meas.cov * np.outer(widths, widths) / T2K_UNIT_CM2**2
        true_mc = (mc.loc[mc_in, f"true_{variable}"].to_numpy(),)
        members = binning.histogram(*true_mc, weights=unfolded[:, mc_in]) * to_ch
        mc_var = binning.histogram(*true_mc, weights=unfolded[0, mc_in] ** 2) * to_ch**2
        omnifold_cov = member_covariance(members, sample.n_syst, mc_var)
        prior = nd280.predict_stv(mc, variable, meas.edges) * widths / T2K_UNIT_CM2
        true_data = (data.loc[data_in, f"true_{variable}"].to_numpy(),)
        truth = binning.histogram(*true_data, weights=data_w[data_in]) * to_ch
        truth_err = np.sqrt(binning.histogram(*true_data, weights=data_w[data_in] ** 2)) * to_ch
        name = binning.name
        rows += [
            histogram_rows(name, "t2k", binning, t2k, np.sqrt(np.diag(t2k_cov))),
            histogram_rows(name, "prior", binning, prior, np.zeros_like(prior)),
            histogram_rows(name, "truth", binning, truth, truth_err),
            histogram_rows(name, "omnifold", binning, members[0], np.sqrt(np.diag(omnifold_cov))),
        ]
        estimates = {"prior": (prior, t2k_cov), "truth": (truth, t2k_cov)}
        estimates["omnifold"] = (members[0], t2k_cov + omnifold_cov)
        chi2 += _t2k_chi2_rows(name, t2k, t2k_cov, estimates)
    return pd.concat(rows, ignore_index=True), pd.DataFrame(chi2)
