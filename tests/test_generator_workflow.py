"""End-to-end generator runs on a tiny flow: training rounds, sampler report, saved flow, sample action."""

import numpy as np
import pandas as pd
import pytest

from numl_core.config import ConfigError
from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.data.io import read_table
from numl_core.generator.workflow import (
    FLOW_FILE,
    WORKFLOW,
    GeneratorConfig,
    build_spec,
    run_generator,
    sample_events,
)
from numl_core.jobs import Progress
from numl_core.runs import RunStore

TINY = dict(
    preset="custom",
    transforms=2,
    hidden=24,
    bins=8,
    rounds=2,
    events_per_round=6_000,
    epochs=2,
    batch_size=512,
    learning_rate=3e-3,
    n_eval=4_000,
    n_reference=20_000,
    n_accept_reject=0,
    bins_per_dim=3,
    enu_low=0.6,
    enu_high=1.0,
    device="cpu",
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    config = GeneratorConfig(**TINY)
    run_dir = store.create("generator", config)
    progress = Progress(run_dir)
    return run_generator(config, progress), progress, run_dir


def test_workflow_declares_run_and_sample():
    assert WORKFLOW.name == "generator" and "sample" in WORKFLOW.actions
    assert WORKFLOW.config_cls is GeneratorConfig
    # the defaults are the full-size ones
    assert GeneratorConfig().preset == "S" and GeneratorConfig().n_eval == 100_000


def test_result_tables_and_report(tiny_run):
    result, progress, _ = tiny_run
    summary = result["summary"].set_index("metric")["value"]
    assert 0 < summary["ress"] <= 1 and 0 < summary["unweighting_efficiency"] <= 1
    assert 0 <= summary["cap_bias"] < 0.05
    # a perfect sampler's expected MNLL is the reference entropy: nothing can do better on average
    assert summary["mnll_flow"] > summary["mnll_optimum"] - 0.05
    assert summary["integral"] > 0 and np.isfinite(summary["rms_pull_unweighted"])
    rounds = result["rounds"]
    assert list(rounds["round"]) == [0, 1]
    # round 1 proposes from the flow trained in round 0, which beats the uniform box
    assert rounds["proposal_ress"].iloc[1] > rounds["proposal_ress"].iloc[0]
    marg = result["marginals"]
    assert {"reference", "flow", "flow_reweighted"} <= set(marg["sample"])
    names = {r["name"] for r in progress.read_metrics(0)[0]}
    assert {"loss", "proposal_ress", "ress"} <= names


def test_flow_saved_and_sample_action_writes_events(tiny_run, tmp_path):
    _, _, run_dir = tiny_run
    flow_file = run_dir.path / FLOW_FILE
    assert flow_file.exists()
    out = tmp_path / "events.parquet"
    config = GeneratorConfig(**TINY, flow_file=str(flow_file), n_generate=300, output_file=str(out))
    result = sample_events(config, Progress())
    events = pd.read_parquet(out)
    assert len(events) == 300 == result["n_events"]
    assert {"enu", "cos_mu", "omega", "cos_n", "phi_n", "weight"} <= set(events.columns)
    assert events["enu"].between(0.6, 1.0).all() and (events["weight"] >= 1).all()
    emu = GeneratorConfig(
        **TINY,
        flow_file=str(flow_file),
        n_generate=50,
        sample_mode="emulator",
        output_file=str(tmp_path / "emu.csv"),
    )
    sample_events(emu, Progress())
    assert len(read_table(tmp_path / "emu.csv", None)) == 50


def test_sample_action_rejects_mismatched_flows(tiny_run, tmp_path):
    _, _, run_dir = tiny_run
    flow_file = str(run_dir.path / FLOW_FILE)
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
    summary = result["summary"].set_index("metric")["value"]
    assert 0 < summary["accept_reject_acceptance"] < 1 and summary["accept_reject_overflow"] == 0
    assert np.isfinite(summary["mnll_accept_reject"])
    assert "accept_reject" in set(result["marginals"]["sample"])


def test_spec_maps_the_domain_from_the_removal_threshold_in_the_q_frame():
    config = GeneratorConfig(shells="1p3/2", preset="custom", transforms=2, hidden=8)
    spec = build_spec(config)
    assert spec.nucleon_frame == "q"
    assert spec.omega_low == pytest.approx(ex.omega_threshold(ex.carbon_model("1p3/2")))
    assert 0.005 < spec.omega_low < 0.0187  # below the 1p3/2 mean removal energy
