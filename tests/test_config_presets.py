"""What a form needs from every workflow config: essentials, labels with units, tooltips, named presets, and
JSON import/export with named errors (numl_core/config.py, declared in each numl_core/*/config.py)."""

from __future__ import annotations

import json

import param
import pytest

from numl_core.config import Config, ConfigError
from numl_core.energy.config import EnergyConfig
from numl_core.generator.config import GeneratorConfig
from numl_core.uncertainty.config import UncertaintyConfig
from numl_core.unfold.config import UnfoldingConfig
from numl_core.xsec.config import PRESETS as XSEC_SIZES
from numl_core.xsec.config import XsecConfig

CONFIGS = [UnfoldingConfig, EnergyConfig, GeneratorConfig, UncertaintyConfig, XsecConfig]
ids = pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)


def bounded_integer(cls: type[Config]) -> tuple[str, int, int]:
    """The first integer field with both bounds: (name, low, high)."""
    for name in cls.field_names():
        p = cls.param[name]
        if isinstance(p, param.Integer) and p.bounds and None not in p.bounds:
            return name, *p.bounds
    raise AssertionError(f"{cls.__name__} has no bounded integer field")


@ids
def test_declarations_name_only_real_fields_and_label_every_field(cls):
    cls.check_declarations()
    fields = cls.field_names()
    assert cls.essential_fields() == list(cls.ESSENTIALS) and 5 <= len(cls.ESSENTIALS) <= 14
    assert sorted(cls.essential_fields() + cls.advanced_fields()) == sorted(fields)
    assert cls.advanced_fields(), "every workflow has an Advanced section"
    declared = {k for klass in cls.__mro__ for k in vars(klass).get("LABELS", {})}
    assert set(fields) - declared == set(), "fields without a human label"
    labels = [cls.field_label(name) for name in fields]
    assert len(set(labels)) == len(labels), "two fields share a label"
    assert all("_" not in label for label in labels)


@ids
def test_tooltips_say_what_a_field_does_what_it_allows_and_its_default(cls):
    for name in cls.field_names():
        text = cls.field_help(name)
        assert len(text) > 25 and "Default: " in text, (name, text)
        p = cls.param[name]
        if isinstance(p, param.Integer) and p.bounds and None not in p.bounds:
            assert f"in [{p.bounds[0]}, {p.bounds[1]}]" in text, (name, text)


def test_labels_carry_units():
    assert EnergyConfig.field_label("threshold_p_mev") == "Proton threshold [MeV]"
    assert EnergyConfig.field_label("energy_range") == "True-energy range [GeV]"
    assert GeneratorConfig.field_label("enu_low") == "Lowest neutrino energy [GeV]"
    assert XsecConfig.field_label("target_fermi_momentum").endswith("[GeV/c]")
    assert UnfoldingConfig.field_label("batch_size") == "Batch size [events]"  # from TrainingConfig


@ids
def test_quick_look_and_paper_size_validate_and_differ_from_the_defaults(cls):
    assert {"quick look", "paper size"} <= set(cls.preset_names())
    defaults = cls().to_dict()
    for name in cls.preset_names():
        config = cls.from_preset(name)
        changed = {k for k, v in config.to_dict().items() if v != defaults[k]}
        assert changed <= set(cls.preset_values(name)), (name, changed)
        assert changed or name not in ("quick look", "paper size"), f"{name} changes nothing"
        assert cls().with_preset(name).to_dict() == config.to_dict()


def test_paper_size_is_the_documented_full_size():
    assert XsecConfig.preset_values("paper size") == XSEC_SIZES["reference"]
    assert UnfoldingConfig.from_preset("paper size").n_events == 1_200_000
    assert UncertaintyConfig.from_preset("paper size").n_toys == 800_000
    quick, paper = (EnergyConfig.from_preset(n) for n in ("quick look", "paper size"))
    assert quick.n_events < EnergyConfig().n_events < paper.n_events


