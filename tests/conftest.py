"""Fixtures shared by the tests: the dashboard's server state here, each workflow's tiny trained result in
``tests/fixtures/<workflow>.py`` (session-scoped: trained once per test run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.context import Settings, Shared

pytest_plugins = [
    f"tests.fixtures.{name}" for name in ("unfold", "energy", "generator", "uncertainty", "xsec")
]


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Shared]:
    """A dashboard server's shared state (job runner, folders) in a temporary folder."""
    s = Shared(
        Settings(
            runs_root=tmp_path / "runs",
            data_root=tmp_path / "data",
            max_upload_bytes=1000,
            max_workers=2,
            torch_threads=1,
        )
    )
    yield s
    s.runner.shutdown(cancel=True, wait=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark executed notebooks ``notebook`` so that ``-m "not notebook"`` leaves them out."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebook)
