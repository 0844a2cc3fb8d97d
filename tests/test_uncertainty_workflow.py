"""End-to-end uncertainty runs on tiny toy sets (seconds each); the shared tiny run is
``uncertainty_run`` (tests/fixtures/uncertainty.py)."""

import numpy as np
import pandas as pd
import pytest

from numl_core.config import ConfigError
from numl_core.data.schema import DataError
from numl_core.jobs import Progress
from numl_core.live import series_key
from numl_core.runs import RunDir
from numl_core.uncertainty import train
from numl_core.uncertainty.config import UncertaintyConfig, parse_observation
from numl_core.uncertainty.model import FlowSettings, flow_training
from numl_core.uncertainty.result import UncertaintyResult
from numl_core.uncertainty.workflow import WORKFLOW, run_uncertainty
from tests.fixtures.uncertainty import UNCERTAINTY_TINY as TINY


def test_metrics_table_has_every_model_and_the_truth_is_indistinguishable(uncertainty_run):
    result, _ = uncertainty_run
    table = result.metrics.set_index("model")
    assert list(table.index) == ["gaussian", "improved_baseline", "marginal_gaussian", "flow", "truth"]
    # held-out toys against truth samples: 800 predictions, null sd 0.018; 4 sd
    assert abs(table.loc["truth", "c2st"] - 0.5) < 0.075
    # the 3-component mixture is far from Gaussian: the Gaussian's samples are told apart
    assert table.loc["gaussian", "c2st"] > 0.6 and result.non_gaussianity_pvalue < 1e-4
    assert table.loc["truth", "pvalue_r"] == pytest.approx(1.0)
    assert table.loc["truth", "nll"] < table.loc["gaussian", "nll"]
    assert table.loc["gaussian", "nll"] == table.loc["improved_baseline", "nll"]
    assert np.isfinite(table[["c2st", "nll", "pvalue_r", "pvalue_mse", "pvalue_r2"]].to_numpy()).all()


def test_pvalues_are_probabilities_with_errors(uncertainty_run):
    result, _ = uncertainty_run
    p = result.pvalues
    assert len(p) == 400
    for name in ("gaussian", "improved_baseline", "marginal_gaussian", "flow", "truth"):
        assert p[name].between(0, 1).all()
    # held-out toys of the truth have uniform true p-values: mean 1/2 with sd 0.29 / sqrt(400) = 0.014
    assert abs(p["truth"].mean() - 0.5) < 0.06
    np.testing.assert_allclose(p["flow_error"], np.sqrt(p["flow"] * (1 - p["flow"]) / 4_000))


def test_observation_gets_both_pvalues(uncertainty_run):
    observed = uncertainty_run[0].observed.set_index("model")
    assert {"gaussian", "improved_baseline", "flow", "truth"} <= set(observed.index)
    assert observed.loc["gaussian", "method"].startswith("chi2")
    assert observed["pvalue"].between(0, 1).all() and observed.loc["gaussian", "chi2"] > 0


def test_live_loss_near_far_and_samples(uncertainty_run):
    result, progress = uncertainty_run
    records, _ = progress.read_metrics(0)
    names = {r["name"] for r in records}
    assert {"flow_loss", "c2st", "ndfd_transformer_loss", "ndfd_flow_loss"} <= names
    assert result.toys_sample.shape == result.flow_sample.shape == (400, 6)
    assert list(result.near_far["model"]) == ["truth", "transformer", "flow"]
    assert len(result.history) >= 1 and "val_loss" in result.history


def test_result_round_trips_through_a_run_directory(uncertainty_run, tmp_path):
    result = uncertainty_run[0]
    assert isinstance(result, UncertaintyResult)
    run_dir = RunDir(tmp_path / "run")
    result.save(run_dir)
    back = WORKFLOW.load_result(run_dir)
    assert isinstance(back, UncertaintyResult)
    for name, frame in result.to_tables().items():
        pd.testing.assert_frame_equal(getattr(back, name), frame)
    np.testing.assert_array_equal(back.flow_sample, result.flow_sample)
    assert back.scalars() == result.scalars() and back.has_truth is True


def test_file_toys_without_truth(tmp_path):
    rng = np.random.default_rng(0)
    toys = np.exp(rng.multivariate_normal(np.zeros(3), 0.2 * np.eye(3) + 0.05, size=900))
    path = tmp_path / "toys.csv"
    pd.DataFrame(toys, columns=["a", "b", "c"]).to_csv(path, index=False)
    config = UncertaintyConfig(
        **{**TINY, "n_test": 200}, toys="file", toy_file=str(path), standardise="log", observation="1,1,1"
    )
    result = run_uncertainty(config, Progress())
    table = result.metrics.set_index("model")
    assert "truth" not in table.index and table["pvalue_r"].isna().all()
    assert result.n_test == 200 and result.dim == 3 and not result.has_truth and result.near_far is None
    bad = config.copy(observation="1,1")
    with pytest.raises(DataError, match="2 values per row; the toys have 3 dimensions"):
        run_uncertainty(bad, Progress())


