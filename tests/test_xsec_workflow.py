"""End-to-end cross-section runs and transfer learning with tiny networks (seconds each)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from numl_core.cli import main
from numl_core.config import ConfigError
from numl_core.data import electron_scattering as es
from numl_core.data.electron_scattering import load_nucleus
from numl_core.data.schema import DataError
from numl_core.jobs import Progress
from numl_core.live import series_key
from numl_core.training import TrainingConfig
from numl_core.xsec import train as train_module
from numl_core.xsec import workflow as workflow_module
from numl_core.xsec.config import PRESETS, XsecConfig
from numl_core.xsec.metrics import predict_log
from numl_core.xsec.model import XsecNet, features
from numl_core.xsec.points import PointSet, load_table, normalisation_groups, split_points
from numl_core.xsec.result import TransferResult, XsecResult
from numl_core.xsec.train import EnsembleSettings, train_model, train_settings
from numl_core.xsec.transfer import (
    carried_over,
    early_stopping_split,
    held_out_score,
    split_fraction,
    train_best_lr,
)
from numl_core.xsec.workflow import WORKFLOW, expected_series, run_transfer, run_xsec, transfer_targets
from tests.fixtures.xsec import XSEC_TINY


def test_result_tables_and_summaries(xsec_run):
    result = xsec_run.result
    assert isinstance(result, XsecResult)
    points = result.points
    assert len(points) == result.n_points == 120  # 126 rows, lowest omega of 6 settings dropped
    assert set(points["split"]) == {"train", "val", "test"}
    assert (points["split"] == "test").sum() == round(0.1 * 120)
    for method in ("boot", "mc"):
        assert (points[f"{method}_mean"] > 0).all() and (points[f"{method}_std"] >= 0).all()
        s = result.summary[method]
        assert {"chi2_train", "chi2_test", "chi2_test_profiled", "coverage_1sigma", "coverage_2sigma"} <= set(
            s
        )
        assert 0 <= s["coverage_1sigma"] <= s["coverage_2sigma"] <= 1
        assert 0 <= s["coverage_1sigma_no_misfit"] <= s["coverage_1sigma"]  # the misfit only widens
        assert 0 <= s["coverage_1sigma_no_misfit"] <= s["coverage_1sigma_gaussian"]
        assert 0 <= s["coverage_1sigma_gaussian"] <= s["coverage_2sigma_gaussian"] <= 1
        assert 2.0 <= s["nu_student_t"] <= 100.0 and s["misfit_student_t"] >= 0
        assert s["misfit"] >= 0
        assert s["epochs_run"] == XSEC_TINY["epochs"] and s["seconds"] > 0
        assert (points[f"{method}_pred"] > 0).all() and (points[f"{method}_pred_std"] >= 0).all()
    curves = result.curves
    assert len(curves) == 6 * 12 and set(curves["setting"]) == set(points["setting"])
    assert (curves["omega_qe"] > 0).all()
    norms = result.normalisations
    assert list(norms["data_set"]) == ["Anghinolfi:1996vm", "O'Connell:1987ag"]
    assert (norms["lambda"] > 0).all() and (norms["lambda_error"] > 0).all()
    assert set(result.history["method"]) == {"boot", "mc"}
    assert list(result.transfer["nucleus"]) == ["Al"] and result.finetune == "all layers"
    assert result.base_nucleus == "O" and set(result.transfer_points["nucleus"]) == {"Al"}


def test_live_series_reported_are_the_declared_ones(xsec_run):
    records, _ = xsec_run.progress.read_metrics(0)
    plots = WORKFLOW.live_plots
    drawn: dict[str, set[str]] = {}
    for r in records:
        if plots.group(r) is not None:
            drawn.setdefault(plots.group(r), set()).add(series_key(r))
    assert drawn["chi2"] == set(plots.expected(xsec_run.config)["chi2"])
    assert "boot_loss (val, chi2)" in drawn["chi2"] and "mc_log_loss (train, chi2)" in drawn["chi2"]
    assert {"finetune_Al_loss (train, chi2)", "scratch_Al_loss (train, chi2)"} <= drawn["transfer chi2"]
    assert plots.group({"name": "boot_loss", "term": "total", "split": "val"}) is None
    assert plots.spec("chi2").logy and plots.spec("transfer chi2").logy
    assert len(expected_series(XsecConfig(mc_dropout=0.0))["chi2"]) == 4


def test_renaming_a_metric_in_the_core_renames_what_it_declares_and_reports(monkeypatch):
    monkeypatch.setattr(train_module, "LOG_STAGE", "logres_")
    declared = expected_series(XsecConfig(mc_dropout=0.0))["chi2"]
    assert "boot_logres_loss (train, chi2)" in declared and "boot_log_loss (train, chi2)" not in declared
    table = load_nucleus("O").head(40)
    group, prior, _ = normalisation_groups(table, "experiment")
    settings = EnsembleSettings(members=1, depth=1, width=4, train=train_settings(epochs=2, device="cpu"))
    progress = Progress()
    idx = np.arange(40)
    train_model(
        PointSet.from_table(table, group, prior),
        idx[:30],
        idx[30:],
        settings,
        progress,
        metric_prefix="boot_",
    )
    records, _ = progress.read_metrics(0)
    assert {series_key(r) for r in records if r.get("term") == "chi2"} == set(declared)


def test_result_loads_back_from_its_run_directory(xsec_run):
    loaded = WORKFLOW.load_result(xsec_run.run)
    assert isinstance(loaded, XsecResult) and loaded.nucleus == "O" and loaded.mass_number == 16
    assert loaded.summary["boot"]["chi2_test"] == pytest.approx(xsec_run.result.summary["boot"]["chi2_test"])
    pd.testing.assert_frame_equal(loaded.normalisations, xsec_run.result.normalisations)
    pd.testing.assert_frame_equal(loaded.transfer, xsec_run.result.transfer)
    assert not any(key.startswith("_") for key in xsec_run.result.to_dict())


def test_point_set_validation_names_the_field():
    table = load_nucleus("O").head(5)
    group, prior, _ = normalisation_groups(table, "experiment")
    points = PointSet.from_table(table, group, prior)
    assert points.validate() is points and len(points.take(np.array([0, 2]))) == 2
    bad_x = points.x.copy()
    bad_x[1, 2] = np.nan
    cases = {
        "x": PointSet(bad_x, points.xsec, points.error, points.group, prior),
        "error": PointSet(points.x, points.xsec, -points.error, points.group, prior),
        "xsec": PointSet(points.x, np.zeros(5), points.error, points.group, prior),
        "group": PointSet(points.x, points.xsec, points.error, points.group[:3], prior),
        "prior": PointSet(points.x, points.xsec, points.error, points.group, np.zeros(len(prior))),
    }
    for name, bad in cases.items():
        with pytest.raises(ValueError, match=f"PointSet.{name}"):
            bad.validate()
    with pytest.raises(ValueError, match="PointSet.group"):
        PointSet(points.x, points.xsec, points.error, points.group + 5, prior).validate()


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


def test_config_round_trip_presets_settings_and_errors():
    cfg = XsecConfig(**XSEC_TINY)
    assert isinstance(cfg, TrainingConfig)
    assert XsecConfig.from_json(cfg.to_json()).to_dict() == cfg.to_dict()
    ref = XsecConfig.preset("reference")
    assert (ref.depth, ref.width, ref.epochs, ref.batch_norm) == (10, 300, 40_000, True)
    assert all(getattr(XsecConfig(), k) == v for k, v in PRESETS["cpu"].items())
    assert XsecConfig().learning_rate == 3e-3
    ensemble = cfg.ensemble_settings()
    assert ensemble.train == train_settings(epochs=6, batch_size=32, lr=3e-3, device="cpu", seed=0)
    assert ensemble.members == 3 and ensemble.passes_per_report == 1
    transfer = XsecConfig(**XSEC_TINY, finetune_lr=2e-4, finetune_blocks=1).transfer_settings()
    assert transfer.train == train_settings(epochs=3, batch_size=32, lr=2e-4, device="cpu", seed=0)
    assert (transfer.scratch_epochs, transfer.blocks) == (6, 1)
    with pytest.raises(ConfigError, match="data_file"):
        XsecConfig.from_dict({"nucleus": "file"})
    with pytest.raises(ConfigError, match="finetune_blocks"):
        XsecConfig.from_dict({"depth": 2, "finetune_blocks": 3})
    with pytest.raises(ConfigError, match="not in the O data"):
        run_xsec(XsecConfig(**XSEC_TINY, experiments=["Barreau:1983ht"]), Progress())
    assert WORKFLOW.name == "xsec" and "transfer" in WORKFLOW.actions
    assert WORKFLOW.results == (XsecResult, TransferResult)


def test_carried_over_model_is_scaled_by_mass_number():
    torch.manual_seed(0)
    base = XsecNet(n_members=2, depth=2, width=8).eval()
    x = features(load_nucleus("Fe").head(20))
    shifted = carried_over(base, 12, 56, blocks=1)
    assert np.allclose(predict_log(shifted, x) - predict_log(base, x), math.log(56 / 12), atol=1e-5)
    assert not any(p.requires_grad for p in shifted.blocks[0].parameters())
    train, rest = split_fraction(593, 0.1, 0)
    assert len(train) == 59 and len(np.intersect1d(train, rest)) == 0


def test_each_transfer_fit_keeps_the_learning_rate_that_scores_best_on_its_validation_points():
    table = load_nucleus("Fe").head(60)
    group, prior, _ = normalisation_groups(table, "experiment")
    points = PointSet.from_table(table, group, prior)
    fit, val = early_stopping_split(np.arange(60), 0.25, 0)
    assert len(val) == 15 and len(np.intersect1d(fit, val)) == 0
    settings = EnsembleSettings(
        members=2, depth=2, width=8, residual="linear", train=train_settings(epochs=30, lr=3e-3, device="cpu")
    )
    factors = (0.1, 1.0, 3.0)
    kept = train_best_lr(points, (fit, val), settings, factors, Progress(), name="t", prefix="t_")
    scores = {  # each learning rate trained alone, as the search trains it (seeded)
        f: held_out_score(
            train_model(points, fit, val, settings.training(lr=3e-3 * f)).model.net, points, fit, val
        ).chi2
        for f in factors
    }
    assert len(set(scores.values())) == 3
    assert kept.lr == pytest.approx(3e-3 * min(scores, key=scores.get)) and kept.seconds > 0
    no_val = train_best_lr(
        points, (np.arange(60), np.array([], int)), settings, factors, Progress(), name="t", prefix="t_"
    )
    assert no_val.lr == pytest.approx(3e-3)
    with pytest.raises(ConfigError, match="transfer_lr_factors"):
        XsecConfig(transfer_lr_factors=[0.0, 1.0]).validate()


def test_transfer_reuses_the_model_a_run_saved(xsec_run, tmp_path):
    cfg = xsec_run.config.copy(base_run=str(xsec_run.run.path), finetune_blocks=1, with_transfer=False)
    out = run_transfer(cfg, Progress())
    assert isinstance(out, TransferResult) and out.seconds > 0
    table = out.transfer.set_index("nucleus")
    assert list(table.index) == ["Al"]
    row = table.loc["Al"]
    assert row["train_points"] == round(0.1 * 593) and row["heldout_points"] == 593 - row["train_points"]
    assert row["val_points"] == round(0.25 * row["train_points"])
    finetune_lr, scratch_lr = cfg.finetune_lr, cfg.learning_rate
    assert any(row["finetune_lr"] == pytest.approx(finetune_lr * f) for f in cfg.transfer_lr_factors)
    assert any(row["scratch_lr"] == pytest.approx(scratch_lr * f) for f in cfg.transfer_lr_factors)
    for method in ("finetuned", "scratch", "scaled_base"):
        assert np.isfinite(row[method]) and row[method] > 0
    assert math.isnan(row["pretrain_seconds"])
    assert out.finetune == "last 1 blocks" and out.base_nucleus == "A=16"
    points = out.transfer_points
    assert (points[["pred_finetuned", "pred_scratch", "pred_scaled_base"]] > 0).all().all()
    assert points["group"].dtype.kind == "i" and points["group"].min() >= 0
    from numl_core.runs import RunStore

    run = RunStore(tmp_path).create("xsec", cfg)
    out.save(run)
    loaded = WORKFLOW.load_result(run)
    assert isinstance(loaded, TransferResult) and loaded.finetune == "last 1 blocks"


def test_transfer_from_a_users_file(tmp_path):
    raw = load_nucleus("O")[["Z", "A", "energy", "theta_deg", "omega", "xsec", "error", "citation"]]
    path = tmp_path / "oxygen.csv"
    raw.rename(columns={"energy": "E", "theta_deg": "theta"}).to_csv(path, index=False)
    cfg = XsecConfig(
        **{**XSEC_TINY, "nucleus": "C", "targets": []}, target_file=str(path), experiments=["Whitney:1974hr"]
    )
    out = run_transfer(cfg, Progress())
    assert list(out.transfer["nucleus"]) == ["file"]
    assert out.transfer["pretrain_seconds"].iloc[0] > 0


# -- any nucleus a user brings: an unshipped isotope, checked before any training ---------------------------
def _synthetic_table(path, z=20, a=48):
    """A QES-archive ``.dat`` table of a nucleus numl does not ship: three settings of a smooth quasi-elastic
    bump on a flat floor [nb/sr/GeV] with 5% errors; line 1 is the header, data rows are lines 2, 3, ..."""
    lines = ["# Z A E theta omega xsec error citation"]
    for energy, theta in ((0.5, 60.0), (0.8, 36.0), (1.2, 25.0)):
        peak = float(es.quasielastic_peak(energy, np.radians(theta), 0.028))
        for omega in np.linspace(0.02, 0.6 * energy, 12):
            xsec = a * 100.0 * (np.exp(-0.5 * ((omega - peak) / 0.08) ** 2) + 0.05)
            lines.append(f"{z} {a} {energy} {theta} {omega:.4f} {xsec:.4e} {0.05 * xsec:.4e} Synthetic:2024")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_transfers_to_a_nucleus_numl_does_not_ship(tmp_path):
    target = _synthetic_table(tmp_path / "ca48.dat")
    config = tmp_path / "xsec.json"
    config.write_text(json.dumps({**XSEC_TINY, "targets": [], "target_file": str(target)}))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        main, ["xsec", "transfer", "--config", str(config), "--device", "cpu", "--out", str(runs)]
    )
    assert result.exit_code == 0, result.output
    from numl_core.runs import RunStore

    store = RunStore(runs)
    [info] = store.list("xsec")
    out = WORKFLOW.load_result(store.get(info["id"]))
    assert isinstance(out, TransferResult) and list(out.transfer["nucleus"]) == ["file"]
    row = out.transfer.iloc[0]
    for method in ("finetuned", "scratch", "scaled_base"):
        assert np.isfinite(row[method]) and row[method] > 0
    assert row["train_points"] + row["heldout_points"] == 3 * 11  # lowest omega of each setting dropped
    assert set(out.transfer_points["nucleus"]) == {"file"}


@pytest.mark.parametrize(
    ("line", "column", "value", "fragment"),
    [
        (7, "error", "-1.0", "bad.dat:7: cross section and error must be positive"),
        (2, "Z", "50", "bad.dat:2: not a nucleus: Z = 50 exceeds A = 48"),
        (5, "A", "48.5", "bad.dat:5: not a nucleus: A = 48.5 is not an integer"),
    ],
)
@pytest.mark.parametrize("action", ["transfer", "run with transfer"])
def test_a_bad_target_fails_before_any_training(tmp_path, monkeypatch, line, column, value, fragment, action):
    def never(*args, **kwargs):
        raise AssertionError("pretraining started before the targets were checked")

    monkeypatch.setattr(workflow_module, "fit_nucleus", never)
    lines = _synthetic_table(tmp_path / "good.dat").read_text().splitlines()
    fields = lines[line - 1].split()
    fields[es.RAW_COLUMNS.index(column)] = value
    lines[line - 1] = " ".join(fields)
    (tmp_path / "bad.dat").write_text("\n".join(lines) + "\n")
    config = XsecConfig(**{**XSEC_TINY, "targets": ["Al", "Ca"]}, target_file=str(tmp_path / "bad.dat"))
    t0 = time.perf_counter()
    with pytest.raises(DataError) as info:
        if action == "transfer":
            run_transfer(config, Progress())
        else:
            run_xsec(config.copy(with_transfer=True), Progress())
    assert time.perf_counter() - t0 < 1.0
    assert fragment in str(info.value)


def test_a_bad_shipped_target_choice_fails_before_any_training(monkeypatch):
    monkeypatch.setattr(workflow_module, "fit_nucleus", lambda *a, **k: pytest.fail("pretraining started"))
    with pytest.raises(ConfigError, match="not in the O data"):  # the base nucleus among the targets
        run_transfer(
            XsecConfig(**{**XSEC_TINY, "targets": ["O"]}, experiments=["Barreau:1983ht"]), Progress()
        )
    with pytest.raises(ConfigError, match="choose at least one nucleus or a target_file"):
        run_transfer(XsecConfig(**{**XSEC_TINY, "targets": []}), Progress())


def test_the_nucleus_overrides_reach_the_prepared_tables(tmp_path):
    path = str(_synthetic_table(tmp_path / "pb.dat", z=82, a=208))
    plain = XsecConfig(**{**XSEC_TINY, "targets": []}, target_file=path)
    [(name, table)] = transfer_targets(plain)
    assert name == "file" and set(table["nucleus"]) == {"208Pb"}
    assert (table["binding"] == 0.044).all() and (table["fermi_momentum"] == 0.265).all()
    changed = plain.copy(target_binding=0.03, target_fermi_momentum=0.25)
    [(_, table)] = transfer_targets(changed)
    assert (table["binding"] == 0.03).all() and (table["fermi_momentum"] == 0.25).all()
    base = load_table(changed.copy(nucleus="file", data_file=path))
    assert (base["binding"] == 0.03).all() and (base["fermi_momentum"] == 0.25).all()
    theta = np.radians(base["theta_deg"].iloc[0])
    assert base["omega_qe"].iloc[0] == pytest.approx(
        es.quasielastic_peak(base["energy"].iloc[0], theta, 0.03)
    )
    shipped = load_table(changed, "Al")  # the overrides are for the user's tables only
    assert (shipped["binding"] == 0.032).all() and (shipped["fermi_momentum"] == 0.235).all()
    with pytest.raises(ConfigError, match="target_binding"):
        XsecConfig.from_dict({"target_binding": -0.01})
