"""Iterative Bayesian Unfolding: number-for-number agreement with PyUnfold, memory at 1200 bins, throws."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from pyunfold import iterative_unfold
from pyunfold.mix import Mixer

from numl_core.data.binning import BINNINGS
from numl_core.unfold.ibu import (
    IBUResult,
    ibu_throws,
    iterative_bayesian_unfold,
    response_from_events,
)

# Both codes run the same double-precision algorithm; only the order of some sums differs, so they agree
# to ~1e-14. 1e-8 relative is the agreement promised; the absolute floor (1e-12 of the largest entry)
# covers entries that are exact zeros in one code and ~1e-25 rounding residues in the other.
RTOL = 1e-8


def assert_matches(actual: np.ndarray, reference: np.ndarray) -> None:
    reference = np.asarray(reference, dtype=float)
    atol = 1e-12 * max(float(np.max(np.abs(reference))), 1e-300)
    np.testing.assert_allclose(actual, reference, rtol=RTOL, atol=atol)


def random_inputs(seed: int, n_effects: int, n_causes: int, empty_cause: bool = False) -> dict:
    """A random smearing with PyUnfold's tutorial conventions (sqrt(N) response errors)."""
    rng = np.random.default_rng(seed)
    migrations = rng.poisson(50 * rng.random((n_effects, n_causes)) ** 3 + 0.3).astype(float)
    truth = migrations.sum(0) / rng.uniform(0.4, 0.9, n_causes)
    if empty_cause:
        migrations[:, 1] = 0.0
    response = migrations / truth
    data = rng.poisson(response @ rng.uniform(50, 500, n_causes)).astype(float)
    efficiencies = response.sum(0)
    return {
        "data": data,
        "data_err": np.sqrt(data),
        "response": response,
        "response_err": np.sqrt(migrations) / truth,
        "efficiencies": efficiencies,
        "efficiencies_err": efficiencies / np.sqrt(truth),
    }


def toy_muon_events(seed: int, n: int) -> dict[str, np.ndarray]:
    """Muon (p [GeV/c], cos theta) at truth and reco level with a smearing and a selection."""
    rng = np.random.default_rng(seed)
    p = rng.gamma(3.0, 0.25, n)
    cos = np.clip(1.0 - rng.exponential(0.25, n), -1.0, 1.0)
    reco_p = p * rng.normal(1.0, 0.08, n)
    reco_cos = np.clip(cos + rng.normal(0.0, 0.03, n), -1.0, 1.0)
    return {
        "true": (p, cos),
        "reco": (reco_p, reco_cos),
        "pass_truth": p > 0.2,
        "pass_reco": rng.random(n) < 0.8 * (reco_p > 0.15),
    }


def muon_inputs(seed: int) -> tuple[dict, np.ndarray]:
    """58-cause, 58-effect inputs built from weighted events; data from a reweighted sample."""
    binning = BINNINGS["muon_p_cos"]
    mc = toy_muon_events(seed, 40_000)
    t_idx, t_in = binning.index(*mc["true"])
    r_idx, r_in = binning.index(*mc["reco"])
    weights = np.random.default_rng(seed + 1).uniform(0.5, 1.5, len(t_idx))
    r = response_from_events(
        t_idx, t_in, r_idx, r_in, mc["pass_truth"], mc["pass_reco"], weights, binning.n_bins, binning.n_bins
    )
    fake = toy_muon_events(seed + 2, 20_000)
    f_idx, f_in = binning.index(*fake["reco"])
    data = np.bincount(f_idx[f_in & fake["pass_reco"]], minlength=binning.n_bins).astype(float)
    inputs = {
        "data": data,
        "data_err": np.sqrt(data),
        "response": r.response,
        "response_err": r.response_err,
        "efficiencies": r.efficiencies,
        "efficiencies_err": r.efficiencies_err,
    }
    return inputs, r.background


