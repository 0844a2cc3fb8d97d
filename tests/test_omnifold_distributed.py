"""OmniFold with the throws split into tasks: the same answer as one batched run, on a Dask cluster too."""

from __future__ import annotations

import numpy as np
import pytest

from numl_core.jobs import JobCancelled, Progress
from numl_core.unfold.inputs import UnfoldingInputs
from numl_core.unfold.omnifold import OmniFoldSettings, unfold_omnifold
from numl_core.unfold.omnifold_distributed import merge_results, unfold_omnifold_distributed
from numl_core.unfold.train import classifier_training

SETTINGS = OmniFoldSettings(
    iterations=2,
    trials=2,
    hidden=(8,),
    train=classifier_training(batch_size=250, epochs=2, device="cpu", seed=3),
)


def _inputs(n: int = 1000, throws: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(7)
    truth = rng.normal(0.0, 1.0, (n, 2)).astype(np.float32)
    reco = truth + rng.normal(0.0, 0.4, truth.shape).astype(np.float32)
    pass_reco = rng.uniform(size=n) < 0.9
    pass_truth = rng.uniform(size=n) < 0.95
    data = (rng.normal(0.2, 1.0, (n // 2, 2)) + rng.normal(0.0, 0.4, (n // 2, 2))).astype(np.float32)
    mc_w = rng.uniform(0.8, 1.2, (throws, n)).astype(np.float32)
    return reco, truth, pass_reco, pass_truth, data, mc_w


def test_split_throws_reproduce_one_batched_run():
    reco, truth, pr, pt, data, mc_w = _inputs()
    whole = unfold_omnifold(UnfoldingInputs(reco, truth, pr, pt, data, mc_w), settings=SETTINGS)
    split = unfold_omnifold_distributed(
        UnfoldingInputs(reco, truth, pr, pt, data, mc_w), settings=SETTINGS, throws_per_task=2
    )
    assert split.history.shape == whole.history.shape == (2, 2, 3, 1000)
    # the same members with the same seeds and batches; only float reductions may differ
    np.testing.assert_allclose(split.history, whole.history, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(split.trial_weights, whole.trial_weights, rtol=1e-4, atol=1e-5)
    for a, b in zip(split.convergence, whole.convergence, strict=True):
        assert a["change"] == pytest.approx(b["change"], rel=1e-3)
        assert a["trial_spread"] == pytest.approx(b["trial_spread"], rel=1e-3)
    for a, b in zip(split.diagnostics, whole.diagnostics, strict=True):
        np.testing.assert_allclose(a["ess"], b["ess"], rtol=1e-4)


def test_a_local_dask_cluster_gives_the_in_process_answer():
    reco, truth, pr, pt, data, mc_w = _inputs(600, throws=2)
    settings = OmniFoldSettings(
        iterations=1, trials=1, hidden=(8,), train=classifier_training(batch_size=300, epochs=1, device="cpu")
    )
    here = unfold_omnifold_distributed(
        UnfoldingInputs(reco, truth, pr, pt, data, mc_w), settings=settings, throws_per_task=1
    )
    progress = Progress()
    there = unfold_omnifold_distributed(
        UnfoldingInputs(reco, truth, pr, pt, data, mc_w),
        settings=settings,
        throws_per_task=1,
        scheduler="local",
        progress=progress,
    )
    np.testing.assert_allclose(there.history, here.history, rtol=1e-5, atol=1e-6)
    assert progress.fraction == 1.0
    assert {r["name"] for r in progress.read_metrics(0)[0]} == {"step1_loss", "step2_loss"}


def test_a_cancel_stops_before_the_next_task():
    reco, truth, pr, pt, data, mc_w = _inputs(200)
    progress = Progress()
    progress.request_cancel()
    with pytest.raises(JobCancelled):
        unfold_omnifold_distributed(
            UnfoldingInputs(reco, truth, pr, pt, data, mc_w), settings=SETTINGS, progress=progress
        )


def test_refusals_name_the_problem():
    reco, truth, pr, pt, data, mc_w = _inputs(200)
    stop = OmniFoldSettings(iterations=2, stop_on_convergence=True)
    with pytest.raises(ValueError, match="stop_on_convergence cannot be used"):
        unfold_omnifold_distributed(UnfoldingInputs(reco, truth, pr, pt, data, mc_w), settings=stop)
    with pytest.raises(ValueError, match="throws_per_task = 0"):
        unfold_omnifold_distributed(
            UnfoldingInputs(reco, truth, pr, pt, data, mc_w), settings=SETTINGS, throws_per_task=0
        )
    with pytest.raises(ValueError, match="no OmniFold results"):
        merge_results([])
