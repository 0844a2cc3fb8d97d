"""The points of a cross-section fit: one nucleus's table, its data sets, its train/val/test split.

:class:`PointSet` bundles the arrays that travel together through a fit (features, cross sections, errors,
data-set index, prior widths of the data sets' normalisations); the functions below prepare them from the
QES archive (:mod:`numl_core.data.electron_scattering`) or a user's file.

Units: GeV, degrees for ``theta_deg``, cross sections d2sigma/dOmega domega per nucleus in nb/sr/GeV.

>>> table = pd.DataFrame({"energy": [1.0, 1.0], "theta": [0.5, 0.5], "omega": [0.1, 0.2],
...                       "cos_theta": [0.88, 0.88], "q2": [0.2, 0.3], "xsec": [2.0, 1.0],
...                       "error": [0.1, 0.1]})
>>> points = PointSet.from_table(table, np.array([0, 0]), np.array([0.05]))
>>> points.take(np.array([1])).xsec.tolist()
[1.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from numl_core.config import ConfigError
from numl_core.data import electron_scattering as es
from numl_core.xsec.model import FEATURES, features

if TYPE_CHECKING:
    from numl_core.xsec.config import XsecConfig

SPLITS = ("train", "val", "test")
NUCLEUS_COLUMNS = ("binding", "fermi_momentum")
"""Per-nucleus columns of a prepared table that inputs such as psi' need."""


@dataclass
class PointSet:
    """Measured points and their data sets.

    ``x`` (N, 5) network features (:data:`~numl_core.xsec.model.FEATURES`), ``xsec`` and ``error`` (N,)
    cross sections and their errors [nb/sr/GeV], ``group`` (N,) data-set index into ``prior`` (K,), the
    relative normalisation uncertainty of each data set (``inf``: its factor is free).
    """

    x: np.ndarray
    xsec: np.ndarray
    error: np.ndarray
    group: np.ndarray
    prior: np.ndarray

    @classmethod
    def from_table(
        cls, table: pd.DataFrame, group: np.ndarray, prior: np.ndarray, names: tuple[str, ...] = FEATURES
    ) -> PointSet:
        """The points of a prepared table (see :func:`load_table`) with their data sets; ``names`` the
        network's inputs (:data:`~numl_core.xsec.model.INPUTS`)."""
        x = features(table, names)
        return cls(x, table["xsec"].to_numpy(), table["error"].to_numpy(), group, prior)

    def __len__(self) -> int:
        return len(self.xsec)

    @property
    def n_sets(self) -> int:
        """The number of data sets K."""
        return len(self.prior)

    def take(self, idx: np.ndarray) -> PointSet:
        """The points ``idx`` (the data sets stay as they are)."""
        return PointSet(self.x[idx], self.xsec[idx], self.error[idx], self.group[idx], self.prior)

    def validate(self) -> PointSet:
        """Check shapes, finiteness and signs; raise a ``ValueError`` naming the field. Returns ``self``.

        >>> PointSet(np.zeros((1, 5)), np.ones(1), np.zeros(1), np.zeros(1, int), np.ones(1)).validate()
        Traceback (most recent call last):
        ...
        ValueError: PointSet.error: errors must be positive
        """
        n = len(self.xsec)
        if np.ndim(self.x) != 2 or len(self.x) != n:
            raise ValueError(f"PointSet.x: shape {np.shape(self.x)}, expected ({n}, F) with F >= 1 inputs")
        for name in ("error", "group"):
            if np.shape(getattr(self, name)) != (n,):
                raise ValueError(f"PointSet.{name}: shape {np.shape(getattr(self, name))}, expected ({n},)")
        if np.ndim(self.prior) != 1 or len(self.prior) == 0:
            raise ValueError(f"PointSet.prior: shape {np.shape(self.prior)}, expected (K,) with K >= 1")
        for name in ("x", "xsec", "error"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"PointSet.{name}: values must be finite")
        if not np.all(self.xsec > 0):
            raise ValueError("PointSet.xsec: cross sections must be positive")
        if not np.all(self.error > 0):
            raise ValueError("PointSet.error: errors must be positive")
        group = np.asarray(self.group)
        if n and (group.dtype.kind not in "iu" or group.min() < 0 or group.max() >= len(self.prior)):
            raise ValueError(f"PointSet.group: must be integers in [0, {len(self.prior)})")
        if not np.all(np.asarray(self.prior) > 0):
            raise ValueError("PointSet.prior: prior widths must be positive (inf: free)")
        return self


