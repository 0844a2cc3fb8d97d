"""Copy the repository's images (assets/*.png, *.svg) into the site at build time, so the docs show the
current dashboard screenshot without a second copy in git."""

from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]

for path in sorted((ROOT / "assets").glob("*")):
    if path.suffix in {".png", ".svg"}:
        with mkdocs_gen_files.open(f"assets/{path.name}", "wb") as out:
            out.write(path.read_bytes())
