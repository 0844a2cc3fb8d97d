"""OmniFold and its batched classifier ensemble: closure, self-unfolding, batching, resume."""

import numpy as np
import pytest
import torch

from numl_core.jobs import JobCancelled, Progress
from numl_core.runs import RunDir
from numl_core.unfold.inputs import UnfoldingInputs
from numl_core.unfold.model import EnsembleMLP
from numl_core.unfold.omnifold import CHECKPOINT, DIAGNOSTICS, OmniFoldSettings, unfold_omnifold
from numl_core.unfold.train import ClassifierSettings, classifier_training, train_classifiers

SMEAR = 0.5  # Gaussian detector resolution of the toy, in units of the truth width
DATA_SHIFT = 0.5  # truth mean of the pseudo-data; the simulation has mean 0


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: fast and steady on a shared machine; results do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_settings(**changes) -> OmniFoldSettings:
    values = dict(
        iterations=2,
        trials=2,
        hidden=(16, 16),
        batch_size=256,
        epochs=10,
        lr=1e-2,
        patience=3,
        device="cpu",
        seed=7,
    )
    values.update(changes)
    train = {k: values.pop(k) for k in ("batch_size", "epochs", "lr", "patience", "device", "seed")}
    return OmniFoldSettings(**values, train=classifier_training(**train))


def gaussian(rng: np.random.Generator, n: int, mean: float) -> tuple[np.ndarray, np.ndarray]:
    """Truth ~ N(mean, 1) and reco = truth + N(0, SMEAR), as (n, 1) float32 columns."""
    truth = rng.normal(mean, 1.0, (n, 1)).astype(np.float32)
    return truth, (truth + rng.normal(0.0, SMEAR, truth.shape)).astype(np.float32)


def with_acceptance(rng: np.random.Generator, n: int, mean: float, fake_fraction: float = 0.1):
    """Gaussian events with a truth-dependent efficiency and a background without truth.

    Features of rows that fail reco (or truth) are NaN: OmniFold must never read them.
    """
    truth, reco = gaussian(rng, n, mean)
    pass_truth = rng.random(n) >= fake_fraction
    efficiency = 1.0 / (1.0 + np.exp(-(1.5 + truth[:, 0])))
    pass_reco = (rng.random(n) < efficiency) | ~pass_truth
    reco[~pass_reco] = np.nan
    reco[~pass_truth, 0] = rng.normal(1.0, 0.7, (~pass_truth).sum())
    truth[~pass_truth] = np.nan
    return truth, reco, pass_reco, pass_truth


def weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * x) / np.sum(w))


@pytest.mark.parametrize("members", [1, 3])
def test_ensemble_members_are_independent_mlps(members):
    net = EnsembleMLP(members, in_dim=3, hidden=(5, 4), seeds=list(range(members)))
    x = torch.randn(7, 3)
    shared = net(x)
    assert shared.shape == (members, 7)
    torch.testing.assert_close(net(x.expand(members, 7, 3)), shared)
    for m in range(members):
        h = torch.relu(x @ net.weights[0][m] + net.biases[0][m])
        h = torch.relu(h @ net.weights[1][m] + net.biases[1][m])
        torch.testing.assert_close(shared[m], (h @ net.weights[2][m] + net.biases[2][m])[:, 0])
    # the same seed gives the same member whatever the ensemble size
    torch.testing.assert_close(EnsembleMLP(1, 3, (5, 4), seeds=[members - 1])(x)[0], shared[-1])


