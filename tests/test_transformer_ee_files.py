"""A transformer_EE config and a CSV file in its layout (``Nu_Energy``, ``Nu_Mom_X/Y/Z`` targets,
``Final_State_Particles_*`` lists) run as numl's physics targets: direction resolution and baselines,
not an energy-only fit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from numl_core.cli import main
from numl_core.data.generators import atmospheric_events as atm
from numl_core.energy.config import TRANSFORMER_EE_COLUMNS, EnergyConfig
from numl_core.runs import RunStore

TO_TE = {v: k for k, v in TRANSFORMER_EE_COLUMNS.items()}
TE_VECTOR = [TO_TE[c] for c in atm.VECTOR_COLUMNS]
TE_TARGET = ["Nu_Energy", "Nu_Mom_X", "Nu_Mom_Y", "Nu_Mom_Z"]


def transformer_ee_table(n: int, seed: int) -> pd.DataFrame:
    """numl's sample in transformer_EE's layout: its names, list cells as "[a, b]", its scalars."""
    events = atm.generate(n, seed)
    out = pd.DataFrame({TO_TE[c]: events[c] for c in (*atm.VECTOR_COLUMNS, *TE_TARGET_NUML)})
    for c in TE_VECTOR:
        out[c] = ["[" + ", ".join(repr(float(x)) for x in v) + "]" for v in out[c]]
    kinetic = [np.sum(e - m) for e, m in zip(events["part_energy"], events["part_mass"], strict=True)]
    out["tot_fKE"] = kinetic
    out["p_tot"] = np.hypot(np.hypot(events["vis_px"], events["vis_py"]), events["vis_pz"])
    out["P_miss"] = np.hypot(events["vis_px"], events["vis_py"])
    return out


TE_TARGET_NUML = ("enu_truth", "nu_px_truth", "nu_py_truth", "nu_pz_truth")


def transformer_ee_config(data_path: str) -> dict:
    return {
        "data_path": data_path,
        "vector": TE_VECTOR,
        "scalar": ["tot_fKE", "p_tot", "P_miss"],
        "target": TE_TARGET,
        "max_num_prongs": 20,
        "batch_size_train": 128,
        "test_size": 0.2,
        "valid_size": 0.1,
        "model": {
            "name": "Transformer_EE_MV",
            "epochs": 2,
            "kwargs": {"nhead": 2, "num_layers": 1, "d_model": 16},
        },
        "optimizer": {"name": "Adam", "kwargs": {"lr": 0.001}},
        "loss": {
            "name": "linear_combination",
            "kwargs": {
                "base_loss_names": ["mean absolute percentage error", *["mean squared error"] * 3],
                "coefficients": [1.0, 0.5, 0.5, 0.5],
            },
        },
    }


def test_transformer_ee_names_map_to_numls_physics_targets():
    cfg = EnergyConfig.from_dict(transformer_ee_config("x.csv"))
    assert cfg.target == list(TE_TARGET_NUML)
    assert cfg.vector == list(atm.VECTOR_COLUMNS)
    assert cfg.column_map["Nu_Energy"] == "enu_truth" and "tot_fKE" not in cfg.column_map
    assert [t["column"] for t in cfg.loss_terms] == list(TE_TARGET_NUML)
    assert any("Nu_Energy -> enu_truth" in note for note in cfg.import_notes)


def test_a_config_can_override_the_mapping():
    values = transformer_ee_config("x.csv") | {"column_map": {"Nu_Energy": "enu_truth", "MyE": "vis_energy"}}
    values["scalar"] = ["MyE"]
    cfg = EnergyConfig.from_dict(values)
    assert cfg.scalar == ["vis_energy"] and cfg.column_map["MyE"] == "vis_energy"


def test_a_transformer_ee_run_reports_direction_and_baselines(tmp_path):
    data = tmp_path / "te.csv"
    transformer_ee_table(900, 4).to_csv(data, index=False)
    config = tmp_path / "te.json"
    config.write_text(json.dumps(transformer_ee_config(str(data))))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        main,
        [
            "energy",
            "run",
            "--config",
            str(config),
            "--out",
            str(runs),
            "--device",
            "cpu",
            "--set",
            "epochs=2",
        ],
    )
    assert result.exit_code == 0, result.output
    (info,) = RunStore(runs).list()
    stored = RunStore(runs).get(info["id"]).load_result()
    resolution = stored["resolution"]
    assert {"transformer", "calorimetric"} <= set(resolution["estimator"])
    angle = resolution.loc[resolution["estimator"] == "transformer", "angle68"].dropna()
    assert len(angle) > 0 and np.isfinite(angle).all()  # a direction, not an energy-only fit
    assert len(stored["resolution_by_energy"]) > 0
