"""The workflow registry: every built-in workflow is installed, valid and listed in a fixed order."""

import pytest

from numl_core.config import Config
from numl_core.workflows import BUILTIN_ORDER, Workflow, available, get


def test_builtin_workflows_come_first_in_their_order():
    names = list(available())
    assert names[: len(BUILTIN_ORDER)] == [n for n in BUILTIN_ORDER if n in names]
    assert names[0] == "unfold"


@pytest.mark.parametrize("name", list(available()))
def test_each_workflow_has_a_config_that_round_trips_and_callable_actions(name):
    wf = get(name)
    assert isinstance(wf, Workflow) and wf.name == name and wf.title and wf.description
    assert issubclass(wf.config_cls, Config)
    config = wf.config_cls()
    assert wf.config_cls.from_json(config.to_json()).to_dict() == config.to_dict()
    assert callable(wf.run) and all(callable(f) for f in wf.actions.values())


def test_unknown_workflow_names_the_known_ones():
    with pytest.raises(KeyError, match="unknown workflow 'unfolding'; known: unfold"):
        get("unfolding")
