"""EnergyConfig: defaults, validation, and transformer_EE JSON configs loading unchanged."""

from __future__ import annotations

import json

import pytest

from numl_core.config import ConfigError
from numl_core.energy.config import EnergyConfig

# transformer_EE/config/input_DUNE_atmo.json (github.com/wswxyq/transformer_EE), verbatim
DUNE_ATMO = """{
    "data_path": "~/data/dune_atmo_genie_300k.csv",
    "vector": ["genie_Eng", "genie_Px", "genie_Py", "genie_Pz", "genie_P", "genie_mass"],
    "scalar": ["Q2_truth", "X_truth", "Y_truth"],
    "target": ["enu_truth", "nu_dcosy_truth"],
    "max_num_prongs": 20,
    "batch_size_train": 1024,
    "batch_size_valid": 256,
    "batch_size_test": 3000,
    "test_size": 0.2,
    "valid_size": 0.04,
    "seed": 0,
    "loss": {"kwargs": {"coefficients": [0.5, 0.5],
                        "base_loss_names": ["mean squared error", "mean squared error"]}},
    "optimizer": {"name": "Adam", "kwargs": {"lr": 0.001}},
    "model": {"name": "Transformer_EE_MV", "kwargs": {}},
    "save_path": "save/model/DUNE_atmo"
}"""

# transformer_EE/config/input_nova_mprod6_1_OPAL_fd_fhc.json, the fields that differ in kind
NOVA = {
    "data_path": "transformer_ee/data/nova.csv.xz",
    "num_workers": 10,
    "vector": ["png.calE", "png.dir.x"],
    "scalar": ["calE"],
    "target": ["trueE", "trueLepE"],
    "weight": {"name": "FlatSpectraWeights", "kwargs": {"alpha": 0.05}},
    "noise": {"name": "gaussian", "mean": 0, "std": 0.2},
    "loss": {
        "kwargs": {"coefficients": [0.5, 0.5], "base_loss_names": ["mean absolute percentage error"] * 2}
    },
    "optimizer": {"name": "AdamW", "kwargs": {"lr": 0.0001}},
    "model": {"name": "Transformer_EE_MV", "kwargs": {"nhead": 16, "num_layers": 12}},
}


def test_defaults_are_full_size_and_round_trip():
    cfg = EnergyConfig()
    assert cfg.n_events >= 100_000 and cfg.d_model == 64 and cfg.epochs >= 20
    assert cfg.thresholds_mev == {"p": 25.0, "pi": 70.0, "pi0": 50.0, "K": 50.0, "mu": 5.0, "e": 5.0}
    again = EnergyConfig.from_json(cfg.to_json())
    assert again.to_dict() == cfg.to_dict()
    assert [t.label for t in cfg.terms()] == ["energy", "direction", "invariant_mass"]


def test_training_fields_come_from_the_shared_mixin_and_old_lr_still_loads():
    from numl_core.training import TrainingConfig

    cfg = EnergyConfig(learning_rate=3e-4, epochs=4, weight_decay=0.01, schedule="plateau")
    assert isinstance(cfg, TrainingConfig) and "lr" not in cfg.field_names()
    settings = cfg.train_settings(grad_clip=1.0)
    assert (settings.lr, settings.epochs, settings.weight_decay, settings.schedule, settings.grad_clip) == (
        3e-4,
        4,
        0.01,
        "plateau",
        1.0,
    )
    assert settings.eval_batch_size == cfg.eval_batch_size == 8192 and cfg.epochs == 4
    assert EnergyConfig().epochs == 30
    # a numl config written before the rename (its "lr" field) is a numl config, not a transformer_EE one
    old = EnergyConfig().to_dict()
    old["lr"] = old.pop("learning_rate") * 2
    again = EnergyConfig.from_dict(old)
    assert again.learning_rate == 2e-3 and again.import_notes == [] and again.sample == "builtin"


def test_transformer_ee_dune_config_loads(tmp_path):
    path = tmp_path / "input_DUNE_atmo.json"
    path.write_text(DUNE_ATMO)
    cfg = EnergyConfig.from_json(path)
    assert cfg.sample == "file" and cfg.data_file == "~/data/dune_atmo_genie_300k.csv"
    assert cfg.vector[0] == "genie_Eng" and cfg.target == ["enu_truth", "nu_dcosy_truth"]
    assert (cfg.batch_size, cfg.eval_batch_size, cfg.valid_size, cfg.learning_rate) == (
        1024,
        3000,
        0.04,
        0.001,
    )
    assert [(t.label, t.loss, t.coefficient) for t in cfg.terms()] == [
        ("target:enu_truth", "mean squared error", 0.5),
        ("target:nu_dcosy_truth", "mean squared error", 0.5),
    ]
    assert cfg.energy_reference == "" and cfg.direction_reference == []
    assert cfg.import_notes == [
        "transformer_EE field 'save_path' is not used: results go to the numl run directory"
    ]
    # the converted config is a plain numl config from then on
    assert EnergyConfig.from_json(cfg.to_json()).to_dict() == cfg.to_dict()


def test_transformer_ee_unsupported_fields_are_reported():
    cfg = EnergyConfig.from_dict(json.loads(json.dumps(NOVA)))
    assert (
        cfg.nhead == 16 and cfg.num_layers == 12 and cfg.d_model == 64 and cfg.weight == "FlatSpectraWeights"
    )
    notes = " | ".join(cfg.import_notes)
    for field in ("num_workers", "noise", "weight.kwargs.alpha"):
        assert field in notes
    assert cfg.weight_kwargs == {}


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (
            {"loss_terms": [{"term": "energy", "loss": "mean cubed error"}]},
            "unknown base loss 'mean cubed error'",
        ),
        ({"loss_terms": [{"term": "angle"}]}, "unknown loss term 'angle'"),
        ({"loss_terms": [{"term": "target", "column": "trueE"}]}, "column 'trueE' is not among the targets"),
        (
            {"target": ["trueE"], "energy_reference": "", "direction_reference": []},
            "need target to start with",
        ),
        ({"nhead": 3}, "must divide d_model"),
        ({"sample": "file"}, "data_file: required"),
        ({"energy_reference": "calE"}, "reference column 'calE'"),
        ({"vector": []}, "at least one per-particle column"),
    ],
)
def test_bad_configs_name_the_key(values, match):
    with pytest.raises(ConfigError, match=match):
        EnergyConfig.from_dict(values)


def test_transformer_ee_loss_lists_must_match():
    bad = json.loads(DUNE_ATMO)
    bad["loss"]["kwargs"]["coefficients"] = [1.0]
    with pytest.raises(ConfigError, match="equal length"):
        EnergyConfig.from_dict(bad)
    bad = json.loads(DUNE_ATMO)
    bad["loss"]["kwargs"]["base_loss_names"] = ["mean cubed error", "mean squared error"]
    with pytest.raises(ConfigError, match="unknown base loss"):
        EnergyConfig.from_dict(bad)
