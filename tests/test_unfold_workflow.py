"""End-to-end unfolding runs on tiny samples (seconds each)."""

import numpy as np
import pytest

from numl_core.config import ConfigError
from numl_core.data.io import write_table
from numl_core.data.schema import DataError
from numl_core.jobs import JobRunner, Progress
from numl_core.live import series_key
from numl_core.runs import RunStore
from numl_core.unfold import omnifold
from numl_core.unfold.inputs import UnfoldingInputs
from numl_core.unfold.result import UnfoldResult
from numl_core.unfold.workflow import LIVE_PLOTS, WORKFLOW, UnfoldingConfig, run_unfolding
from tests.fixtures.unfold import UNFOLD_TINY

TINY = UNFOLD_TINY


def test_live_metrics_cover_both_methods(unfold_tiny_run):
    records, _ = unfold_tiny_run[1].read_metrics(0)
    names = {r["name"] for r in records}
    assert {"step1_loss", "step2_loss", "omnifold_change", "ibu_ts"} <= names
    ibu_ts = [r for r in records if r["name"] == "ibu_ts"]
    assert {r["distribution"] for r in ibu_ts} == {"dpt", "dphit"}
    assert all(r["value"] >= 0 for r in ibu_ts)


def test_result_has_contracted_tables(unfold_tiny_result):
    h = unfold_tiny_result.histograms
    assert set(h["method"]) == {"truth", "prior", "omnifold", "ibu"}
    assert set(h["distribution"]) == {"dpt", "dphit"}
    assert np.isfinite(h["value"]).all() and (h["error"] >= 0).all()
    table = unfold_tiny_result.chi2_table.set_index("method")
    assert {"omnifold", "ibu", "ndof"} <= set(table.index)
    assert table.loc["ndof", "dpt"] == 14 and table.loc["ndof", "dphit"] == 14
    assert (table.loc[["omnifold", "ibu"], ["dpt", "dphit"]].to_numpy() >= 0).all()
    assert unfold_tiny_result.weights.shape == (unfold_tiny_result.n_mc,)
    assert np.isfinite(unfold_tiny_result.weights).all()


def test_uncertainty_budget_splits_throws_and_initialisation(unfold_tiny_result):
    budget = unfold_tiny_result.uncertainty_budget
    assert set(budget["distribution"]) == {"dpt", "dphit"} and len(budget) == 28
    np.testing.assert_allclose(
        budget["sigma_total"] ** 2, budget["sigma_throws"] ** 2 + budget["sigma_init"] ** 2
    )
    assert ((budget["init_fraction"] >= 0) & (budget["init_fraction"] <= 1)).all()


def test_unfolding_moves_towards_the_fake_data_normalisation(unfold_tiny_result):
    # dphit_shape_norm changes the signal normalisation; both methods must recover most of it:
    # the total of the unfolded distribution is closer to the truth total than the prior's is.
    h = unfold_tiny_result.histograms
    totals = h[h["distribution"] == "dphit"].groupby("method")["value"].sum()
    for method in ("omnifold", "ibu"):
        assert abs(totals[method] - totals["truth"]) < abs(totals["prior"] - totals["truth"])


def test_config_json_round_trip_and_validation():
    cfg = UnfoldingConfig(**TINY)
    assert UnfoldingConfig.from_json(cfg.to_json()).to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match="data_file: required"):
        UnfoldingConfig.from_dict({"sample": "file"})
    with pytest.raises(ConfigError, match="did you mean 'iterations'"):
        UnfoldingConfig.from_dict({"iteration": 3})


def test_a_dask_scheduler_gives_the_in_process_histograms():
    cfg = UnfoldingConfig(
        **{**TINY, "n_events": 6_000, "n_bootstrap": 0, "run_ibu": False, "distributions": ["dpt"]}
    )
    here = run_unfolding(cfg, Progress()).histograms
    there = run_unfolding(cfg.copy(scheduler="local", throws_per_task=2), Progress()).histograms
    omnifold = here["method"] == "omnifold"
    assert omnifold.any()
    np.testing.assert_allclose(there[omnifold]["value"], here[omnifold]["value"], rtol=1e-4)
    np.testing.assert_allclose(there[omnifold]["error"], here[omnifold]["error"], rtol=1e-3, atol=1e-6)
    with pytest.raises(ConfigError, match="stop_on_convergence: cannot be used with a scheduler"):
        UnfoldingConfig.from_dict({"scheduler": "local", "stop_on_convergence": True})


