"""Loaders for the public reference data shipped with numl (``numl_core/data/files``).

* ``t2k_flux_2016``: T2K flux prediction histograms (ND280 and SK, +-250 kA horn, four flavours);
  K. Abe et al. (T2K), Phys. Rev. D 87, 012001 (2013).
* ``t2k_cc0pi_stv_2018``: T2K CC0pi-Np single-transverse-variable cross sections on CH with covariances;
  K. Abe et al. (T2K), Phys. Rev. D 98, 032003 (2018).

Each folder carries its README.md (provenance, units) and SHA256SUMS; :func:`verify_checksums` checks them.

>>> load_t2k_stv("dpt").values.shape
(8,)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

FILES_DIR = Path(__file__).parent / "files"
"""Folder of the shipped reference data sets."""
FLUX_DETECTORS = ("nd280", "sk")
FLUX_FLAVOURS = ("numu", "numub", "nue", "nueb")
FLUX_HORNS = ("plus250kA", "minus250kA")
STV_VARIABLES = {
    "dpt": ("dptResults", "GeV/c"),
    "dalphat": ("datResults", "rad"),
    "dphit": ("dphitResults", "rad"),
}
"""STV name -> (file stem, unit of the variable)."""
T2K_COV_UNIT = 1e-38
"""The shipped STV covariances are in units of (1e-38 cm^2/nucleon/x-unit)^2."""


@dataclass(frozen=True)
class STVMeasurement:
    """A T2K CC0pi-Np differential cross section in one STV.

    ``edges`` (9,) in ``unit``; ``values`` (8,) [cm^2/nucleon/unit]; ``cov`` (8, 8) [(cm^2/nucleon/unit)^2].
    """

    edges: np.ndarray
    values: np.ndarray
    cov: np.ndarray
    variable: str
    unit: str

    @property
    def errors(self) -> np.ndarray:
        """sqrt(diag(cov)) [cm^2/nucleon/unit]."""
        return np.sqrt(np.diag(self.cov))

    @property
    def widths(self) -> np.ndarray:
        """Bin widths [unit]."""
        return np.diff(self.edges)

    @property
    def integrated(self) -> float:
        """Integrated cross section over the measured range [cm^2/nucleon]."""
        return float(np.sum(self.values * self.widths))


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")


def load_t2k_flux(
    detector: str = "nd280", flavour: str = "numu", horn: str = "plus250kA"
) -> tuple[np.ndarray, np.ndarray]:
    """T2K 2016 flux histogram: (edges (221,) [GeV], density (220,) per GeV per unit area per POT).

    The absolute normalisation is the release's (see the folder README); shape uses need none.

    >>> edges, density = load_t2k_flux()
    >>> edges.shape, density.shape, round(float(edges[-1]), 1)
    ((221,), (220,), 30.0)
    """
    _choice("detector", detector, FLUX_DETECTORS)
    _choice("flavour", flavour, FLUX_FLAVOURS)
    _choice("horn", horn, FLUX_HORNS)
    path = FILES_DIR / "t2k_flux_2016" / f"t2kflux_2016_{horn}__enu_{detector}_{flavour}.csv"
    table = pd.read_csv(path)
    low, high = table["bin_low"].to_numpy(float), table["bin_high"].to_numpy(float)
    if not np.allclose(low[1:], high[:-1]):
        raise ValueError(f"{path}: bins are not contiguous")
    return np.append(low, high[-1]), table["value"].to_numpy(float)


def load_t2k_stv(variable: str) -> STVMeasurement:
    """T2K CC0pi-Np dsigma/dx on CH for x in {"dpt", "dalphat", "dphit"}, covariance converted to cm^2 units.

    >>> m = load_t2k_stv("dphit")
    >>> m.unit, round(m.integrated / 1e-39, 3)
    ('rad', 1.326)
    """
    if variable not in STV_VARIABLES:
        raise ValueError(f"variable={variable!r} is not one of {tuple(STV_VARIABLES)}")
    stem, unit = STV_VARIABLES[variable]
    folder = FILES_DIR / "t2k_cc0pi_stv_2018"
    result = pd.read_csv(folder / f"{stem}__Result.csv")
    cov = np.loadtxt(folder / f"{stem}__Covariance_Matrix.csv", delimiter=",") * T2K_COV_UNIT**2
    edges = np.append(result["bin_low"].to_numpy(float), result["bin_high"].to_numpy(float)[-1])
    return STVMeasurement(edges, result["value"].to_numpy(float), 0.5 * (cov + cov.T), variable, unit)


def verify_checksums(folder: str | Path) -> dict[str, bool]:
    """Check a folder's SHA256SUMS: file name -> whether its SHA-256 matches (False also if missing).

    >>> all(verify_checksums(FILES_DIR / "t2k_cc0pi_stv_2018").values())
    True
    """
    folder = Path(folder)
    status = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        path = folder / name.strip().lstrip("*")
        status[name.strip()] = path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest
    return status