def test_a_preset_keeps_the_fields_it_does_not_set():
    config = UnfoldingConfig(fake_data="ma_shift", seed=7).with_preset("quick look")
    assert (config.fake_data, config.seed, config.n_events) == ("ma_shift", 7, 50_000)


@ids
def test_json_round_trip_of_defaults_and_presets(cls):
    for config in [cls(), *(cls.from_preset(n) for n in cls.preset_names())]:
        text = config.to_json()
        assert cls.from_json_text(text).to_dict() == config.to_dict()
        assert cls.from_json(text).to_json() == text


@ids
def test_bad_json_names_the_field_and_what_it_expects(cls):
    with pytest.raises(ConfigError, match=rf"{cls.__name__}: unknown field 'no_such_field'"):
        cls.from_json_text('{"no_such_field": 1}', source="upload.json")
    name, low, high = bounded_integer(cls)
    with pytest.raises(ConfigError, match=rf"upload.json: {cls.__name__}\.{name} = 'many'.*an integer"):
        cls.from_json_text(json.dumps({name: "many"}), source="upload.json")
    with pytest.raises(ConfigError, match=rf"{cls.__name__}\.{name} = {high + 1} .*in \[{low}, {high}\]"):
        cls.from_json_text(json.dumps({name: high + 1}))
    with pytest.raises(ConfigError, match=rf"{cls.__name__}\.{name} = True is a boolean"):
        cls.from_json_text(json.dumps({name: True}))


def test_text_that_is_not_a_json_object_is_a_named_error():
    with pytest.raises(ConfigError, match=r"c.json: not UTF-8 text"):
        XsecConfig.from_json_text(b"\xff\xfe{}", source="c.json")
    with pytest.raises(ConfigError, match=r"c.json: invalid JSON at line 1"):
        XsecConfig.from_json_text("{nope", source="c.json")
    with pytest.raises(ConfigError, match=r"XsecConfig: expected a JSON object, got list"):
        XsecConfig.from_json_text("[1, 2]", source="c.json")


def test_unknown_preset_and_bad_declarations_are_named_errors():
    with pytest.raises(ConfigError, match=r"unknown preset 'huge'; known presets: 'quick look', 'cpu'"):
        XsecConfig.from_preset("huge")

    class Broken(Config):
        steps = param.Integer(default=3, bounds=(1, 10), doc="Steps.")
        ESSENTIALS = ("steps", "stepz")

    with pytest.raises(ConfigError, match=r"Broken.ESSENTIALS: unknown fields \['stepz'\]"):
        Broken.check_declarations()

    class BadPreset(Config):
        steps = param.Integer(default=3, bounds=(1, 10), doc="Steps.")
        NAMED_PRESETS = {"big": {"steps": 50}}

    with pytest.raises(ConfigError, match=r"preset 'big': BadPreset.steps = 50 .*in \[1, 10\]"):
        BadPreset.check_declarations()
    with pytest.raises(ConfigError, match=r"unknown field 'stepz' \(did you mean 'steps'\?\)"):
        BadPreset.field_label("stepz")
    assert BadPreset.field_label("steps") == "Steps" and BadPreset.essential_fields() == ["steps"]


def test_a_default_changed_by_assignment_keeps_the_fields_type_bounds_and_watchers():
    assert EnergyConfig.param["epochs"].default == EnergyConfig().epochs == 30
    assert XsecConfig.param["learning_rate"].default == 3e-3
    assert UnfoldingConfig.param["epochs"].default == 10 and GeneratorConfig().epochs == 1
    with pytest.raises(ConfigError, match=r"EnergyConfig.epochs = 0 is not allowed; expected an integer"):
        EnergyConfig.from_dict({"epochs": 0})
    with pytest.raises(ConfigError, match=r"XsecConfig.learning_rate = 'fast' is not allowed"):
        XsecConfig.from_dict({"learning_rate": "fast"})
    seen = []
    config = EnergyConfig()
    config.param.watch(lambda event: seen.append(event.new), "epochs")
    config.epochs = 7
    assert seen == [7]
