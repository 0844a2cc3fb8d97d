"""Inclusive electron-nucleus cross sections d2sigma/(dOmega domega) from the QES archive.

Data: the Quasielastic Electron Nucleus Scattering Archive (O. Benhar, D. Day, I. Sick, Rev. Mod. Phys.
80, 189 (2008), arXiv:nucl-ex/0603032), shipped in ``files/qes_archive_genie`` (GENIE's copy, eleven
nuclei) and ``files/qes_archive_nuisance`` (NUISANCE's carbon table, which adds JLab E02-019,
Fomin et al., PRL 105, 212502 (2010)); each folder's README gives provenance and citations.

Units: beam energy E, energy transfer omega and E' = E - omega in GeV; the angle ``theta`` in radians
(``theta_deg`` in degrees as in the files); Q2 in GeV^2; cross sections per nucleus in nb/sr/GeV.
Rows are grouped into *settings* (one spectrum: citation, E, theta) and *experiments* (citation);
each experiment carries a relative normalisation uncertainty for normalisation-aware fits.

>>> table = load_nucleus("C")
>>> len(table), table["citation"].nunique(), table["setting"].nunique()
(2882, 11, 66)
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from numl_core.data.kinematics import NUCLEON_MASS
from numl_core.data.reference import FILES_DIR
from numl_core.data.schema import DataError, finite_as

log = logging.getLogger(__name__)

GENIE_DIR = FILES_DIR / "qes_archive_genie"
NUISANCE_DIR = FILES_DIR / "qes_archive_nuisance"
RAW_COLUMNS = ("Z", "A", "E", "theta", "omega", "xsec", "error", "citation")
"""Columns of an archive table: Z, A, beam energy [GeV], angle [deg], omega [GeV], xsec and error
[nb/sr/GeV per nucleus], citation key."""
COLUMN_ALIASES = {"energy": "E", "q0": "omega", "nu": "omega", "v": "omega", "source": "citation"}
"""Other spellings accepted in CSV/parquet headers (the NUISANCE ``tableformat.txt`` names among them)."""


MEASURED_FERMI_GAS = {
    "6Li": (6.0, 0.169, 0.017),
    "12C": (12.0, 0.221, 0.025),
    "24Mg": (24.0, 0.235, 0.032),
    "40Ca": (40.0, 0.251, 0.028),
    "natNi": (58.69, 0.260, 0.036),
    "89Y": (89.0, 0.254, 0.039),
    "natSn": (118.71, 0.260, 0.042),
    "181Ta": (181.0, 0.265, 0.042),
    "208Pb": (208.0, 0.265, 0.044),
}
"""Fermi-gas parameters measured in quasi-elastic electron scattering (Moniz et al., PRL 26, 445 (1971)):
nucleus -> (mass number A, Fermi momentum k_F [GeV/c], removal energy E-bar [GeV]); natural Ni and Sn at
their mean mass numbers."""

ELEMENTS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
    "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf "
    "Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()
"""Element symbols by charge Z = 1 ... 118."""


def fermi_gas_parameters(a: int) -> tuple[float, float, str]:
    """Removal energy [GeV], Fermi momentum k_F [GeV/c] and the measured nucleus they come from, for
    mass number ``a``: the nucleus of :data:`MEASURED_FERMI_GAS` nearest in A (a tie goes to the heavier
    one), so every nucleus above 208Pb takes lead's values and every one below 6Li (down to A = 1, where
    a Fermi gas means nothing and the values are placeholders) takes lithium's.

    >>> fermi_gas_parameters(48), fermi_gas_parameters(238), fermi_gas_parameters(9)
    ((0.028, 0.251, '40Ca'), (0.044, 0.265, '208Pb'), (0.025, 0.221, '12C'))
    """
    name = min(
        MEASURED_FERMI_GAS, key=lambda n: (abs(MEASURED_FERMI_GAS[n][0] - a), -MEASURED_FERMI_GAS[n][0])
    )
    _, fermi_momentum, binding = MEASURED_FERMI_GAS[name]
    return binding, fermi_momentum, name


@dataclass(frozen=True)
class Nucleus:
    """A target nucleus: symbol, Z, A, the Fermi-gas removal energy ``binding`` [GeV] that shifts the
    quasi-elastic peak (:func:`quasielastic_peak`), the Fermi momentum ``fermi_momentum`` [GeV/c] and the
    shipped table ``file`` (under ``numl_core/data/files``; empty for a nucleus numl does not ship).

    Both parameters are the values measured by Moniz et al., PRL 26, 445 (1971) (:data:`MEASURED_FERMI_GAS`)
    where the nucleus was measured (12C, 40Ca), else those of the nearest measured nucleus in A
    (:func:`fermi_gas_parameters`): 4He and, for k_F, 2H, 3H, 3He from 6Li; 16O from 12C; 27Al from 24Mg;
    56Fe from natural Ni; 197Au and 238U from 208Pb. The lightest keep their nucleon separation energies
    as ``binding`` (2H 0.002, 3H and 3He 0.006 GeV); a Fermi gas describes them poorly, and their k_F
    (lithium's) is only a placeholder.
    """

    symbol: str
    z: int
    a: int
    binding: float
    fermi_momentum: float
    file: str = ""


NUCLEI = {
    n.symbol: n
    for n in (
        Nucleus("H2", 1, 2, 0.002, 0.169, "qes_archive_genie/eQE_2H.dat"),
        Nucleus("H3", 1, 3, 0.006, 0.169, "qes_archive_genie/eQE_3H.dat"),
        Nucleus("He3", 2, 3, 0.006, 0.169, "qes_archive_genie/eQE_3He.dat"),
        Nucleus("He4", 2, 4, 0.017, 0.169, "qes_archive_genie/eQE_4He.dat"),
        Nucleus("C", 6, 12, 0.025, 0.221, "qes_archive_nuisance/12C.dat"),
        Nucleus("O", 8, 16, 0.025, 0.221, "qes_archive_genie/eQE_16O.dat"),
        Nucleus("Al", 13, 27, 0.032, 0.235, "qes_archive_genie/eQE_27Al.dat"),
        Nucleus("Ca", 20, 40, 0.028, 0.251, "qes_archive_genie/eQE_40Ca.dat"),
        Nucleus("Fe", 26, 56, 0.036, 0.260, "qes_archive_genie/eQE_56Fe.dat"),
        Nucleus("Au", 79, 197, 0.044, 0.265, "qes_archive_genie/eQE_197Au.dat"),
        Nucleus("U", 92, 238, 0.044, 0.265, "qes_archive_genie/eQE_238U.dat"),
    )
}
"""The nuclei shipped with numl, by symbol; carbon uses the NUISANCE table (it includes Fomin 2010)."""

NORM_UNCERTAINTY = {
    "Arrington:1995": 0.040,
    "Arrington:1998": 0.040,
    "Bagdasaryan:1988": 0.100,
    "Baran:1988": 0.037,
    "Barreau:1983": 0.020,
    "Dai:2018": 0.022,
    "Day:1993": 0.034,
    "Fomin:2010": 0.040,
    "O'Connell:1987": 0.050,
    "Sealock:1989": 0.025,
    "Whitney:1974": 0.030,
}
"""Relative normalisation uncertainty per experiment, keyed by 'Author:Year' as the citation keys begin
(Kowal, Graczyk et al., Phys. Rev. C 110, 025501 (2024), arXiv:2408.09936)."""
DEFAULT_NORM_UNCERTAINTY = 0.05
"""Used for experiments outside :data:`NORM_UNCERTAINTY` (e.g. Zeller 1973): 5%, between the typical
2-4% of the listed experiments and the largest listed (10%)."""


def nucleus_problem(z: float, a: float) -> str | None:
    """Why (``z``, ``a``) is not a nucleus (integers with 1 <= Z <= A), naming the field; ``None`` if it is.

    >>> nucleus_problem(20, 48), nucleus_problem(20.5, 48), nucleus_problem(30, 20)
    (None, 'Z = 20.5 is not an integer', 'Z = 30 exceeds A = 20 (a nucleus has 1 <= Z <= A)')
    """
    for name, value in (("Z", z), ("A", a)):
        if not (math.isfinite(value) and float(value).is_integer()):
            return f"{name} = {float(value)!r} is not an integer"
    if z < 1:
        return f"Z = {z:g} must be >= 1"
    if z > a:
        return f"Z = {z:g} exceeds A = {a:g} (a nucleus has 1 <= Z <= A)"
    return None


def nucleus_of(z: float, a: float) -> Nucleus:
    """The :class:`Nucleus` with charge ``z`` and mass number ``a``: the shipped one (:data:`NUCLEI`), else
    one named like ``48Ca`` with no ``file`` and the parameters of :func:`fermi_gas_parameters` (the
    nearest nucleus in A measured by Moniz et al.). ``ValueError`` naming the field unless Z and A are
    integers with 1 <= Z <= A.

    >>> nucleus_of(6, 12).symbol, nucleus_of(6.0, 12.0).fermi_momentum
    ('C', 0.221)
    >>> nucleus_of(82, 208)
    Nucleus(symbol='208Pb', z=82, a=208, binding=0.044, fermi_momentum=0.265, file='')
    """
    problem = nucleus_problem(z, a)
    if problem is not None:
        raise ValueError(f"not a nucleus: {problem}")
    z, a = int(z), int(a)
    for n in NUCLEI.values():
        if (n.z, n.a) == (z, a):
            return n
    symbol = f"{a}{ELEMENTS[z - 1]}" if z <= len(ELEMENTS) else f"Z{z}A{a}"
    binding, fermi_momentum, _ = fermi_gas_parameters(a)
    return Nucleus(symbol, z, a, binding, fermi_momentum)


def norm_uncertainty(citation: str) -> float:
    """Relative normalisation uncertainty of an experiment from its citation key.

    >>> norm_uncertainty("Barreau:1983ht"), norm_uncertainty("Zeller:1973ge")
    (0.02, 0.05)
    """
    author_year = citation[: citation.index(":") + 5] if ":" in citation else citation
    return NORM_UNCERTAINTY.get(author_year, DEFAULT_NORM_UNCERTAINTY)


def q_squared(energy: np.ndarray, omega: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Q2 = 4 E E' sin^2(theta/2) [GeV^2], electron mass neglected; E, omega [GeV], theta [rad].

    >>> round(float(q_squared(1.0, 0.2, np.pi / 2)), 6)
    1.6
    """
    energy, omega = np.asarray(energy, float), np.asarray(omega, float)
    return 4.0 * energy * (energy - omega) * np.sin(0.5 * np.asarray(theta, float)) ** 2


def quasielastic_peak(energy: np.ndarray, theta: np.ndarray, binding: float = 0.0) -> np.ndarray:
    """Energy transfer [GeV] at the quasi-elastic peak, omega = Q2(omega) / (2 M) + binding [GeV].

    With Q2 = 4 E (E - omega) sin^2(theta/2) the condition is linear in omega:
    omega = (2 E^2 s / M + binding) / (1 + 2 E s / M), s = sin^2(theta/2), M the nucleon mass;
    without binding this is elastic scattering on a free nucleon at rest (Benhar, Day, Sick, RMP 80, 189).

    >>> round(float(quasielastic_peak(0.361, np.radians(60.0))), 4)  # free nucleon
    0.0582
    """
    energy = np.asarray(energy, float)
    s = np.sin(0.5 * np.asarray(theta, float)) ** 2
    recoil = 2.0 * energy * s / NUCLEON_MASS
    return (energy * recoil + binding) / (1.0 + recoil)


def _where(source: str, line: int | None) -> str:
    return f"{source}:{line}" if line is not None else source


def _parse_dat(path: Path) -> pd.DataFrame:
    """Whitespace table of 8 columns, '#' comments, no quoting (a citation holds an apostrophe)."""
    rows, lines = [], []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, text in enumerate(fh, start=1):
            body = text.split("#", 1)[0].strip()
            if not body:
                continue
            fields = body.split()
            if len(fields) != len(RAW_COLUMNS):
                raise DataError(
                    f"{path}:{lineno}: expected {len(RAW_COLUMNS)} whitespace-separated columns "
                    f"({' '.join(RAW_COLUMNS)}), got {len(fields)}: {body!r}"
                )
            try:
                rows.append([float(f) for f in fields[:7]] + [fields[7]])
            except ValueError:
                raise DataError(f"{path}:{lineno}: a numeric column holds text: {body!r}") from None
            lines.append(lineno)
    if not rows:
        raise DataError(f"{path}: no data rows")
    frame = pd.DataFrame(rows, columns=list(RAW_COLUMNS))
    frame["line"] = lines
    return frame


def _read_columns(path: Path) -> pd.DataFrame:
    """CSV (header row) or parquet with the archive's columns; ``line`` is the 1-based file line."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            first_line = 1  # parquet has no lines: ``line`` counts rows from 1
        else:
            frame = pd.read_csv(path, quoting=csv.QUOTE_NONE, comment="#", skip_blank_lines=True)
            first_line = 2
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty (no header row with {list(RAW_COLUMNS)})") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{path}: not a readable table ({type(exc).__name__}: {exc})") from None
    rename = {c: COLUMN_ALIASES.get(str(c).strip().lower(), str(c).strip()) for c in frame.columns}
    frame = frame.rename(columns=rename)
    lower = {c.lower(): c for c in frame.columns}
    frame = frame.rename(columns={lower[c.lower()]: c for c in RAW_COLUMNS if c.lower() in lower})
    missing = [c for c in RAW_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; expected {list(RAW_COLUMNS)}, found {list(frame.columns)}"
        )
    frame = frame[list(RAW_COLUMNS)].copy()
    for c in RAW_COLUMNS[:7]:
        numeric = pd.to_numeric(frame[c], errors="coerce")
        bad = numeric.isna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{path}:{i + first_line}: column '{c}' is not a number: {frame[c].iloc[i]!r}")
        frame[c] = numeric.astype(float)
    frame["citation"] = frame["citation"].astype(str)
    frame["line"] = np.arange(len(frame)) + first_line
    return frame


def _check_finite_columns(frame: pd.DataFrame, source: str) -> None:
    """Every numeric column finite in float32 (the precision the network sees), else ``file:line``."""
    limit = float(np.finfo(np.float32).max)
    for c in RAW_COLUMNS[:7]:
        values = frame[c].to_numpy(float)
        bad = ~finite_as(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{_where(source, int(frame['line'].iloc[i]))}: column '{c}' = {values[i]!r} is not a finite "
                f"number below {limit:.3g} (the network computes in float32)"
            )


def read_archive_table(path: str | Path, drop_invalid: bool = False) -> pd.DataFrame:
    """Read one archive table (``.dat`` as shipped, or CSV/parquet with :data:`RAW_COLUMNS`) and check it.

    Every row must hold the same nucleus, any with integers 1 <= Z <= A (see :func:`nucleus_of`), with
    0 <= omega < E [GeV], 0 < theta <= 180 deg and a positive cross section and error; every
    (citation, E, theta) setting needs at least two points. A violation raises :class:`DataError`
    naming ``file:line``, except that with ``drop_invalid`` rows with a non-positive cross section or
    error are dropped and counted in the log (the shipped 40Ca table holds two). Exact duplicate rows
    are dropped and counted. Returns the raw columns plus ``line`` (line in the file).

    >>> read_archive_table(FILES_DIR / NUCLEI["O"].file).shape
    (126, 9)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    frame = _parse_dat(path) if path.suffix.lower() in (".dat", ".txt", "") else _read_columns(path)
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    source = str(path)
    nuclei = frame[["Z", "A"]].drop_duplicates()
    for z, a in nuclei.itertuples(index=False):
        problem = nucleus_problem(z, a)
        if problem is not None:
            same = (frame["Z"] == z) | (np.isnan(z) & frame["Z"].isna())
            same &= (frame["A"] == a) | (np.isnan(a) & frame["A"].isna())
            line = int(frame.loc[same, "line"].iloc[0])
            raise DataError(f"{_where(source, line)}: not a nucleus: {problem}")
    if len(nuclei) > 1:
        line = int(
            frame.loc[(frame["Z"] != frame["Z"].iloc[0]) | (frame["A"] != frame["A"].iloc[0]), "line"].iloc[0]
        )
        raise DataError(f"{_where(source, line)}: a table must hold one nucleus; this row changes Z, A")

    nonpositive = (
        (frame["xsec"] <= 0) | (frame["error"] <= 0) | ~np.isfinite(frame[["xsec", "error"]]).all(axis=1)
    )
    if nonpositive.any():
        if not drop_invalid:
            row = frame[nonpositive].iloc[0]
            raise DataError(
                f"{_where(source, int(row['line']))}: cross section and error must be positive and finite, "
                f"got xsec={row['xsec']!r}, error={row['error']!r} nb/sr/GeV"
            )
        log.warning(
            "%s: dropped %d row(s) with a non-positive cross section or error", source, int(nonpositive.sum())
        )
        frame = frame[~nonpositive]
    _check_finite_columns(frame, source)
    checks = {
        "beam energy E must be > 0 GeV": frame["E"] > 0,
        "theta must be in (0, 180] degrees": (frame["theta"] > 0) & (frame["theta"] <= 180),
        "energy transfer omega must be in [0, E) GeV": (frame["omega"] >= 0) & (frame["omega"] < frame["E"]),
    }
    for why, ok in checks.items():
        if not ok.all():
            row = frame[~ok.to_numpy()].iloc[0]
            raise DataError(
                f"{_where(source, int(row['line']))}: {why}; "
                f"got E={row['E']}, theta={row['theta']}, omega={row['omega']}"
            )
    duplicated = frame.duplicated(subset=list(RAW_COLUMNS))
    if duplicated.any():
        log.info("%s: dropped %d exact duplicate row(s)", source, int(duplicated.sum()))
        frame = frame[~duplicated.to_numpy()]
    sizes = frame.groupby(["citation", "E", "theta"])["line"].transform("size")
    if (sizes < 2).any():
        row = frame[(sizes < 2).to_numpy()].iloc[0]
        raise DataError(
            f"{_where(source, int(row['line']))}: setting ({row['citation']}, E={row['E']} GeV, "
            f"theta={row['theta']} deg) has a single point; a spectrum needs at least two"
        )
    return frame.reset_index(drop=True)


def prepare(
    frame: pd.DataFrame,
    omega_min: float = 0.0,
    drop_lowest: int = 0,
    source: str = "<table>",
    *,
    binding: float | None = None,
    fermi_momentum: float | None = None,
) -> pd.DataFrame:
    """Apply the low-omega cut and add settings, experiments, derived kinematics and nuclear parameters.

    ``omega_min`` [GeV] drops points below it; ``drop_lowest`` drops that many lowest-omega points of
    every setting (the reference fit dropped the lowest-omega points, where nuclear excitations and
    the elastic tail lie). Settings left with fewer than two points are dropped and counted in the log.
    ``binding`` [GeV] and ``fermi_momentum`` [GeV/c] replace the nucleus's values (:func:`nucleus_of`);
    ``None`` keeps them.

    Added columns: ``energy`` [GeV], ``theta_deg``, ``theta`` [rad], ``cos_theta``, ``e_prime`` [GeV],
    ``q2`` [GeV^2], ``omega_qe`` (quasi-elastic peak of the setting [GeV], shifted by ``binding``),
    ``binding`` [GeV] and ``fermi_momentum`` [GeV/c] (the nucleus's, after the replacements),
    ``setting`` (int id), ``setting_label``, ``experiment`` (int id), ``norm_uncertainty`` (relative),
    ``nucleus`` (symbol, e.g. ``C`` or ``48Ca``).
    """
    if binding is not None and not (math.isfinite(binding) and 0.0 <= binding <= 1.0):
        raise ValueError(f"binding={binding!r} must be in [0, 1] GeV (or None: the nucleus's)")
    if fermi_momentum is not None and not (math.isfinite(fermi_momentum) and 0.0 < fermi_momentum <= 2.0):
        raise ValueError(
            f"fermi_momentum={fermi_momentum!r} must be in (0, 2] GeV/c (or None: the nucleus's)"
        )
    out = low_omega_cut(frame, omega_min, drop_lowest, source)
    nucleus = nucleus_of(out["Z"].iloc[0], out["A"].iloc[0])
    binding = nucleus.binding if binding is None else float(binding)
    fermi_momentum = nucleus.fermi_momentum if fermi_momentum is None else float(fermi_momentum)
    out = out.sort_values(["citation", "E", "theta", "omega"], kind="stable").reset_index(drop=True)
    theta = np.radians(out["theta"].to_numpy())
    energy, omega = out["E"].to_numpy(), out["omega"].to_numpy()
    result = pd.DataFrame(
        {
            "nucleus": nucleus.symbol,
            "Z": out["Z"].astype(int),
            "A": out["A"].astype(int),
            "citation": out["citation"],
            "energy": energy,
            "theta_deg": out["theta"].to_numpy(),
            "theta": theta,
            "cos_theta": np.cos(theta),
            "omega": omega,
            "e_prime": energy - omega,
            "q2": q_squared(energy, omega, theta),
            "omega_qe": quasielastic_peak(energy, theta, binding),
            "binding": binding,
            "fermi_momentum": fermi_momentum,
            "xsec": out["xsec"].to_numpy(),
            "error": out["error"].to_numpy(),
            "line": out["line"].to_numpy(),
        }
    )
    return with_settings(result)


def low_omega_cut(frame: pd.DataFrame, omega_min: float, drop_lowest: int, source: str) -> pd.DataFrame:
    """The rows of a raw table with omega >= ``omega_min`` [GeV] and above each setting's ``drop_lowest``
    lowest-omega points; settings left with fewer than two points are dropped and counted in the log."""
    if omega_min < 0 or drop_lowest < 0:
        raise ValueError(f"omega_min={omega_min} and drop_lowest={drop_lowest} must be >= 0")
    keep = frame["omega"].to_numpy() >= omega_min
    if drop_lowest:
        rank = frame.groupby(["citation", "E", "theta"])["omega"].rank(method="first").to_numpy()
        keep &= rank > drop_lowest
    out = frame[keep].copy()
    sizes = out.groupby(["citation", "E", "theta"])["omega"].transform("size").to_numpy()
    if (sizes < 2).any():
        log.info(
            "%s: dropped %d point(s) of settings left with < 2 points by the cut",
            source,
            int((sizes < 2).sum()),
        )
        out = out[sizes >= 2]
    if out.empty:
        raise DataError(
            f"{source}: no points left after the low-omega cut "
            f"(omega_min={omega_min} GeV, drop_lowest={drop_lowest})"
        )
    log.info("%s: low-omega cut kept %d of %d points", source, len(out), len(frame))
    return out


def with_settings(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``setting`` id and ``setting_label`` per (citation, E, theta), an ``experiment`` id
    per citation and each experiment's relative ``norm_uncertainty``."""
    keys = (
        table["citation"]
        + "|"
        + table["energy"].map("{:.4f}".format)
        + "|"
        + table["theta_deg"].map("{:.3f}".format)
    )
    table["setting"] = pd.factorize(keys)[0]
    table["setting_label"] = (
        table["citation"]
        + ", E="
        + table["energy"].map("{:.3f}".format)
        + " GeV, theta="
        + table["theta_deg"].map("{:g}".format)
        + " deg"
    )
    table["experiment"] = pd.factorize(table["citation"])[0]
    table["norm_uncertainty"] = table["citation"].map(norm_uncertainty).astype(float)
    return table


def load_nucleus(symbol: str = "C", omega_min: float = 0.0, drop_lowest: int = 0) -> pd.DataFrame:
    """The shipped table of one nucleus (see :data:`NUCLEI`), checked and prepared (:func:`prepare`).

    Rows with a non-positive cross section or error in the shipped tables are dropped and counted in
    the log; duplicate rows likewise.

    >>> load_nucleus("Fe")["nucleus"].iloc[0], load_nucleus("Fe", drop_lowest=1).shape[0] < 2429
    ('Fe', True)
    """
    if symbol not in NUCLEI:
        raise KeyError(f"unknown nucleus {symbol!r}; shipped: {', '.join(NUCLEI)}")
    path = FILES_DIR / NUCLEI[symbol].file
    return prepare(read_archive_table(path, drop_invalid=True), omega_min, drop_lowest, source=str(path))


def load_file(
    path: str | Path,
    omega_min: float = 0.0,
    drop_lowest: int = 0,
    drop_invalid: bool = False,
    *,
    binding: float | None = None,
    fermi_momentum: float | None = None,
) -> pd.DataFrame:
    """A user's table in the archive layout (``.dat``) or CSV/parquet with :data:`RAW_COLUMNS`, checked
    (:func:`read_archive_table`) and prepared (:func:`prepare`, with ``binding`` [GeV] and
    ``fermi_momentum`` [GeV/c] replacing the nucleus's values unless ``None``). Any nucleus works: one numl
    does not ship takes the parameters of the nearest measured nucleus (:func:`nucleus_of`)."""
    return prepare(
        read_archive_table(path, drop_invalid),
        omega_min,
        drop_lowest,
        source=str(path),
        binding=binding,
        fermi_momentum=fermi_momentum,
    )


def settings_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per setting: id, label, citation, E [GeV], theta [deg], points, omega range [GeV]."""
    grouped = table.groupby("setting", sort=True)
    return pd.DataFrame(
        {
            "setting": grouped.size().index,
            "label": grouped["setting_label"].first().to_numpy(),
            "citation": grouped["citation"].first().to_numpy(),
            "energy": grouped["energy"].first().to_numpy(),
            "theta_deg": grouped["theta_deg"].first().to_numpy(),
            "points": grouped.size().to_numpy(),
            "omega_min": grouped["omega"].min().to_numpy(),
            "omega_max": grouped["omega"].max().to_numpy(),
        }
    )


def per_cos_theta(xsec: np.ndarray) -> np.ndarray:
    """d2sigma/(dcos(theta) domega) = 2 pi d2sigma/(dOmega domega) (azimuthal symmetry).

    >>> round(float(per_cos_theta(1.0)), 6)
    6.283185
    """
    return 2.0 * math.pi * np.asarray(xsec, float)
