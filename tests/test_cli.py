import json
import subprocess
import sys

from click.testing import CliRunner

from numl_core.cli import main
from numl_core.data.io import read_table

TINY = {
    "n_events": 6000,
    "iterations": 1,
    "trials": 1,
    "n_throws": 0,
    "n_bootstrap": 0,
    "epochs": 2,
    "hidden_units": 8,
    "batch_size": 2000,
    "distributions": ["dpt"],
    "device": "cpu",
}


def test_help_lists_builtin_and_workflow_commands():
    result = subprocess.run(
        [sys.executable, "-m", "numl_core.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("app", "data", "runs", "unfold"):
        assert command in result.stdout


def test_data_generate_writes_a_readable_file(tmp_path):
    out = tmp_path / "events.parquet"
    result = CliRunner().invoke(
        main, ["data", "generate", "nd280_cc0pi", "--n", "500", "--seed", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(read_table(out)) == 500


def test_unknown_sample_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["data", "generate", "nope", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code != 0 and "unknown sample 'nope'; known: nd280_cc0pi" in result.output


def test_workflow_run_then_runs_list_and_show(tmp_path):
    config = tmp_path / "unfold.json"
    config.write_text(json.dumps(TINY))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        main, ["unfold", "run", "--config", str(config), "--seed", "4", "--out", str(runs)]
    )
    assert result.exit_code == 0, result.output
    assert ": done" in result.output
    listed = CliRunner().invoke(main, ["runs", "list", "--root", str(runs)])
    run_id = listed.output.split()[0]
    assert "unfold" in listed.output and "done" in listed.output
    shown = CliRunner().invoke(main, ["runs", "show", run_id, "--root", str(runs)])
    assert shown.exit_code == 0
    assert '"seed": 4' in shown.output and "result chi2_table: DataFrame" in shown.output


def test_bad_config_names_the_field(tmp_path):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"iteratons": 3}))
    result = CliRunner().invoke(main, ["unfold", "run", "--config", str(config), "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "unknown field 'iteratons' (did you mean 'iterations'?)" in result.output


def test_config_command_prints_defaults_that_load_back():
    from numl_core.unfold.workflow import UnfoldingConfig

    result = CliRunner().invoke(main, ["unfold", "config"])
    assert UnfoldingConfig.from_json(result.output).to_dict() == UnfoldingConfig().to_dict()
