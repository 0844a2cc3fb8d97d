"""numl's documentation (docs/, built by ``mkdocs build --strict`` in ``make test``): every docs page that
the code and tests cite exists, with the cited section, and nothing cites a file outside the repository."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CITED = re.compile(r"\bdocs/([\w./-]+\.md)(?:#([\w-]+))?")
SOURCE_SUFFIXES = {".py", ".md", ".txt", ".rst", ".json", ".toml", ".yml", ".yaml", ".cfg", ".ipynb"}
# the shared notes the docs were written from live outside the repository; spelled in two pieces so that
# this file does not cite it itself
OUTSIDE_NOTE = "PHYSICS" + ".md"


def _source_files(*folders: str) -> list[Path]:
    return [
        path
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file() and path.suffix in SOURCE_SUFFIXES and "__pycache__" not in path.parts
    ]


def _citations() -> list[tuple[str, str, str | None]]:
    found = []
    for path in _source_files("numl_core", "app", "tests"):
        for match in CITED.finditer(path.read_text(encoding="utf-8", errors="replace")):
            found.append((str(path.relative_to(ROOT)), match.group(1), match.group(2)))
    return found


def _anchors(page: Path) -> set[str]:
    """Explicit ``{#id}`` anchors and the slugs MkDocs gives the page's headings."""
    text = page.read_text(encoding="utf-8")
    anchors = set(re.findall(r"\{[^}]*#([\w-]+)[^}]*\}", text))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE):
        heading = re.sub(r"\{[^}]*\}", "", heading).strip().lower()
        anchors.add(re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading)).strip("-"))
    return anchors


def test_cited_docs_pages_exist():
    citations = _citations()
    assert any(page == "physics.md" for _, page, _ in citations), "the core cites docs/physics.md"
    missing = [f"{where}: docs/{page}" for where, page, _ in citations if not (DOCS / page).is_file()]
    assert not missing, missing


def test_cited_sections_exist():
    cited = [(where, page, anchor) for where, page, anchor in _citations() if anchor]
    assert cited, "the tests cite docs/physics.md#llewellyn-smith"
    missing = [
        f"{where}: docs/{page}#{anchor}"
        for where, page, anchor in cited
        if (DOCS / page).is_file() and anchor not in _anchors(DOCS / page)
    ]
    assert not missing, missing


def test_nothing_cites_a_file_outside_the_repository():
    files = _source_files("numl_core", "app", "tests", "benchmarks")
    assert len(files) > 50
    offenders = [str(p.relative_to(ROOT)) for p in files if OUTSIDE_NOTE in p.read_text(errors="replace")]
    assert not offenders, f"cite numl's docs (docs/physics.md) instead of {OUTSIDE_NOTE}: {offenders}"


def test_every_nav_page_exists_and_readme_links_the_docs():
    config = (ROOT / "mkdocs.yml").read_text()
    nav_block = re.search(r"^nav:\n((?:[ -].*\n)+)", config, flags=re.MULTILINE).group(1)
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", nav_block, flags=re.MULTILINE)
    assert {"index.md", "physics.md", "workflows/unfold.md", "workflows/xsec.md"} <= set(nav)
    assert [page for page in nav if not (DOCS / page).is_file()] == []
    assert "docs/index.md" in (ROOT / "README.md").read_text()


def test_docstrings_render_as_markdown():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location(
        "griffe_docstrings", DOCS / "scripts" / "griffe_docstrings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = 'Weights w [GeV], see :func:`kish_ess`.\n\n>>> d["ess"][0]\n4.0\n\nSum*w <= 1.'
    lines = module.to_markdown(doc).splitlines()
    assert lines[0] == r"Weights w \[GeV], see `kish_ess`."
    assert lines[2:6] == ["```pycon", '>>> d["ess"][0]', "4.0", "```"]
    assert lines[-1] == r"Sum\*w &lt;= 1."
