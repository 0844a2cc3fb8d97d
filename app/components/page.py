"""One page builder for every workflow.

A page module in ``app/pages`` declares ``PAGE = PageSpec(...)``: the workflow's name, the defaults the
dashboard starts from, the result view, and optional extra controls (widgets below the config form that
may act on the panel, e.g. a button that runs one of the workflow's actions). :func:`build_page` turns a
spec into the shared :class:`~app.components.job_panel.JobPanel`, whose live plots come from the
workflow's own declaration (:attr:`numl_core.workflows.Workflow.live_plots`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import panel as pn

from app.components.job_panel import JobPanel

if TYPE_CHECKING:
    from app.context import AppContext
    from numl_core.config import Config


def _no_controls(config: Config) -> Sequence[pn.viewable.Viewable]:
    return ()


@dataclass(frozen=True)
class PageSpec:
    """What a workflow's page adds to the generic job panel.

    ``defaults``: config values the dashboard starts from (smaller than the workflow's, so that a job
    started from the page takes about a minute); ``result_view(result)``: the view of a finished run's
    :class:`~numl_core.results.Result` (also used by the Runs tab); ``controls(config)``: widgets below
    the config form; ``below(panel, ctx)``: views under the panel that act on it (e.g. running an action
    on the last run); ``custom_fields``: config fields those controls edit, which the generic config form
    leaves out (one control per field).
    """

    workflow: str
    result_view: Callable[[Any], pn.viewable.Viewable]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    controls: Callable[[Config], Sequence[pn.viewable.Viewable]] = _no_controls
    below: Callable[[JobPanel, AppContext], Sequence[pn.viewable.Viewable]] | None = None
    #: ``artefact_view(artefacts)``: a view of a running job's intermediate artefacts, shown in the
    #: result area while the job runs (None: only the finished result is shown).
    artefact_view: Callable[[Mapping[str, Any]], pn.viewable.Viewable] | None = None
    custom_fields: tuple[str, ...] = ()


def build_page(spec: PageSpec, ctx: AppContext) -> pn.viewable.Viewable:
    """The page of ``spec.workflow``: the job panel with the spec's defaults, controls and result view."""
    workflow = ctx.workflows()[spec.workflow]
    defaults = {k: v for k, v in spec.defaults.items() if k in workflow.config_cls.param}
    config = workflow.config_cls(**defaults)

    def on_artefact(artefacts: Mapping[str, Any]) -> None:
        panel.show_in_result_area(spec.artefact_view(artefacts))

    panel = JobPanel(
        workflow,
        ctx,
        config=config,
        on_result=spec.result_view,
        on_artefact=on_artefact if spec.artefact_view is not None else None,
        extra_controls=list(spec.controls(config)),
        custom_fields=spec.custom_fields,
        restore=False,
    )
    panel.restore()
    if spec.below is None:
        return panel
    return pn.Column(panel, *spec.below(panel, ctx), sizing_mode="stretch_width")