def test_user_file_with_missing_column_is_a_data_error(tmp_path):
    from numl_core.data.generators import nd280_cc0pi

    events = nd280_cc0pi.generate(3_000, 0).drop(columns=["reco_mu_p"])
    path = write_table(events, tmp_path / "events.parquet")
    with pytest.raises(DataError, match=r"events.parquet: missing column\(s\) \['reco_mu_p'\]"):
        run_unfolding(UnfoldingConfig(**TINY, sample="file", data_file=str(path)), Progress())


def test_user_file_runs_like_the_builtin_sample(tmp_path):
    from numl_core.data.generators import nd280_cc0pi

    path = write_table(nd280_cc0pi.generate(12_000, 0), tmp_path / "events.root")
    result = run_unfolding(
        UnfoldingConfig(
            **{**TINY, "n_throws": 0, "n_bootstrap": 0, "run_ibu": False}, sample="file", data_file=str(path)
        ),
        Progress(),
    )
    assert set(result.histograms["method"]) == {"truth", "prior", "omnifold"}


def test_cancelled_run_resumes_from_its_checkpoint(tmp_path):
    cfg = UnfoldingConfig(**{**TINY, "iterations": 3, "n_throws": 0, "n_bootstrap": 0, "run_ibu": False})
    store = RunStore(tmp_path)
    runner = JobRunner(max_workers=1, torch_threads=1)
    try:
        run = store.create("unfold", cfg)
        job = runner.submit(WORKFLOW.run, cfg, run)

        def cancel_after_first_iteration(kind, payload):
            if kind == "metric" and payload["name"] == "omnifold_change" and payload["step"] >= 0:
                job.cancel()

        job.progress.listeners.append(cancel_after_first_iteration)
        assert job.wait(120) == "cancelled"
        assert run.load_checkpoint("omnifold") is not None
        resumed = runner.submit(WORKFLOW.run, cfg, run)
        assert resumed.wait(120) == "done"
        fresh = run_unfolding(cfg, Progress())
        np.testing.assert_allclose(resumed.result.weights, fresh.weights, rtol=1e-5)
        assert run.read_info()["state"] == "done"
    finally:
        runner.shutdown()


def test_t2k_overlay_is_in_the_measurement_phase_space_binning_and_units(unfold_tiny_result):
    from numl_core.data.reference import load_t2k_stv

    rows, chi2 = unfold_tiny_result.t2k_comparison, unfold_tiny_result.t2k_chi2
    assert set(rows["distribution"]) == {"dpt_t2k", "dalphat_t2k", "dphit_t2k"}
    assert set(rows["method"]) == {"t2k", "prior", "truth", "omnifold"}
    meas = load_t2k_stv("dphit")
    t2k = rows[(rows["distribution"] == "dphit_t2k") & (rows["method"] == "t2k")]
    # stored per bin in 1e-38 cm^2 per CH nucleon: dsigma/dx x width
    np.testing.assert_allclose(t2k["value"], meas.values * np.diff(meas.edges) / 1e-38, rtol=1e-12)
    prior = chi2[chi2["method"] == "prior"].set_index("distribution")["chi2"]
    assert np.isfinite(prior).all() and (prior > 0).all()
    assert (chi2["ndof"] == 8).all()
    omnifold = rows[rows["method"] == "omnifold"]
    assert (omnifold["error"] > 0).all()


