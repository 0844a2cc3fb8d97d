"""Append to each workflow page (docs/workflows/NAME.md) the facts that live in the code, at build time:
its actions and their CLI commands, every config field with its default, allowed values and description,
the live plots it declares and the fields of its result types.

The tables come from the workflow registry (:func:`numl_core.workflows.available`), so they follow the code
as fields, plots and results change; a workflow without a page gets one.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import mkdocs_gen_files
import param

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # document the tree being built, not another installed copy

from numl_core.workflows import available  # noqa: E402


def cell(text: Any) -> str:
    """One Markdown table cell: no line breaks, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(value: Any) -> str:
    """A value as inline code (JSON where it is JSON-able, as the CLI's config files hold it)."""
    try:
        text = json.dumps(value)
    except TypeError:
        text = repr(value)
    return f"`{cell(text)}`" if "`" not in text else cell(text)


def allowed(parameter: Any) -> str:
    """What a ``param`` parameter accepts, in words."""
    objects = getattr(parameter, "objects", None)
    if objects:
        return "one of " + ", ".join(code(o) for o in objects)
    bounds = getattr(parameter, "bounds", None)
    if isinstance(parameter, param.List):
        return "list" + (
            f" of {parameter.item_type.__name__}" if getattr(parameter, "item_type", None) else ""
        )
    if bounds and any(b is not None for b in bounds):
        low, high = ("-inf" if bounds[0] is None else bounds[0]), ("inf" if bounds[1] is None else bounds[1])
        return f"{type(parameter).__name__.lower()} in [{low}, {high}]"
    return type(parameter).__name__.lower()


def config_table(config_cls: Any) -> list[str]:
    rows = ["| field | default | allowed | description |", "|---|---|---|---|"]
    parameters = config_cls.param.objects("existing")
    for name in config_cls.field_names():
        p = parameters[name]
        rows.append(f"| `{name}` | {code(p.default)} | {cell(allowed(p))} | {cell(p.doc or '')} |")
    return rows


def live_plot_lines(workflow: Any) -> list[str]:
    plots = workflow.live_plots
    if not plots.plots:
        return ["The workflow declares no live plots; the dashboard draws each metric it reports by name."]
    expected = plots.expected(workflow.config_cls())
    rows = [
        "| plot | title | x axis | y axis | log y | series (default config) |",
        "|---|---|---|---|---|---|",
    ]
    for p in plots.plots:
        series = ", ".join(f"`{cell(s)}`" for s in expected.get(p.key, ()))
        rows.append(
            f"| `{p.key}` | {cell(p.title)} | {cell(p.xlabel)} | {cell(p.ylabel)} | "
            f"{'yes' if p.logy else 'no'} | {series} |"
        )
    return rows


def result_lines(workflow: Any) -> list[str]:
    if not workflow.results:
        return ["The workflow declares no typed result: its actions return a plain dictionary."]
    lines = []
    for i, cls in enumerate(workflow.results):
        lines += [f"**`{cls.__name__}`** ({'returned by `run`' if i == 0 else 'another action'})", ""]
        lines += ["| field | type |", "|---|---|"]
        for f in dataclasses.fields(cls):
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            lines.append(f"| `{f.name}` | `{cell(kind)}` |")
        lines.append("")
    return lines


def reference(name: str, workflow: Any) -> str:
    actions = ["run", *workflow.actions]
    lines = ["", "## Reference (generated from the code)", "", "### Actions", ""]
    lines += [f"- `{a}`: `numl {name} {a} --config CONFIG.json`" for a in actions]
    lines += ["", f"### Configuration: `{workflow.config_cls.__name__}`", ""]
    lines += [f"`numl {name} config` prints the defaults as JSON.", "", *config_table(workflow.config_cls)]
    lines += [
        "",
        "### Live plots",
        "",
        *live_plot_lines(workflow),
        "",
        "### Result",
        "",
        *result_lines(workflow),
    ]
    return "\n".join(lines) + "\n"


for name, workflow in available().items():
    page = Path("workflows", f"{name}.md")
    if not (ROOT / "docs" / page).exists():
        with mkdocs_gen_files.open(page, "w") as out:
            out.write(f"# {workflow.title}\n\n{workflow.description}\n")
    with mkdocs_gen_files.open(page, "a") as out:
        out.write(reference(name, workflow))