def test_batched_training_equals_members_trained_alone():
    rng = np.random.default_rng(1)
    x0, x1 = rng.normal(0.0, 1.0, (600, 2)), rng.normal(0.4, 1.0, (500, 2))
    w0, w1 = rng.uniform(0.5, 1.5, (3, 600)), rng.uniform(0.5, 1.5, (3, 500))
    settings = ClassifierSettings(
        hidden=(8, 8), train=classifier_training(batch_size=128, epochs=8, patience=2, lr=1e-2, device="cpu")
    )
    init = EnsembleMLP(3, 2, settings.hidden, seeds=[11, 12, 13])
    batched = train_classifiers(x0, x1, w0, w1, settings, init=init, seed=5)
    chunked = train_classifiers(
        x0,
        x1,
        w0,
        w1,
        ClassifierSettings(**{**vars(settings), "max_members_per_chunk": 2}),
        init=init,
        seed=5,
    )
    probe = torch.linspace(-3, 3, 50).reshape(25, 2)
    alone = torch.cat(
        [
            train_classifiers(x0, x1, w0[m], w1[m], settings, init=init.select([m]), seed=5).log_ratio(probe)
            for m in range(3)
        ]
    )
    # same arithmetic up to the order of float32 sums in grouped vs single matrix products
    torch.testing.assert_close(batched.log_ratio(probe), alone, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(chunked.log_ratio(probe), batched.log_ratio(probe), rtol=1e-4, atol=1e-4)
    assert batched.train_loss.shape == batched.val_loss.shape == (len(batched.train_loss), 3)
    # members differ by their weights, so training must not collapse them onto one function
    assert batched.log_ratio(probe).std(dim=0).mean() > 1e-3


def test_early_stopping_keeps_each_members_best_parameters():
    rng = np.random.default_rng(2)
    x0, x1 = rng.normal(0.0, 1.0, (400, 1)), rng.normal(0.0, 1.0, (400, 1))  # nothing to learn
    settings = ClassifierSettings(
        hidden=(32,), train=classifier_training(batch_size=32, epochs=30, patience=2, lr=3e-2, device="cpu")
    )
    fit = train_classifiers(x0, x1, np.ones((2, 400)), np.ones((2, 400)), settings, seed=3)
    assert len(fit.val_loss) < settings.train.epochs  # overfitting noise stops every member early
    best = fit.val_loss[fit.best_epoch, np.arange(2)]
    np.testing.assert_allclose(best, fit.val_loss.min(axis=0))


def test_gaussian_closure_moves_truth_to_data():
    rng = np.random.default_rng(0)
    n = nd = 3000
    truth, reco = gaussian(rng, n, 0.0)
    truth_data, reco_data = gaussian(rng, nd, DATA_SHIFT)
    ok = np.ones(n, bool)
    result = unfold_omnifold(
        UnfoldingInputs(reco, truth, ok, ok, reco_data), settings=tiny_settings(iterations=3, trials=4)
    )
    target = float(truth_data.mean())
    ess = float(result.diagnostics[-1]["ess"][0])
    # error of the unfolded mean against this data set's own truth mean: the data's smearing
    # noise (SMEAR^2 / nd) plus the weighted simulation's sampling error (1 / ESS); 3 sigma.
    # Four trials keep the classifiers' own scatter well below that.
    sigma = np.sqrt(SMEAR**2 / nd + 1.0 / ess)
    # for Gaussians each iteration closes the remaining gap by 1 / (1 + SMEAR^2) (the Bayes
    # posterior mean shrinks reco by that factor), so n iterations leave (SMEAR^2/(1+SMEAR^2))^n
    keep = SMEAR**2 / (1 + SMEAR**2)
    for i in range(3):
        expected = target * (1 - keep ** (i + 1))
        assert abs(weighted_mean(truth[:, 0], result.weights(i)) - expected) < 3 * sigma
    assert abs(weighted_mean(truth[:, 0], result.weights()) - target) < 3 * sigma + keep**3 * target


def test_unfolding_simulation_onto_itself_gives_unit_weights():
    rng = np.random.default_rng(4)
    n = 3000
    truth, reco = gaussian(rng, n, 0.0)
    ok = np.ones(n, bool)
    settings = tiny_settings()
    result = unfold_omnifold(UnfoldingInputs(reco, truth, ok, ok, reco), settings=settings)
    n_train = 2 * n * (1 - settings.val_fraction)
    for step in (1, 2):
        w = result.weights(step=step)
        # a fitted class fraction q carries binomial error 1/(2 sqrt(n_train)); r = q/(1-q) ~ 1 + 4 dq
        assert abs(w.mean() - 1) < 3 * 2 / np.sqrt(n_train)
    # truth mean of unit-variance events: statistical error 1/sqrt(n)
    assert abs(weighted_mean(truth[:, 0], result.weights()) - truth.mean()) < 3 / np.sqrt(n)


def test_result_shapes_diagnostics_and_metrics(tmp_path):
    rng = np.random.default_rng(5)
    n, nd, throws = 1500, 1200, 3
    truth, reco = gaussian(rng, n, 0.0)
    _, reco_data = gaussian(rng, nd, DATA_SHIFT)
    ok = np.ones(n, bool)
    prior = rng.uniform(0.8, 1.2, (throws, n)).astype(np.float32)
    progress = Progress()
    result = unfold_omnifold(
        UnfoldingInputs(reco, truth, ok, ok, reco_data, prior),
        settings=tiny_settings(epochs=3),
        progress=progress,
    )
    assert result.history.shape == (2, 2, throws, n) and result.history.dtype == np.float32
    assert result.weights().shape == (throws, n) and result.weights(0, step=1).shape == (throws, n)
    assert result.trial_spread.shape == (2, throws, n) and result.trial_weights.shape == (2, throws, n)
    assert np.isfinite(result.history).all() and (result.trial_spread > 0).any()
    np.testing.assert_allclose(result.trial_weights.mean(axis=0), result.weights(), rtol=1e-5)
    assert len(result.diagnostics) == 4 and len(result.convergence) == 2
    for record in result.diagnostics:
        assert set(DIAGNOSTICS) <= set(record) and record["finite"].all()
        assert record["ess"].shape == (throws,) and (record["ess"] > 0).all()
    frame = result.diagnostics_frame()
    assert len(frame) == 4 * throws and list(frame.columns[:3]) == ["iteration", "step", "throw"]
    run = RunDir(tmp_path / "run")
    run.save_result(result.to_dict())
    np.testing.assert_array_equal(run.load_result()["weights"], result.weights())
    names = {(r["name"], r.get("split")) for r in progress.read_metrics(0)[0]}
    assert {
        ("step1_loss", "train"),
        ("step1_loss", "val"),
        ("step2_loss", "val"),
        ("step2_ess", None),
        ("omnifold_change", None),
    } <= names


def test_failing_reco_and_truth_are_handled_without_nan():
    rng = np.random.default_rng(3)
    truth, reco, pass_reco, pass_truth = with_acceptance(rng, 4000, 0.0)
    truth_d, reco_d, pass_reco_d, pass_truth_d = with_acceptance(rng, 4000, DATA_SHIFT)
    result = unfold_omnifold(
        UnfoldingInputs(reco, truth, pass_reco, pass_truth, reco_d[pass_reco_d]),
        settings=tiny_settings(iterations=5),
    )
    assert np.isfinite(result.history).all()
    # background (no truth) is reweighted in step 1 like any reco event but keeps its prior weight
    # after step 2; events failing reco are reweighted at truth level only, so their step-1
    # weight is the previous push weight
    assert (result.history[:, 1, 0, ~pass_truth] == 1).all()
    only_truth = pass_truth & ~pass_reco
    np.testing.assert_array_equal(result.history[1:, 0, 0, only_truth], result.history[:-1, 1, 0, only_truth])
    assert not np.allclose(result.weights()[only_truth], 1)
    w = result.weights()[pass_truth]
    ess = float(result.diagnostics[-1]["ess"][0])
    n_data_reco = int(pass_reco_d.sum())
    # as in the Gaussian closure: data smearing noise plus weighted-simulation sampling error, 3 sigma
    sigma = np.sqrt(SMEAR**2 / n_data_reco + 1.0 / ess)
    assert abs(weighted_mean(truth[pass_truth, 0], w) - np.mean(truth_d[pass_truth_d])) < 3 * sigma


def test_same_seed_same_weights_and_cancel_resume_is_identical(tmp_path):
    rng = np.random.default_rng(6)
    truth, reco = gaussian(rng, 1000, 0.0)
    _, reco_data = gaussian(rng, 800, DATA_SHIFT)
    ok = np.ones(1000, bool)
    settings = tiny_settings(epochs=3)
    args = (reco, truth, ok, ok, reco_data)
    reference = unfold_omnifold(UnfoldingInputs(*args), settings=settings)
    np.testing.assert_array_equal(
        unfold_omnifold(UnfoldingInputs(*args), settings=settings).history, reference.history
    )

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    progress = Progress(run)

    def cancel_after_first_iteration(kind, payload):
        if kind == "metric" and payload["name"] == "omnifold_change" and payload["iteration"] == 0:
            progress.request_cancel()

    progress.listeners.append(cancel_after_first_iteration)
    with pytest.raises(JobCancelled):
        unfold_omnifold(UnfoldingInputs(*args), settings=settings, progress=progress)
    assert run.load_checkpoint(CHECKPOINT)["done"] == 1
    resumed = unfold_omnifold(UnfoldingInputs(*args), settings=settings, progress=Progress(run))
    np.testing.assert_array_equal(resumed.history, reference.history)
    np.testing.assert_array_equal(resumed.trial_weights, reference.trial_weights)
    assert resumed.convergence == reference.convergence
    with pytest.raises(ValueError, match="other settings"):
        unfold_omnifold(
            UnfoldingInputs(*args), settings=tiny_settings(epochs=3, seed=8), progress=Progress(run)
        )
    fresh = unfold_omnifold(
        UnfoldingInputs(*args), settings=tiny_settings(epochs=3, seed=8), progress=Progress(run), resume=False
    )
    assert not np.array_equal(fresh.history, reference.history)


def test_stop_on_convergence_ends_at_first_converged_iteration():
    rng = np.random.default_rng(8)
    truth, reco = gaussian(rng, 1500, 0.0)
    _, reco_data = gaussian(rng, 1500, DATA_SHIFT)
    ok = np.ones(1500, bool)
    full = unfold_omnifold(
        UnfoldingInputs(reco, truth, ok, ok, reco_data), settings=tiny_settings(iterations=4)
    )
    first = next((r["iteration"] for r in full.convergence if r["change"] < r["trial_spread"]), None)
    assert full.converged_at == first
    stopped = unfold_omnifold(
        UnfoldingInputs(reco, truth, ok, ok, reco_data),
        settings=tiny_settings(iterations=4, stop_on_convergence=True),
    )
    n_kept = 4 if first is None else first + 1  # with this seed the toy converges before iteration 4
    assert stopped.n_iterations == n_kept and stopped.converged_at == first
    np.testing.assert_array_equal(stopped.history, full.history[:n_kept])


def test_weight_clip_bounds_every_step_ratio():
    rng = np.random.default_rng(9)
    truth, reco = gaussian(rng, 1500, 0.0)
    _, reco_data = gaussian(rng, 1500, 2 * DATA_SHIFT)
    ok = np.ones(1500, bool)
    lo, hi = 0.8, 1.25
    result = unfold_omnifold(
        UnfoldingInputs(reco, truth, ok, ok, reco_data), settings=tiny_settings(weight_clip=(lo, hi))
    )
    push = result.history[:, 1, 0]
    # trial averages of clipped ratios times a common previous weight stay inside the clip range
    ratios = np.concatenate([push[0], push[1] / push[0], result.history[0, 0, 0]])
    assert ratios.min() >= lo * (1 - 1e-5) and ratios.max() <= hi * (1 + 1e-5)
    assert np.isclose(ratios, hi, rtol=1e-5).any()  # a shift of one unit needs ratios beyond the clip


def test_identical_throws_differ_only_by_classifier_noise():
    # each throw's classifiers start from their own initialisation, so the throws' spread carries the
    # classifier noise the covariance must count: two throws with equal weights differ, by about as much as
    # two trials of one throw do
    rng = np.random.default_rng(10)
    truth, reco = gaussian(rng, 1000, 0.0)
    _, reco_data = gaussian(rng, 800, DATA_SHIFT)
    ok = np.ones(1000, bool)
    prior = np.repeat(rng.uniform(0.5, 1.5, (1, 1000)), 2, axis=0)
    settings = tiny_settings(epochs=3, max_members_per_chunk=4)
    result = unfold_omnifold(UnfoldingInputs(reco, truth, ok, ok, reco_data, prior), settings=settings)
    between_throws = np.abs(result.trial_weights[0, 0] - result.trial_weights[0, 1]).mean()
    between_trials = np.abs(result.trial_weights[0, 0] - result.trial_weights[1, 0]).mean()
    assert between_throws > 0
    assert 0.2 < between_throws / between_trials < 5.0