def test_run_returns_its_result_type_which_loads_back_from_the_run_dir(unfold_tiny_result, tmp_path):
    assert isinstance(unfold_tiny_result, UnfoldResult)
    run = RunStore(tmp_path).create("unfold", UnfoldingConfig(**TINY))
    unfold_tiny_result.save(run)
    loaded = WORKFLOW.load_result(run)
    assert isinstance(loaded, UnfoldResult)
    assert set(loaded.to_tables()) == set(unfold_tiny_result.to_tables())
    np.testing.assert_array_equal(loaded.weights, unfold_tiny_result.weights)
    np.testing.assert_allclose(loaded.histograms["value"], unfold_tiny_result.histograms["value"])
    assert loaded.n_mc == unfold_tiny_result.n_mc and loaded.xsec_scale == unfold_tiny_result.xsec_scale
    assert loaded.converged_at == unfold_tiny_result.converged_at


def test_every_live_metric_drawn_is_a_declared_series(unfold_tiny_run):
    config = UnfoldingConfig(**{**TINY, "trials": 2}, fake_data="dphit_shape_norm")
    expected = LIVE_PLOTS.expected(config)
    records, _ = unfold_tiny_run[1].read_metrics(0)
    drawn = {(LIVE_PLOTS.group(r), series_key(r)) for r in records if LIVE_PLOTS.group(r) is not None}
    assert {plot for plot, _ in drawn} == set(expected) == {"loss", "ess", "convergence", "ibu_ts"}
    assert drawn == {(plot, s) for plot, names in expected.items() for s in names}
    assert {s.key for s in LIVE_PLOTS.plots} == set(expected)
    assert LIVE_PLOTS.group({"name": "step2_n_extreme"}) is None  # diagnostics are not drawn live


def test_renaming_a_metric_in_the_core_renames_what_is_emitted_and_expected(monkeypatch):
    monkeypatch.setattr(omnifold, "CHANGE_METRIC", "omnifold_delta")
    monkeypatch.setattr(omnifold, "step_metric", lambda step, quantity: f"pass{step}_{quantity}")
    expected = LIVE_PLOTS.expected(UnfoldingConfig(**TINY))
    assert "omnifold_delta" in expected["convergence"] and "omnifold_change" not in expected["convergence"]
    assert "pass1_loss (val)" in expected["loss"] and expected["ess"] == ["pass1_ess", "pass2_ess"]
    assert LIVE_PLOTS.group({"name": "omnifold_delta"}) == "convergence"
    assert LIVE_PLOTS.group({"name": "omnifold_change"}) is None

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 1)).astype(np.float32)
    ok = np.ones(400, bool)
    settings = omnifold.OmniFoldSettings(
        iterations=1, trials=1, hidden=(4,), train=omnifold.classifier_training(epochs=1, device="cpu")
    )
    progress = Progress()
    omnifold.unfold_omnifold(UnfoldingInputs(x, x, ok, ok, x[:200]), settings, progress)
    emitted = {series_key(r) for r in progress.read_metrics(0)[0]}
    assert {"omnifold_delta", "pass1_loss (val)", "pass2_ess"} <= emitted
    assert not any(name.startswith(("omnifold_change", "step1_", "step2_")) for name in emitted)


def test_calibration_states_the_covariance_estimate_and_matches_the_chi2_table(unfold_tiny_result):
    calibration = unfold_tiny_result.calibration.set_index(["distribution", "method"])
    table = unfold_tiny_result.chi2_table.set_index("method")
    for (name, method), row in calibration.iterrows():
        # 4 throws for 14 bins: too few for the Hartlap correction, so the covariance is shrunk
        assert row["covariance"] == "shrinkage" and row["inverse_correction"] == 1.0
        assert row["n_throws"] == 4 and row["ndof"] == 14 and row["dropped_bins"] == 0
        assert row["chi2"] == pytest.approx(table.loc[method, name])
        assert row["loo_chi2_per_ndof"] is None or np.isnan(row["loo_chi2_per_ndof"])
        assert 0.0 <= row["p_value"] <= 1.0 and 0.0 <= row["p_closure"] <= 1.0
        # the truth's own fluctuation adds to the covariance of (result - truth): a different chi2
        assert row["chi2_closure"] > 0 and row["chi2_closure"] != pytest.approx(row["chi2"])


