"""The layering of numl, checked by walking every module's imports with ``ast``.

- ``numl_core.data`` (the data layer) imports no workflow, nor the job, distributed or training layers;
- no workflow package imports another workflow package;
- ``numl_core`` never imports the dashboard (``app``) or Panel.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "numl_core"
WORKFLOWS = ("unfold", "energy", "generator", "uncertainty", "xsec")
ABOVE_DATA = (*(f"numl_core.{w}" for w in WORKFLOWS), "numl_core.distributed", "numl_core.training")


def imported_modules(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """``file: module`` for every import in ``files`` of a module inside one of ``forbidden``."""
    return sorted(
        f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}: {name}"
        for f in files
        for name in imported_modules(f)
        if any(_within(name, p) for p in forbidden)
    )


def test_the_walker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from numl_core.unfold import ibu\n    import panel as pn\n")
    assert {"numl_core.unfold", "numl_core.unfold.ibu", "panel"} <= imported_modules(source)
    assert violations([source], ("panel", "numl_core.xsec")) == [f"{source}: panel"]
    assert violations([source], ("numl_core.unfold",)) == [
        f"{source}: numl_core.unfold",
        f"{source}: numl_core.unfold.ibu",
    ]


def test_data_layer_imports_nothing_above_it():
    assert violations(sorted((CORE / "data").rglob("*.py")), ABOVE_DATA) == []


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_no_workflow_imports_another(workflow):
    others = tuple(f"numl_core.{w}" for w in WORKFLOWS if w != workflow)
    assert (CORE / workflow / "__init__.py").exists(), f"numl_core/{workflow}/ is not a package"
    assert violations(sorted((CORE / workflow).rglob("*.py")), others) == []


def test_core_never_imports_the_dashboard():
    assert violations(sorted(CORE.rglob("*.py")), ("app", "panel")) == []


def test_flows_package_is_gone():
    assert not (CORE / "flows").exists()
