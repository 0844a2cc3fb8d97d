"""The unfolding workflow: OmniFold against Iterative Bayesian Unfolding on the ND280 CC0pi sample.

One run unfolds one (fake-)data set with both methods and compares them with the
data's truth: the nominal result, systematic throws of the MC (flux, cross section,
detector) and Poisson bootstrap replicas of the data give the covariance used in chi2.
All histogram contents are in weighted events; ``xsec_scale`` (cm^2/nucleon per event)
converts them to cross sections.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import param

from numl_core.config import Config, ConfigError
from numl_core.data.binning import BINNINGS, Binning, bincount_weighted
from numl_core.data.generators import nd280_cc0pi as nd280
from numl_core.data.io import read_table
from numl_core.data.reference import STV_VARIABLES, load_t2k_stv
from numl_core.data.schema import DataError, Schema
from numl_core.jobs import Progress
from numl_core.stats import chi2_with_covariance, covariance_from_replicas
from numl_core.unfold import ibu
from numl_core.unfold.metrics import uncertainty_budget
from numl_core.unfold.omnifold import OmniFoldSettings, unfold_omnifold
from numl_core.unfold.omnifold_distributed import unfold_omnifold_distributed
from numl_core.workflows import Workflow

DISTRIBUTIONS = ["muon_p_cos", "dpt", "dalphat", "dphit"]
N_SAMPLES = 8
ND280_SCHEMA = Schema.from_ranges("nd280_cc0pi", nd280.ND280_COLUMNS)


class UnfoldingConfig(Config):
    """Inputs of one OmniFold-vs-IBU unfolding run."""

    sample = param.Selector(
        default="builtin",
        objects=["builtin", "file"],
        doc="Events from the built-in ND280 CC0pi generator or from a file.",
    )
    data_file = param.String(
        default="",
        doc="Event file (.parquet, .csv, .root) with the ND280 schema; used when sample is 'file'.",
    )
    n_events = param.Integer(
        default=200_000,
        bounds=(2_000, 5_000_000),
        doc="Events generated in total; half become MC, half (fake) data.",
    )
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1), doc="Seed of sample, split, throws and training.")
    fake_data = param.Selector(
        default="dphit_shape",
        objects=list(nd280.FAKE_DATA_SETS),
        doc="Reweighting that turns the data half into fake data.",
    )
    distributions = param.ListSelector(
        default=list(DISTRIBUTIONS), objects=list(DISTRIBUTIONS), doc="Distributions unfolded and compared."
    )
    iterations = param.Integer(default=15, bounds=(1, 50), doc="OmniFold iterations.")
    trials = param.Integer(default=5, bounds=(1, 10), doc="Classifier trials averaged per iteration.")
    n_throws = param.Integer(
        default=20, bounds=(0, 200), doc="Systematic throws of the MC (flux, xsec, detector)."
    )
    n_bootstrap = param.Integer(default=10, bounds=(0, 200), doc="Poisson bootstrap replicas of the data.")
    hidden_layers = param.Integer(default=2, bounds=(1, 6), doc="Hidden layers of each classifier.")
    hidden_units = param.Integer(default=100, bounds=(4, 1024), doc="Units per hidden layer.")
    learning_rate = param.Number(default=2e-3, bounds=(1e-6, 1.0), doc="Adam learning rate.")
    batch_size = param.Integer(default=5_000, bounds=(64, 1_000_000), doc="Mini-batch size.")
    epochs = param.Integer(default=10, bounds=(1, 500), doc="Maximum epochs per classifier fit.")
    patience = param.Integer(default=3, bounds=(1, 100), doc="Early-stopping patience in epochs.")
    weight_clip_max = param.Number(
        default=100.0, bounds=(1.0, 1e6), doc="Upper clip of per-step weight updates."
    )
    warm_start = param.Boolean(default=True, doc="Start each iteration's classifiers from the previous ones.")
    stop_on_convergence = param.Boolean(
        default=False, doc="Stop once the change between iterations falls below the trial spread."
    )
    run_ibu = param.Boolean(default=True, doc="Also unfold each distribution with IBU.")
    ibu_iterations = param.Integer(default=4, bounds=(1, 100), doc="IBU iterations.")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda", "mps"], doc="Torch device.")
    scheduler = param.String(
        default="",
        doc="Dask scheduler for the OmniFold throws: empty trains them batched in this process, "
        "'local' starts a LocalCluster on this machine, or an address such as tcp://host:8786.",
    )
    throws_per_task = param.Integer(
        default=8, bounds=(1, 1000), doc="Throws and bootstrap replicas per Dask task (with a scheduler)."
    )

    def validate(self) -> None:
        if self.scheduler and self.stop_on_convergence:
            raise ConfigError(
                "UnfoldingConfig.stop_on_convergence: cannot be used with a scheduler "
                "(tasks could stop at different iterations)"
            )
        if self.sample == "file" and not self.data_file:
            raise ConfigError("UnfoldingConfig.data_file: required when sample is 'file'")
        if not self.distributions:
            raise ConfigError(
                "UnfoldingConfig.distributions: choose at least one of " + ", ".join(DISTRIBUTIONS)
            )


def load_events(config: UnfoldingConfig) -> pd.DataFrame:
    """The built-in sample, or a user's file validated against the ND280 schema."""
    if config.sample == "builtin":
        return nd280.generate(config.n_events, config.seed)
    return read_table(Path(config.data_file), ND280_SCHEMA)