def test_bias_per_iteration_ends_at_each_methods_result(unfold_tiny_result):
    iterations, calibration = unfold_tiny_result.iterations, unfold_tiny_result.calibration
    counts = iterations.groupby(["method", "distribution"])["iteration"].max()
    assert (counts.loc["omnifold"] == 2).all() and (counts.loc["ibu"] == 4).all()  # IBU: max(4, 2)
    assert (iterations["change_chi2"] >= 0).all() and (iterations["chi2_truth"] >= 0).all()
    final = iterations[(iterations["method"] == "omnifold") & (iterations["iteration"] == 2)]
    ibu = iterations[(iterations["method"] == "ibu") & (iterations["iteration"] == 4)]
    for rows in (final, ibu):
        merged = rows.merge(calibration, on=["distribution", "method"])
        np.testing.assert_allclose(merged["chi2_truth"], merged["chi2"], rtol=1e-10)
        # the fixed metric is the last iteration's covariance: the two agree there, and only there
        np.testing.assert_allclose(rows["chi2_truth_fixed"], rows["chi2_truth"], rtol=1e-10)
    earlier = iterations[iterations["iteration"] == 1]
    assert (earlier["chi2_truth_fixed"] != earlier["chi2_truth"]).all()
    assert set(unfold_tiny_result.suggested_iterations) == {"omnifold", "ibu"}
    # the estimate without the truth: the last iteration is its reference, and every iteration has one
    last = iterations.groupby("method")["iteration"].transform("max") == iterations["iteration"]
    assert (iterations.loc[last, "chi2_to_last"] == 0).all() and (
        iterations.loc[~last, "chi2_to_last"] > 0
    ).all()
    assert np.isfinite(iterations["estimated_chi2"].to_numpy(float)).all()
    for method, rows in iterations.groupby("method"):
        total = rows.groupby("iteration")["estimated_chi2"].sum()
        suggested = unfold_tiny_result.suggested_iterations[method]
        assert suggested is None or total.loc[suggested] == total.min()


def test_closure_returns_the_mc_truth_with_a_hartlap_corrected_covariance():
    from numl_core.stats import hartlap_factor

    # classifiers that can learn (TINY's 16 units and 6 steps per fit cannot: their closure fails)
    sizes = {"n_events": 8_000, "n_throws": 24, "hidden_units": 100, "batch_size": 1_000, "epochs": 4}
    cfg = UnfoldingConfig(**{**TINY, **sizes, "fake_data": "nominal", "closure": True})
    result = run_unfolding(cfg, Progress())
    h = result.histograms.set_index(["distribution", "method", "bin"]).sort_index()["value"]
    for name in ("dpt", "dphit"):  # IBU with the MC's own response and truth as prior returns that truth
        np.testing.assert_allclose(h.loc[(name, "ibu")], h.loc[(name, "truth")], rtol=1e-9)
    calibration = result.calibration
    assert (calibration["covariance"] == "hartlap").all()
    assert np.allclose(calibration["inverse_correction"], hartlap_factor(24, 14))
    assert np.isfinite(calibration["loo_chi2_per_ndof"].astype(float)).all()
    # an independent sample would give chi2 ~ ndof +- sqrt(2 ndof); the MC's own reco must return its
    # truth far closer than that: more than two standard deviations below ndof
    omnifold = calibration[calibration["method"] == "omnifold"]
    assert (omnifold["chi2"] < omnifold["ndof"] - 2 * np.sqrt(2 * omnifold["ndof"])).all()


def test_throws_with_statistics_refuse_bootstrap_replicas_and_closure_needs_nominal_data():
    with pytest.raises(ConfigError, match="n_bootstrap: must be 0 when throw_statistics is on"):
        UnfoldingConfig.from_dict({"n_bootstrap": 3})
    with pytest.raises(ConfigError, match="fake_data: the closure test"):
        UnfoldingConfig.from_dict({"closure": True, "fake_data": "dphit_shape"})


def test_systematic_only_throws_build_the_covariance_from_parts():
    cfg = UnfoldingConfig(
        **{**TINY, "throw_statistics": False, "n_bootstrap": 3, "run_ibu": False, "distributions": ["dpt"]}
    )
    calibration = run_unfolding(cfg, Progress()).calibration
    assert list(calibration["covariance"]) == ["parts"] and calibration["chi2"].iloc[0] > 0