CASES = [
    # (name, inputs builder, pyunfold/ibu keyword arguments)
    ("1d_default", lambda: random_inputs(0, 12, 10), {}),
    ("1d_more_effects_poisson", lambda: random_inputs(1, 20, 8), {"cov_type": "poisson"}),
    ("1d_fixed_iterations_chi2", lambda: random_inputs(2, 15, 15), {"ts": "chi2", "ts_stopping": 1e-12}),
    ("1d_max_iter_bf", lambda: random_inputs(3, 9, 12), {"ts": "bf", "ts_stopping": -1e9, "max_iter": 6}),
    ("1d_empty_cause_rmd", lambda: random_inputs(4, 10, 10, empty_cause=True), {"ts": "rmd"}),
    ("2d_flattened_muon", lambda: muon_inputs(5)[0], {"max_iter": 5, "ts_stopping": 0.0}),
    ("2d_flattened_muon_poisson", lambda: muon_inputs(6)[0], {"cov_type": "poisson", "ts_stopping": 1e-3}),
]


@pytest.mark.parametrize("name,build,kwargs", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("with_prior", [False, True], ids=["flat_prior", "prior"])
def test_every_iteration_matches_pyunfold(name, build, kwargs, with_prior):
    inputs = build()
    if with_prior:
        kwargs = {**kwargs, "prior": np.random.default_rng(7).dirichlet(np.ones(len(inputs["efficiencies"])))}
    reference = iterative_unfold(**inputs, **kwargs, return_iterations=True)
    result = iterative_bayesian_unfold(**inputs, **kwargs, return_iterations=True)
    frame = result.to_frame()
    assert result.n_iterations == len(reference) == len(frame)
    assert list(frame.columns) == list(reference.columns)
    for key in ["unfolded", "stat_err", "sys_err", "unfolding_matrix"]:
        assert_matches(np.stack(frame[key].to_list()), np.stack(reference[key].to_list()))
    assert_matches(result.ts_values, reference["ts_iter"].to_numpy())
    assert_matches(result.unfolded, reference["unfolded"].iloc[-1])


@pytest.mark.parametrize("cov_type", ["multinomial", "poisson"])
def test_full_covariance_matches_pyunfold_dense_formula(cov_type):
    """Off-diagonal terms too: PyUnfold's dense (effects*causes)^2 propagation after 5 iterations."""
    inputs = random_inputs(8, 14, 11)
    prior = np.random.default_rng(9).dirichlet(np.ones(11))
    mixer = Mixer(**inputs, cov_type=cov_type)
    n_c = inputs["data"].sum() * prior
    for _ in range(5):
        n_c = mixer.smear(n_c)
    result = iterative_bayesian_unfold(**inputs, prior=prior, max_iter=5, ts_stopping=0.0, cov_type=cov_type)
    assert_matches(result.stat_covariance, mixer.cov.getVc0())
    assert_matches(result.sys_covariance, mixer.cov.getVc1())
    assert_matches(result.covariance, mixer.get_cov())


def test_1200_bins_run_in_bounded_memory():
    """PyUnfold's dense response covariance would be (1200*1200)^2 doubles = 16 TB; this stays < 1 GB."""
    n = 1200
    i = np.arange(n)
    response = np.exp(-0.5 * ((i[:, None] - i[None, :]) / 4.0) ** 2)
    response *= 0.7 / response.sum(0)
    truth = np.random.default_rng(10).uniform(100, 1000, n)
    data = response @ truth
    tracemalloc.start()
    try:
        result = iterative_bayesian_unfold(
            data,
            np.sqrt(data),
            response,
            np.sqrt(response / 1e4),
            response.sum(0),
            response.sum(0) / 100,
            max_iter=3,
            ts_stopping=0.0,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.n_iterations == 3
    assert peak < 1e9, f"peak traced memory {peak / 1e9:.2f} GB"
    assert np.all(np.isfinite(result.covariance))
    np.testing.assert_allclose(result.sys_covariance, result.sys_covariance.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.sqrt(np.diag(result.sys_covariance)), result.sys_err, rtol=1e-10)
    assert np.all(result.sys_err > 0)


def test_background_is_subtracted_and_clipped():
    inputs = random_inputs(11, 10, 8)
    background = np.full(10, 30.0)
    background[0] = inputs["data"][0] + 50.0  # more background than data: that bin unfolds from 0
    subtracted = {**inputs, "data": np.clip(inputs["data"] - background, 0.0, None)}
    expected = iterative_unfold(**subtracted, return_iterations=True)
    result = iterative_bayesian_unfold(**inputs, background=background)
    assert_matches(result.unfolded, expected["unfolded"].iloc[-1])
    assert result.n_iterations == len(expected)


def test_closure_on_the_simulation_itself():
    """Unfolding the simulation's own selected events (signal + background) with its truth shape as
    prior returns its truth exactly: the first Bayes step maps P @ truth back onto truth."""
    binning = BINNINGS["muon_p_cos"]
    mc = toy_muon_events(12, 30_000)
    t_idx, t_in = binning.index(*mc["true"])
    r_idx, r_in = binning.index(*mc["reco"])
    weights = np.random.default_rng(13).uniform(0.5, 2.0, len(t_idx))
    inputs = response_from_events(
        t_idx, t_in, r_idx, r_in, mc["pass_truth"], mc["pass_reco"], weights, binning.n_bins, binning.n_bins
    )
    selected = mc["pass_reco"] & r_in
    observed = np.bincount(r_idx[selected], weights[selected], minlength=binning.n_bins)
    assert inputs.background.sum() > 0  # the toy has out-of-signal events that pass the selection
    prior = inputs.truth / inputs.truth.sum()
    result = iterative_bayesian_unfold(
        observed,
        np.sqrt(observed),
        inputs.response,
        inputs.response_err,
        inputs.efficiencies,
        inputs.efficiencies_err,
        prior=prior,
        background=inputs.background,
        max_iter=3,
        ts_stopping=0.0,
    )
    np.testing.assert_allclose(result.unfolded, inputs.truth, rtol=1e-10, atol=1e-9)


def test_response_from_events_by_hand():
    # events: (truth bin, reco bin, truth signal, selected, weight)
    t_idx = np.array([0, 0, 1, 1, 1, 0, 1])
    r_idx = np.array([0, 1, 1, 1, 0, 0, 2])
    t_in = np.array([True, True, True, True, True, False, True])
    r_in = np.array([True, True, True, True, True, True, False])
    signal = np.array([True, True, True, True, True, True, True])
    selected = np.array([True, True, True, False, True, True, True])
    w = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 5.0, 4.0])
    r = response_from_events(t_idx, t_in, r_idx, r_in, signal, selected, w, n_causes=2, n_effects=3)
    # cause 0: events 0, 1 (event 5 is out of the truth range -> background in reco bin 0)
    # cause 1: events 2, 3 (not selected), 4, 6 (reco out of range): truth = 1 + 3 + 1 + 4 = 9
    np.testing.assert_allclose(r.truth, [3.0, 9.0])
    np.testing.assert_allclose(r.migrations, [[1.0, 1.0], [2.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(r.response, [[1 / 3, 1 / 9], [2 / 3, 1 / 9], [0.0, 0.0]])
    np.testing.assert_allclose(r.efficiencies, [1.0, 2 / 9])
    np.testing.assert_allclose(r.background, [5.0, 0.0, 0.0])
    np.testing.assert_allclose(r.response_err, [[1 / 3, 1 / 9], [2 / 3, 1 / 9], [0.0, 0.0]])
    # N_eff of cause 1 = 9^2 / (1 + 9 + 1 + 16) = 3: PyUnfold's (eps / err)^2 must give it back
    assert (r.efficiencies[1] / r.efficiencies_err[1]) ** 2 == pytest.approx(3.0)


def test_response_from_events_batched_weights_equal_per_throw():
    rng = np.random.default_rng(14)
    n, n_throws = 500, 4
    t_idx, r_idx = rng.integers(0, 6, n), rng.integers(0, 5, n)
    masks = rng.random((4, n)) < np.array([[0.9], [0.9], [0.8], [0.7]])
    weights = rng.uniform(0.2, 2.0, (n_throws, n))
    batched = response_from_events(t_idx, masks[0], r_idx, masks[1], masks[2], masks[3], weights, 6, 5)
    assert batched.response.shape == (n_throws, 5, 6)
    for t in range(n_throws):
        single = response_from_events(t_idx, masks[0], r_idx, masks[1], masks[2], masks[3], weights[t], 6, 5)
        for field in ["response", "response_err", "efficiencies", "efficiencies_err", "background", "truth"]:
            np.testing.assert_allclose(getattr(batched, field)[t], getattr(single, field), rtol=1e-13)


def test_throws_equal_looping_the_scalar_unfolding():
    rng = np.random.default_rng(15)
    n_throws, n_effects, n_causes, n_iter = 6, 9, 7, 5
    base = random_inputs(16, n_effects, n_causes)
    response = base["response"] * rng.uniform(0.8, 1.2, (n_throws, n_effects, n_causes))
    efficiencies = response.sum(axis=1)
    data = rng.poisson(base["data"], (n_throws, n_effects)).astype(float)
    background = rng.uniform(0.0, 20.0, (n_throws, n_effects))
    prior = rng.dirichlet(np.ones(n_causes))
    batched = ibu_throws(data, response, efficiencies, background, prior, n_iterations=n_iter)
    assert batched.shape == (n_throws, n_causes)
    for t in range(n_throws):
        single = iterative_bayesian_unfold(
            data[t],
            np.sqrt(data[t]),
            response[t],
            np.zeros_like(response[t]),
            efficiencies[t],
            np.zeros(n_causes),
            prior=prior,
            background=background[t],
            max_iter=n_iter,
            ts_stopping=0.0,
        )
        # same arithmetic in another order: agreement to rounding, 1e-12
        np.testing.assert_allclose(batched[t], single.unfolded, rtol=1e-12)
    shared = ibu_throws(data, base["response"], base["efficiencies"], n_iterations=n_iter)
    looped = [ibu_throws(d, base["response"], base["efficiencies"], n_iterations=n_iter) for d in data]
    np.testing.assert_allclose(shared, np.stack(looped), rtol=1e-12)


def test_callback_sees_every_iteration_and_only_last_is_kept_by_default():
    inputs = random_inputs(17, 8, 8)
    seen: list[dict] = []
    result = iterative_bayesian_unfold(**inputs, ts_stopping=1e-4, callback=seen.append)
    assert isinstance(result, IBUResult)
    assert [r["num_iterations"] for r in seen] == list(range(1, result.n_iterations + 1))
    assert result.n_iterations > 2
    assert len(result.iterations) == 1 and result.iterations[0] is seen[-1]
    assert seen[-1]["ts_iter"] < 1e-4 <= seen[-2]["ts_iter"]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"data": np.array([-1.0] + [10.0] * 7)}, "data must be non-negative"),
        ({"prior": np.full(8, 0.2)}, "prior must sum to 1"),
        ({"ts": "likelihood"}, "ts must be one of"),
        ({"cov_type": "gaussian"}, "cov_type must be one of"),
        ({"efficiencies": np.ones(7)}, "efficiencies must have shape"),
        ({"max_iter": 0}, "max_iter must be >= 1"),
    ],
)
def test_invalid_inputs_are_rejected(change, message):
    inputs = random_inputs(18, 8, 8)
    with pytest.raises(ValueError, match=message):
        iterative_bayesian_unfold(**{**inputs, **change})
