"""Whatever numl writes, numl reads back through every workflow that accepts it: each built-in sample,
written by ``numl data generate`` in every format, loads through the workflow that analyses it with the
same events, columns and values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from numl_core.cli import main
from numl_core.data.generators import atmospheric_events as atm
from numl_core.data.io import read_table
from numl_core.energy.config import EnergyConfig
from numl_core.energy.workflow import load_events as load_energy_events
from numl_core.unfold.config import UnfoldingConfig
from numl_core.unfold.events import load_events as load_unfolding_events

FORMATS = ("csv", "parquet", "root")


def _generate(tmp_path, sample: str, fmt: str, n: int = 2000) -> str:
    out = tmp_path / f"{sample}.{fmt}"
    result = CliRunner().invoke(
        main, ["data", "generate", sample, "--n", str(n), "--seed", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return str(out)


def _assert_same(back: pd.DataFrame, original: pd.DataFrame) -> None:
    assert sorted(back.columns) == sorted(original.columns)  # a TTree keeps its own branch order
    for c in original.columns:
        a, b = original[c].to_numpy(), back[c].to_numpy()
        if a.dtype == object and len(a) and isinstance(a[0], np.ndarray):
            assert all(np.allclose(x, y, rtol=1e-12) for x, y in zip(a, b, strict=True)), c
        elif a.dtype.kind in "fiub":
            np.testing.assert_allclose(b.astype(float), a.astype(float), rtol=1e-12, err_msg=c)
        else:
            assert [str(x) for x in a] == [str(x) for x in b], c


@pytest.mark.parametrize("fmt", FORMATS)
def test_atmospheric_events_read_back_through_the_energy_workflow(tmp_path, fmt):
    path = _generate(tmp_path, "atmospheric_events", fmt)
    original = atm.generate(2000, 2)
    _assert_same(read_table(path, list_columns=atm.VECTOR_COLUMNS), original)  # the file itself
    config = EnergyConfig(sample="file", data_file=path, energy_range="0.1-100")
    events, source = load_energy_events(config)
    # the workflow applies its detection thresholds to a file's particle lists, as documented
    expected = atm.apply_thresholds(original, config.thresholds_mev)
    expected = expected[expected["topology"].isin(config.topologies)].reset_index(drop=True)
    assert source == path and len(events) == len(expected) > 0
    _assert_same(events, expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_nd280_events_read_back_through_the_unfolding_workflow(tmp_path, fmt):
    path = _generate(tmp_path, "nd280_cc0pi", fmt)
    events = load_unfolding_events(UnfoldingConfig(sample="file", data_file=path))
    _assert_same(events, load_unfolding_events(UnfoldingConfig(n_events=2000, seed=2)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_text_columns_survive_every_format(tmp_path, fmt):
    from numl_core.data.io import write_table

    frame = pd.DataFrame({"mode": ["QE", "2p2h", "RES"], "x": [1.0, 2.0, 3.0]})
    path = write_table(frame, tmp_path / f"t.{fmt}")
    _assert_same(read_table(path), frame)
