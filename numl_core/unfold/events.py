"""The events of an unfolding run: the ND280 CC0pi sample, its classifier features, and the MC and
(fake) data halves with the weights of every ensemble member (nominal, systematic throws, bootstrap
replicas of the data).

All weights are in events (one per MC event, fake-data weights on top): the unfolding's statistics are
Poisson in counts, not in cm^2. ``xsec_scale`` (cm^2/nucleon per event) converts counts back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from numl_core.config import ConfigError
from numl_core.data.generators import nd280_cc0pi as nd280
from numl_core.data.schema import DataError
from numl_core.jobs import Progress
from numl_core.unfold import user_files
from numl_core.unfold.config import UnfoldingConfig
from numl_core.unfold.inputs import UnfoldingInputs

N_SAMPLES = 8
ND280_SCHEMA = user_files.ND280_SCHEMA


def load_events(config: UnfoldingConfig) -> pd.DataFrame:
    """The built-in sample, or the user's one file (``data_file``, split later) validated against the ND280
    schema, its throw-weight columns checked."""
    if config.sample == "builtin":
        return nd280.generate(config.n_events, config.seed)
    return user_files.read_mc_file(Path(config.data_file), config)


def load_mc_data(config: UnfoldingConfig) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """(mc, data, whether the data have truth): the user's MC and data files when ``mc_file`` is set (see
    :mod:`~numl_core.unfold.user_files`), else the built-in sample or one file split at random in halves."""
    if config.sample == "file" and config.mc_file:
        mc = user_files.read_mc_file(Path(config.mc_file), config)
        data, data_has_truth = user_files.read_data_file(Path(config.data_file))
        return mc, data, data_has_truth
    mc, data = nd280.split_mc_data(load_events(config), config.seed)
    if len(data) == 0 or len(mc) == 0:
        raise DataError(f"{config.data_file or 'sample'}: no events left for MC or data after the split")
    return mc, data, True


def throw_kinds(events: pd.DataFrame) -> tuple[str, ...]:
    """Systematic kinds the events support: cross-section throws need the generator's model columns."""
    if all(c in events.columns for c in nd280.ND280_MODEL_COLUMNS):
        return ("flux", "xsec", "detector")
    return ("flux", "detector")


