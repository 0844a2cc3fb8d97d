"""Unfolding benchmark: numl's OmniFold and IBU against the ``omnifold`` and PyUnfold packages.

All parts use one ND280 CC0pi sample generated at the start (MC and data halves from
``split_mc_data``; data reweighted to the fake-data set ``FAKE_DATA``), except the chi2 table, which
calls the unfolding workflow once per fake-data set with its own built-in sample:

1. wall time of numl's OmniFold on the full sample on the CPU (``omnifold_full_cpu_s``);
2. a classifier ensemble (systematic throws) trained batched vs one member at a time
   (``batched_vs_loop_speedup_cpu``, and ``_gpu`` when CUDA is present);
3. numl's OmniFold vs the ``omnifold`` package's MultiFold on the same events: wall time
   (``omnifold_vs_peer_speedup`` = peer / numl) and unfolded truth histograms (``peer_quality``);
4. IBU vs PyUnfold on the 58-bin muon (p, cos theta) binning: values, errors and speed;
5. calibration (``benchmarks/unfolding_calibration.py``): the workflow's chi2 table for every fake-data
   set with 100 throws (``chi2_table_100``), closure, the covariance check, bias per iteration and
   OmniFold's bias against events and epochs;
6. the full reference ensemble projected from the measured throughput (``full_ensemble_projected_*``).

Run it with ``python -m benchmarks.run_all [--quick] unfolding``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

from benchmarks import unfolding_calibration
from numl_core.data.binning import BINNINGS, Binning
from numl_core.data.generators import nd280_cc0pi as nd280
from numl_core.jobs import Progress
from numl_core.unfold import workflow
from numl_core.unfold.compare import ibu_inputs
from numl_core.unfold.events import reco_features, truth_features
from numl_core.unfold.ibu import ResponseInputs, ibu_throws, iterative_bayesian_unfold
from numl_core.unfold.inputs import UnfoldingInputs
from numl_core.unfold.model import EnsembleMLP, derived_seed
from numl_core.unfold.omnifold import OmniFoldSettings, unfold_omnifold
from numl_core.unfold.train import ClassifierSettings, train_classifiers
from numl_core.unfold.workflow import UnfoldingConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".peer-venv"
PEER_SCRIPT = HERE / "peer_omnifold.py"
PEER_REQUIREMENTS = ("tensorflow-cpu==2.15.1", "omnifold==0.1.36")
PEER_BUILD_TIMEOUT_S = 1800
PEER_RUN_TIMEOUT_S = 3600
SEED = 0
FAKE_DATA = "dphit_shape"
PEER_DISTRIBUTIONS = ("dpt", "dalphat", "dphit", "muon_p_cos")
IBU_BINNING = "muon_p_cos"
TIMING_REPEATS = 3


@dataclass(frozen=True)
class Sizes:
    """Event counts and training lengths of one benchmark mode.

    ``n_events`` are generated and split in halves (MC, data); ``ensemble_events`` and ``peer_events``
    are taken from each half; ``chi2_events`` is the workflow's ``n_events`` (also split in halves).
    ``peer_batch_size`` serves both codes in the peer comparison: the peer needs at least 5 mini-batches
    per step, since it validates on whole batches from its last 20% of events.
    """

    n_events: int
    omnifold_iterations: int
    omnifold_trials: int
    omnifold_epochs: int
    omnifold_batch_size: int
    ensemble_events: int
    ensemble_members: int
    ensemble_epochs: int
    peer_events: int
    peer_iterations: int
    peer_epochs: int
    peer_batch_size: int
    ibu_throws: int
    ibu_iterations: int
    chi2_events: int
    chi2_iterations: int
    chi2_trials: int
    chi2_throws: int
    chi2_epochs: int
    bias_throws: int
    long_iterations: int


FULL = Sizes(
    n_events=1_200_000,
    omnifold_iterations=15,
    omnifold_trials=5,
    omnifold_epochs=4,
    omnifold_batch_size=10_000,
    ensemble_events=50_000,
    ensemble_members=20,
    ensemble_epochs=2,
    peer_events=100_000,
    peer_iterations=5,
    peer_epochs=10,
    peer_batch_size=10_000,
    ibu_throws=100,
    ibu_iterations=4,
    chi2_events=400_000,
    chi2_iterations=5,
    chi2_trials=1,
    chi2_throws=100,
    chi2_epochs=4,
    bias_throws=40,
    long_iterations=15,
)
QUICK = Sizes(
    n_events=40_000,
    omnifold_iterations=2,
    omnifold_trials=1,
    omnifold_epochs=2,
    omnifold_batch_size=5_000,
    ensemble_events=10_000,
    ensemble_members=8,
    ensemble_epochs=1,
    peer_events=5_000,
    peer_iterations=2,
    peer_epochs=2,
    peer_batch_size=1_000,
    ibu_throws=20,
    ibu_iterations=4,
    chi2_events=8_000,
    chi2_iterations=2,
    chi2_trials=1,
    chi2_throws=24,
    chi2_epochs=2,
    bias_throws=8,
    long_iterations=3,
)


@dataclass
class Sample:
    """MC and (fake) data halves; unit-mean prior weights ``mc_w`` (N,) and data weights ``data_w`` (Nd,)."""

    mc: pd.DataFrame
    data: pd.DataFrame
    mc_w: np.ndarray
    data_w: np.ndarray

    def head(self, n: int) -> Sample:
        """The first ``n`` events of each half (a random subset: the halves are a random split)."""
        return Sample(self.mc.iloc[:n], self.data.iloc[:n], self.mc_w[:n], self.data_w[:n])


def timed(func: Callable[[], T]) -> tuple[float, T]:
    """Wall time [s] of one call and its result."""
    t0 = time.perf_counter()
    out = func()
    return time.perf_counter() - t0, out


def best_time(func: Callable[[], T], repeats: int = TIMING_REPEATS) -> tuple[float, T]:
    """Shortest wall time [s] of ``repeats`` calls (the least disturbed by other processes) and a result."""
    runs = [timed(func) for _ in range(repeats)]
    return min(t for t, _ in runs), runs[-1][1]


def make_sample(n_events: int, fake_data: str = FAKE_DATA, seed: int = SEED) -> Sample:
    """Generate, split into MC and data halves, reweight the data to ``fake_data``; weights ~1 per event."""
    events = nd280.generate(n_events, seed)
    mc, data = nd280.split_mc_data(events, seed)
    scale = float(mc["weight"].mean())
    mc_w = (mc["weight"].to_numpy() / scale).astype(np.float32)
    data_w = (data["weight"].to_numpy() / scale * nd280.fake_data_weights(data, fake_data)).astype(np.float32)
    return Sample(mc, data, mc_w, data_w)


def omnifold_settings(iterations: int, trials: int, epochs: int | None = None) -> OmniFoldSettings:
    """The unfolding workflow's default classifier settings on the CPU, with these iterations and trials."""
    changes = {} if epochs is None else {"epochs": epochs}
    config = UnfoldingConfig(iterations=iterations, trials=trials, device="cpu", seed=SEED, **changes)
    return workflow.omnifold_settings(config)


