"""Flows as event generators: emulator and unbiased importance sampler, with sample-quality metrics.

Importance sampling with proposal q for target f (``docs/physics.md``, section "Importance sampling"):
w = f / q, the mean of w estimates the integral of f, unbiased wherever q covers f. Capping w at a
quantile trades a small, measured bias for variance; hit-or-miss unweighting then keeps an event with
probability min(w / w_max, 1). w_max is estimated robustly as the median over bootstrap replicas of the
maximum weight (Heimel et al., MadNIS, SciPost Phys. 15, 141 (2023)); events above it keep the
over-weight w / w_max.

Energies: the flow learns x given E_nu, each energy normalised alike, while events occur in proportion
to flux(E) sigma(E). Drawing E_nu from the flux leaves weights that follow sigma(E) (a factor of six
across 0.2-1 GeV for carbon); :func:`event_rate` instead tabulates flux(E) sigma(E) once, with sigma(E)
the flow's own importance-sampling estimate, and :func:`sample_flow` draws E_nu from it and multiplies
the weights by flux / event rate, which keeps them unbiased whatever the table's accuracy.

Quality of unweighted samples: the multinomial negative log-likelihood (MNLL) of a 4-D histogram
against a high-statistics (weighted) reference, and the RMS of the bin pulls.

>>> w = np.array([1.0, 1.0, 1.0, 1.0])
>>> relative_ess(w), unweighting_efficiency(w).efficiency
(1.0, 1.0)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from numl_core.data.generators.exclusive_1p1h import (
    VARIABLES,
    ExclusiveModel,
    Flux,
    differential_cross_section,
)
from numl_core.generator.model import GeneratorFlow
from numl_core.stats import cap_weights, relative_ess


def relative_integral_error(w: np.ndarray) -> float:
    """Relative standard deviation of the integral estimate mean(w): std(w) / (mean(w) sqrt(N))."""
    w = np.asarray(w, float)
    return float(w.std(ddof=1) / (w.mean() * math.sqrt(len(w))))


@dataclass(frozen=True)
class Unweighting:
    """Robust unweighting figures: ``w_max`` (median of bootstrap maxima), ``efficiency``
    mean(min(w, w_max)) / w_max (the accepted fraction of hit-or-miss),
    ``overweight_fraction`` of events above w_max and the ``overweight_bias`` (share of the integral
    above w_max, carried by over-weights)."""

    w_max: float
    efficiency: float
    overweight_fraction: float
    overweight_bias: float


def unweighting_efficiency(
    w: np.ndarray, n_replicas: int = 50, replica_fraction: float = 0.1, seed: int = 0
) -> Unweighting:
    """Unweighting efficiency with w_max = median over ``n_replicas`` bootstrap replicas (each of
    ``replica_fraction`` of the sample) of the maximum weight; a single outlier then sets no w_max.

    >>> u = unweighting_efficiency(np.r_[np.ones(999), 10.0], n_replicas=101)
    >>> u.w_max, round(u.efficiency, 3), u.overweight_fraction
    (1.0, 1.0, 0.001)
    """
    w = np.asarray(w, float)
    if len(w) == 0 or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be a non-empty array of finite non-negative numbers")
    if not 0.0 < replica_fraction <= 1.0:
        raise ValueError(f"replica_fraction {replica_fraction} must lie in (0, 1]")
    rng = np.random.default_rng(seed)
    size = max(1, int(len(w) * replica_fraction))
    maxima = [w[rng.integers(0, len(w), size)].max() for _ in range(n_replicas)]
    w_max = float(np.median(maxima))
    over = w > w_max
    return Unweighting(
        w_max,
        float(np.minimum(w, w_max).mean() / w_max),
        float(over.mean()),
        float(np.sum(w[over] - w_max) / w.sum()),
    )


def unweight(w: np.ndarray, w_max: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hit-or-miss: indices of kept events and their residual weights max(1, w / w_max)."""
    w = np.asarray(w, float)
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(rng.random(len(w)) * w_max < w)
    return keep, np.maximum(1.0, w[keep] / w_max)


@dataclass
class WeightedSample:
    """Flow events ``x`` (N, 4), energies ``enu`` (N,), log q (N,), target f (N,) [cm^2/GeV/rad],
    the seconds spent sampling and evaluating f, and log(flux / energy proposal) (N,) at each energy
    (zero when the energies follow the flux)."""

    x: Tensor
    enu: Tensor
    log_q: Tensor
    f: Tensor
    seconds_sampling: float
    seconds_target: float
    log_energy_weight: Tensor | None = None

    @property
    def weights(self) -> np.ndarray:
        """w = f / q x flux / energy proposal (N,), float64."""
        log_w = -self.log_q.double()
        if self.log_energy_weight is not None:
            log_w = log_w + self.log_energy_weight.double()
        return (self.f.double() * torch.exp(log_w)).numpy()


