"""Unfolded histograms against the truth: per distribution, OmniFold's and IBU's nominal results with
their covariances from the ensemble members, and the T2K STV measurement in its own phase space.

Histogram tables are in long format: ``distribution, method, bin, low, high, value, error`` (plus
``slice_low, slice_high`` of the second variable of 2-D distributions), values in weighted events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from numl_core.data.binning import BINNINGS, Binning, bincount_weighted
from numl_core.data.generators import nd280_cc0pi as nd280
from numl_core.data.reference import STV_VARIABLES, load_t2k_stv
from numl_core.jobs import Progress
from numl_core.stats import Chi2, chi2_from_replicas, chi2_with_covariance, covariance_from_replicas
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
    """Total covariance around the nominal member (index 0) when the throws are systematic only.

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


@dataclass(frozen=True)
class Unfolded:
    """One method's unfolded histogram of one distribution, in events.

    ``nominal`` (B,); ``cov`` (B, B) its total covariance; ``throws`` (T, B) the throws' results when
    ``cov`` is their sample covariance (throws that vary the statistics as well as the systematics), so
    that a chi2 can correct the inverse of that estimate; None when ``cov`` is built from parts
    (:func:`member_covariance`).
    """

    nominal: np.ndarray
    cov: np.ndarray
    throws: np.ndarray | None = None


def unfolded(sample: UnfoldingSample, members: np.ndarray, mc_stat_var: np.ndarray) -> Unfolded:
    """The nominal member and its covariance: the throws' sample covariance (about their mean) when each
    throw also varies the MC and data statistics, else :func:`member_covariance`."""
    if sample.throw_statistics and sample.n_syst >= 2:
        throws = members[sample.throws]
        return Unfolded(members[0], covariance_from_replicas(throws), throws)
    return Unfolded(members[0], member_covariance(members, sample.n_syst, mc_stat_var))


def omnifold_members(
    sample: UnfoldingSample, push: np.ndarray, binning: Binning
) -> tuple[np.ndarray, np.ndarray]:
    """Truth-level histograms (M, B) of the MC weighted by each member's push factors ``push`` (M, N),
    and the MC statistical variance (B,) of the nominal one (its sum of squared weights)."""
    signal = sample.mc["pass_truth"].to_numpy()
    values = _values(sample.mc[signal], binning, "true")
    weights = sample.mc_weights[:, signal] * np.atleast_2d(push)[:, signal]
    return binning.histogram(*values, weights=weights), binning.histogram(*values, weights=weights[0] ** 2)


def omnifold_histograms(
    sample: UnfoldingSample, push: np.ndarray, trial_factors: np.ndarray, binning: Binning
) -> tuple[Unfolded, pd.DataFrame | None]:
    """OmniFold's truth-level result of one distribution (:class:`Unfolded`) and its uncertainty budget.

    ``push`` (M, N) unfolded factors per ensemble member (multiplying ``sample.mc_weights``);
    ``trial_factors`` (K, N): the nominal's push factors per classifier trial. Each throw (and bootstrap
    replica) starts its classifiers from its own initialisations, so their spread already carries the
    classifier noise of a K-trial average; only without any throws or replicas is the trials' spread
    divided by K the covariance's classifier part.
    """
    members, mc_var = omnifold_members(sample, push, binning)
    result = unfolded(sample, members, mc_var)
    budget = None
    if len(trial_factors) > 1:
        signal = sample.mc["pass_truth"].to_numpy()
        values = _values(sample.mc[signal], binning, "true")
        trials = binning.histogram(*values, weights=sample.mc_weights[0, signal] * trial_factors[:, signal])
        if len(members) == 1:
            cov = result.cov + covariance_from_replicas(trials) / len(trial_factors)
            result = Unfolded(result.nominal, cov)
        if len(members) > 2:
            budget = uncertainty_budget(members[0], members[1:], trials, n_averaged=len(trial_factors))
    return result, budget


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


