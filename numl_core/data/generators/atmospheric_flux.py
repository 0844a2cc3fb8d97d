"""Honda et al. (2015) atmospheric neutrino flux tables and the baseline of an atmospheric neutrino.

M. Honda, M. Sajjad Athar, T. Kajita, K. Kasahara, S. Midorikawa, Phys. Rev. D 92, 023004 (2015).
The shipped tables (``numl_core/data/files/honda_atm_flux_2015``) give d Phi / (dE dOmega) in
(m^2 s sr GeV)^-1 for nu_mu, nu_mu_bar, nu_e, nu_e_bar in 20 cos(zenith) bins and 101 energies
(0.1 - 10^4 GeV). numl uses the azimuth-averaged Frejus table as the stand-in for a mid-latitude site
such as Homestake (no Homestake table is shipped).

>>> flux = load_honda_table("frj")
>>> flux.values.shape
(20, 1, 101, 4)
>>> round(float(baseline_km(1.0)), 2), round(float(baseline_km(-1.0)))
(16.48, 12756)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from numl_core.data.kinematics import (  # noqa: F401 - re-exported for the sample modules
    EARTH_RADIUS_KM,
    HOMESTAKE_DEPTH_KM,
    PRODUCTION_HEIGHT_KM,
    baseline_km,
)

FLUX_DIR = Path(__file__).resolve().parent.parent / "files" / "honda_atm_flux_2015"
SITES = {"frj": "frj-nu-20-01-000.d", "kam": "kam-nu-20-12-000.d"}
FLAVOURS = {14: 0, -14: 1, 12: 2, -12: 3}
"""PDG code of the neutrino -> column of the Honda table."""
"""Depth of the Sanford Underground Research Facility's 4850 ft level [km]."""


@dataclass(frozen=True)
class HondaTable:
    """Flux ``values`` (cos bins, azimuth bins, energies, 4 flavours) [(m^2 s sr GeV)^-1].

    ``cos_edges`` ascending (n_cos + 1,); ``energies`` (101,) [GeV]; flavour columns as in :data:`FLAVOURS`.
    """

    cos_edges: np.ndarray
    energies: np.ndarray
    values: np.ndarray

    def flux(self, pdg: np.ndarray, energy: np.ndarray, cos_zenith: np.ndarray) -> np.ndarray:
        """Azimuth-averaged flux at (energy [GeV], cos zenith) for neutrino PDG codes; log-log in energy.

        Energies outside the table are clamped to its ends; cos zenith selects its bin.
        """
        pdg, energy, cos_zenith = np.broadcast_arrays(
            np.asarray(pdg), np.asarray(energy, float), np.asarray(cos_zenith, float)
        )
        unknown = ~np.isin(pdg, list(FLAVOURS))
        if unknown.any():
            raise ValueError(
                f"no Honda flux for PDG code {pdg[unknown][0]}; expected one of {list(FLAVOURS)}"
            )
        column = np.vectorize(FLAVOURS.get, otypes=[int])(pdg)
        averaged = self.values.mean(axis=1)
        ic = np.clip(
            np.searchsorted(self.cos_edges, cos_zenith, side="right") - 1, 0, len(self.cos_edges) - 2
        )
        log_e = np.log(np.clip(energy, self.energies[0], self.energies[-1]))
        grid = np.log(self.energies)
        ie = np.clip(np.searchsorted(grid, log_e, side="right") - 1, 0, len(grid) - 2)
        frac = (log_e - grid[ie]) / (grid[ie + 1] - grid[ie])
        lo = np.log(averaged[ic, ie, column])
        hi = np.log(averaged[ic, ie + 1, column])
        return np.exp(lo + frac * (hi - lo))


@lru_cache(maxsize=2)
def load_honda_table(site: str = "frj") -> HondaTable:
    """Parse a shipped Honda table ("frj" Frejus, azimuth-averaged; "kam" Kamioka, 12 azimuth bins)."""
    if site not in SITES:
        raise ValueError(f"site={site!r} is not one of {sorted(SITES)}")
    path = FLUX_DIR / SITES[site]
    blocks: list[tuple[float, float, list[list[float]]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("average flux"):
            inside = line[line.index("[") + 1 : line.index("]")]
            cos_part = inside.split(",")[0].split("=")[1]
            lo, hi = (float(x) for x in cos_part.split("--"))
            blocks.append((lo, hi, []))
        elif line.strip() and not line.lstrip().startswith("Enu"):
            blocks[-1][2].append([float(x) for x in line.split()])
    cos_lo = np.array([b[0] for b in blocks])
    n_cos = len(np.unique(cos_lo))
    n_az = len(blocks) // n_cos
    table = np.array([b[2] for b in blocks])  # (blocks, energies, 5)
    if table.shape[1:] != (101, 5) or len(blocks) != n_cos * n_az:
        raise ValueError(f"{path}: unexpected table layout {table.shape}")
    table = table.reshape(n_cos, n_az, 101, 5)
    order = np.argsort(cos_lo.reshape(n_cos, n_az)[:, 0])
    table = table[order]
    edges = np.append(np.sort(np.unique(cos_lo)), max(b[1] for b in blocks))
    return HondaTable(edges, table[0, 0, :, 0], table[..., 1:])