def event_rate(
    flow: GeneratorFlow,
    flux: Flux,
    target: ExclusiveModel,
    params: Mapping[str, float] | None = None,
    bins: int = 64,
    n_per_bin: int = 2000,
    seed: int = 0,
    extrapolate: bool = False,
) -> Flux:
    """The event-rate spectrum flux(E) sigma(E) as a histogram: the energy proposal of :func:`sample_flow`.

    Its edges are ``bins`` equal bins over the flux's range merged with the flux's own edges; sigma(E)
    [cm^2] at each bin's centre is the flow's importance-sampling estimate mean(f / q) over ``n_per_bin``
    events (relative error about 1 / sqrt(n_per_bin RESS)), floored at 1e-3 of its largest value so that
    every energy of the flux stays reachable.
    """
    lo, hi = flux.range
    edges = np.union1d(np.linspace(lo, hi, bins + 1), flux.edges)
    edges = edges[np.concatenate([[True], np.diff(edges) > 1e-9 * (hi - lo)])]  # merge rounding twins
    centres = (edges[:-1] + edges[1:]) / 2
    device = flow.ctx_low.device
    enu = torch.as_tensor(np.repeat(centres, n_per_bin), dtype=torch.float32, device=device)
    torch.manual_seed(seed)
    x, logq = flow.sample_and_log_prob(enu, params, extrapolate)
    f = differential_cross_section(x.cpu().double(), enu.cpu().double(), target, params)
    w = (f * torch.exp(-logq.cpu().double())).numpy().reshape(len(centres), n_per_bin)
    sigma = np.nan_to_num(w, nan=0.0, posinf=0.0).mean(axis=1)
    sigma = np.maximum(sigma, 1e-3 * sigma.max()) if sigma.max() > 0 else np.ones_like(sigma)
    return Flux(edges, flux.pdf(centres) * sigma, f"event rate ({flux.name})")


def sample_flow(
    flow: GeneratorFlow,
    n: int,
    flux: Flux,
    seed: int = 0,
    params: Mapping[str, float] | None = None,
    target: ExclusiveModel | None = None,
    batch: int = 100_000,
    extrapolate: bool = False,
    energies: Flux | None = None,
) -> WeightedSample:
    """Draw n events from the flow with E_nu ~ ``energies`` (default: the flux itself; see
    :func:`event_rate`); with ``target`` also evaluate f and the weights.

    Emulator mode is ``target=None`` (f is then NaN). Energies outside the flow's trained range raise.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    xs, es, lqs, fs = [], [], [], []
    t_sample = t_target = 0.0
    device = flow.ctx_low.device
    for start in range(0, n, batch):
        m = min(batch, n - start)
        enu = torch.as_tensor((energies or flux).sample(m, rng), dtype=torch.float32, device=device)
        t0 = time.perf_counter()
        x, logq = flow.sample_and_log_prob(enu, params, extrapolate)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_sample += time.perf_counter() - t0
        t0 = time.perf_counter()
        if target is None:
            f = torch.full_like(logq, math.nan)
        else:  # on the flow's device, in float64
            f = differential_cross_section(x.double(), enu.double(), target, params).float()
            if device.type == "cuda":
                torch.cuda.synchronize()
        t_target += time.perf_counter() - t0
        x, logq, enu, f = x.cpu(), logq.cpu(), enu.cpu(), f.cpu()
        xs.append(x)
        es.append(enu)
        lqs.append(logq)
        fs.append(f)
    enu = torch.cat(es)
    log_ew = None
    if energies is not None:
        e64 = enu.double().numpy()
        log_ew = torch.as_tensor(np.log(flux.pdf(e64)) - np.log(energies.pdf(e64)))
    return WeightedSample(torch.cat(xs), enu, torch.cat(lqs), torch.cat(fs), t_sample, t_target, log_ew)


def events_frame(x: Tensor, enu: Tensor, weights: np.ndarray | None = None) -> pd.DataFrame:
    """Events as a DataFrame: enu [GeV], cos_mu, omega [GeV], cos_n, phi_n [rad] (and weight)."""
    frame = pd.DataFrame({"enu": enu.double().numpy()})
    for k, name in enumerate(VARIABLES):
        frame[name] = x[:, k].double().numpy()
    if weights is not None:
        frame["weight"] = np.asarray(weights, float)
    return frame


@dataclass(frozen=True)
class SamplerReport:
    """Importance-sampling figures of one weighted sample (see module docstring)."""

    n: int
    integral: float
    integral_rel_error: float
    ress: float
    ress_capped: float
    cap_quantile: float
    cap_bias: float
    unweighting_efficiency: float
    overweight_fraction: float
    overweight_bias: float
    seconds_sampling: float
    seconds_target: float
    unweighted_per_s: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict (JSON-able)."""
        return asdict(self)


