"""One page per shipped data folder (numl_core/data/files/NAME/README.md, provenance and citation), built
at build time, and their list appended to docs/data.md, so the docs follow the folders that ship."""

from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "numl_core" / "data" / "files"

rows = ["", "## Shipped folders", "", "| folder | what it is |", "|---|---|"]
for readme in sorted(FILES.glob("*/README.md")):
    folder = readme.parent.name
    text = readme.read_text(encoding="utf-8")
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), folder)
    with mkdocs_gen_files.open(f"data/{folder}.md", "w") as page:
        footer = f"Shipped in `numl_core/data/files/{folder}/` (this page is its README)."
        page.write(f"{text.rstrip()}\n\n---\n\n{footer}\n")
    mkdocs_gen_files.set_edit_path(f"data/{folder}.md", readme.relative_to(ROOT))
    rows.append(f"| [`{folder}`](data/{folder}.md) | {title.replace('|', '/')} |")

with mkdocs_gen_files.open("data.md", "a") as page:
    page.write("\n".join(rows) + "\n")