def with_training(settings: T, **changes: Any) -> T:
    """``settings`` with these changes to its training loop (``batch_size``, ``device`` ...)."""
    return dataclasses.replace(settings, train=dataclasses.replace(settings.train, **changes))


def selected_data(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Reco features (Nsel, 14) and weights of the data events that pass the selection (what data holds)."""
    sel = sample.data["pass_reco"].to_numpy()
    return reco_features(sample.data)[sel], sample.data_w[sel]


def run_numl_omnifold(sample: Sample, settings: OmniFoldSettings) -> tuple[float, np.ndarray, dict[str, Any]]:
    """Time ``unfold_omnifold``; return seconds, push factors (N,) and the training volume.

    ``event_epochs`` counts events x members x epochs actually run over both steps (training and
    validation events), so ``event_epochs / seconds`` is the classifier throughput.
    """
    pass_reco = sample.mc["pass_reco"].to_numpy()
    pass_truth = sample.mc["pass_truth"].to_numpy()
    x_data, w_data = selected_data(sample)
    seconds, result = timed(
        lambda: unfold_omnifold(
            UnfoldingInputs(
                reco_features(sample.mc),
                truth_features(sample.mc),
                pass_reco,
                pass_truth,
                x_data,
                sample.mc_w,
                w_data,
            ),
            settings,
            progress=Progress(),
        )
    )
    events = {1: int(pass_reco.sum()) + len(x_data), 2: int(pass_truth.sum())}
    epochs = {1: 0, 2: 0}
    for rec in result.losses:
        epochs[rec["step"]] += len(rec["train"])
    event_epochs = settings.trials * sum(events[s] * epochs[s] for s in (1, 2))
    volume = {
        "n_mc": len(sample.mc),
        "n_data": len(sample.data),
        "n_data_selected": len(x_data),
        "epochs_step1": epochs[1],
        "epochs_step2": epochs[2],
        "event_epochs": event_epochs,
        "event_epochs_per_s": event_epochs / seconds,
    }
    return seconds, result.weights(), volume


def bench_omnifold_full(sample: Sample, sizes: Sizes, device: str = "cpu") -> dict[str, Any]:
    """Wall time of numl's OmniFold on all events with the workflow's settings, on ``device``."""
    # the full-size speed run caps epochs (warm-started classifiers): the CPU budget of the 10-minute target
    settings = with_training(
        omnifold_settings(sizes.omnifold_iterations, sizes.omnifold_trials, epochs=sizes.omnifold_epochs),
        batch_size=sizes.omnifold_batch_size,
        device=device,
    )
    logger.info(
        "OmniFold: %d MC vs %d data events, %d iterations, %d trials",
        len(sample.mc),
        len(sample.data),
        settings.iterations,
        settings.trials,
    )
    seconds, _, volume = run_numl_omnifold(sample, settings)
    logger.info("OmniFold took %.1f s", seconds)
    return {
        f"omnifold_full_{'cpu' if device == 'cpu' else 'gpu'}_s": seconds,
        "omnifold_full": {
            **volume,
            "iterations": settings.iterations,
            "trials": settings.trials,
            "max_epochs": settings.train.epochs,
            "patience": settings.train.patience,
            "batch_size": settings.train.batch_size,
            "hidden": "x".join(map(str, settings.hidden)),
            "target_s": 600.0,
        },
    }


def ensemble_inputs(sample: Sample, sizes: Sizes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OmniFold step-1 inputs for one systematic throw per member: selected MC vs selected data.

    Returns x0 (N0, 14), x1 (N1, 14), w0 (M, N0) prior x throw weights and w1 (M, N1).
    """
    n, m = sizes.ensemble_events, sizes.ensemble_members
    mc_sel = np.flatnonzero(sample.mc["pass_reco"].to_numpy())[:n]
    mc = sample.mc.iloc[mc_sel]
    x0 = reco_features(mc)
    w0 = sample.mc_w[mc_sel] * nd280.throw_weights(mc, m, seed=SEED)
    x1, w1 = selected_data(sample)
    return x0, x1[:n], w0, np.repeat(w1[None, :n], m, axis=0)


def time_batched_vs_loop(
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], settings: ClassifierSettings
) -> dict[str, Any]:
    """Train all members at once, then one ``train_classifiers`` call per member from the same start,
    interleaved ``TIMING_REPEATS`` times; the best time of each counts.

    Member ``m`` of the loop starts from the parameters the batched ensemble gives member ``m`` and sees
    the same mini-batches, so both produce the same classifiers; ``max_abs_logit_diff`` checks it.
    """
    x0, x1, w0, w1 = inputs
    n_members = len(w0)
    b = settings.train.batch_size
    train_classifiers(
        x0[:b], x1[:b], w0[:1, :b], w1[:1, :b], settings
    )  # warm-up: threads, allocator, kernels

    def loop() -> list[Any]:
        fits = []
        for m in range(n_members):
            init = EnsembleMLP(
                1, x0.shape[1], settings.hidden, seeds=[derived_seed(settings.train.seed, 1, m)]
            )
            fits.append(train_classifiers(x0, x1, w0[m], w1[m], settings, init=init))
        return fits

    # interleaved repeats, best of each: a slow moment of the machine must not decide the ratio
    batched_times, loop_times = [], []
    for _ in range(TIMING_REPEATS):
        batched_s, batched = timed(lambda: train_classifiers(x0, x1, w0, w1, settings))
        loop_s, fits = timed(loop)
        batched_times.append(batched_s)
        loop_times.append(loop_s)
    batched_s, loop_s = min(batched_times), min(loop_times)
    probe = torch.from_numpy(x1[:1000]).to(batched.model.weights[0].device)
    diff = max(
        float((fits[m].logits(probe)[0] - batched.logits(probe)[m]).abs().max()) for m in range(n_members)
    )
    logger.info("ensemble on %s: batched %.1f s, loop %.1f s", settings.train.device, batched_s, loop_s)
    return {
        "batched_s": batched_s,
        "loop_s": loop_s,
        "batched_s_all": batched_times,
        "loop_s_all": loop_times,
        "speedup": loop_s / batched_s,
        "max_abs_logit_diff": diff,
    }


