"""Live plots are declared by the core: every workflow names its plots (with axes) and the series a job
reports, and no page spells a metric name the core builds (renaming a metric is a change in one place;
each workflow's own tests show that a renamed metric is followed by what it emits and declares)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.main import page_specs
from numl_core.workflows import available

PAGES = Path(__file__).resolve().parents[1] / "app" / "pages"
WORKFLOWS = list(available())
#: Words that are metric names and also keys of config values (a loss term's "loss" is its base loss).
ALSO_CONFIG_KEYS = {"loss"}


def _declared(name: str) -> dict[str, list[str]]:
    wf, spec = available()[name], page_specs()[name]
    defaults = {k: v for k, v in spec.defaults.items() if k in wf.config_cls.param}
    out: dict[str, list[str]] = {}
    for config in (wf.config_cls(), wf.config_cls(**defaults)):
        for plot, series in wf.live_plots.expected(config).items():
            out.setdefault(plot, []).extend(series)
    return out


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_workflow_declares_its_live_plots_with_axes(name):
    declared = _declared(name)
    assert declared, f"{name} declares no live series"
    plots = available()[name].live_plots
    for plot in declared:
        spec = plots.spec(plot)
        assert spec in plots.plots, f"{name}: plot {plot!r} has no PlotSpec"
        assert spec.title and spec.xlabel and spec.ylabel


@pytest.mark.parametrize("name", WORKFLOWS)
def test_no_page_spells_a_metric_name_the_core_builds(name):
    metric_names = {label.split(" (")[0] for series in _declared(name).values() for label in series}
    metric_names -= ALSO_CONFIG_KEYS
    for page in PAGES.glob("*.py"):
        source = page.read_text()
        spelled = [m for m in metric_names if f'"{m}"' in source or f"'{m}'" in source or f'f"{m}' in source]
        assert spelled == [], f"{page.name} spells the {name} metric name(s) {spelled}"