def sampler_report(sample: WeightedSample, cap_quantile: float = 0.9999, seed: int = 0) -> SamplerReport:
    """RESS, capped RESS and bias, robust unweighting efficiency (on the capped weights) and the rate of
    unweighted events per second including the flow and the cross-section evaluations."""
    w = sample.weights
    capped = cap_weights(w, cap_quantile)
    unw = unweighting_efficiency(capped.weights, seed=seed)
    seconds = sample.seconds_sampling + sample.seconds_target
    return SamplerReport(
        n=len(w),
        integral=float(w.mean()),
        integral_rel_error=relative_integral_error(w),
        ress=relative_ess(w),
        ress_capped=relative_ess(capped.weights),
        cap_quantile=cap_quantile,
        cap_bias=capped.bias,
        unweighting_efficiency=unw.efficiency,
        overweight_fraction=unw.overweight_fraction,
        overweight_bias=unw.overweight_bias,
        seconds_sampling=sample.seconds_sampling,
        seconds_target=sample.seconds_target,
        unweighted_per_s=len(w) * unw.efficiency / max(seconds, 1e-12),
    )


def box_coordinates(x: np.ndarray, enu: np.ndarray, m_lep: float) -> np.ndarray:
    """(cos_mu, omega / omega_max(E), cos_n, phi_n / pi) (N, 4): every event in [-1, 1] x [0, 1] x ..."""
    x = np.asarray(x, float)
    return np.stack([x[:, 0], x[:, 1] / (np.asarray(enu) - m_lep), x[:, 2], x[:, 3] / np.pi], axis=1)