def kinematic_features(events: pd.DataFrame, level: str) -> np.ndarray:
    """Muon and leading-proton kinematics as classifier inputs, float32 (N, 11).

    The same information as (p, cos theta, phi) of both particles, in smooth coordinates: muon
    (p [GeV/c], cos theta, cos phi, sin phi), proton (p [GeV/c], cos theta) and the proton's transverse
    momentum [GeV/c] in the frame whose x axis is the muon's transverse direction (zero without a proton).
    Azimuths are periodic and enter dpT, dalphaT and dphiT only through their difference, which a
    classifier would otherwise have to learn from raw angles. Then the transverse variables themselves,
    dpT [GeV/c], cos dalphaT and dphiT [rad] (zero without a proton): functions of the columns before,
    but the coordinates the analysis bins in and IBU unfolds in, which the classifiers learn poorly from
    the momenta in a few epochs.
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
        events[f"{level}_dpt"].to_numpy(),
        np.cos(events[f"{level}_dalphat"].to_numpy()),
        events[f"{level}_dphit"].to_numpy(),
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def reco_features(events: pd.DataFrame) -> np.ndarray:
    """Reco inputs: muon and proton kinematics plus a one-hot sample ID, float32 (N, 19)."""
    onehot = np.zeros((len(events), N_SAMPLES), np.float32)
    rows = np.flatnonzero(events["pass_reco"].to_numpy())
    onehot[rows, events["sample_id"].to_numpy()[rows]] = 1.0
    return np.concatenate([kinematic_features(events, "reco"), onehot], axis=1)


def truth_features(events: pd.DataFrame) -> np.ndarray:
    """Truth inputs: muon and proton kinematics, float32 (N, 11)."""
    return kinematic_features(events, "true")


def _poisson_weights(n_replicas: int, n: int, seed: int, stream: int = 7) -> np.ndarray:
    """(n_replicas, n) float32 Poisson(1) counts: one statistical replica of n events per row."""
    rng = np.random.default_rng([seed, stream])
    return rng.poisson(1.0, size=(n_replicas, n)).astype(np.float32)


@dataclass
class UnfoldingSample:
    """The MC and (fake) data halves of one run and the weights of its ensemble members.

    ``mc_prior`` (N,) and ``data_w`` (Nd,) are the nominal weights (unit mean, fake-data reweighting
    on the data); ``mc_weights`` (M, N) and ``data_weights`` (M, Nd) hold member 0 = nominal, members
    1..``n_syst`` = throws of the MC, then the data's Poisson bootstrap replicas. With
    ``throw_statistics`` each throw also carries Poisson(1) weights of every MC and data event, so the
    throws' spread is the whole covariance. ``data_has_truth`` is False for real data (no truth columns):
    nothing is then compared with a truth.
    """

    mc: pd.DataFrame
    data: pd.DataFrame
    mc_prior: np.ndarray
    data_w: np.ndarray
    mc_weights: np.ndarray
    data_weights: np.ndarray
    n_syst: int
    xsec_scale: float
    throw_statistics: bool = False
    data_has_truth: bool = True

    @property
    def throws(self) -> slice:
        """Members that are throws (after the nominal, before the bootstrap replicas)."""
        return slice(1, 1 + self.n_syst)

    def omnifold_inputs(self) -> UnfoldingInputs:
        """Features, masks and member weights for OmniFold; the data are what the detector selected."""
        selected = self.data["pass_reco"].to_numpy()
        return UnfoldingInputs(
            reco_features(self.mc),
            truth_features(self.mc),
            self.mc["pass_reco"].to_numpy(),
            self.mc["pass_truth"].to_numpy(),
            reco_features(self.data[selected]),
            self.mc_weights,
            self.data_weights[:, selected],
        )


def _member_weights(
    config: UnfoldingConfig, mc: pd.DataFrame, mc_prior: np.ndarray, data_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) MC and (M, Nd) data weights of the nominal, the MC throws and the data bootstrap replicas.

    The throws are the MC's own throw-weight columns when it has them (``config.throw_weight_prefix``),
    else the built-in reweighters' (:func:`throw_kinds`). With ``config.throw_statistics`` throw t also
    multiplies every MC event and every data event by its own Poisson(1) count (independent streams for MC
    and data), a statistical replica of both samples.
    """
    mc_members, data_members = [mc_prior[None]], [data_w[None]]
    if config.n_throws:
        throws = user_files.user_throws(mc, config)
        if throws is None:
            throws = nd280.throw_weights(mc, config.n_throws, seed=config.seed, kinds=throw_kinds(mc))
        data_throws = np.repeat(data_w[None], config.n_throws, axis=0)
        if config.throw_statistics:
            throws *= _poisson_weights(config.n_throws, len(mc_prior), config.seed, stream=11)
            data_throws *= _poisson_weights(config.n_throws, len(data_w), config.seed, stream=13)
        mc_members.append(mc_prior[None] * throws)
        data_members.append(data_throws)
    boot = _poisson_weights(config.n_bootstrap, len(data_w), config.seed)
    if config.n_bootstrap:
        mc_members.append(np.repeat(mc_prior[None], config.n_bootstrap, axis=0))
        data_members.append(data_w[None] * boot)
    return np.concatenate(mc_members), np.concatenate(data_members)


def prepare_sample(config: UnfoldingConfig, progress: Progress) -> UnfoldingSample:
    """Load or generate the MC and data (split one sample, or the user's MC and data files), reweight the
    data to the fake data set and draw the ensemble members' weights."""
    progress.update(0.0, "preparing events")
    mc, data, data_has_truth = load_mc_data(config)
    if config.closure:  # the data are the MC's own events: both methods must return the MC's truth
        data, data_has_truth = mc.copy(), True
    if not data_has_truth and config.fake_data != "nominal":
        raise ConfigError(
            f"UnfoldingConfig.fake_data: {config.data_file} has no truth columns (real data), so it cannot "
            f"be reweighted to fake data set {config.fake_data!r}; set fake_data to 'nominal'"
        )
    mc_prior = (mc["weight"].to_numpy() / mc["weight"].mean()).astype(np.float32)
    fake = nd280.fake_data_weights(data, config.fake_data)
    data_w = (data["weight"].to_numpy() / data["weight"].mean() * fake).astype(np.float32)
    progress.log(f"{len(mc)} MC and {len(data)} data events; fake data '{config.fake_data}'")
    if not data_has_truth:
        progress.log(f"{config.data_file}: no truth columns, unfolded as real data")
    own = user_files.throw_columns(mc, config.throw_weight_prefix, "the MC")[: config.n_throws]
    if own:
        progress.log(f"throws: the MC's own columns {own[0]} to {own[-1]}")
    progress.update(0.02, f"drawing {config.n_throws} throws")
    mc_weights, data_weights = _member_weights(config, mc, mc_prior, data_w)
    xsec_scale = float(data["weight"].mean())
    return UnfoldingSample(
        mc,
        data,
        mc_prior,
        data_w,
        mc_weights,
        data_weights,
        config.n_throws,
        xsec_scale,
        config.throw_statistics,
        data_has_truth,
    )
