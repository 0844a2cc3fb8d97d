"""Score later: a finished uncertainty run keeps its densities (loaded with weights_only), and
``numl uncertainty score --run RUN --observation FILE`` gives the p-values of new observations, equal to
what the run itself gave for the same observation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from numl_core.cli import main
from numl_core.jobs import Progress
from numl_core.runs import RunStore
from numl_core.uncertainty.config import UncertaintyConfig
from numl_core.uncertainty.model import MODELS_CHECKPOINT
from numl_core.uncertainty.result import ScoreResult
from numl_core.uncertainty.workflow import WORKFLOW, run_uncertainty, score_observations
from tests.fixtures.uncertainty import UNCERTAINTY_TINY

SMALL = {**UNCERTAINTY_TINY, "dim": 3, "n_toys": 800, "n_test": 100, "c2st_folds": 2}
OBSERVATION = "0.2, -0.1, 0.3"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[RunStore, str, pd.DataFrame]:
    root = tmp_path_factory.mktemp("runs")
    store = RunStore(root)
    config = UncertaintyConfig(**SMALL, observation=OBSERVATION)
    run = store.create("uncertainty", config)
    result = run_uncertainty(config, Progress(run))
    result.save(run)
    run.update_info({"state": "done", "action": "run"})
    return store, run.id, result.observed


def test_a_finished_run_keeps_its_densities_loadable_with_weights_only(finished):
    store, run_id, _ = finished
    state = store.get(run_id).load_checkpoint(MODELS_CHECKPOINT)  # torch.load(weights_only=True)
    assert state["format"] == 1 and {"gaussian", "marginal", "flow", "toy_reference"} <= set(state)


def test_scoring_the_same_observation_later_gives_the_runs_pvalues(finished, tmp_path):
    store, run_id, observed = finished
    config = UncertaintyConfig(**SMALL, score_run=str(store.get(run_id).path), observation=OBSERVATION)
    later = score_observations(config, Progress())
    assert isinstance(later, ScoreResult) and later.n_observations == 1
    a = observed.set_index("model")["pvalue"]
    b = later.observed.set_index("model")["pvalue"]
    for model in ("gaussian", "improved_baseline", "marginal_gaussian", "flow"):
        assert b[model] == pytest.approx(a[model], abs=1e-12), model


def test_the_score_command_reads_an_observation_file(finished, tmp_path):
    store, run_id, _ = finished
    obs = tmp_path / "observed.csv"
    pd.DataFrame(np.array([[0.2, -0.1, 0.3], [3.0, 3.0, -3.0]]), columns=["a", "b", "c"]).to_csv(
        obs, index=False
    )
    args = ["uncertainty", "score", "--run", run_id, "--observation", str(obs), "--out", str(store.root)]
    result = CliRunner().invoke(main, [*args, "--set", "n_pvalue_samples=4000"])
    assert result.exit_code == 0, result.output
    scored = [i for i in store.list() if i.get("action") == "score"]
    assert len(scored) == 1 and scored[0]["state"] == "done"
    back = WORKFLOW.load_result(store.get(scored[0]["id"]))
    assert isinstance(back, ScoreResult) and back.n_observations == 2
    table = back.observed
    assert set(table["observation"]) == {0, 1} and table["pvalue"].between(0, 1).all()
    far = table[table["observation"] == 1].set_index("model")["pvalue"]
    assert far["gaussian"] < 0.01  # three sigma off in every dimension


@pytest.mark.parametrize(
    ("score_run", "observation", "message"),
    [
        ("", "1, 2, 3", "score_run: name the finished run"),
        ("no-such-run", "1, 2, 3", "no run 'no-such-run'"),
        ("RUN", "1, 2", "2 values per row; the toys have 3 dimensions"),
        ("RUN", "", "give observation_file or observation"),
    ],
)
def test_bad_score_requests_are_named(finished, score_run, observation, message):
    store, run_id, _ = finished
    args = ["uncertainty", "score", "--out", str(store.root), "--set", f"observation={observation}"]
    if score_run:
        args += ["--run", run_id if score_run == "RUN" else score_run]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