@dataclass(frozen=True)
class HistogramBinning:
    """Per-variable bin edges (4 arrays) of a 4-D histogram in box coordinates."""

    edges: tuple[np.ndarray, ...]

    @classmethod
    def from_reference(cls, y: np.ndarray, weights: np.ndarray, bins_per_dim: int) -> HistogramBinning:
        """Edges at weighted marginal quantiles of the reference, so bins hold similar amounts."""
        edges = []
        for k in range(y.shape[1]):
            order = np.argsort(y[:, k])
            cdf = np.cumsum(weights[order]) / weights.sum()
            inner = np.interp(np.linspace(0, 1, bins_per_dim + 1)[1:-1], cdf, y[order, k])
            lo, hi = (0.0, 1.0) if k == 1 else (-1.0, 1.0)
            edges.append(np.unique(np.r_[lo, inner, hi]))
        return cls(tuple(edges))

    @property
    def n_bins(self) -> int:
        """Total number of 4-D bins."""
        return int(np.prod([len(e) - 1 for e in self.edges]))

    def index(self, y: np.ndarray) -> np.ndarray:
        """Flat bin index (N,) of box coordinates y (N, 4) (values on the edges go to the end bins)."""
        idx = np.zeros(len(y), dtype=np.int64)
        for k, e in enumerate(self.edges):
            b = np.clip(np.searchsorted(e, y[:, k], side="right") - 1, 0, len(e) - 2)
            idx = idx * (len(e) - 1) + b
        return idx

    def histogram(self, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Bin contents (n_bins,)."""
        return np.bincount(self.index(y), weights=weights, minlength=self.n_bins).astype(float)


@dataclass(frozen=True)
class HistogramQuality:
    """MNLL per event (-sum n_i log p_i / N) with its standard error (the spread of -log p_i over the
    events / sqrt(N)) and the RMS of bin pulls over bins expecting >= 5 events."""

    mnll: float
    rms_pull: float
    n_bins_used: int
    mnll_error: float = math.nan


def histogram_quality(
    counts: np.ndarray, reference: np.ndarray, reference_sumw2: np.ndarray, min_expected: float = 5.0
) -> HistogramQuality:
    """Compare an unweighted sample's bin counts with a weighted reference (contents and sum of w^2).

    Pulls (n_i - N p_i) / sqrt(N p_i + N^2 var(p_i)) include the reference's own statistical variance.

    >>> ref = np.array([100.0, 300.0])
    >>> q = histogram_quality(np.array([10.0, 30.0]), ref, ref)
    >>> round(q.rms_pull, 6)
    0.0
    """
    counts = np.asarray(counts, float)
    n = counts.sum()
    total = reference.sum()
    p = reference / total
    var_p = reference_sumw2 / total**2
    floor = 0.5 / total * reference_sumw2.sum() / max(reference.sum(), 1e-300)
    logp = np.log(np.maximum(p, floor))
    expected = n * p
    used = expected >= min_expected
    pulls = (counts - expected)[used] / np.sqrt(expected[used] + n**2 * var_p[used])
    rms = float(np.sqrt(np.mean(pulls**2))) if pulls.size else math.nan  # no bin expects enough events
    mnll = float(-(counts * logp).sum() / n)
    spread = float(np.sqrt((counts * (logp + mnll) ** 2).sum() / n))
    return HistogramQuality(mnll, rms, int(used.sum()), spread / math.sqrt(max(n - 1, 1)))


def marginal_histograms(
    samples: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    m_lep: float,
    bins: int = 40,
) -> pd.DataFrame:
    """1-D marginals of named samples ``{name: (x (N, 4), enu (N,), weights or None)}`` in box coordinates,
    normalised to unit area; long format: sample, variable, low, high, density, error."""
    rows = []
    for name, (x, enu, w) in samples.items():
        y = box_coordinates(x, enu, m_lep)
        w = np.ones(len(y)) if w is None else np.asarray(w, float)
        for k, var in enumerate(VARIABLES):
            lo = 0.0 if k == 1 else -1.0
            edges = np.linspace(lo, 1.0, bins + 1)
            h, _ = np.histogram(y[:, k], edges, weights=w)
            h2, _ = np.histogram(y[:, k], edges, weights=w**2)
            norm = w.sum() * np.diff(edges)
            rows.append(
                pd.DataFrame(
                    {
                        "sample": name,
                        "variable": var,
                        "low": edges[:-1],
                        "high": edges[1:],
                        "density": h / norm,
                        "error": np.sqrt(h2) / norm,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def weight_concentration(
    w: np.ndarray, x: np.ndarray, enu: np.ndarray, m_lep: float, bins: int = 5
) -> pd.DataFrame:
    """Where the variance of importance weights sits: for E_nu and each box coordinate (see
    :func:`box_coordinates`) in ``bins`` equal bins, the fraction of events and the share of sum w^2
    (the denominator of RESS), with the bin's largest w / mean(w). Long format: variable, low, high,
    event_fraction, w2_share, max_w.

    >>> w = np.r_[np.ones(99), 10.0]
    >>> x = np.zeros((100, 4)); x[-1, 0] = 0.95
    >>> t = weight_concentration(w, x, np.full(100, 0.6), 0.1, bins=2)
    >>> t[t.variable == "cos_mu"][["low", "w2_share"]].round(3).to_dict("list")
    {'low': [-1.0, 0.0], 'w2_share': [0.0, 1.0]}
    """
    w = np.asarray(w, float)
    y = box_coordinates(x, enu, m_lep)
    enu = np.asarray(enu, float)
    columns = {"enu": (enu, (enu.min(), enu.max()))}
    for k, name in enumerate(VARIABLES):
        columns[name] = (y[:, k], (0.0 if k == 1 else -1.0, 1.0))
    w2, mean = w**2, w.mean()
    rows = []
    for name, (values, (lo, hi)) in columns.items():
        edges = np.linspace(lo, hi, bins + 1)
        idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
        count = np.bincount(idx, minlength=bins)
        share = np.bincount(idx, weights=w2, minlength=bins) / w2.sum()
        top = np.zeros(bins)
        np.maximum.at(top, idx, w / mean)
        rows.append(
            pd.DataFrame(
                {
                    "variable": name,
                    "low": edges[:-1],
                    "high": edges[1:],
                    "event_fraction": count / len(w),
                    "w2_share": share,
                    "max_w": top,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


MARGINAL_PAIRS = (("cos_mu", "omega"), ("cos_n", "phi_n"), ("omega", "cos_n"))
"""Variable pairs of the default 2-D marginals: the muon plane, the nucleon sphere, and their link."""


def marginal_histograms_2d(
    samples: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    m_lep: float,
    pairs: tuple[tuple[str, str], ...] = MARGINAL_PAIRS,
    bins: int = 12,
) -> pd.DataFrame:
    """2-D marginals of named samples ``{name: (x (N, 4), enu (N,), weights or None)}`` in box coordinates
    (see :func:`box_coordinates`), normalised to unit volume; long format: sample, x_variable,
    y_variable, x_low, x_high, y_low, y_high, density, error.

    >>> rng = np.random.default_rng(0)
    >>> x = np.column_stack([rng.uniform(-1, 1, 400), rng.uniform(0, 0.5, 400), rng.uniform(-1, 1, 400),
    ...                      rng.uniform(-np.pi, np.pi, 400)])
    >>> m = marginal_histograms_2d({"a": (x, np.full(400, 0.6), None)}, 0.1, bins=4)
    >>> len(m), round(float((m.density * (m.x_high - m.x_low) * (m.y_high - m.y_low)).sum()), 6)
    (48, 3.0)
    """
    index = {v: k for k, v in enumerate(VARIABLES)}
    rows = []
    for name, (x, enu, w) in samples.items():
        y = box_coordinates(x, enu, m_lep)
        w = np.ones(len(y)) if w is None else np.asarray(w, float)
        for vx, vy in pairs:
            ex_, ey = (np.linspace(0.0 if index[v] == 1 else -1.0, 1.0, bins + 1) for v in (vx, vy))
            cols = (y[:, index[vx]], y[:, index[vy]])
            h, _, _ = np.histogram2d(*cols, bins=(ex_, ey), weights=w)
            h2, _, _ = np.histogram2d(*cols, bins=(ex_, ey), weights=w**2)
            area = np.outer(np.diff(ex_), np.diff(ey))
            norm = w.sum() * area
            xi, yi = np.meshgrid(np.arange(bins), np.arange(bins), indexing="ij")
            rows.append(
                pd.DataFrame(
                    {
                        "sample": name,
                        "x_variable": vx,
                        "y_variable": vy,
                        "x_low": ex_[xi.ravel()],
                        "x_high": ex_[xi.ravel() + 1],
                        "y_low": ey[yi.ravel()],
                        "y_high": ey[yi.ravel() + 1],
                        "density": (h / norm).ravel(),
                        "error": (np.sqrt(h2) / norm).ravel(),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def marginal_ratios(marginals: pd.DataFrame, reference: str = "reference") -> pd.DataFrame:
    """Each sample's marginal density over the reference's, bin by bin, for the 1-D frames of
    :func:`marginal_histograms` or the 2-D frames of :func:`marginal_histograms_2d`: the input's bin
    columns plus ``ratio``, ``error`` (relative errors added in quadrature) and ``pull`` (difference over
    the combined error); bins where the reference is empty are left out.

    >>> m = pd.DataFrame({"sample": ["reference", "flow"], "variable": ["omega"] * 2, "low": [0.0] * 2,
    ...                   "high": [1.0] * 2, "density": [2.0, 2.2], "error": [0.0, 0.1]})
    >>> marginal_ratios(m)[["sample", "ratio", "pull"]].round(3).to_dict("list")
    {'sample': ['flow'], 'ratio': [1.1], 'pull': [2.0]}
    """
    keys = [c for c in marginals.columns if c not in ("sample", "density", "error")]
    ref = marginals[marginals["sample"] == reference].drop(columns="sample")
    others = marginals[marginals["sample"] != reference]
    merged = others.merge(ref, on=keys, suffixes=("", "_ref"))
    merged = merged[merged["density_ref"] > 0]
    d, e, d_ref, e_ref = (merged[c].to_numpy() for c in ("density", "error", "density_ref", "error_ref"))
    ratio = d / d_ref
    rel = np.sqrt((e / np.where(d > 0, d, 1.0)) ** 2 + (e_ref / d_ref) ** 2)
    combined = np.sqrt(e**2 + e_ref**2)
    out = merged[["sample", *keys]].copy()
    out["ratio"] = ratio
    out["error"] = ratio * rel
    out["pull"] = np.where(combined > 0, (d - d_ref) / np.where(combined > 0, combined, 1.0), 0.0)
    return out.reset_index(drop=True)


def flux_averaged_bound_check(flow: GeneratorFlow, target: ExclusiveModel, flux: Flux) -> None:
    """Raise ``ValueError`` when the flux reaches beyond the flow's trained energy range."""
    lo, hi = flow.spec.conditions["enu"]
    f_lo, f_hi = flux.range
    if f_lo < lo - 1e-9 or f_hi > hi + 1e-9:
        raise ValueError(
            f"flux {flux.name} spans [{f_lo}, {f_hi}] GeV beyond the flow's range [{lo}, {hi}] GeV"
        )
    if f_lo <= target.m_lep + target.min_removal_energy:
        raise ValueError(f"flux {flux.name} starts below the muon threshold")