def ensemble_settings(sizes: Sizes, device: str = "cpu") -> ClassifierSettings:
    """The workflow's classifier settings for the ensemble timing: a fixed number of epochs on ``device``."""
    base = omnifold_settings(1, 1)
    return ClassifierSettings(
        hidden=base.hidden,
        train=dataclasses.replace(
            base.train,
            epochs=sizes.ensemble_epochs,
            patience=sizes.ensemble_epochs,  # never stops early: a fixed number of epochs
            device=device,
            seed=SEED,
        ),
    )


def bench_batched_vs_loop(sample: Sample, sizes: Sizes) -> dict[str, Any]:
    """Throughput ratio of a batched ensemble over a per-member loop, on the CPU and (if present) CUDA."""
    inputs = ensemble_inputs(sample, sizes)
    settings = ensemble_settings(sizes)
    logger.info(
        "ensemble: %d members, %d vs %d events, %d epochs",
        len(inputs[2]),
        len(inputs[0]),
        len(inputs[1]),
        settings.train.epochs,
    )
    cpu = time_batched_vs_loop(inputs, settings)
    gpu = None
    if torch.cuda.is_available():
        gpu = time_batched_vs_loop(inputs, with_training(settings, device="cuda"))
    return {
        "batched_vs_loop_speedup_cpu": cpu["speedup"],
        "batched_vs_loop_speedup_gpu": None if gpu is None else gpu["speedup"],
        "batched_vs_loop": {
            "members": len(inputs[2]),
            "events_class0": len(inputs[0]),
            "events_class1": len(inputs[1]),
            "epochs": settings.train.epochs,
            "batch_size": settings.train.batch_size,
            "hidden": "x".join(map(str, settings.hidden)),
            "max_members_per_chunk": settings.max_members_per_chunk,
            "cpu": cpu,
            "gpu": gpu,
        },
    }


