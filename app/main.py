"""The numl dashboard: ``panel serve app/main.py`` (or ``numl app``).

One tab per registered workflow plus a "Runs" tab. A workflow's page is built by
:func:`~app.components.page.build_page` from the ``PAGE`` spec of its module in ``app/pages``
(defaults, extra controls, the result view, also used for reopened runs); a workflow without a
page module gets the generic job panel.
The open tab is kept in the URL (``?page=NAME``) next to the session token. Pages are built
when their tab is first opened.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import traceback
from pathlib import Path

import panel as pn

import app.pages
from app.components.job_panel import JobPanel, error_view
from app.components.page import PageSpec, build_page
from app.components.run_browser import RunBrowser
from app.context import AppContext
from numl_core.jobs import Job
from numl_core.workflows import Workflow

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
PAGE_QUERY = "page"
RUNS_PAGE = "runs"


def page_specs() -> dict[str, PageSpec]:
    """The ``PAGE`` spec of every module in ``app/pages``, by the workflow name it serves."""
    found = {}
    for info in pkgutil.iter_modules(app.pages.__path__):
        spec = getattr(importlib.import_module(f"app.pages.{info.name}"), "PAGE", None)
        if isinstance(spec, PageSpec):
            found[spec.workflow] = spec
    return found


def build_tab(ctx: AppContext, workflow: Workflow, spec: PageSpec | None) -> pn.viewable.Viewable:
    """A workflow's page (the generic job panel without a spec); a page that fails to build shows its
    error instead of breaking the app."""
    try:
        return build_page(spec, ctx) if spec is not None else JobPanel(workflow, ctx)
    except Exception as exc:
        log.exception("page of workflow %r failed to build", workflow.name)
        return error_view(
            f"**The {workflow.title} page failed to build:** {type(exc).__name__}: {exc}",
            traceback.format_exc(),
        )


def _sidebar(ctx: AppContext, available: dict[str, Workflow]) -> list[pn.viewable.Viewable]:
    s = ctx.settings
    workflows = "\n".join(f"- **{w.title}**: {w.description}" for w in available.values())
    return [
        pn.pane.Markdown(
            f"### Workflows\n{workflows or '*none installed*'}\n\n"
            f"### This server\n- data folder: `{s.data_root}`\n- runs folder: `{s.runs_root}`\n"
            f"- {s.max_workers} jobs at a time, {s.torch_threads} torch thread(s) each\n"
            f"- uploads up to {s.max_upload_bytes / 1e6:.0f} MB\n\n"
            "Jobs keep running when the page is closed; reload this page's address (it carries "
            "`?session=`) to see them again.",
            sizing_mode="stretch_width",
        )
    ]


def create_app(ctx: AppContext) -> pn.template.FastListTemplate:
    """The dashboard for one browser session."""
    css = [(ASSETS / "numl.css").read_text()] if (ASSETS / "numl.css").exists() else []
    pn.extension("tabulator", "filedropper", raw_css=css)
    specs = page_specs()
    names: list[str] = []
    tabs = pn.Tabs(dynamic=True, sizing_mode="stretch_width", css_classes=["numl-pages"])
    try:
        workflows = ctx.workflows()
    except Exception as exc:  # a broken plugin must leave the rest of the dashboard usable
        log.exception("loading the registered workflows failed")
        workflows = {}
        tabs.append(
            (
                "Workflows",
                error_view(
                    f"**Loading the workflows failed:** {type(exc).__name__}: {exc}", traceback.format_exc()
                ),
            )
        )
        names.append("workflows")
    # A page is built when its tab is first opened: a session that looks at one workflow does not
    # pay for the others, which keeps a busy server's event loop free.
    unbuilt: dict[int, Workflow] = {}
    for name, workflow in workflows.items():
        unbuilt[len(tabs)] = workflow
        tabs.append((workflow.title, pn.Column(sizing_mode="stretch_width")))
        names.append(name)
    result_views = {name: spec.result_view for name, spec in specs.items()}

    def ensure_built(index: int) -> None:
        workflow = unbuilt.pop(index, None)
        if workflow is not None:
            tabs[index][:] = [build_tab(ctx, workflow, specs.get(workflow.name))]

    def open_page(workflow: str) -> JobPanel | None:
        """Build and show ``workflow``'s page; its job panel (None if it has none)."""
        if workflow in names:
            ensure_built(names.index(workflow))
        panel = ctx.job_panels.get(workflow)
        if panel is not None:
            tabs.active = names.index(workflow)
        return panel

    def on_reattach(job: Job, workflow: str) -> None:
        panel = open_page(workflow)
        if panel is not None:
            panel.attach(job, restore_config=True)

    browser = RunBrowser(ctx, result_views=result_views, on_reattach=on_reattach, open_page=open_page)
    tabs.append(("Runs", browser))
    names.append(RUNS_PAGE)
    raw = pn.state.session_args.get(PAGE_QUERY, [b""])[0]
    wanted = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if wanted in names:
        tabs.active = names.index(wanted)
    ensure_built(tabs.active)

    def on_page(event: object) -> None:
        ensure_built(tabs.active)
        if names[tabs.active] == RUNS_PAGE:
            browser.opened()  # current at once, not at the next periodic refresh
        if pn.state.location is not None:
            pn.state.location.update_query(**{PAGE_QUERY: names[tabs.active]})

    tabs.param.watch(on_page, "active")
    logo = ASSETS / "logo.svg"
    return pn.template.FastListTemplate(
        title="numl: machine learning for neutrino physics",
        logo=str(logo) if logo.exists() else "",
        main=[tabs],
        sidebar=_sidebar(ctx, workflows),
        sidebar_width=300,
        collapsed_sidebar=True,
        accent="#1f5f8b",
        main_layout=None,
    )


if pn.state.served:
    create_app(AppContext.for_session()).servable()
