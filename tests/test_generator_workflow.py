"""End-to-end generator runs on a tiny flow: training rounds, sampler report, saved flow and result,
sample action, live plots."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from numl_core.config import ConfigError
from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.data.io import read_table
from numl_core.generator import shards, train
from numl_core.generator.config import GeneratorConfig, build_model, build_spec
from numl_core.generator.result import GeneratorResult, SampleResult
from numl_core.generator.workflow import (
    WORKFLOW,
    expected_series,
    load_trained_flow,
    metric_group,
    run_generator,
    sample_events,
    sampling_setup,
    shard_timing,
)
from numl_core.jobs import JobCancelled, Progress
from numl_core.live import series_key
from numl_core.runs import RunStore
from numl_core.training import TrainingConfig
from tests.fixtures.generator import GENERATOR_TINY as TINY

PAGE_SOURCE = Path(__file__).parents[1] / "app" / "pages" / "generator.py"


def test_workflow_declares_run_sample_results_and_live_plots():
    assert WORKFLOW.name == "generator" and "sample" in WORKFLOW.actions
    assert WORKFLOW.config_cls is GeneratorConfig
    assert WORKFLOW.results == (GeneratorResult, SampleResult)
    assert {p.key for p in WORKFLOW.live_plots.plots} == set(expected_series(GeneratorConfig()))
    # the defaults are the full-size ones
    assert GeneratorConfig().preset == "S" and GeneratorConfig().n_eval == 100_000


def test_config_takes_the_training_fields_from_the_shared_mixin():
    config = GeneratorConfig(epochs=3, batch_size=256, learning_rate=2e-3, seed=4)
    assert isinstance(config, TrainingConfig)
    assert (GeneratorConfig().epochs, GeneratorConfig().batch_size, GeneratorConfig().learning_rate) == (
        1,
        512,
        1e-3,
    )
    settings = config.train_settings(patience=0)
    assert (settings.epochs, settings.batch_size, settings.lr, settings.seed) == (3, 256, 2e-3, 4)


def test_result_tables_and_report(generator_run):
    result = generator_run.result
    assert isinstance(result, GeneratorResult) and result.n_parameters > 0 and result.seconds > 0
    summary = result.figures()
    assert 0 < summary["ress"] <= 1 and 0 < summary["unweighting_efficiency"] <= 1
    assert 0 <= summary["cap_bias"] < 0.05
    # a perfect sampler's expected MNLL is the reference entropy: nothing can do better on average
    assert summary["mnll_flow"] > summary["mnll_optimum"] - 0.05
    assert summary["integral"] > 0 and np.isfinite(summary["rms_pull_unweighted"])
    # the VEGAS baseline on the flow's coordinates estimates the same cross section
    assert 0 < summary["vegas_ress"] <= 1 and summary["vegas_unweighted_per_s"] > 0
    err = np.hypot(summary["integral_rel_error"], summary["vegas_integral_rel_error"]) * summary["integral"]
    assert abs(summary["vegas_integral"] - summary["integral"]) < 5 * err
    rounds = result.rounds
    assert list(rounds["round"]) == [0, 1]
    # round 1 proposes from the flow trained in round 0, which beats the uniform box
    assert rounds["proposal_ress"].iloc[1] > rounds["proposal_ress"].iloc[0]
    assert {"reference", "flow", "flow_reweighted"} <= set(result.marginals["sample"])
    assert int(result.weight_histogram["count"].sum()) == TINY["n_eval"]
    names = {r["name"] for r in generator_run.records}
    assert {"loss", "proposal_ress", "ress"} <= names
    assert set(result.to_tables()) == {"summary", "rounds", "marginals", "marginals_2d", "weight_histogram"}


def test_result_loads_back_from_its_run_directory(generator_run):
    loaded = WORKFLOW.load_result(generator_run.run_dir)
    assert isinstance(loaded, GeneratorResult)
    assert loaded.n_parameters == generator_run.result.n_parameters
    pd.testing.assert_frame_equal(loaded.summary, generator_run.result.summary)
    pd.testing.assert_frame_equal(loaded.marginals_2d, generator_run.result.marginals_2d)


def test_summary_table_names_the_figures(generator_run):
    table = generator_run.result.summary_table()
    assert table["quantity"].iloc[0] == "RESS"
    assert {"unweighting efficiency", "MNLL, flow emulator", "bias from capping"} <= set(table["quantity"])
    assert "RESS, VEGAS on the flow's coordinates" in set(table["quantity"])
    assert len(table) == len(generator_run.result.summary)


def test_sample_action_writes_events(generator_run, generator_sample, tmp_path):
    assert isinstance(generator_sample, SampleResult)
    events = pd.read_parquet(generator_sample.output_file)
    assert len(events) == 300 == generator_sample.n_events <= generator_sample.n_drawn
    assert {"enu", "cos_mu", "omega", "cos_n", "phi_n", "weight"} <= set(events.columns)
    assert events["enu"].between(0.6, 1.0).all() and (events["weight"] >= 1).all()
    pd.testing.assert_frame_equal(generator_sample.events_head, events)
    emu = generator_run.config.copy(
        flow_file=generator_run.flow_file,
        n_generate=50,
        sample_mode="emulator",
        output_file=str(tmp_path / "emu.csv"),
    )
    written = sample_events(emu, Progress())
    assert len(read_table(tmp_path / "emu.csv", None)) == 50 == written.n_drawn


def test_sample_result_loads_back_as_its_type(generator_sample, tmp_path):
    run_dir = RunStore(tmp_path).create("generator", None)
    generator_sample.save(run_dir)
    loaded = WORKFLOW.load_result(run_dir)
    assert isinstance(loaded, SampleResult)
    assert (loaded.n_events, loaded.output_file) == (300, generator_sample.output_file)


def test_sample_action_rejects_mismatched_flows(generator_run):
    flow_file = generator_run.flow_file
    with pytest.raises(ConfigError, match="shells"):
        sample_events(GeneratorConfig(**{**TINY, "shells": "1s1/2"}, flow_file=flow_file), Progress())
    with pytest.raises(ConfigError, match="flow_file"):
        sample_events(GeneratorConfig(**TINY), Progress())
    with pytest.raises(ValueError, match="beyond the flow's range"):
        sample_events(GeneratorConfig(**{**TINY, "enu_high": 1.5}, flow_file=flow_file), Progress())


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"enu_low": 1.0, "enu_high": 0.5}, "enu_high"),
        ({"parameter": "axial_mass", "parameter_low": 1.2, "parameter_high": 1.0}, "parameter_high"),
        ({"parameter": "z_a1"}, "zexp"),
        ({"parameter": "axial_mass", "parameter_eval": 2.0}, "parameter_eval"),
    ],
)
def test_invalid_configs_raise(bad, match):
    with pytest.raises(ConfigError, match=match):
        GeneratorConfig(**bad).validate()


def test_parameter_conditioned_run_compares_with_accept_reject_there():
    # a flow conditioned on M_A, evaluated (and accept-reject sampled) at a value inside its range
    config = GeneratorConfig(
        **{**TINY, "rounds": 1, "n_eval": 2_000, "n_reference": 8_000, "n_accept_reject": 60},
        parameter="axial_mass",
        parameter_low=0.9,
        parameter_high=1.3,
        parameter_eval=1.2,
    )
    result = run_generator(config, Progress())
    summary = result.figures()
    assert 0 < summary["accept_reject_acceptance"] < 1 and summary["accept_reject_overflow"] == 0
    assert np.isfinite(summary["mnll_accept_reject"])
    assert "accept_reject" in set(result.marginals["sample"])


def test_spec_maps_the_domain_from_the_removal_threshold_in_the_q_frame():
    config = GeneratorConfig(shells="1p3/2", preset="custom", transforms=2, hidden=8)
    spec = build_spec(config)
    assert spec.nucleon_frame == "q"
    assert spec.omega_low == pytest.approx(ex.omega_threshold(ex.carbon_model("1p3/2")))
    assert 0.005 < spec.omega_low < 0.0187  # below the 1p3/2 mean removal energy


def test_live_plots_draw_exactly_the_series_the_run_reports(generator_run):
    drawn: dict[str, set[str]] = {}
    for record in generator_run.records:
        plot = metric_group(record)
        if plot is not None:
            drawn.setdefault(plot, set()).add(series_key(record))
    expected = {plot: set(names) for plot, names in expected_series(generator_run.config).items()}
    assert drawn == expected
    # the evaluation's single figures are reported, not drawn live
    assert metric_group({"name": "ress", "value": 0.5, "step": 0}) is None
    assert WORKFLOW.live_plots.spec("proposal_ress").xlabel == "round"


def test_renaming_a_metric_in_the_core_is_one_change(monkeypatch):
    # the core builds the proposal-RESS metric, its live plot and its declared series from one name
    monkeypatch.setattr(train, "PROPOSAL_RESS", "ress_of_the_proposal")
    config = GeneratorConfig(**{**TINY, "rounds": 1, "events_per_round": 600, "epochs": 1, "hidden": 8})
    progress = Progress()
    train.train_flow(config, progress, build_model(config))
    records = [r for r in progress.read_metrics(0)[0] if r["name"] == "ress_of_the_proposal"]
    assert len(records) == 1 and metric_group(records[0]) is not None
    assert series_key(records[0]) in expected_series(config)[metric_group(records[0])]
    # and no page spells the metric's name
    assert "proposal_ress" not in PAGE_SOURCE.read_text()


# -- the sample action in seeded shards --------------------------------------------------------------
def _sharded(generator_run, tmp_path, name, **changes):
    """300 events in shards of 100 from the tiny flow, written to ``name``; returns the result, the events
    read back and the config."""
    config = generator_run.config.copy(
        flow_file=generator_run.flow_file,
        n_generate=300,
        shard_events=100,
        output_file=str(tmp_path / name),
        **changes,
    )
    progress = Progress()
    result = sample_events(config, progress)
    assert progress.fraction == 1.0
    return result, pd.read_parquet(result.output_file), config


@pytest.mark.slow
def test_shards_on_a_local_cluster_equal_the_shards_in_this_process(generator_run, tmp_path):
    here, events_here, _ = _sharded(generator_run, tmp_path, "here.parquet")
    there, events_there, _ = _sharded(generator_run, tmp_path, "there.parquet", scheduler="local")
    assert len(events_here) == 300 and here.n_drawn == there.n_drawn
    pd.testing.assert_frame_equal(events_there, events_here)
    assert there.cross_section == pytest.approx(here.cross_section, rel=1e-12)
    assert there.cross_section_error == pytest.approx(here.cross_section_error, rel=1e-12)
    _, other, _ = _sharded(generator_run, tmp_path, "other.parquet", seed=1)
    assert not np.allclose(other["enu"].to_numpy(), events_here["enu"].to_numpy())


def test_shards_combine_exactly(generator_run, tmp_path):
    result, events, config = _sharded(generator_run, tmp_path, "events.parquet")
    flow = load_trained_flow(config)
    model = build_model(config)
    plan = shards.shard_plan(config, flow, model, sampling_setup(config, flow, model))
    parts = [shards.draw_shard(plan, i, n) for i, n in enumerate(shards.shard_sizes(300, 100))]
    assert [len(p.events) for p in parts] == [100, 100, 100]
    # every shard unweights with the pilot's w_max: over-weights are w / w_max >= 1 alike
    assert all((p.events["weight"] >= 1).all() for p in parts)
    pd.testing.assert_frame_equal(pd.concat([p.events for p in parts], ignore_index=True), events)
    n = sum(p.n_drawn for p in parts)
    sigma = shards.CrossSection.of(n, sum(p.sum_w for p in parts), sum(p.sum_w2 for p in parts))
    assert (result.n_drawn, result.cross_section, result.cross_section_error) == (n, sigma.value, sigma.error)
    # a shard's events do not depend on the other shards
    pd.testing.assert_frame_equal(shards.draw_shard(plan, 1, 100).events, parts[1].events)
    assert not parts[0].events.equals(parts[1].events)


def test_a_cancel_stops_the_shards(generator_run, tmp_path):
    config = generator_run.config.copy(
        flow_file=generator_run.flow_file, n_generate=20, shard_events=10, output_file=str(tmp_path / "e.csv")
    )
    progress = Progress()
    progress.request_cancel()
    with pytest.raises(JobCancelled):
        sample_events(config, progress)
    assert not (tmp_path / "e.csv").exists()


def test_shard_fields_refuse_bad_values_by_name():
    with pytest.raises(ConfigError, match="shard_events"):
        GeneratorConfig.from_dict({"shard_events": 0})
    with pytest.raises(ConfigError, match="scheduler"):
        GeneratorConfig(scheduler="locl").validate()
    assert (
        GeneratorConfig(scheduler="tcp://host:8786").scheduler and GeneratorConfig().shard_events >= 100_000
    )


@pytest.mark.slow
def test_shard_timing_reports_both_runs(generator_run):
    config = generator_run.config.copy(flow_file=generator_run.flow_file, n_generate=40, shard_events=20)
    timing = shard_timing(config, n_workers=2)
    assert set(timing) == {"n_events", "n_workers", "seconds", "seconds_single_process", "integral_rel_diff"}
    assert (timing["n_events"], timing["n_workers"]) == (40, 2)
    assert timing["seconds"] > 0 and timing["seconds_single_process"] > 0
    assert timing["integral_rel_diff"] < 1e-12