def ensure_peer_venv(venv: Path = PEER_VENV) -> tuple[Path | None, str]:
    """The peer virtualenv's python, created with ``PEER_REQUIREMENTS`` unless it already imports them.

    Returns (python, how it was obtained) or (None, why it could not be built).
    """
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import tensorflow, omnifold"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if python.exists() and subprocess.run(check, capture_output=True, env=env).returncode == 0:
        return python, "existing"
    logger.info("building the peer virtualenv at %s (several minutes)", venv)
    steps = [
        ["python3", "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS],
    ]
    for cmd in steps:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PEER_BUILD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as err:
            return None, f"{' '.join(cmd)}: {err}"
        if done.returncode != 0:
            return None, f"{' '.join(cmd)} failed: {(done.stderr or done.stdout)[-2000:]}"
    if subprocess.run(check, capture_output=True, env=env).returncode != 0:
        return None, f"{venv} was built but cannot import tensorflow and omnifold"
    return python, "built"


def standardised(x: np.ndarray, rows: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(x - mean) / std with the moments of ``ref`` (constant features keep unit scale); rows not in
    ``rows`` set to 0. numl standardises its inputs the same way; the peer takes features as given."""
    mean, std = ref.mean(axis=0, dtype=np.float64), ref.std(axis=0, dtype=np.float64)
    out = ((x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
    out[~rows] = 0.0
    return out


def export_peer_events(sample: Sample, path: Path) -> None:
    """Write the peer's inputs (standardised features, masks, weights) to ``path`` (npz)."""
    reco, truth = reco_features(sample.mc), truth_features(sample.mc)
    pass_reco, pass_truth = sample.mc["pass_reco"].to_numpy(), sample.mc["pass_truth"].to_numpy()
    reco_data, pass_data = reco_features(sample.data), sample.data["pass_reco"].to_numpy()
    np.savez(
        path,
        reco_mc=standardised(reco, pass_reco, reco[pass_reco]),
        gen_mc=standardised(truth, pass_truth, truth[pass_truth]),
        pass_reco=pass_reco,
        pass_gen=pass_truth,
        mc_weight=sample.mc_w,
        reco_data=standardised(reco_data, pass_data, reco[pass_reco]),
        pass_reco_data=pass_data,
        data_weight=sample.data_w,
    )


def run_peer(python: Path, settings: OmniFoldSettings, sample: Sample, workdir: Path) -> dict[str, Any]:
    """Run ``peer_omnifold.py`` with matching settings; its output goes to our stderr."""
    inputs, output = workdir / "events.npz", workdir / "pushed.npz"
    export_peer_events(sample, inputs)
    cmd = [
        str(python),
        str(PEER_SCRIPT),
        str(inputs),
        str(output),
        f"--iterations={settings.iterations}",
        f"--epochs={settings.train.epochs}",
        f"--batch-size={settings.train.batch_size}",
        f"--lr={settings.train.lr}",
        f"--patience={settings.train.patience}",
        f"--seed={settings.train.seed}",
        f"--workdir={workdir / 'peer'}",
        "--hidden",
        *map(str, settings.hidden),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    total_s, done = timed(
        lambda: subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, env=env, timeout=PEER_RUN_TIMEOUT_S)
    )
    if done.returncode != 0:
        raise RuntimeError(f"{PEER_SCRIPT.name} exited with {done.returncode}")
    out = np.load(output)
    return {
        "push": out["push"],
        "seconds": float(out["seconds"]),
        "process_s": total_s,
        "tensorflow": str(out["tensorflow"]),
        "omnifold": str(out["omnifold"]),
    }


def truth_histogram(
    events: pd.DataFrame, weights: np.ndarray, binning: Binning
) -> tuple[np.ndarray, np.ndarray]:
    """Truth-level counts of the ``pass_truth`` events and their variances (sum of squared weights)."""
    sel = events["pass_truth"].to_numpy()
    values = [events[c].to_numpy()[sel] for c in binning.columns("true_")]
    w = np.asarray(weights, np.float64)[sel]
    return binning.histogram(*values, weights=w), binning.histogram(*values, weights=w**2)


def chi2_per_ndof(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[float, int]:
    """sum (a - b)^2 / (var_a + var_b) / ndof over bins with a non-zero variance; returns it and ndof."""
    (va, ea), (vb, eb) = a, b
    var = ea + eb
    ok = var > 0
    ndof = int(ok.sum())
    return float(np.sum((va - vb)[ok] ** 2 / var[ok]) / max(ndof, 1)), ndof


def peer_quality(sample: Sample, numl_push: np.ndarray, peer_push: np.ndarray) -> dict[str, Any]:
    """Unfolded truth histograms of numl and the peer against each other and against the data's truth.

    Errors are statistical: each histogram's sum of squared weights per bin, added in quadrature.
    """
    out = {}
    for name in PEER_DISTRIBUTIONS:
        binning = BINNINGS[name]
        numl = truth_histogram(sample.mc, sample.mc_w * numl_push, binning)
        peer = truth_histogram(sample.mc, sample.mc_w * peer_push, binning)
        truth = truth_histogram(sample.data, sample.data_w, binning)
        vs_peer, ndof = chi2_per_ndof(numl, peer)
        out[name] = {
            "chi2_ndof_numl_vs_peer": vs_peer,
            "chi2_ndof_numl_vs_truth": chi2_per_ndof(numl, truth)[0],
            "chi2_ndof_peer_vs_truth": chi2_per_ndof(peer, truth)[0],
            "ndof": ndof,
        }
    return out


def bench_peer(sample: Sample, sizes: Sizes) -> dict[str, Any]:
    """numl's OmniFold vs the ``omnifold`` package on the same events and settings (one trial)."""
    part = sample.head(sizes.peer_events)
    settings = with_training(
        omnifold_settings(sizes.peer_iterations, 1, epochs=sizes.peer_epochs),
        batch_size=sizes.peer_batch_size,
    )
    info: dict[str, Any] = {
        "n_mc": len(part.mc),
        "n_data": len(part.data),
        "iterations": settings.iterations,
        "max_epochs": settings.train.epochs,
        "patience": settings.train.patience,
        "batch_size": settings.train.batch_size,
        "hidden": "x".join(map(str, settings.hidden)),
        "requirements": " ".join(PEER_REQUIREMENTS),
    }
    logger.info(
        "peer comparison: %d vs %d events, %d iterations", len(part.mc), len(part.data), settings.iterations
    )
    python, how = ensure_peer_venv()
    if python is None:
        logger.warning("peer unavailable: %s", how)
        return {"omnifold_vs_peer_speedup": None, "peer": {**info, "available": False, "reason": how}}
    numl_s, numl_push, volume = run_numl_omnifold(part, settings)
    logger.info("numl OmniFold took %.1f s; running the peer", numl_s)
    with tempfile.TemporaryDirectory(prefix="numl-peer-") as tmp:
        try:
            peer = run_peer(python, settings, part, Path(tmp))
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as err:
            logger.warning("peer run failed: %s", err)
            return {
                "omnifold_vs_peer_speedup": None,
                "peer": {**info, "available": False, "reason": str(err)},
            }
    logger.info("peer MultiFold took %.1f s", peer["seconds"])
    return {
        "omnifold_vs_peer_speedup": peer["seconds"] / numl_s,
        "peer": {
            **info,
            "available": True,
            "venv": how,
            "numl_s": numl_s,
            "numl_epochs_step1": volume["epochs_step1"],
            "numl_epochs_step2": volume["epochs_step2"],
            "peer_s": peer["seconds"],
            "peer_process_s": peer["process_s"],
            "tensorflow": peer["tensorflow"],
            "omnifold": peer["omnifold"],
        },
        "peer_quality": peer_quality(part, numl_push, peer["push"]),
    }


def max_rel_diff(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| / |ref|; where ref is 0 the absolute difference."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(a - ref) / np.where(ref != 0, np.abs(ref), 1.0)))


def sample_ibu_inputs(sample: Sample, weights: np.ndarray) -> tuple[ResponseInputs, np.ndarray, np.ndarray]:
    """Response from MC with ``weights`` (N,) or (T, N); observed data counts and their errors (E,)."""
    binning = BINNINGS[IBU_BINNING]
    w = sample.data_w.astype(np.float64)
    # counts and sums of squared weights in one pass: data weights stacked as (2, Nd)
    response, (observed, observed_w2) = ibu_inputs(
        sample.mc, sample.data, binning, weights, np.stack([w, w**2])
    )
    return response, observed, np.sqrt(observed_w2)


def bench_ibu(sample: Sample, sizes: Sizes) -> dict[str, Any]:
    """numl's IBU vs ``pyunfold.iterative_unfold``: one unfolding with errors, then throws.

    Both run a fixed number of iterations (``ts_stopping=0``) from the MC truth as prior, on the data
    minus the MC background (clipped at 0).
    """
    from pyunfold import iterative_unfold  # the peer, a test extra: the other parts run without it

    nominal, observed, observed_err = sample_ibu_inputs(sample, sample.mc_w)
    prior = nominal.truth / nominal.truth.sum()
    kwargs = {
        "data": np.clip(observed - nominal.background, 0.0, None),
        "data_err": observed_err,
        "response": nominal.response,
        "response_err": nominal.response_err,
        "efficiencies": nominal.efficiencies,
        "efficiencies_err": nominal.efficiencies_err,
        "prior": prior,
        "ts_stopping": 0.0,
        "max_iter": sizes.ibu_iterations,
    }
    numl_s, numl = best_time(lambda: iterative_bayesian_unfold(**kwargs))
    pyunfold_s, ref = best_time(lambda: iterative_unfold(**kwargs))
    single = {
        "unfolded": max_rel_diff(numl.unfolded, ref["unfolded"]),
        "stat_err": max_rel_diff(numl.stat_err, ref["stat_err"]),
        "sys_err": max_rel_diff(numl.sys_err, ref["sys_err"]),
    }
    logger.info(
        "IBU single: numl %.3f s, PyUnfold %.3f s, max rel diff %.2g",
        numl_s,
        pyunfold_s,
        max(single.values()),
    )

    throws = sample.mc_w * nd280.throw_weights(sample.mc, sizes.ibu_throws, seed=SEED)
    inputs, _, _ = sample_ibu_inputs(sample, throws)
    numl_throws_s, numl_throws = best_time(
        lambda: ibu_throws(
            observed,
            inputs.response,
            inputs.efficiencies,
            inputs.background,
            prior,
            n_iterations=sizes.ibu_iterations,
        )
    )

    def pyunfold_loop() -> np.ndarray:
        return np.stack(
            [
                iterative_unfold(
                    **{
                        **kwargs,
                        "data": np.clip(observed - inputs.background[t], 0.0, None),
                        "response": inputs.response[t],
                        "response_err": inputs.response_err[t],
                        "efficiencies": inputs.efficiencies[t],
                        "efficiencies_err": inputs.efficiencies_err[t],
                    }
                )["unfolded"]
                for t in range(sizes.ibu_throws)
            ]
        )

    pyunfold_throws_s, ref_throws = timed(pyunfold_loop)

    def numl_loop() -> list[Any]:
        return [
            iterative_bayesian_unfold(
                **{
                    **kwargs,
                    "data": observed,
                    "background": inputs.background[t],
                    "response": inputs.response[t],
                    "response_err": inputs.response_err[t],
                    "efficiencies": inputs.efficiencies[t],
                    "efficiencies_err": inputs.efficiencies_err[t],
                }
            )
            for t in range(sizes.ibu_throws)
        ]

    numl_loop_s, _ = timed(numl_loop)
    logger.info(
        "IBU %d throws: numl %.3f s, PyUnfold %.1f s", sizes.ibu_throws, numl_throws_s, pyunfold_throws_s
    )
    return {
        "ibu_max_rel_diff_vs_pyunfold": max(single.values()),
        "ibu_speedup_vs_pyunfold": pyunfold_throws_s / numl_throws_s,
        "ibu": {
            "binning": IBU_BINNING,
            "n_bins": BINNINGS[IBU_BINNING].n_bins,
            "iterations": sizes.ibu_iterations,
            "n_mc": len(sample.mc),
            "max_rel_diff": single,
            "single_numl_s": numl_s,
            "single_pyunfold_s": pyunfold_s,
            "single_speedup": pyunfold_s / numl_s,
            "throws": sizes.ibu_throws,
            "throws_numl_s": numl_throws_s,
            "throws_pyunfold_s": pyunfold_throws_s,
            "throws_numl_loop_s": numl_loop_s,
            "throws_note": "ibu_throws propagates no errors (the spread of the throws is the uncertainty); "
            "each PyUnfold call, and each call of the numl loop (throws_numl_loop_s), also propagates errors",
            "throws_max_rel_diff": max_rel_diff(numl_throws, ref_throws),
        },
    }


FULL_ENSEMBLE_THROWS = 100


def full_ensemble_projection(omnifold_full: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The reference's full ensemble, 100 throws x the full run's trials at the full run's events,
    iterations and epochs, projected from the full-size OmniFold run (``seconds``, its volume in
    ``omnifold_full``): 100 times its member-event-epochs at its measured throughput (batched members
    train at least as fast per member as the run's 5, so this is an upper bound)."""
    return {
        "full_ensemble_members": FULL_ENSEMBLE_THROWS * omnifold_full["trials"],
        "full_ensemble_member_event_epochs": FULL_ENSEMBLE_THROWS * omnifold_full["event_epochs"],
        "member_event_epochs_per_s": omnifold_full["event_epochs_per_s"],
        "full_ensemble_projected_s": FULL_ENSEMBLE_THROWS * seconds,
    }


def gpu_projection(result: dict[str, Any]) -> dict[str, Any]:
    """The full ensemble projected from this run's CPU measurement; the GPU keys are null here (the GPU
    figures come from ``benchmarks/gpu.py`` on a GPU machine)."""
    cpu = full_ensemble_projection(result["omnifold_full"], result["omnifold_full_cpu_s"])
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "full_ensemble_cpu": cpu,
        "full_ensemble_projected_cpu_s": cpu["full_ensemble_projected_s"],
        "gpu_member_epochs_per_s": None,
        "full_ensemble_projected_gpu_s": None,
        "gpu_name": gpu,
        "gpu_note": "no GPU machine was available to this run: the GPU keys are null; benchmarks/gpu.py "
        "measures them on one",
    }


def run(quick: bool) -> dict[str, Any]:
    """Every part at the ``QUICK`` or ``FULL`` sizes; progress goes to stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sizes = QUICK if quick else FULL
    result: dict[str, Any] = {
        "sizes": dataclasses.asdict(sizes),
        "fake_data": FAKE_DATA,
        "seed": SEED,
        "torch_threads": torch.get_num_threads(),
    }
    result.update(unfolding_calibration.run(sizes))  # chi2 values only: no timing in this part
    logger.info("generating %d events (fake data %s)", sizes.n_events, FAKE_DATA)
    result["generate_s"], sample = timed(lambda: make_sample(sizes.n_events))
    result.update(bench_omnifold_full(sample, sizes))
    result.update(bench_batched_vs_loop(sample, sizes))
    result.update(bench_peer(sample, sizes))
    result.update(bench_ibu(sample, sizes))
    result.update(gpu_projection(result))
    return result