def test_n_toys_applies_to_a_users_file(tmp_path):
    from numl_core.uncertainty.workflow import load_toy_set

    toys = np.random.default_rng(1).normal(size=(1_000, 3))
    path = tmp_path / "toys.csv"
    pd.DataFrame(toys, columns=["a", "b", "c"]).to_csv(path, index=False)
    config = UncertaintyConfig(**{**TINY, "n_test": 100, "n_toys": 300}, toys="file", toy_file=str(path))
    train, test, truth = load_toy_set(config)
    assert (len(train), len(test), truth) == (300, 100, None)
    rows = {tuple(r) for r in np.round(toys, 12)}
    assert all(tuple(r) in rows for r in np.round(np.vstack([train, test]), 12))
    assert len({tuple(r) for r in np.vstack([train, test])}) == 400  # no row used twice
    train_more, _, _ = load_toy_set(config.copy(n_toys=5_000))
    assert len(train_more) == 900  # the file is shorter: every row not held out


def test_config_round_trip_and_validation():
    config = UncertaintyConfig(**TINY)
    assert UncertaintyConfig.from_json(config.to_json()).to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match="toy_file"):
        UncertaintyConfig(toys="file").validate()
    with pytest.raises(ConfigError, match="positive"):
        UncertaintyConfig(standardise="log").validate()
    with pytest.raises(ConfigError, match="numbers separated by commas"):
        parse_observation("1, two")
    assert WORKFLOW.name == "uncertainty" and WORKFLOW.config_cls is UncertaintyConfig
    cosine = UncertaintyConfig(**TINY, schedule="cosine")
    assert UncertaintyConfig.from_json(cosine.to_json()).flow_settings().train.schedule == "cosine"
    defaults = UncertaintyConfig()
    # the config's training fields reach the flow's TrainSettings, with the flow's clip and precision
    assert defaults.flow_settings().train == flow_training(seed=0, device="auto")
    assert FlowSettings().train == flow_training()
    tiny = UncertaintyConfig(**TINY, learning_rate=3e-3, patience=2, seed=7).flow_settings().train
    assert (tiny.epochs, tiny.batch_size, tiny.lr, tiny.patience, tiny.seed) == (4, 256, 3e-3, 2, 7)
    assert defaults.dim == 50 and defaults.n_toys >= 20_000  # the full-size study is the default


def test_every_live_record_is_declared(uncertainty_run):
    """The live plots the workflow declares are exactly the loss series its training reports."""
    records, _ = uncertainty_run[1].read_metrics(0)
    plots = WORKFLOW.live_plots
    drawn: dict[str, set[str]] = {}
    for record in records:
        group = plots.group(record)
        if group is not None:
            drawn.setdefault(group, set()).add(series_key(record))
    config = UncertaintyConfig(run_near_far=True)
    assert drawn == {k: set(v) for k, v in plots.expected(config).items()}
    assert set(plots.expected(UncertaintyConfig())) == {"loss"}
    assert {p.key for p in plots.plots} == {"loss", "near_far"}
    assert all("NLL" in p.ylabel and "nats" in p.ylabel for p in plots.plots)


def test_renaming_a_metric_is_one_change_in_the_core(monkeypatch):
    """Change the flow's metric prefix in train.py alone: the records and the declared plots follow."""
    monkeypatch.setattr(train, "FLOW_PREFIX", "density_")
    progress = Progress()
    x = np.random.default_rng(0).normal(size=(120, 2))
    settings = FlowSettings(transforms=1, hidden_features=8, train=flow_training(epochs=1, device="cpu"))
    train.fit_flow(x[:100], x[100:], settings, progress)
    records, _ = progress.read_metrics(0)
    assert {r["name"] for r in records} == {"density_loss"}
    expected = WORKFLOW.live_plots.expected(UncertaintyConfig())
    assert {WORKFLOW.live_plots.group(r) for r in records} == {"loss"}
    assert {series_key(r) for r in records} == set(expected["loss"])


def test_cli_run_writes_a_run_directory(tmp_path):
    from click.testing import CliRunner

    from numl_core.cli import main

    config = tmp_path / "tiny.json"
    UncertaintyConfig(**{**TINY, "dim": 3, "n_toys": 600, "n_test": 100, "c2st_folds": 2}).to_json(config)
    out = CliRunner().invoke(
        main, ["uncertainty", "run", "--config", str(config), "--out", str(tmp_path / "runs")]
    )
    assert out.exit_code == 0, out.output
    run_dirs = list((tmp_path / "runs").glob("*/results/metrics.parquet"))
    assert len(run_dirs) == 1
    metrics = pd.read_parquet(run_dirs[0])
    assert set(metrics["model"]) >= {"gaussian", "flow", "truth"}
    assert list((tmp_path / "runs").glob("*/checkpoints/flow-best*"))