def load_table(config: XsecConfig, nucleus: str | None = None) -> pd.DataFrame:
    """The selected nucleus (or file, with the nuclear parameters given in ``config``), low-omega cut
    applied, restricted to the chosen data sets."""
    nucleus = nucleus or config.nucleus
    if nucleus == "file":
        table = es.load_file(
            Path(config.data_file),
            config.omega_min,
            config.drop_lowest,
            config.drop_invalid,
            **config.file_nucleus(),
        )
    else:
        table = es.load_nucleus(nucleus, config.omega_min, config.drop_lowest)
    if nucleus == config.nucleus:
        if config.experiments:
            unknown = sorted(set(config.experiments) - set(table["citation"]))
            if unknown:
                raise ConfigError(f"XsecConfig.experiments: {unknown} not in the {nucleus} data")
            table = table[table["citation"].isin(config.experiments)]
        if config.exclude_settings:
            table = table[~table["setting_label"].isin(config.exclude_settings)]
        if table.empty:
            raise ConfigError("XsecConfig: the chosen experiments and settings leave no points")
    return table.reset_index(drop=True)


def normalisation_groups(table: pd.DataFrame, by: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Data-set index per point (N,), prior widths (K,) and names for ``by`` in experiment|setting|none."""
    if by == "none":
        return np.zeros(len(table), int), np.array([np.inf]), ["all"]
    column, names = ("experiment", "citation") if by == "experiment" else ("setting", "setting_label")
    codes, uniques = pd.factorize(table[column])
    first = table.groupby(codes)[[names, "norm_uncertainty"]].first()
    return codes, first["norm_uncertainty"].to_numpy(float), list(first[names])


def split_points(
    table: pd.DataFrame, mode: str, test_fraction: float, val_fraction: float, seed: int
) -> np.ndarray:
    """A label per point: ``train``, ``val`` or ``test``; ``settings`` holds out whole settings for test."""
    rng = np.random.default_rng([seed, 5])
    labels = np.full(len(table), "train", dtype=object)
    if mode == "settings":
        ids = np.unique(table["setting"])
        n_test = min(max(1, round(test_fraction * len(ids))), len(ids) - 1)
        labels[table["setting"].isin(rng.choice(ids, n_test, replace=False)).to_numpy()] = "test"
    else:
        n_test = max(1, round(test_fraction * len(table)))
        labels[rng.choice(len(table), n_test, replace=False)] = "test"
    rest = np.flatnonzero(labels == "train")
    n_val = round(val_fraction * len(rest))
    labels[rng.choice(rest, n_val, replace=False)] = "val"
    return labels


def omega_grid(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` omega values [GeV] per setting spanning its data, with that setting's kinematics (and the
    nucleus's ``binding`` and ``fermi_momentum`` [GeV] where the table has them)."""
    rows = []
    for sid, part in table.groupby("setting", sort=True):
        first = part.iloc[0]
        omega = np.linspace(part["omega"].min(), part["omega"].max(), n)
        theta = np.radians(first["theta_deg"])
        rows.append(
            pd.DataFrame(
                {
                    "setting": sid,
                    "energy": first["energy"],
                    "theta_deg": first["theta_deg"],
                    "theta": theta,
                    "cos_theta": np.cos(theta),
                    "omega": omega,
                    "q2": es.q_squared(first["energy"], omega, theta),
                    **{k: first[k] for k in NUCLEUS_COLUMNS if k in part},
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
