"""End-to-end cross-section runs and transfer learning with tiny networks (seconds each)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numl_core.config import ConfigError
from numl_core.data.electron_scattering import load_nucleus
from numl_core.jobs import Progress
from numl_core.runs import RunStore
from numl_core.xsec.ensemble import predict_log
from numl_core.xsec.model import XsecNet, features
from numl_core.xsec.transfer import carried_over, split_fraction
from numl_core.xsec.workflow import (
    PRESETS,
    WORKFLOW,
    XsecConfig,
    normalisation_groups,
    run_transfer,
    run_xsec,
    split_points,
)

TINY = dict(
    nucleus="O",
    members=3,
    depth=2,
    width=8,
    epochs=6,
    batch_size=32,
    mc_samples=5,
    grid_points=12,
    finetune_epochs=3,
    targets=["Al"],
    device="cpu",
)


@pytest.fixture(scope="module")
def tiny_run():
    progress = Progress()
    return run_xsec(XsecConfig(**TINY), progress), progress


def test_result_tables_and_summaries(tiny_run):
    result, progress = tiny_run
    points = result["points"]
    assert len(points) == result["n_points"] == 120  # 126 rows, lowest omega of 6 settings dropped
    assert set(points["split"]) == {"train", "val", "test"}
    assert (points["split"] == "test").sum() == round(0.1 * 120)
    for method in ("boot", "mc"):
        assert (points[f"{method}_mean"] > 0).all() and (points[f"{method}_std"] >= 0).all()
        s = result["summary"][method]
        assert {"chi2_train", "chi2_test", "chi2_test_profiled", "coverage_1sigma", "coverage_2sigma"} <= set(
            s
        )
        assert 0 <= s["coverage_1sigma"] <= s["coverage_2sigma"] <= 1
        assert 0 <= s["coverage_1sigma_no_misfit"] <= s["coverage_1sigma"]  # the misfit only widens
        assert 0 <= s["coverage_1sigma_no_misfit"] <= s["coverage_1sigma_gaussian"]
        assert 0 <= s["coverage_1sigma_gaussian"] <= s["coverage_2sigma_gaussian"] <= 1
        assert 2.0 <= s["nu_student_t"] <= 100.0 and s["misfit_student_t"] >= 0
        assert s["misfit"] >= 0
        assert (points[f"{method}_pred"] > 0).all() and (points[f"{method}_pred_std"] >= 0).all()
    curves = result["curves"]
    assert len(curves) == 6 * 12 and set(curves["setting"]) == set(points["setting"])
    assert (curves["omega_qe"] > 0).all()
    norms = result["normalisations"]
    assert list(norms["data_set"]) == ["Anghinolfi:1996vm", "O'Connell:1987ag"]
    assert (norms["lambda"] > 0).all() and (norms["lambda_error"] > 0).all()
    assert set(result["history"]["method"]) == {"boot", "mc"}
    records, _ = progress.read_metrics(0)
    chi2 = {(r["name"], r["split"]) for r in records if r.get("term") == "chi2"}
    assert {("boot_loss", "train"), ("boot_loss", "val"), ("mc_loss", "train")} <= chi2


def test_split_by_settings_holds_out_whole_spectra():
    table = load_nucleus("C", drop_lowest=1)
    labels = split_points(table, "settings", 0.1, 0.1, seed=3)
    test_settings = set(table["setting"][labels == "test"])
    assert len(test_settings) == round(0.1 * table["setting"].nunique())
    assert test_settings.isdisjoint(set(table["setting"][labels != "test"]))
    assert (labels == "val").sum() == round(0.1 * (labels != "test").sum())


def test_normalisation_groups_by_experiment_setting_or_none():
    table = load_nucleus("C")
    for by, k in (("experiment", 11), ("setting", 66), ("none", 1)):
        group, prior, names = normalisation_groups(table, by)
        assert len(prior) == len(names) == k and group.max() == k - 1
    _, prior, names = normalisation_groups(table, "experiment")
    assert dict(zip(names, prior, strict=True))["Barreau:1983ht"] == 0.02


def test_config_round_trip_presets_and_errors():
    cfg = XsecConfig(**TINY)
    assert XsecConfig.from_json(cfg.to_json()).to_dict() == cfg.to_dict()
    ref = XsecConfig.preset("reference")
    assert (ref.depth, ref.width, ref.epochs, ref.batch_norm) == (10, 300, 40_000, True)
    assert all(getattr(XsecConfig(), k) == v for k, v in PRESETS["cpu"].items())
    with pytest.raises(ConfigError, match="data_file"):
        XsecConfig.from_dict({"nucleus": "file"})
    with pytest.raises(ConfigError, match="finetune_blocks"):
        XsecConfig.from_dict({"depth": 2, "finetune_blocks": 3})
    with pytest.raises(ConfigError, match="not in the O data"):
        run_xsec(XsecConfig(**TINY, experiments=["Barreau:1983ht"]), Progress())
    assert WORKFLOW.name == "xsec" and "transfer" in WORKFLOW.actions


def test_carried_over_model_is_scaled_by_mass_number():
    torch.manual_seed(0)
    base = XsecNet(n_members=2, depth=2, width=8).eval()
    x = features(load_nucleus("Fe").head(20))
    shifted = carried_over(base, 12, 56, blocks=1)
    assert np.allclose(predict_log(shifted, x) - predict_log(base, x), math.log(56 / 12), atol=1e-5)
    assert not any(p.requires_grad for p in shifted.blocks[0].parameters())
    train, rest = split_fraction(593, 0.1, 0)
    assert len(train) == 59 and len(np.intersect1d(train, rest)) == 0


def test_run_saves_model_that_transfer_reuses(tmp_path):
    store = RunStore(tmp_path)
    cfg = XsecConfig(**TINY, mc_dropout=0.0)
    run = store.create("xsec", cfg)
    progress = Progress(run)
    result = run_xsec(cfg, progress)
    run.save_result(result)
    assert run.load_result()["normalisations"].shape[0] == 2
    out = run_transfer(cfg.copy(base_run=str(run.path), finetune_blocks=1), Progress())
    table = out["transfer"].set_index("nucleus")
    assert list(table.index) == ["Al"]
    row = table.loc["Al"]
    assert row["train_points"] == round(0.1 * 593) and row["heldout_points"] == 593 - row["train_points"]
    for method in ("finetuned", "scratch", "scaled_base"):
        assert np.isfinite(row[method]) and row[method] > 0
    assert out["finetune"] == "last 1 blocks" and out["base_nucleus"] == "A=16"
    points = out["transfer_points"]
    assert (points[["pred_finetuned", "pred_scratch", "pred_scaled_base"]] > 0).all().all()
    assert points["group"].dtype.kind == "i" and points["group"].min() >= 0


def test_transfer_from_a_users_file(tmp_path):
    raw = load_nucleus("O")[["Z", "A", "energy", "theta_deg", "omega", "xsec", "error", "citation"]]
    path = tmp_path / "oxygen.csv"
    raw.rename(columns={"energy": "E", "theta_deg": "theta"}).to_csv(path, index=False)
    cfg = XsecConfig(
        **{**TINY, "nucleus": "C", "targets": []}, target_file=str(path), experiments=["Whitney:1974hr"]
    )
    out = run_transfer(cfg, Progress())
    assert list(out["transfer"]["nucleus"]) == ["file"]
    assert out["transfer"]["pretrain_seconds"].iloc[0] > 0