def throw_kinds(events: pd.DataFrame) -> tuple[str, ...]:
    """Systematic kinds the events support: cross-section throws need the generator's model columns."""
    if all(c in events.columns for c in nd280.ND280_MODEL_COLUMNS):
        return ("flux", "xsec", "detector")
    return ("flux", "detector")


def kinematic_features(events: pd.DataFrame, level: str) -> np.ndarray:
    """Muon and leading-proton kinematics as classifier inputs, float32 (N, 8).

    The same information as (p, cos theta, phi) of both particles, in smooth coordinates: muon
    (p [GeV/c], cos theta, cos phi, sin phi), proton (p [GeV/c], cos theta) and the proton's transverse
    momentum [GeV/c] in the frame whose x axis is the muon's transverse direction (zero without a proton).
    Azimuths are periodic and enter dpT, dalphaT and dphiT only through their difference, which a
    classifier would otherwise have to learn from raw angles.
    """
    mu_phi = events[f"{level}_mu_phi"].to_numpy()
    p_p = events[f"{level}_p_p"].to_numpy()
    p_cos = events[f"{level}_p_cos"].to_numpy()
    p_t = p_p * np.sqrt(np.clip(1.0 - p_cos**2, 0.0, None))
    dphi = events[f"{level}_p_phi"].to_numpy() - mu_phi
    columns = [
        events[f"{level}_mu_p"].to_numpy(),
        events[f"{level}_mu_cos"].to_numpy(),
        np.cos(mu_phi),
        np.sin(mu_phi),
        p_p,
        p_cos,
        p_t * np.cos(dphi),
        p_t * np.sin(dphi),
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def reco_features(events: pd.DataFrame) -> np.ndarray:
    """Reco inputs: muon and proton kinematics plus a one-hot sample ID, float32 (N, 16)."""
    onehot = np.zeros((len(events), N_SAMPLES), np.float32)
    rows = np.flatnonzero(events["pass_reco"].to_numpy())
    onehot[rows, events["sample_id"].to_numpy()[rows]] = 1.0
    return np.concatenate([kinematic_features(events, "reco"), onehot], axis=1)


def truth_features(events: pd.DataFrame) -> np.ndarray:
    """Truth inputs: muon and proton kinematics, float32 (N, 8)."""
    return kinematic_features(events, "true")


def _values(events: pd.DataFrame, binning: Binning, level: str) -> list[np.ndarray]:
    return [events[c].to_numpy() for c in binning.columns(f"{level}_")]


def _histogram_rows(
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


def _poisson_weights(n_replicas: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 7])
    return rng.poisson(1.0, size=(n_replicas, n)).astype(np.float32)


def run_unfolding(config: UnfoldingConfig, progress: Progress) -> dict[str, Any]:
    """Run OmniFold (and IBU) on one fake-data set; return histograms, chi2 table and weights."""
    t0 = time.perf_counter()
    progress.update(0.0, "preparing events")
    events = load_events(config)
    mc, data = nd280.split_mc_data(events, config.seed)
    if len(data) == 0 or len(mc) == 0:
        raise DataError(f"{config.data_file or 'sample'}: no events left for MC or data after the split")
    # Work in events (one per MC event, fake-data weights on top): the unfolding's statistics are Poisson
    # in counts, not in cm^2. xsec_scale converts unfolded event counts back to cm^2 per nucleon.
    xsec_scale = float(data["weight"].mean())
    mc_prior = (mc["weight"].to_numpy() / mc["weight"].mean()).astype(np.float32)
    fake = nd280.fake_data_weights(data, config.fake_data)
    data_w = (data["weight"].to_numpy() / data["weight"].mean() * fake).astype(np.float32)
    progress.log(f"{len(mc)} MC and {len(data)} data events; fake data '{config.fake_data}'")

    progress.update(0.02, f"drawing {config.n_throws} throws")
    throws = None
    if config.n_throws:
        throws = nd280.throw_weights(mc, config.n_throws, seed=config.seed, kinds=throw_kinds(mc))
    boot = _poisson_weights(config.n_bootstrap, len(data), config.seed)
    # ensemble members: nominal, MC throws, data bootstrap replicas
    mc_members = [mc_prior[None]]
    data_members = [data_w[None]]
    if throws is not None:
        mc_members.append(mc_prior[None] * throws)
        data_members.append(np.repeat(data_w[None], config.n_throws, axis=0))
    if config.n_bootstrap:
        mc_members.append(np.repeat(mc_prior[None], config.n_bootstrap, axis=0))
        data_members.append(data_w[None] * boot)
    mc_weights = np.concatenate(mc_members)
    data_weights = np.concatenate(data_members)
    n_syst = config.n_throws

    progress.update(0.05, "OmniFold")
    selected = data["pass_reco"].to_numpy()  # data are what the detector selected
    settings = OmniFoldSettings(
        iterations=config.iterations,
        trials=config.trials,
        hidden=tuple([config.hidden_units] * config.hidden_layers),
        lr=config.learning_rate,
        batch_size=config.batch_size,
        epochs=config.epochs,
        patience=config.patience,
        weight_clip=(0.0, config.weight_clip_max),
        warm_start=config.warm_start,
        stop_on_convergence=config.stop_on_convergence,
        device=config.device,
        seed=config.seed,
    )
    inputs = (
        reco_features(mc),
        truth_features(mc),
        mc["pass_reco"].to_numpy(),
        mc["pass_truth"].to_numpy(),
        reco_features(data[selected]),
        mc_weights,
        data_weights[:, selected],
        settings,
    )
    if config.scheduler:
        of = unfold_omnifold_distributed(
            *inputs,
            progress=progress.subrange(0.05, 0.9),
            scheduler=config.scheduler,
            throws_per_task=config.throws_per_task,
        )
    else:
        of = unfold_omnifold(*inputs, progress=progress.subrange(0.05, 0.9))
    push = np.atleast_2d(of.weights(iteration=-1, step=2))  # (members, N_mc), multiplies the prior

    histograms, budgets, chi2_rows = [], [], {}
    for k, name in enumerate(config.distributions):
        progress.check_cancelled()
        progress.update(0.9 + 0.1 * k / len(config.distributions), f"comparing {name}")
        binning = BINNINGS[name]
        truth_values = _values(data[data["pass_truth"].to_numpy()], binning, "true")
        truth_w = data_w[data["pass_truth"].to_numpy()]
        truth = binning.histogram(*truth_values, weights=truth_w)
        truth_err = np.sqrt(binning.histogram(*truth_values, weights=truth_w**2))
        *omnifold, budget = _omnifold_histograms(
            mc, mc_weights, push, of.trial_weights[:, 0], binning, n_syst
        )
        estimates = {"omnifold": tuple(omnifold)}
        if budget is not None:
            budgets.append(budget.reset_index().assign(distribution=name))
        if config.run_ibu:
            estimates["ibu"] = _unfold_ibu(
                mc, data, mc_weights, data_weights, binning, config, n_syst, progress, name
            )
        prior_mask = mc["pass_truth"].to_numpy()
        prior = binning.histogram(*_values(mc[prior_mask], binning, "true"), weights=mc_prior[prior_mask])
        histograms += [
            _histogram_rows(name, "truth", binning, truth, truth_err),
            _histogram_rows(name, "prior", binning, prior, np.zeros_like(prior)),
        ]
        # bins no method populates (zero variance everywhere) carry no information and are left out
        used = np.all([np.diag(cov) > 0 for _, cov in estimates.values()], axis=0)
        if not used.all():
            progress.log(f"{name}: {int((~used).sum())} empty bin(s) left out of chi2")
        for method, (nominal, cov) in estimates.items():
            histograms.append(_histogram_rows(name, method, binning, nominal, np.sqrt(np.diag(cov))))
            chi2_rows.setdefault(method, {})[name] = chi2_with_covariance(
                nominal[used], truth[used], cov[np.ix_(used, used)]
            )
        chi2_rows.setdefault("ndof", {})[name] = float(used.sum())
    hist_frame = pd.concat(histograms, ignore_index=True)
    progress.artefact("histograms", hist_frame)
    chi2_table = pd.DataFrame(chi2_rows).T.reset_index(names="method")
    chi2_table.insert(0, "fake_data", config.fake_data)
    diagnostics = of.diagnostics_frame()
    t2k_rows, t2k_chi2 = t2k_overlay(mc, data, data_w, mc_weights * push, n_syst, xsec_scale)
    return {
        "histograms": hist_frame,
        "chi2_table": chi2_table,
        "diagnostics": diagnostics,
        "uncertainty_budget": pd.concat(budgets, ignore_index=True) if budgets else pd.DataFrame(),
        "t2k_comparison": t2k_rows,
        "t2k_chi2": t2k_chi2,
        "weights": (mc_prior * push[0]).astype(np.float32),
        "converged_at": of.converged_at,
        "xsec_scale": xsec_scale,
        "n_mc": len(mc),
        "n_data": len(data),
        "seconds": time.perf_counter() - t0,
    }


T2K_UNIT_CM2 = 1e-38


def t2k_overlay(
    mc: pd.DataFrame,
    data: pd.DataFrame,
    data_w: np.ndarray,
    unfolded: np.ndarray,
    n_syst: int,
    xsec_scale: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The T2K CC0pi-Np STV measurement (PRD 98, 032003) next to the prior, the fake data's truth and
    OmniFold's result, all restricted to its signal phase space and in its binning and units.

    ``data_w`` (N_data,) fake-data event weights and ``unfolded`` (M, N_mc) OmniFold's weights per
    ensemble member, both in events; ``xsec_scale`` converts events to cm^2 per carbon nucleon.
    Returns long-format histogram rows (``value``/``error`` per bin in 1e-38 cm^2 per CH nucleon,
    distributions ``dpt_t2k`` ...) and a table of chi2 against T2K with its covariance (plus the
    unfolding's own covariance for OmniFold), with ndof = 8 bins. IBU is left out: it unfolds in the
    analysis binnings, not in T2K's phase space.
    """
    to_ch = nd280.CH_PER_CARBON_NUCLEON * xsec_scale / T2K_UNIT_CM2
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
        omnifold_cov = _member_covariance(members, n_syst, mc_var)
        prior = nd280.predict_stv(mc, variable, meas.edges) * widths / T2K_UNIT_CM2
        true_data = (data.loc[data_in, f"true_{variable}"].to_numpy(),)
        truth = binning.histogram(*true_data, weights=data_w[data_in]) * to_ch
        truth_err = np.sqrt(binning.histogram(*true_data, weights=data_w[data_in] ** 2)) * to_ch
        name = binning.name
        rows += [
            _histogram_rows(name, "t2k", binning, t2k, np.sqrt(np.diag(t2k_cov))),
            _histogram_rows(name, "prior", binning, prior, np.zeros_like(prior)),
            _histogram_rows(name, "truth", binning, truth, truth_err),
            _histogram_rows(name, "omnifold", binning, members[0], np.sqrt(np.diag(omnifold_cov))),
        ]
        for method, value, cov in (
            ("prior", prior, t2k_cov),
            ("truth", truth, t2k_cov),
            ("omnifold", members[0], t2k_cov + omnifold_cov),
        ):
            chi2.append(
                {
                    "distribution": name,
                    "method": method,
                    "chi2": chi2_with_covariance(t2k, value, cov),
                    "ndof": len(t2k),
                    "sigma_1e38": float(value.sum()),
                    "sigma_t2k_1e38": float(t2k.sum()),
                }
            )
    return pd.concat(rows, ignore_index=True), pd.DataFrame(chi2)


def _member_covariance(members: np.ndarray, n_syst: int, mc_stat_var: np.ndarray) -> np.ndarray:
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


def _omnifold_histograms(
    mc: pd.DataFrame,
    mc_weights: np.ndarray,
    push: np.ndarray,
    trial_factors: np.ndarray,
    binning: Binning,
    n_syst: int,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame | None]:
    """Truth-level histograms of the OmniFold-weighted MC: nominal, total covariance, uncertainty budget.

    ``mc_weights`` (M, N) prior weights and ``push`` (M, N) unfolded factors per ensemble member;
    ``trial_factors`` (K, N): the nominal's push factors per classifier trial; their spread, divided
    by K for the trial average, adds the classifier-initialisation uncertainty.
    """
    signal = mc["pass_truth"].to_numpy()
    values = _values(mc[signal], binning, "true")
    unfolded = mc_weights[:, signal] * push[:, signal]
    members = binning.histogram(*values, weights=unfolded)
    mc_var = binning.histogram(*values, weights=unfolded[0] ** 2)
    cov = _member_covariance(members, n_syst, mc_var)
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


def _unfold_ibu(
    mc: pd.DataFrame,
    data: pd.DataFrame,
    mc_weights: np.ndarray,
    data_weights: np.ndarray,
    binning: Binning,
    config: UnfoldingConfig,
    n_syst: int,
    progress: Progress,
    name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """IBU of one distribution for every ensemble member at once, with the MC truth as prior.

    The nominal member is also unfolded iteration by iteration to report the test statistic
    between iterations (metric ``ibu_ts``, PyUnfold's KS by default) for the live plots.
    """
    inputs, observed = ibu_inputs(mc, data, binning, mc_weights, data_weights)
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
        max_iter=config.ibu_iterations,
        background=inputs.background[0],
        callback=lambda record: progress.metric(
            "ibu_ts", record["ts_iter"], step=int(record["num_iterations"]), distribution=name
        ),
    )
    values = ibu.ibu_throws(
        observed,
        inputs.response,
        inputs.efficiencies,
        inputs.background,
        prior,
        n_iterations=config.ibu_iterations,
    )
    # MC statistical variance of the nominal unfolded bins: relative error of the truth counts of the response
    signal = mc["pass_truth"].to_numpy()
    truth_w2 = binning.histogram(*_values(mc[signal], binning, "true"), weights=mc_weights[0][signal] ** 2)
    rel_var = truth_w2 / np.clip(inputs.truth[0] ** 2, 1e-300, None)
    return values[0], _member_covariance(values, n_syst, values[0] ** 2 * rel_var)


WORKFLOW = Workflow(
    name="unfold",
    title="Unfolding",
    description="OmniFold vs Iterative Bayesian Unfolding on a T2K-ND280-like CC0pi sample.",
    config_cls=UnfoldingConfig,
    run=run_unfolding,
)
