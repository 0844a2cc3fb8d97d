"""Confining user-supplied paths and uploads to one root folder.

The dashboard lets people type file names and upload files. Every such path goes through
:func:`safe_path`, which resolves it inside a root folder (the data root) and refuses
anything that would leave it: ``..`` components that climb out, absolute paths elsewhere,
and symbolic links whose target lies outside. :func:`save_upload` adds a size limit and a
file-name check for uploaded bytes.

Example
-------
>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> safe_path(root, "mc/events.csv") == root.resolve() / "mc" / "events.csv"
True
>>> safe_path(root, "../secrets.txt")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
numl_core.paths.UnsafePathError: '../secrets.txt' leaves the data folder ... ('..' climbs above it)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from numl_core.runs import atomic_open

_UPLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+-]{0,200}$")


class UnsafePathError(ValueError):
    """A user-supplied path would leave its root folder or is not a usable name."""


class UploadTooLarge(ValueError):
    """An uploaded file exceeds the configured size limit."""


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def safe_path(root: str | Path, user_path: str | Path) -> Path:
    """Resolve ``user_path`` inside ``root`` and return the absolute, resolved path.

    A relative path is taken relative to ``root``; an absolute path is accepted only if it
    lies inside ``root``. Symbolic links are followed and their target must stay inside
    ``root`` too. The path need not exist. Raises :class:`UnsafePathError` otherwise.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> safe_path(root, "/etc/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    numl_core.paths.UnsafePathError: '/etc/passwd' is an absolute path outside the data folder ...
    """
    text = os.fspath(user_path)
    if not text.strip():
        raise UnsafePathError("empty path: type a file name inside the data folder")
    if "\x00" in text:
        raise UnsafePathError(f"{text!r} contains a NUL character")
    root_abs = Path(os.path.abspath(root))
    root_real = root_abs.resolve()
    given = Path(text).expanduser()
    candidate = given if given.is_absolute() else root_abs / given
    lexical = Path(os.path.normpath(candidate))
    if not (_inside(lexical, root_abs) or _inside(lexical, root_real)):
        if given.is_absolute():
            raise UnsafePathError(f"{text!r} is an absolute path outside the data folder {root_real}")
        raise UnsafePathError(f"{text!r} leaves the data folder {root_real} ('..' climbs above it)")
    try:
        resolved = candidate.resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop, or a component that cannot be read
        raise UnsafePathError(f"{text!r} cannot be resolved inside the data folder: {exc}") from None
    if not _inside(resolved, root_real):
        raise UnsafePathError(
            f"{text!r} is a symbolic link (or lies below one) pointing to {resolved}, "
            f"outside the data folder {root_real}"
        )
    return resolved


def format_bytes(n: int) -> str:
    """Human-readable size in decimal units.

    >>> format_bytes(1_500_000)
    '1.5 MB'
    """
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def check_upload_size(name: str, n_bytes: int, max_bytes: int) -> None:
    """Raise :class:`UploadTooLarge` if ``n_bytes`` exceeds ``max_bytes``."""
    if n_bytes > max_bytes:
        raise UploadTooLarge(
            f"{name!r} is {format_bytes(n_bytes)}; the upload limit is {format_bytes(max_bytes)}"
        )


def _free_name(folder: Path, filename: str) -> str:
    """``filename``, or ``stem-2.ext``, ``stem-3.ext`` ... if a file of that name exists in ``folder``.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.csv").write_text("x")
    >>> _free_name(d, "a.csv"), _free_name(d, "b.csv")
    ('a-2.csv', 'b.csv')
    """
    stem, dot, ext = filename.rpartition(".") if "." in filename[1:] else (filename, "", "")
    name, n = filename, 1
    while (folder / name).exists() or (folder / name).is_symlink():
        n += 1
        name = f"{stem}-{n}{dot}{ext}"
    return name


def save_upload(
    root: str | Path, filename: str, data: bytes | str, max_bytes: int, folder: str | Path = ""
) -> Path:
    """Write uploaded ``data`` to ``root/folder/filename`` atomically and return its path.

    ``filename`` must be a plain name (letters, digits, space, ``._+-``; no folders, not hidden); text is
    stored as UTF-8. An existing file is never overwritten: the upload gets the next free name
    (``name-2.csv`` ...). The target must resolve inside ``root`` itself, so a ``folder`` that is a
    symbolic link to elsewhere is refused. Raises :class:`UploadTooLarge` or :class:`UnsafePathError`.

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> save_upload(root, "mc.csv", "a,b\\n1,2\\n", max_bytes=100, folder="uploads").name
    'mc.csv'
    >>> save_upload(root, "mc.csv", "a,b\\n3,4\\n", max_bytes=100, folder="uploads").name
    'mc-2.csv'
    """
    if not _UPLOAD_NAME.fullmatch(filename) or filename in {".", ".."}:
        raise UnsafePathError(
            f"upload name {filename!r} is not a plain file name (letters, digits, space and ._+- only)"
        )
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    check_upload_size(filename, len(payload), max_bytes)
    directory = safe_path(root, folder) if str(folder) else Path(root).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    target = safe_path(root, Path(directory, _free_name(directory, filename)))
    with atomic_open(target, "wb") as fh:
        fh.write(payload)
    return target
