"""End-to-end unfolding runs on tiny samples (seconds each)."""

import numpy as np
import pytest

from numl_core.config import ConfigError
from numl_core.data.io import write_table
from numl_core.data.schema import DataError
from numl_core.jobs import JobRunner, Progress
from numl_core.runs import RunStore
from numl_core.unfold.workflow import WORKFLOW, UnfoldingConfig, run_unfolding

TINY = dict(
    n_events=12_000,
    iterations=2,
    trials=1,
    n_throws=3,
    n_bootstrap=3,
    epochs=3,
    hidden_units=16,
    batch_size=2_000,
    distributions=["dpt", "dphit"],
    device="cpu",
)


@pytest.fixture(scope="module")
def tiny_run():
    progress = Progress()
    result = run_unfolding(UnfoldingConfig(**{**TINY, "trials": 2}, fake_data="dphit_shape_norm"), progress)
    return result, progress


@pytest.fixture(scope="module")
def tiny_result(tiny_run):
    return tiny_run[0]


def test_live_metrics_cover_both_methods(tiny_run):
    records, _ = tiny_run[1].read_metrics(0)
    names = {r["name"] for r in records}
    assert {"step1_loss", "step2_loss", "omnifold_change", "ibu_ts"} <= names
    ibu_ts = [r for r in records if r["name"] == "ibu_ts"]
    assert {r["distribution"] for r in ibu_ts} == {"dpt", "dphit"}
    assert all(r["value"] >= 0 for r in ibu_ts)


def test_result_has_contracted_tables(tiny_result):
    h = tiny_result["histograms"]
    assert set(h["method"]) == {"truth", "prior", "omnifold", "ibu"}
    assert set(h["distribution"]) == {"dpt", "dphit"}
    assert np.isfinite(h["value"]).all() and (h["error"] >= 0).all()
    table = tiny_result["chi2_table"].set_index("method")
    assert {"omnifold", "ibu", "ndof"} <= set(table.index)
    assert table.loc["ndof", "dpt"] == 14 and table.loc["ndof", "dphit"] == 14
    assert (table.loc[["omnifold", "ibu"], ["dpt", "dphit"]].to_numpy() >= 0).all()
    assert tiny_result["weights"].shape == (tiny_result["n_mc"],)
    assert np.isfinite(tiny_result["weights"]).all()


def test_uncertainty_budget_splits_throws_and_initialisation(tiny_result):
    budget = tiny_result["uncertainty_budget"]
    assert set(budget["distribution"]) == {"dpt", "dphit"} and len(budget) == 28
    np.testing.assert_allclose(
        budget["sigma_total"] ** 2, budget["sigma_throws"] ** 2 + budget["sigma_init"] ** 2
    )
    assert ((budget["init_fraction"] >= 0) & (budget["init_fraction"] <= 1)).all()


def test_unfolding_moves_towards_the_fake_data_normalisation(tiny_result):
    # dphit_shape_norm changes the signal normalisation; both methods must recover most of it:
    # the total of the unfolded distribution is closer to the truth total than the prior's is.
    h = tiny_result["histograms"]
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
    here = run_unfolding(cfg, Progress())["histograms"]
    there = run_unfolding(cfg.copy(scheduler="local", throws_per_task=2), Progress())["histograms"]
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
    assert set(result["histograms"]["method"]) == {"truth", "prior", "omnifold"}


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
        np.testing.assert_allclose(resumed.result["weights"], fresh["weights"], rtol=1e-5)
        assert run.read_info()["state"] == "done"
    finally:
        runner.shutdown()


def test_t2k_overlay_is_in_the_measurement_phase_space_binning_and_units(tiny_result):
    from numl_core.data.reference import load_t2k_stv

    rows, chi2 = tiny_result["t2k_comparison"], tiny_result["t2k_chi2"]
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
