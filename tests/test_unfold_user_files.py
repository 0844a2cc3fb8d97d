"""Unfolding a user's own MC and data files (sample="file" with mc_file): the MC's own throw-weight
columns, real data without truth, the named errors, the command line and the config form."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from numl_core.cli import main
from numl_core.config import ConfigError
from numl_core.data.generators import nd280_cc0pi as nd280
from numl_core.data.io import read_table, write_table
from numl_core.data.schema import DataError
from numl_core.jobs import Progress
from numl_core.runs import RunStore
from numl_core.unfold.events import prepare_sample
from numl_core.unfold.user_files import TRUTH_COLUMNS
from numl_core.unfold.workflow import UnfoldingConfig, run_unfolding

N_THROW_COLUMNS = 4
FILE_THROW_SEED = 5  # not the run's seed: the built-in throws of the run differ from the file's
#: A run of about a second: 3,000 MC and 3,000 data events, one iteration of one epoch.
USER = dict(
    sample="file",
    iterations=1,
    trials=1,
    n_throws=N_THROW_COLUMNS,
    throw_statistics=False,
    n_bootstrap=0,
    epochs=1,
    hidden_units=8,
    batch_size=2_000,
    distributions=["dpt"],
    fake_data="nominal",
    device="cpu",
)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, object]:
    """An MC ROOT file with 4 throw-weight columns, real data (ROOT, no truth) and fake data (parquet)."""
    folder = tmp_path_factory.mktemp("user_files")
    events = nd280.generate(6_000, seed=0)
    mc, data = events.iloc[:3_000].reset_index(drop=True), events.iloc[3_000:].reset_index(drop=True)
    throws = nd280.throw_weights(mc, N_THROW_COLUMNS, seed=FILE_THROW_SEED, dtype=np.float64)
    for i, w in enumerate(throws):
        mc[f"throw_weight_{i}"] = w
    real = data.drop(columns=[*TRUTH_COLUMNS, *nd280.ND280_MODEL_COLUMNS])
    return {
        "folder": folder,
        "mc_frame": mc,
        "throws": throws,
        "mc": write_table(mc, folder / "mc.root"),
        "real": write_table(real, folder / "real.root"),
        "fake": write_table(data, folder / "fake.parquet"),
    }


def config(files, data: str = "fake", **changes) -> UnfoldingConfig:
    """The validated config of a run on the MC file and the ``data`` file, with ``changes``."""
    values = {**USER, "mc_file": str(files["mc"]), "data_file": str(files[data]), **changes}
    return UnfoldingConfig.from_dict(values)


def test_the_mc_members_are_the_prior_times_the_files_throw_columns(files):
    sample = prepare_sample(config(files), Progress())
    assert sample.data_has_truth and len(sample.mc) == 3_000 and len(sample.data) == 3_000
    prior = sample.mc_prior
    np.testing.assert_allclose(prior, files["mc_frame"]["weight"] / files["mc_frame"]["weight"].mean())
    np.testing.assert_allclose(sample.mc_weights[sample.throws], prior * files["throws"], rtol=1e-6)
    builtin = nd280.throw_weights(sample.mc, N_THROW_COLUMNS, seed=config(files).seed)
    assert not np.allclose(sample.mc_weights[sample.throws], prior * builtin)
    np.testing.assert_array_equal(sample.data_weights, np.repeat(sample.data_w[None], 1 + N_THROW_COLUMNS, 0))
    first_two = prepare_sample(config(files, n_throws=2), Progress())
    np.testing.assert_allclose(first_two.mc_weights[1:], prior * files["throws"][:2], rtol=1e-6)


def test_one_file_split_in_halves_uses_its_throw_columns_too(files):
    values = {**USER, "data_file": str(files["mc"]), "n_throws": 3}
    sample = prepare_sample(UnfoldingConfig.from_dict(values), Progress())
    assert len(sample.mc) + len(sample.data) == 3_000 and sample.data_has_truth
    own = sample.mc[["throw_weight_0", "throw_weight_1", "throw_weight_2"]].to_numpy().T
    np.testing.assert_allclose(sample.mc_weights[sample.throws], sample.mc_prior * own, rtol=1e-6)


def test_throw_statistics_multiply_the_files_throws_by_poisson_counts(files):
    sample = prepare_sample(config(files, throw_statistics=True), Progress())
    counts = sample.mc_weights[sample.throws] / (sample.mc_prior * files["throws"])
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)
    assert counts.min() == pytest.approx(0) and counts.max() >= 3 and abs(counts.mean() - 1) < 0.05
    data_counts = sample.data_weights[sample.throws] / sample.data_w
    np.testing.assert_allclose(data_counts, np.round(data_counts), atol=1e-4)
    assert data_counts.std() > 0.5


def test_real_data_without_truth_gets_placeholder_truth_in_one_place(files):
    sample = prepare_sample(config(files, "real"), Progress())
    data, reco = sample.data, read_table(files["real"])
    assert not sample.data_has_truth and len(data) == len(reco)
    assert not data["pass_truth"].any() and not data["in_stv_phase_space"].any()
    assert not data["true_has_proton"].any() and data["true_mu_p"].isna().all() and data["enu"].isna().all()
    assert (data["mode"] == -1).all() and (data["true_n_protons"] == -1).all()
    np.testing.assert_array_equal(data["reco_mu_p"], reco["reco_mu_p"])
    np.testing.assert_allclose(sample.data_w, reco["weight"] / reco["weight"].mean(), rtol=1e-6)
    with pytest.raises(ConfigError, match=r"fake_data: .*real.root has no truth columns \(real data\)"):
        prepare_sample(config(files, "real", fake_data="dphit_shape"), Progress())


@pytest.mark.parametrize("data", ["fake", "real"])
def test_a_run_on_the_users_files_ends_with_omnifold_histograms(files, data):
    result = run_unfolding(config(files, data), Progress())
    h = result.histograms
    omnifold = h[h["method"] == "omnifold"]
    assert set(omnifold["distribution"]) == {"dpt"} and len(omnifold) == 14
    assert (
        np.isfinite(omnifold["value"]).all() and omnifold["value"].sum() > 0 and (omnifold["error"] > 0).all()
    )
    assert result.n_mc == 3_000 and result.n_data == 3_000
    assert ("truth" in set(h["method"])) == (data == "fake")


def test_the_command_line_runs_the_users_files(files, tmp_path):
    settings = tmp_path / "unfold.json"
    settings.write_text(json.dumps({k: v for k, v in USER.items() if k != "sample"}))
    runs = tmp_path / "runs"
    sets = ["sample=file", f"mc_file={files['mc']}", f"data_file={files['real']}"]
    args = ["unfold", "run", "--config", str(settings), "--out", str(runs)]
    result = CliRunner().invoke(main, [*args, *(x for s in sets for x in ("--set", s))])
    assert result.exit_code == 0, result.output
    assert ": done" in result.output
    (info,) = RunStore(runs).list("unfold")
    run = RunStore(runs).get(info["id"])
    assert run.read_config_dict()["mc_file"] == str(files["mc"])
    histograms = run.load_result()["histograms"]
    assert (histograms["method"] == "omnifold").any() and "truth" not in set(histograms["method"])


def test_more_throws_than_the_file_has_columns_is_a_config_error(files):
    with pytest.raises(ConfigError, match=r"n_throws: 5 throws asked for, but \S*mc.root has 4 throw-weight"):
        prepare_sample(config(files, n_throws=5), Progress())


@pytest.mark.parametrize("bad", [np.nan, -0.5, np.inf])
def test_a_bad_throw_weight_names_the_file_column_and_row(files, bad):
    mc = files["mc_frame"].copy()
    mc.loc[7, "throw_weight_2"] = bad
    path = write_table(mc, files["folder"] / "bad_mc.root")
    with pytest.raises(DataError, match=r"bad_mc.root: throw-weight column 'throw_weight_2' row 7: .*>= 0"):
        prepare_sample(config(files, mc_file=str(path)), Progress())


def test_a_gap_in_the_throw_columns_is_a_data_error(files):
    path = write_table(files["mc_frame"].drop(columns=["throw_weight_1"]), files["folder"] / "gap.parquet")
    with pytest.raises(DataError, match=r"gap.parquet: throw-weight columns .* throw_weight_1 is missing"):
        prepare_sample(config(files, mc_file=str(path)), Progress())


def test_a_data_file_missing_a_reco_column_is_a_data_error(files):
    real = read_table(files["real"]).drop(columns=["reco_p_cos"])
    path = write_table(real, files["folder"] / "no_reco.csv")
    with pytest.raises(DataError, match=r"no_reco.csv: missing column\(s\) \['reco_p_cos'\]"):
        prepare_sample(config(files, data_file=str(path)), Progress())


def test_an_mc_without_truth_or_a_data_file_with_part_of_it_is_a_data_error(files):
    path = write_table(files["mc_frame"].drop(columns=["true_dpt"]), files["folder"] / "mc_reco.parquet")
    with pytest.raises(DataError, match=r"mc_reco.parquet: missing column\(s\) \['true_dpt'\]"):
        prepare_sample(config(files, mc_file=str(path)), Progress())
    part = pd.concat([read_table(files["real"]), read_table(files["fake"])[["true_mu_p"]]], axis=1)
    path = write_table(part, files["folder"] / "part.parquet")
    with pytest.raises(DataError, match=r"part.parquet: has truth column\(s\) \['true_mu_p'\] but not"):
        prepare_sample(config(files, data_file=str(path)), Progress())


def test_mc_file_is_validated_with_the_config():
    with pytest.raises(ConfigError, match="UnfoldingConfig.mc_file: only used when sample is 'file'"):
        UnfoldingConfig.from_dict({"mc_file": "mc.root"})
    with pytest.raises(ConfigError, match="UnfoldingConfig.throw_weight_prefix: must not be empty"):
        UnfoldingConfig.from_dict({"sample": "file", "data_file": "d.root", "throw_weight_prefix": " "})
    essentials = list(UnfoldingConfig.ESSENTIALS)
    assert essentials.index("mc_file") == essentials.index("data_file") + 1


def test_the_config_form_shows_the_new_fields():
    from app.components.config_form import ConfigForm

    cfg = UnfoldingConfig()
    form = ConfigForm(cfg)
    for name, label in (
        ("mc_file", "MC file (optional)"),
        ("throw_weight_prefix", "Throw-weight column prefix"),
    ):
        widget = form.widgets[name]
        assert widget.label == label and UnfoldingConfig.field_help(name) in widget.description
    assert form.widgets["throw_weight_prefix"].value == "throw_weight_"
    form.widgets["throw_weight_prefix"].value = "syst_"
    assert cfg.throw_weight_prefix == "syst_"