def ibu_members(
    sample: UnfoldingSample, binning: Binning, iterations: Sequence[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """IBU of one distribution for every ensemble member at once, with the MC truth as prior, stopped
    after each number of ``iterations``: per entry, the members' results (M, B) and the MC statistical
    variance (B,) of the nominal (its relative error is that of the response's truth counts)."""
    inputs, observed = ibu_inputs(sample.mc, sample.data, binning, sample.mc_weights, sample.data_weights)
    prior = inputs.truth / np.clip(inputs.truth.sum(axis=-1, keepdims=True), 1e-300, None)
    signal = sample.mc["pass_truth"].to_numpy()
    truth_w2 = binning.histogram(
        *_values(sample.mc[signal], binning, "true"), weights=sample.mc_weights[0][signal] ** 2
    )
    rel_var = truth_w2 / np.clip(inputs.truth[0] ** 2, 1e-300, None)
    out = []
    for n in iterations:
        values = ibu.ibu_throws(
            observed, inputs.response, inputs.efficiencies, inputs.background, prior, n_iterations=n
        )
        out.append((values, values[0] ** 2 * rel_var))
    return out


def report_ibu_ts(
    sample: UnfoldingSample, binning: Binning, iterations: int, progress: Progress, name: str
) -> None:
    """Unfold the nominal member iteration by iteration and report the test statistic between iterations
    (metric :data:`IBU_TS_METRIC`, PyUnfold's KS by default) for the live plots."""
    inputs, observed = ibu_inputs(
        sample.mc, sample.data, binning, sample.mc_weights[:1], sample.data_weights[:1]
    )
    prior = inputs.truth[0] / max(float(inputs.truth[0].sum()), 1e-300)
    ibu.iterative_bayesian_unfold(
        observed[0],
        np.sqrt(observed[0]),
        inputs.response[0],
        inputs.response_err[0],
        inputs.efficiencies[0],
        inputs.efficiencies_err[0],
        prior=prior,
        ts_stopping=0.0,
        max_iter=iterations,
        background=inputs.background[0],
        callback=lambda record: progress.metric(
            IBU_TS_METRIC, record["ts_iter"], step=int(record["num_iterations"]), distribution=name
        ),
    )


def truth_and_prior(
    sample: UnfoldingSample, binning: Binning, name: str
) -> tuple[np.ndarray | None, np.ndarray, list[pd.DataFrame]]:
    """The fake data's truth histogram (None for real data, which have no truth), the prior (the MC's
    truth) and their rows (the truth with its statistical error)."""
    data, mc = sample.data, sample.mc
    prior_mask = mc["pass_truth"].to_numpy()
    prior = binning.histogram(*_values(mc[prior_mask], binning, "true"), weights=sample.mc_prior[prior_mask])
    rows = [histogram_rows(name, "prior", binning, prior, np.zeros_like(prior))]
    if not sample.data_has_truth:
        return None, prior, rows
    signal = data["pass_truth"].to_numpy()
    truth_values, truth_w = _values(data[signal], binning, "true"), sample.data_w[signal]
    truth = binning.histogram(*truth_values, weights=truth_w)
    truth_err = np.sqrt(binning.histogram(*truth_values, weights=truth_w**2))
    return truth, prior, [histogram_rows(name, "truth", binning, truth, truth_err), *rows]


def truth_throws(sample: UnfoldingSample, binning: Binning) -> np.ndarray | None:
    """The fake data's truth histogram as each throw sees it (T, B): weighted by the throw's Poisson counts
    of the data events. What a throw's result is compared with when a chi2 against the truth must carry
    the truth's own statistical fluctuation; None for real data, or for throws that vary only the
    systematics (the data's events then have no counts of their own per throw)."""
    if not (sample.data_has_truth and sample.throw_statistics and sample.n_syst >= 2):
        return None
    signal = sample.data["pass_truth"].to_numpy()
    weights = sample.data_weights[sample.throws][:, signal]
    return binning.histogram(*_values(sample.data[signal], binning, "true"), weights=weights)


def used_bins(estimates: dict[str, Unfolded]) -> np.ndarray:
    """Bins some variance reaches in every method's covariance (bool (B,)); the others carry no
    information and are left out of every chi2."""
    return np.all([np.diag(e.cov) > 0 for e in estimates.values()], axis=0)


def chi2_of(estimate: Unfolded, target: np.ndarray, used: np.ndarray) -> Chi2:
    """chi2 of ``estimate.nominal`` against ``target`` (B,) on the ``used`` bins: with the throws' sample
    covariance and the correction of its inverse (:func:`~numl_core.stats.chi2_from_replicas`, Hartlap
    when there are more throws than bins + 2, else shrinkage), or with the covariance built from parts.
    ``dropped`` counts every bin of the binning left out."""
    index = np.flatnonzero(used)
    if estimate.throws is not None:
        fit = chi2_from_replicas(
            estimate.nominal[used], target[used], estimate.throws[:, used], method="auto"
        )
        dropped = sorted({*np.flatnonzero(~used).tolist(), *index[list(fit.dropped)].tolist()})
        return replace(fit, dropped=tuple(dropped))
    value = chi2_with_covariance(estimate.nominal[used], target[used], estimate.cov[np.ix_(used, used)])
    return Chi2(value, len(index), tuple(np.flatnonzero(~used).tolist()), 1.0, "none")


def estimate_rows(name: str, binning: Binning, estimates: dict[str, Unfolded]) -> list[pd.DataFrame]:
    """Rows of each method's nominal result, errors from its total covariance."""
    return [
        histogram_rows(name, method, binning, e.nominal, np.sqrt(np.diag(e.cov)))
        for method, e in estimates.items()
    ]


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


def t2k_overlay(sample: UnfoldingSample, weights: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The T2K CC0pi-Np STV measurement (PRD 98, 032003) next to the prior, the fake data's truth and
    OmniFold's result, all restricted to its signal phase space and in its binning and units.

    ``weights`` (M, N_mc): OmniFold's weights per ensemble member, in events; ``sample.xsec_scale``
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
        members = binning.histogram(*true_mc, weights=weights[:, mc_in]) * to_ch
        mc_var = binning.histogram(*true_mc, weights=weights[0, mc_in] ** 2) * to_ch**2
        omnifold_cov = unfolded(sample, members, mc_var).cov
        prior = nd280.predict_stv(mc, variable, meas.edges) * widths / T2K_UNIT_CM2
        true_data = (data.loc[data_in, f"true_{variable}"].to_numpy(),)
        truth = binning.histogram(*true_data, weights=data_w[data_in]) * to_ch
        truth_err = np.sqrt(binning.histogram(*true_data, weights=data_w[data_in] ** 2)) * to_ch
        name = binning.name
        rows += [
            histogram_rows(name, "t2k", binning, t2k, np.sqrt(np.diag(t2k_cov))),
            histogram_rows(name, "prior", binning, prior, np.zeros_like(prior)),
            histogram_rows(name, "omnifold", binning, members[0], np.sqrt(np.diag(omnifold_cov))),
        ]
        estimates = {"prior": (prior, t2k_cov), "omnifold": (members[0], t2k_cov + omnifold_cov)}
        if sample.data_has_truth:
            rows.append(histogram_rows(name, "truth", binning, truth, truth_err))
            estimates["truth"] = (truth, t2k_cov)
        chi2 += _t2k_chi2_rows(name, t2k, t2k_cov, estimates)
    return pd.concat(rows, ignore_index=True), pd.DataFrame(chi2)
