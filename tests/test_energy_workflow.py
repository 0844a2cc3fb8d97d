"""The energy workflow end to end at tiny sizes: results, export, resume, transformer_EE files, predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from numl_core.data.generators import atmospheric_events as atm
from numl_core.data.io import write_table
from numl_core.data.reference import FILES_DIR
from numl_core.data.schema import DataError
from numl_core.energy import workflow as energy_workflow
from numl_core.energy.config import EnergyConfig
from numl_core.energy.export import load_torchscript
from numl_core.energy.result import EnergyResult, PredictResult
from numl_core.energy.workflow import WORKFLOW
from numl_core.jobs import JobCancelled, Progress
from numl_core.live import series_key
from numl_core.runs import RunStore
from tests.fixtures.energy import ENERGY_TINY

TINY = ENERGY_TINY


def test_result_contents(energy_run):
    run, progress, result = energy_run.run, energy_run.progress, energy_run.result
    assert WORKFLOW.name == "energy" and WORKFLOW.config_cls is EnergyConfig
    assert isinstance(result, EnergyResult)
    n_test = result.n_test
    assert result.n_train + result.n_val + n_test == 700
    assert len(result.predictions) == n_test and result.predictions["event_id"].is_unique
    for key in (
        "energy_res68_transformer_cc",
        "energy_res68_calorimetric_cc",
        "energy_res68_gbdt_cc",
        "angle_res68_deg_transformer",
        "angle_res68_deg_baseline",
        "energy_res68_energy_only_loss_cc",
    ):
        assert np.isfinite(getattr(result, key)) and getattr(result, key) > 0, key
    estimators = set(result.resolution["estimator"])
    assert {
        "transformer",
        "calorimetric",
        "gbdt",
        "visible momentum",
        "transformer (energy-only loss)",
    } <= estimators
    assert set(result.resolution_by_range["energy_range"]) == set(atm.ENERGY_RANGES)
    assert result.heatmap_counts.sum() == n_test
    assert len(result.history) == result.epochs_run == 2
    # live metrics: per split and per loss term, for both the model and the ablation
    records, _ = progress.read_metrics(0)
    tags = {(r["name"], r["split"], r["term"]) for r in records}
    assert ("loss", "val", "direction") in tags and ("ablation_loss", "train", "energy") in tags
    # the stored run loads back as the same typed result
    reloaded = WORKFLOW.load_result(run)
    assert isinstance(reloaded, EnergyResult) and run.read_info()["result_type"] == "EnergyResult"
    assert reloaded.scalars() == result.scalars()
    pd.testing.assert_frame_equal(reloaded.predictions, result.predictions)
    np.testing.assert_array_equal(reloaded.heatmap_counts, result.heatmap_counts)


def test_live_plots_are_declared_by_the_core(energy_run):
    plots = WORKFLOW.live_plots
    records, _ = energy_run.progress.read_metrics(0)
    drawn = {plots.group(r) for r in records}
    assert drawn == {"loss", "loss terms"} and plots.spec("loss").xlabel == "epoch"
    expected = plots.expected(energy_run.config)
    assert expected["loss"] == ["loss (train, total)", "loss (val, total)"]
    assert "loss (val, direction)" in expected["loss terms"] and len(expected["loss terms"]) == 6
    # every declared series is one the run reported
    reported = {series_key(r) for r in records}
    assert {s for names in expected.values() for s in names} <= reported
    assert plots.group({"name": "lr"}) is None


def test_renaming_the_metric_in_the_core_renames_what_it_declares_and_emits(monkeypatch):
    monkeypatch.setattr(energy_workflow, "MODEL_PREFIX", "energy_")
    plots = WORKFLOW.live_plots
    expected = plots.expected(EnergyConfig())
    assert expected["loss"] == ["energy_loss (train, total)", "energy_loss (val, total)"]
    progress = Progress()
    seen = []
    progress.listeners.append(lambda kind, payload: seen.append(payload) if kind == "metric" else None)
    cfg = EnergyConfig(**{**TINY, "n_events": 300, "epochs": 1}, baselines=False, export=False)
    WORKFLOW.run(cfg, progress)
    assert {r["name"] for r in seen} == {"energy_loss"}
    assert {plots.group(r) for r in seen} == {"loss", "loss terms"}
    assert plots.group({"name": "loss", "term": "total"}) is None


def test_exported_model_reproduces_the_predictions(energy_run):
    cfg, result = energy_run.config, energy_run.result
    module, meta = load_torchscript(result.model_file)
    assert meta["vector"] == cfg.vector and meta["max_num_prongs"] == cfg.max_num_prongs
    events = atm.generate(cfg.n_events, cfg.seed)
    row = events[events["event_id"] == result.predictions["event_id"].iloc[0]]
    from numl_core.energy.data import to_arrays

    a = to_arrays(row, cfg.vector, cfg.scalar, [], cfg.max_num_prongs)
    with torch.no_grad():
        out = module(torch.from_numpy(a.vector), torch.from_numpy(a.scalar), torch.from_numpy(a.mask))
    assert float(out[0, 0]) == pytest.approx(float(result.predictions["pred_enu_truth"].iloc[0]), rel=1e-4)


def test_cancelled_run_resumes_from_its_checkpoint(tmp_path):
    cfg = EnergyConfig(**TINY, baselines=False, export=False)
    run = RunStore(tmp_path).create("energy", cfg)
    first = Progress(run)

    def cancel_after_first_epoch(kind, payload):
        if kind == "metric" and payload["split"] == "val":
            first.request_cancel()

    first.listeners.append(cancel_after_first_epoch)
    with pytest.raises(JobCancelled):
        WORKFLOW.run(cfg, first)
    second = Progress(run)
    result = WORKFLOW.run(cfg, second)
    lines, _ = second.read_log(0)
    assert any("resumed after epoch 1" in line for line in lines)
    assert result.epochs_run == 2


def test_transformer_ee_layout_file_and_predict_action(tmp_path):
    events = atm.generate(500, seed=5)
    renamed = events.rename(
        columns={"part_energy": "genie_Eng", "part_px": "genie_Px", "part_pz": "genie_Pz"}
    )
    path = write_table(
        renamed[["genie_Eng", "genie_Px", "genie_Pz", "vis_energy", "enu_truth"]], tmp_path / "te.csv"
    )
    te_config = {
        "data_path": str(path),
        "vector": ["genie_Eng", "genie_Px", "genie_Pz"],
        "scalar": ["vis_energy"],
        "target": ["enu_truth"],
        "loss": {"kwargs": {"coefficients": [1.0], "base_loss_names": ["mean absolute percentage error"]}},
        "model": {"name": "Transformer_EE_MV", "kwargs": {"nhead": 2, "num_layers": 1}, "epochs": 1},
        "batch_size_train": 128,
    }
    cfg = EnergyConfig.from_dict(te_config).copy(d_model=16, dim_feedforward=32, device="cpu")
    run = RunStore(tmp_path / "runs").create("energy", cfg)
    result = WORKFLOW.run(cfg, Progress(run))
    assert result.epochs_run == 1 and result.energy_res68_transformer_cc is None
    assert set(result.resolution["estimator"]) == {"transformer"}
    # the exported model applied to many files (the same CSV twice here)
    predict_cfg = cfg.copy(model_file=result.model_file, predict_files=[str(path), str(path)])
    out = WORKFLOW.actions["predict"](predict_cfg, Progress())
    assert isinstance(out, PredictResult)
    assert out.n_files == 2 and len(out.predictions) == 1000
    assert (out.predictions["pred_enu_truth"] > 0).all()


def test_bad_inputs_name_the_problem(tmp_path):
    path = write_table(atm.generate(300, seed=1)[["part_energy", "enu_truth"]], tmp_path / "few.csv")
    cfg = EnergyConfig.from_dict(
        {
            "data_path": str(path),
            "vector": ["part_energy"],
            "scalar": ["calE"],
            "target": ["enu_truth"],
            "loss": {"kwargs": {"coefficients": [1.0], "base_loss_names": ["mean squared error"]}},
        }
    )
    with pytest.raises(DataError, match=r"few.csv: scalar column\(s\) \['calE'\] not found"):
        WORKFLOW.run(cfg, Progress())
    broken = pd.DataFrame({"part_energy": ["0.3,x"] * 60, "enu_truth": [1.0] * 60})
    broken.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(DataError, match="broken.csv: column 'part_energy' row 0"):
        WORKFLOW.run(cfg.copy(data_file=str(tmp_path / "broken.csv"), scalar=[]), Progress())


def test_neut_file_runs_through_the_workflow_reader():
    neut = str(FILES_DIR / "neut_nuhepmc_events" / "neut.vect.hepmc")
    cfg = EnergyConfig(**{**TINY, "epochs": 1}, sample="file", data_file=neut, baselines=False, export=False)
    result = WORKFLOW.run(cfg, Progress())
    assert result.n_train + result.n_val + result.n_test == 983
    assert np.isfinite(result.energy_res68_transformer_cc)
