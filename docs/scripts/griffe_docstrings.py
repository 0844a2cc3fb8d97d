"""A Griffe extension that renders numl's free-form docstrings as Markdown for the API reference.

numl's docstrings are plain text with doctests, reST-like roles (``:func:`x```), double-backtick code and
numpy-like underlined section titles ("Example" over a row of dashes). Markdown would read brackets in
doctest output as links, asterisks as emphasis and an underlined title as a heading, so before rendering
this extension

- puts each doctest block (``>>>`` lines, their ``...`` continuations and expected output) in a ``pycon``
  code fence,
- turns an underlined section title into a bold line and a reST role into inline code,
- escapes ``[``, ``*`` and ``<`` in the prose outside code, so no text becomes a link, emphasis or HTML.

The docstrings in the source stay as they are (doctest reads them).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|obj|exc|const|py:\w+):`~?([^`]+)`")
_UNDERLINE = re.compile(r"^\s*(-{3,}|={3,}|~{3,})\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _escape_prose(text: str) -> str:
    """Escape Markdown's link, emphasis and HTML openers outside inline code spans."""
    pieces, last = [], 0
    for match in _CODE_SPAN.finditer(text):
        pieces.append(_escape_plain(text[last : match.start()]))
        pieces.append(f"`{match.group(2)}`" if len(match.group(1)) == 2 else match.group(0))
        last = match.end()
    pieces.append(_escape_plain(text[last:]))
    return "".join(pieces)


def _escape_plain(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("*", "\\*").replace("<", "&lt;")


def _doctest_end(lines: list[str], start: int) -> int:
    """Index after the doctest block that starts at ``start`` (it ends at a blank line)."""
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return end


def to_markdown(doc: str) -> str:
    r"""The Markdown form of a free-form docstring.

    >>> to_markdown("Sum ``w`` [GeV].\n\nExample\n-------\n>>> f([1])\n[2]").splitlines()
    ['Sum `w` \\[GeV].', '', '**Example**', '', '```pycon', '>>> f([1])', '[2]', '```']
    """
    lines, out, i, fenced = doc.splitlines(), [], 0, False
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            fenced = not fenced
            out.append(line)
            i += 1
        elif fenced:
            out.append(line)
            i += 1
        elif line.lstrip().startswith(">>>"):
            end = _doctest_end(lines, i)
            indent = line[: len(line) - len(line.lstrip())]
            block = [row[len(indent) :] if row.startswith(indent) else row.lstrip() for row in lines[i:end]]
            out += ([""] if out and out[-1] else []) + ["```pycon", *block, "```", ""]
            i = end
        elif line.strip() and i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1]):
            out += [f"**{_escape_prose(line.strip())}**", ""]
            i += 2
        else:
            out.append(_escape_prose(_ROLE.sub(r"``\1``", line)))
            i += 1
    return "\n".join(out).strip("\n")


class FreeFormDocstrings(griffe.Extension):
    """Rewrite every docstring with :func:`to_markdown` when Griffe loads an object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
