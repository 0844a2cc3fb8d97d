import json

import param
import pytest

from numl_core.config import Config, ConfigError


class FitConfig(Config):
    """A small config exercising every parameter kind the workflows use."""

    iterations = param.Integer(default=5, bounds=(1, 100), doc="Number of iterations.")
    learning_rate = param.Number(
        default=1e-3, bounds=(0, 1), inclusive_bounds=(False, True), doc="Adam step."
    )
    method = param.Selector(default="ibu", objects=["ibu", "omnifold"], doc="Unfolding method.")
    variables = param.ListSelector(default=["dpt"], objects=["dpt", "dalphat", "dphit"], doc="Observables.")
    hidden = param.List(default=[100, 100], item_type=int, doc="Hidden layer widths.")
    enabled = param.Boolean(default=True, doc="Switch.")
    label = param.String(default="run", doc="Free text.")


def test_json_round_trip_is_exact():
    cfg = FitConfig(
        iterations=7,
        learning_rate=0.123456789012345,
        method="omnifold",
        variables=["dalphat", "dphit"],
        hidden=[3, 4],
        enabled=False,
        label="ä",
    )
    again = FitConfig.from_json(cfg.to_json())
    assert again.to_dict() == cfg.to_dict()
    assert json.loads(again.to_json()) == json.loads(cfg.to_json())


def test_json_file_round_trip(tmp_path):
    path = tmp_path / "c.json"
    FitConfig(iterations=9).to_json(path)
    assert FitConfig.from_json(path).iterations == 9
    assert not list(tmp_path.glob(".*tmp"))


def test_unknown_field_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown field 'iteratons' \(did you mean 'iterations'\?\)"):
        FitConfig.from_dict({"iteratons": 3})


def test_out_of_bounds_names_field_value_and_range():
    with pytest.raises(
        ConfigError, match=r"FitConfig.iterations = 500 is not allowed; expected an integer in \[1, 100\]"
    ):
        FitConfig.from_dict({"iterations": 500})


def test_bad_selector_lists_choices():
    with pytest.raises(ConfigError, match=r"method = 'svd'.*one of \['ibu', 'omnifold'\]"):
        FitConfig.from_dict({"method": "svd"})


def test_wrong_type_is_config_error():
    with pytest.raises(ConfigError, match="iterations"):
        FitConfig.from_dict({"iterations": "many"})


def test_non_finite_number_refused():
    with pytest.raises(ConfigError, match="not finite"):
        FitConfig.from_dict({"learning_rate": float("nan")})


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        FitConfig.from_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"iterations": 3,}')
    with pytest.raises(ConfigError, match=r"bad.json: invalid JSON at line 1"):
        FitConfig.from_json(bad)


def test_validate_hook_runs():
    class Checked(FitConfig):
        def validate(self):
            if self.method == "ibu" and self.iterations > 50:
                raise ConfigError("Checked.iterations: IBU needs <= 50 iterations")

    with pytest.raises(ConfigError, match="IBU needs"):
        Checked.from_dict({"iterations": 60})
    assert Checked.from_dict({"iterations": 60, "method": "omnifold"}).iterations == 60


def test_copy_validates():
    cfg = FitConfig()
    assert cfg.copy(iterations=2).iterations == 2
    with pytest.raises(ConfigError):
        cfg.copy(iterations=0)
