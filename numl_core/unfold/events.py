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

from numl_core.data.generators import nd280_cc0pi as nd280
from numl_core.data.io import read_table
from numl_core.data.schema import DataError, Schema
from numl_core.jobs import Progress
from numl_core.unfold.config import UnfoldingConfig
from numl_core.unfold.inputs import UnfoldingInputs

N_SAMPLES = 8
ND280_SCHEMA = Schema.from_ranges("nd280_cc0pi", nd280.ND280_COLUMNS)


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


def _poisson_weights(n_replicas: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 7])
    return rng.poisson(1.0, size=(n_replicas, n)).astype(np.float32)


@dataclass
class UnfoldingSample:
    """The MC and (fake) data halves of one run and the weights of its ensemble members.

    ``mc_prior`` (N,) and ``data_w`` (Nd,) are the nominal weights (unit mean, fake-data reweighting
    on the data); ``mc_weights`` (M, N) and ``data_weights`` (M, Nd) hold member 0 = nominal, members
    1..``n_syst`` = systematic throws of the MC, then the data's Poisson bootstrap replicas.
    """

    mc: pd.DataFrame
    data: pd.DataFrame
    mc_prior: np.ndarray
    data_w: np.ndarray
    mc_weights: np.ndarray
    data_weights: np.ndarray
    n_syst: int
    xsec_scale: float

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
    """(M, N) MC and (M, Nd) data weights of the nominal, the MC throws and the data bootstrap replicas."""
    mc_members, data_members = [mc_prior[None]], [data_w[None]]
    if config.n_throws:
        throws = nd280.throw_weights(mc, config.n_throws, seed=config.seed, kinds=throw_kinds(mc))
        mc_members.append(mc_prior[None] * throws)
        data_members.append(np.repeat(data_w[None], config.n_throws, axis=0))
    boot = _poisson_weights(config.n_bootstrap, len(data_w), config.seed)
    if config.n_bootstrap:
        mc_members.append(np.repeat(mc_prior[None], config.n_bootstrap, axis=0))
        data_members.append(data_w[None] * boot)
    return np.concatenate(mc_members), np.concatenate(data_members)


def prepare_sample(config: UnfoldingConfig, progress: Progress) -> UnfoldingSample:
    """Load or generate the events, split them into MC and data, reweight the data to the fake data set
    and draw the ensemble members' weights."""
    progress.update(0.0, "preparing events")
    events = load_events(config)
    mc, data = nd280.split_mc_data(events, config.seed)
    if len(data) == 0 or len(mc) == 0:
        raise DataError(f"{config.data_file or 'sample'}: no events left for MC or data after the split")
    mc_prior = (mc["weight"].to_numpy() / mc["weight"].mean()).astype(np.float32)
    fake = nd280.fake_data_weights(data, config.fake_data)
    data_w = (data["weight"].to_numpy() / data["weight"].mean() * fake).astype(np.float32)
    progress.log(f"{len(mc)} MC and {len(data)} data events; fake data '{config.fake_data}'")
    progress.update(0.02, f"drawing {config.n_throws} throws")
    mc_weights, data_weights = _member_weights(config, mc, mc_prior, data_w)
    xsec_scale = float(data["weight"].mean())
    return UnfoldingSample(mc, data, mc_prior, data_w, mc_weights, data_weights, config.n_throws, xsec_scale)
