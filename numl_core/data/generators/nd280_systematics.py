"""Systematic throws and fake data for the ND280 carbon sample, as per-event reweighting of truth/reco.

Every weight is a function of recorded columns and of the model's probabilities, so it is exact for the
generator's model: the axial mass through the Llewellyn Smith ratio at the struck nucleon's rest-frame
energy, FSI strengths through the ratio of the recorded branch probabilities, normalisations by mode.

Parameters (one row per throw, :func:`throw_parameters`):

* flux: ``flux_0..flux_10`` normalisations in E_nu bins ``FLUX_BIN_EDGES`` (T2K's ND280 nu_mu binning),
  correlated (a common part plus a short-range part in bin index);
* xsec: ``axial_mass`` [GeV], ``norm_2p2h``, ``pion_absorption`` and ``proton_fsi`` (relative strengths),
  ``norm_cc1pi``, ``norm_nc``;
* detector: ``det_norm_0..7`` per-sample normalisations (the same topology in FGD1 and FGD2 correlated) and
  ``det_momentum_scale``, a fractional muon momentum-scale shift applied as the ratio of the shifted to the
  nominal reco-momentum spectrum.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from numl_core.data.generators.nd280_physics import (
    MAX_PROTON_RESCATTERS,
    MODEL_COLUMNS,
    MODES,
    PION_ABSORBED_MODES,
    PION_SURVIVED_MODES,
    ND280Physics,
    pion_absorption_probability,
    proton_interaction_probability,
)
from numl_core.data.kinematics import NUCLEON_MASS, momentum_components
from numl_core.data.llewellyn_smith import axial_form_factor, ls_terms
from numl_core.data.schema import DataError

SYSTEMATIC_KINDS = ("flux", "xsec", "detector")
FLUX_BIN_EDGES = np.array([0.0, 0.4, 0.5, 0.6, 0.7, 1.0, 1.5, 2.5, 3.5, 5.0, 7.0, 30.0])
"""E_nu bin edges [GeV] of the flux normalisation parameters."""
FLUX_BIN_SIGMA = np.array([0.12, 0.10, 0.09, 0.09, 0.10, 0.11, 0.12, 0.12, 0.13, 0.14, 0.15])
"""Fractional 1-sigma flux uncertainty per bin (about the size of T2K's ND280 flux errors)."""
FLUX_COMMON_CORRELATION = 0.6
FLUX_CORRELATION_LENGTH = 2.0
"""Correlation = 0.6 + 0.4 exp(-|i - j| / 2): a common normalisation plus neighbouring-bin shape."""
XSEC_PRIORS: dict[str, tuple[float, float]] = {
    "axial_mass": (1.03, 0.10),
    "norm_2p2h": (1.0, 0.3),
    "pion_absorption": (1.0, 0.2),
    "proton_fsi": (1.0, 0.3),
    "norm_cc1pi": (1.0, 0.2),
    "norm_nc": (1.0, 0.3),
}
"""Cross-section parameter -> (nominal, 1-sigma), uncorrelated Gaussians."""
DETECTOR_SAMPLE_SIGMA = np.array([0.03, 0.05, 0.07, 0.08] * 2)
"""Per-sample normalisation uncertainty for sample IDs 0..7."""
DETECTOR_FGD_CORRELATION = 0.5
MOMENTUM_SCALE_SIGMA = 0.02
MOMENTUM_EDGES = np.concatenate([[0.0], np.geomspace(0.1, 5.0, 41), [np.inf]])
"""Reco muon momentum bins [GeV/c] of the momentum-scale reweighting."""

FAKE_DATA_SETS = ("nominal", "dphit_shape", "dphit_shape_norm", "ma_shift", "2p2h_norm", "proton_fsi")
DPHIT_TILT = 1.0
"""dphit_shape: the signal is reweighted by (1 + DPHIT_TILT * dphit[rad]), then renormalised."""
DPHIT_NORM_FACTOR = 1.2
"""dphit_shape_norm: the whole signal is also scaled by this factor."""
FAKE_AXIAL_MASS = 1.2
FAKE_2P2H_NORM = 1.5
FAKE_PROTON_FSI = 1.5


def parameter_names() -> list[str]:
    """Column names of :func:`throw_parameters`, in order."""
    return (
        [f"flux_{i}" for i in range(len(FLUX_BIN_SIGMA))]
        + list(XSEC_PRIORS)
        + [f"det_norm_{i}" for i in range(len(DETECTOR_SAMPLE_SIGMA))]
        + ["det_momentum_scale"]
    )


def parameter_prior() -> tuple[np.ndarray, np.ndarray]:
    """(nominal values, covariance) of all throw parameters, ordered as :func:`parameter_names`."""
    i = np.arange(len(FLUX_BIN_SIGMA))
    corr = FLUX_COMMON_CORRELATION + (1 - FLUX_COMMON_CORRELATION) * np.exp(
        -np.abs(i[:, None] - i[None, :]) / FLUX_CORRELATION_LENGTH
    )
    flux_cov = corr * np.outer(FLUX_BIN_SIGMA, FLUX_BIN_SIGMA)
    xsec_mean = np.array([v[0] for v in XSEC_PRIORS.values()])
    xsec_cov = np.diag([v[1] ** 2 for v in XSEC_PRIORS.values()])
    j = np.arange(len(DETECTOR_SAMPLE_SIGMA))
    det_corr = np.where(j[:, None] == j[None, :], 1.0, 0.0) + np.where(
        np.abs(j[:, None] - j[None, :]) == 4, DETECTOR_FGD_CORRELATION, 0.0
    )
    det_cov = det_corr * np.outer(DETECTOR_SAMPLE_SIGMA, DETECTOR_SAMPLE_SIGMA)
    blocks = [flux_cov, xsec_cov, det_cov, np.array([[MOMENTUM_SCALE_SIGMA**2]])]
    size = sum(len(b) for b in blocks)
    cov = np.zeros((size, size))
    start = 0
    for b in blocks:
        cov[start : start + len(b), start : start + len(b)] = b
        start += len(b)
    mean = np.concatenate(
        [np.ones(len(FLUX_BIN_SIGMA)), xsec_mean, np.ones(len(DETECTOR_SAMPLE_SIGMA)), [0.0]]
    )
    return mean, cov


def throw_parameters(n_throws: int, seed: int) -> pd.DataFrame:
    """Draw ``n_throws`` correlated Gaussian parameter sets (one row each); deterministic in ``seed``.

    All kinds are always drawn, so a throw's flux parameters do not depend on which kinds are used.

    >>> throw_parameters(3, seed=1).shape
    (3, 26)
    """
    mean, cov = parameter_prior()
    z = np.random.default_rng(seed).standard_normal((n_throws, len(mean)))
    return pd.DataFrame(mean + z @ np.linalg.cholesky(cov).T, columns=parameter_names())


def rest_frame_energy(events: pd.DataFrame, physics: ND280Physics) -> np.ndarray:
    """Neutrino energy [GeV] in the rest frame of the struck (off-shell) nucleon, as used for CCQE."""
    p = events["true_pn_p"].to_numpy(float)
    _, _, pz = momentum_components(
        p, events["true_pn_cos"].to_numpy(float), events["true_pn_phi"].to_numpy(float)
    )
    e = np.sqrt(NUCLEON_MASS**2 + p**2) - physics.binding_energy
    return events["enu"].to_numpy(float) * (e - pz) / np.sqrt(e**2 - p**2)


def _require(events: pd.DataFrame, columns: tuple[str, ...], purpose: str) -> None:
    missing = [c for c in columns if c not in events.columns]
    if missing:
        raise DataError(f"{purpose} needs column(s) {missing}, which the event table lacks")


@dataclass(frozen=True)
class FluxReweighter:
    """E_nu bin of every event, for flux normalisation throws."""

    flux_bin: np.ndarray

    @classmethod
    def build(cls, events: pd.DataFrame) -> FluxReweighter:
        enu = events["enu"].to_numpy(float)
        return cls(np.clip(np.searchsorted(FLUX_BIN_EDGES, enu) - 1, 0, len(FLUX_BIN_SIGMA) - 1))

    def apply(self, w: np.ndarray, params: pd.Series) -> None:
        """Multiply ``w`` (n_events,) in place by the thrown normalisation of each event's E_nu bin."""
        flux = params[[f"flux_{i}" for i in range(len(FLUX_BIN_SIGMA))]].to_numpy(float)
        w *= np.clip(flux, 0.0, None)[self.flux_bin]


@dataclass(frozen=True)
class XsecReweighter:
    """Truth quantities for the cross-section and FSI reweighting (index arrays into the event table).

    Needs the generator's model columns (``ND280_MODEL_COLUMNS``) besides ``mode``, ``enu``, ``true_q2``
    and ``true_has_proton``. Each ``apply_*`` method multiplies a weight array (n_events,) in place.
    """

    physics: ND280Physics
    ccqe: np.ndarray
    ls: tuple[np.ndarray, np.ndarray, np.ndarray]
    q2: np.ndarray
    ls_nominal: np.ndarray
    mode_index: dict[int, np.ndarray]
    absorbed: np.ndarray
    survived: np.ndarray
    abs_base_absorbed: np.ndarray
    abs_base_survived: np.ndarray
    with_proton: np.ndarray
    rescatters: np.ndarray

    @classmethod
    def build(cls, events: pd.DataFrame, physics: ND280Physics) -> XsecReweighter:
        _require(events, MODEL_COLUMNS, "cross-section reweighting")
        mode = events["mode"].to_numpy()
        ccqe = np.flatnonzero(mode == 1)
        q2 = events["true_q2"].to_numpy(float)[ccqe]
        ls = ls_terms(rest_frame_energy(events.iloc[ccqe], physics), q2)
        fa = axial_form_factor(q2, physics.axial_mass)
        absorbed = np.flatnonzero(np.isin(mode, PION_ABSORBED_MODES))
        survived = np.flatnonzero(np.isin(mode, PION_SURVIVED_MODES))
        pion_p = events["true_pi_p"].to_numpy(float)
        with_proton = np.flatnonzero(events["true_has_proton"].to_numpy(bool))
        return cls(
            physics=physics,
            ccqe=ccqe,
            ls=ls,
            q2=q2,
            ls_nominal=ls[0] + ls[1] * fa + ls[2] * fa**2,
            mode_index={m: np.flatnonzero(mode == m) for m in MODES},
            absorbed=absorbed,
            survived=survived,
            abs_base_absorbed=pion_absorption_probability(pion_p[absorbed]),
            abs_base_survived=pion_absorption_probability(pion_p[survived]),
            with_proton=with_proton,
            rescatters=events["true_proton_rescatters"].to_numpy(np.int64)[with_proton],
        )

    def apply_axial_mass(self, w: np.ndarray, value: float) -> None:
        """M_A -> value [GeV] on CCQE: ratio of Llewellyn Smith cross sections at the same (E_rest, Q^2)."""
        fa = axial_form_factor(self.q2, value)
        new = self.ls[0] + self.ls[1] * fa + self.ls[2] * fa**2
        ratio = np.divide(new, self.ls_nominal, out=np.ones_like(new), where=self.ls_nominal > 0)
        w[self.ccqe] *= np.clip(ratio, 0.0, None)

    def apply_mode_norm(self, w: np.ndarray, modes: tuple[int, ...], value: float) -> None:
        """Scale events of the given modes by max(value, 0)."""
        for m in modes:
            w[self.mode_index[m]] *= max(value, 0.0)

    def apply_pion_absorption(self, w: np.ndarray, scale: float) -> None:
        """Absorption strength x scale: P'/P for absorbed pions, (1 - P')/(1 - P) for surviving ones."""
        s0 = self.physics.pion_absorption_strength
        s1 = s0 * max(scale, 0.0)
        base_a, base_s = self.abs_base_absorbed, self.abs_base_survived
        w[self.absorbed] *= np.clip(s1 * base_a, 0, 1) / np.clip(s0 * base_a, 0, 1)
        w[self.survived] *= (1.0 - np.clip(s1 * base_s, 0, 1)) / (1.0 - np.clip(s0 * base_s, 0, 1))

    def apply_proton_fsi(self, w: np.ndarray, scale: float) -> None:
        """Cascade step probability p -> p' (strength x scale): (p'/p)^k, times (1-p')/(1-p) where the
        cascade stopped before its cap."""
        p = float(proton_interaction_probability(self.physics.proton_fsi_strength))
        new = float(proton_interaction_probability(self.physics.proton_fsi_strength * max(scale, 0.0)))
        stopped = self.rescatters < MAX_PROTON_RESCATTERS
        w[self.with_proton] *= (new / p) ** self.rescatters * np.where(stopped, (1.0 - new) / (1.0 - p), 1.0)

    def apply(self, w: np.ndarray, params: pd.Series) -> None:
        """All cross-section parameters of one throw."""
        self.apply_axial_mass(w, params["axial_mass"])
        self.apply_mode_norm(w, (2,), params["norm_2p2h"])
        self.apply_mode_norm(w, (3, 4), params["norm_cc1pi"])
        self.apply_mode_norm(w, (5, 6), params["norm_nc"])
        self.apply_pion_absorption(w, params["pion_absorption"])
        self.apply_proton_fsi(w, params["proton_fsi"])


@dataclass(frozen=True)
class DetectorReweighter:
    """Selected events' sample IDs and reco muon momenta, for detector throws."""

    selected: np.ndarray
    sample_id: np.ndarray
    mu_p: np.ndarray
    mu_bin: np.ndarray
    mu_weight: np.ndarray
    mu_hist: np.ndarray

    @classmethod
    def build(cls, events: pd.DataFrame) -> DetectorReweighter:
        selected = np.flatnonzero(events["pass_reco"].to_numpy(bool))
        mu_p = events["reco_mu_p"].to_numpy(float)[selected]
        mu_bin = np.searchsorted(MOMENTUM_EDGES, mu_p, side="right") - 1
        mu_weight = events["weight"].to_numpy(float)[selected]
        return cls(
            selected=selected,
            sample_id=np.clip(events["sample_id"].to_numpy(np.int64)[selected], 0, 7),
            mu_p=mu_p,
            mu_bin=mu_bin,
            mu_weight=mu_weight,
            mu_hist=np.bincount(mu_bin, mu_weight, minlength=len(MOMENTUM_EDGES) - 1),
        )

    def apply(self, w: np.ndarray, params: pd.Series) -> None:
        """Per-sample normalisations of selected events, times the ratio of the selected reco-muon-momentum
        spectrum scaled by (1 + det_momentum_scale) to the nominal one."""
        norm = params[[f"det_norm_{i}" for i in range(len(DETECTOR_SAMPLE_SIGMA))]].to_numpy(float)
        shift = params["det_momentum_scale"]
        shifted_bin = np.searchsorted(MOMENTUM_EDGES, self.mu_p * (1.0 + shift), side="right") - 1
        shifted = np.bincount(shifted_bin, self.mu_weight, minlength=len(MOMENTUM_EDGES) - 1)
        ratio = np.divide(shifted, self.mu_hist, out=np.ones_like(shifted), where=self.mu_hist > 0)
        w[self.selected] *= np.clip(norm, 0.0, None)[self.sample_id] * ratio[self.mu_bin]


def _check_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    unknown = set(kinds) - set(SYSTEMATIC_KINDS)
    if unknown:
        raise ValueError(f"unknown systematic kinds {sorted(unknown)}; choose from {SYSTEMATIC_KINDS}")
    return tuple(kinds)


def iter_throw_weights(
    events: pd.DataFrame,
    n_throws: int = 100,
    seed: int = 0,
    kinds: tuple[str, ...] = SYSTEMATIC_KINDS,
    physics: ND280Physics = ND280Physics(),
) -> Iterator[np.ndarray]:
    """Yield the weights (n_events,) float64 of throws 0..n_throws-1 one at a time (bounded memory).

    The "xsec" kind needs the generator's model columns; tables without them can use flux and detector.
    """
    kinds = _check_kinds(kinds)
    params = throw_parameters(n_throws, seed)
    reweighters = []
    if "flux" in kinds:
        reweighters.append(FluxReweighter.build(events))
    if "xsec" in kinds:
        reweighters.append(XsecReweighter.build(events, physics))
    if "detector" in kinds:
        reweighters.append(DetectorReweighter.build(events))
    for i in range(n_throws):
        w = np.ones(len(events))
        for reweighter in reweighters:
            reweighter.apply(w, params.iloc[i])
        yield w


def throw_weights(
    events: pd.DataFrame,
    n_throws: int = 100,
    seed: int = 0,
    kinds: tuple[str, ...] = SYSTEMATIC_KINDS,
    dtype: type = np.float32,
    physics: ND280Physics = ND280Physics(),
) -> np.ndarray:
    """Multiplicative systematic weights ``(n_throws, n_events)`` from correlated parameter throws.

    Throw i uses row i of ``throw_parameters(n_throws, seed)``; weights multiply ``events["weight"]``.
    Only one float64 throw is held besides the ``dtype`` output.
    """
    out = np.empty((n_throws, len(events)), dtype=dtype)
    for i, w in enumerate(iter_throw_weights(events, n_throws, seed, kinds, physics)):
        out[i] = w
    return out


def fake_data_weights(events: pd.DataFrame, name: str, physics: ND280Physics = ND280Physics()) -> np.ndarray:
    """Per-event weights (n_events,) that turn the nominal sample into fake data set ``name``.

    * ``nominal``: ones.
    * ``dphit_shape``: CC0pi events with a proton (``pass_truth & true_has_proton``) x (1 + DPHIT_TILT *
      true_dphit) x c, with c such that the total signal (``pass_truth``) cross section is unchanged.
    * ``dphit_shape_norm``: the same, and every ``pass_truth`` event x DPHIT_NORM_FACTOR.
    * ``ma_shift``: CCQE with M_A -> 1.2 GeV (exact Llewellyn Smith ratio).
    * ``2p2h_norm``: 2p2h x 1.5.
    * ``proton_fsi``: proton cascade step probability x 1.5 (branch-probability ratio).
    """
    if name not in FAKE_DATA_SETS:
        raise ValueError(f"fake data set {name!r} is not one of {FAKE_DATA_SETS}")
    n = len(events)
    if name == "nominal":
        return np.ones(n)
    if name in ("dphit_shape", "dphit_shape_norm"):
        signal = events["pass_truth"].to_numpy(bool)
        shaped = signal & events["true_has_proton"].to_numpy(bool)
        weight = events["weight"].to_numpy(float)
        tilt = 1.0 + DPHIT_TILT * events["true_dphit"].to_numpy(float)
        c = np.sum(weight[shaped]) / np.sum(weight[shaped] * tilt[shaped])
        w = np.where(shaped, c * tilt, 1.0)
        return np.where(signal, DPHIT_NORM_FACTOR * w, w) if name == "dphit_shape_norm" else w
    reweighter = XsecReweighter.build(events, physics)
    w = np.ones(n)
    if name == "ma_shift":
        reweighter.apply_axial_mass(w, FAKE_AXIAL_MASS)
    elif name == "2p2h_norm":
        reweighter.apply_mode_norm(w, (2,), FAKE_2P2H_NORM)
    else:
        reweighter.apply_proton_fsi(w, FAKE_PROTON_FSI)
    return w
