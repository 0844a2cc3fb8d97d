"""Bad input gets a named error: every malformed config, file or option given to a workflow from the
command line ends with a message that names the file, field, column or row and what was expected, never
a traceback; config errors leave no run folder behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from numl_core.cli import main
from numl_core.data.generators import atmospheric_events as atm
from numl_core.data.io import write_table

#: Each workflow with one of its integer fields.
WORKFLOW_INTS = {
    "unfold": "iterations",
    "energy": "max_num_prongs",
    "generator": "transforms",
    "uncertainty": "n_toys",
    "xsec": "members",
}


def _run(args: list[str], runs: Path) -> str:
    result = CliRunner().invoke(main, [*args, "--out", str(runs)])
    assert result.exit_code != 0, f"{args} succeeded: {result.output}"
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.output


def _config(tmp_path: Path, content: str | dict) -> str:
    path = tmp_path / "config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


CONFIG_CASES = {
    "unknown field": ({"no_such_field": 1}, ["unknown field 'no_such_field'"]),
    "text for an integer": ({"FIELD": "five"}, ["FIELD", "'five'"]),
    "boolean for an integer": ({"FIELD": True}, ["FIELD = True is a boolean"]),
    "integer out of bounds": ({"FIELD": -5}, ["FIELD = -5", "expected an integer in"]),
    "invalid JSON": ('{"FIELD": 1', ["invalid JSON at line 1"]),
    "a JSON array": ("[1, 2]", ["expected a JSON object, got list"]),
    "JSON nested too deeply": ('{"FIELD": ' + "[" * 50_000 + "]" * 50_000 + "}", ["nested too deeply"]),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
@pytest.mark.parametrize("workflow", WORKFLOW_INTS)
def test_a_bad_config_is_named_and_makes_no_run(tmp_path, workflow, case):
    content, expected = CONFIG_CASES[case]
    field = WORKFLOW_INTS[workflow]
    text = json.dumps(content) if isinstance(content, dict) else content
    path = _config(tmp_path, text.replace("FIELD", field))
    output = _run([workflow, "run", "--config", path], tmp_path / "runs")
    assert "config.json" in output
    for part in expected:
        assert part.replace("FIELD", field) in output
    assert not (tmp_path / "runs").exists()


def test_loss_terms_that_are_not_term_objects_are_named(tmp_path):
    path = _config(tmp_path, {"loss_terms": ["energy"]})
    output = _run(["energy", "run", "--config", path], tmp_path / "runs")
    assert "EnergyConfig.loss_terms = ['energy'] is not allowed; expected a list of dict values" in output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("workflow", WORKFLOW_INTS)
def test_a_missing_config_file_is_named(tmp_path, workflow):
    output = _run([workflow, "run", "--config", str(tmp_path / "nope.json")], tmp_path / "runs")
    assert "nope.json: config file not found" in output


@pytest.mark.parametrize("workflow", WORKFLOW_INTS)
def test_an_unavailable_device_is_named_before_a_run_folder_exists(tmp_path, workflow):
    output = _run([workflow, "run", "--device", "mps"], tmp_path / "runs")
    assert ".device" in output and "'mps'" in output
    assert not (tmp_path / "runs").exists()


# -- input files -------------------------------------------------------------------------------------
def _files(tmp_path: Path) -> dict[str, str]:
    """Bad files of every kind, by name."""
    d = tmp_path / "files"
    d.mkdir()
    (d / "folder.csv").mkdir()
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("a,b\n")
    (d / "truncated.parquet").write_bytes(b"PAR1\x00\x01garbage")
    (d / "garbage.pt").write_bytes(b"this is not a torch file")
    torch.save({"format": 99}, d / "other.pt")
    (d / "toys_text.csv").write_text("x,y\n1.0,a\n2.0,b\n")
    events = atm.generate(400, 1)
    write_table(events, d / "events.csv")
    bad_list = pd.read_csv(d / "events.csv")
    bad_list.loc[3, "part_energy"] = "0.5,abc"
    bad_list.to_csv(d / "bad_list.csv", index=False)
    huge = events.copy()
    huge["part_energy"] = [
        np.where(np.arange(len(v)) == 0, 1e39, v) if i == 5 else v for i, v in enumerate(huge["part_energy"])
    ]
    write_table(huge, d / "huge.parquet")
    weighted = events.assign(w=np.where(np.arange(len(events)) == 7, -1.0, 1.0))
    write_table(weighted, d / "weighted.parquet")
    header = "Z,A,E,theta,omega,xsec,error,citation\n"
    rows = ["6,12,0.5,36,0.05,10,1,X", "6,12,0.5,36,0.10,12,1,X", "6,12,0.5,36,0.15,11,1,X"]
    (d / "xs_ok_head.csv").write_text(header + "\n".join(rows) + "\n")
    (d / "xs_inf.csv").write_text(header + "\n".join([rows[0], rows[1].replace("0.5,", "inf,", 1), rows[2]]))
    (d / "xs_huge.csv").write_text(
        header + "\n".join([rows[0], rows[1].replace("0.5,", "1e300,", 1), rows[2]])
    )
    (d / "xs_text.csv").write_text(
        header + "\n".join([rows[0], rows[1].replace(",12,1,", ",ten,1,", 1), rows[2]])
    )
    (d / "xs_missing.csv").write_text("Z,A,E,theta,omega,xsec\n6,12,0.5,36,0.05,10\n")
    (d / "xs_z_above_a.csv").write_text(
        header + "\n".join(r.replace("6,12,", "7,6,", 1) for r in rows) + "\n"
    )
    return {p.name: str(p) for p in d.iterdir()} | {"missing.csv": str(d / "missing.csv")}


FILE_CASES = {
    # workflow, action, config (FILE is replaced), expected parts of the message
    "unfold: missing file": (
        "unfold",
        "run",
        {"sample": "file", "data_file": "missing.csv"},
        ["file not found"],
    ),
    "unfold: a folder": ("unfold", "run", {"sample": "file", "data_file": "folder.csv"}, ["is a folder"]),
    "unfold: empty file": ("unfold", "run", {"sample": "file", "data_file": "empty.csv"}, ["file is empty"]),
    "unfold: header only": (
        "unfold",
        "run",
        {"sample": "file", "data_file": "header_only.csv"},
        ["header_only.csv"],
    ),
    "unfold: truncated parquet": (
        "unfold",
        "run",
        {"sample": "file", "data_file": "truncated.parquet"},
        ["not a readable parquet file"],
    ),
    "energy: missing file": (
        "energy",
        "run",
        {"sample": "file", "data_file": "missing.csv"},
        ["file not found"],
    ),
    "energy: a folder": ("energy", "run", {"sample": "file", "data_file": "folder.csv"}, ["is a folder"]),
    "energy: empty file": ("energy", "run", {"sample": "file", "data_file": "empty.csv"}, ["file is empty"]),
    "energy: truncated parquet": (
        "energy",
        "run",
        {"sample": "file", "data_file": "truncated.parquet"},
        ["not a readable parquet file"],
    ),
    "energy: a list cell with text": (
        "energy",
        "run",
        {"sample": "file", "data_file": "bad_list.csv"},
        ["column 'part_energy' row 3", "comma-separated list of numbers"],
    ),
    "energy: a value beyond float32": (
        "energy",
        "run",
        {"sample": "file", "data_file": "huge.parquet", "energy_range": "0.1-100"},
        ["column 'part_energy' row", "finite float32"],
    ),
    "energy: a missing weight column": (
        "energy",
        "run",
        {"sample": "file", "data_file": "weighted.parquet", "weight": "column", "weight_column": "nope"},
        ["weight_column", "'nope' not found"],
    ),
    "energy: a negative weight": (
        "energy",
        "run",
        {"sample": "file", "data_file": "weighted.parquet", "weight": "column", "weight_column": "w"},
        ["weight column 'w' row 7", "finite and >= 0"],
    ),
    "generator: missing flow": (
        "generator",
        "sample",
        {"flow_file": "missing.csv", "n_generate": 10},
        ["no flow file here"],
    ),
    "generator: not a torch file": (
        "generator",
        "sample",
        {"flow_file": "garbage.pt", "n_generate": 10},
        ["garbage.pt: not a readable flow file"],
    ),
    "generator: another checkpoint": (
        "generator",
        "sample",
        {"flow_file": "other.pt", "n_generate": 10},
        ["not a generator-flow checkpoint (format 99)"],
    ),
    "uncertainty: missing toys": (
        "uncertainty",
        "run",
        {"toys": "file", "toy_file": "missing.csv"},
        ["no such file"],
    ),
    "uncertainty: empty toys": (
        "uncertainty",
        "run",
        {"toys": "file", "toy_file": "empty.csv"},
        ["file is empty"],
    ),
    "uncertainty: truncated parquet": (
        "uncertainty",
        "run",
        {"toys": "file", "toy_file": "truncated.parquet"},
        ["not a readable toy file"],
    ),
    "uncertainty: text in a toy": (
        "uncertainty",
        "run",
        {"toys": "file", "toy_file": "toys_text.csv"},
        ["['y'] are not numeric"],
    ),
    "uncertainty: a folder": (
        "uncertainty",
        "run",
        {"toys": "file", "toy_file": "folder.csv"},
        ["is a folder"],
    ),
    "xsec: empty table": ("xsec", "run", {"nucleus": "file", "data_file": "empty.csv"}, ["file is empty"]),
    "xsec: truncated parquet": (
        "xsec",
        "run",
        {"nucleus": "file", "data_file": "truncated.parquet"},
        ["not a readable table"],
    ),
    "xsec: missing column": (
        "xsec",
        "run",
        {"nucleus": "file", "data_file": "xs_missing.csv"},
        ["missing column(s) ['error', 'citation']"],
    ),
    "xsec: infinite energy": (
        "xsec",
        "run",
        {"nucleus": "file", "data_file": "xs_inf.csv"},
        ["xs_inf.csv:3", "column 'E'"],
    ),
    "xsec: energy beyond float32": (
        "xsec",
        "run",
        {"nucleus": "file", "data_file": "xs_huge.csv"},
        ["xs_huge.csv:3", "column 'E'", "float32"],
    ),
    "xsec: an empty transfer target": (
        "xsec",
        "transfer",
        {"target_file": "empty.csv", "targets": [], "epochs": 2, "members": 1},
        ["empty.csv: file is empty"],
    ),
    "xsec: a transfer target that is not a nucleus": (
        "xsec",
        "transfer",
        {"target_file": "xs_z_above_a.csv", "targets": ["Al"]},
        ["xs_z_above_a.csv:2", "not a nucleus: Z = 7 exceeds A = 6"],
    ),
    "xsec: text in a number": (
        "xsec",
        "run",
        {"nucleus": "file", "data_file": "xs_text.csv"},
        ["xs_text.csv:3", "column 'xsec' is not a number"],
    ),
}


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    return _files(tmp_path)


@pytest.mark.parametrize("case", FILE_CASES)
def test_a_bad_input_file_is_named(tmp_path, files, case):
    workflow, action, values, expected = FILE_CASES[case]
    values = {k: files.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
    if workflow == "generator":
        values["output_file"] = str(tmp_path / "events.parquet")
    output = _run(
        [workflow, action, "--config", _config(tmp_path, values), "--device", "cpu"], tmp_path / "runs"
    )
    for part in expected:
        assert part in output, f"{part!r} not in {output!r}"
