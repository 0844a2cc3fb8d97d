"""safe_path and save_upload keep user paths inside the data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from numl_core.paths import UnsafePathError, UploadTooLarge, safe_path, save_upload


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "mc").mkdir(parents=True)
    (data / "mc" / "events.csv").write_text("a\n1\n")
    return data


@pytest.mark.parametrize(
    "user_path, expected",
    [
        ("mc/events.csv", "mc/events.csv"),
        ("./mc/events.csv", "mc/events.csv"),
        ("mc/../mc/events.csv", "mc/events.csv"),
        ("new/file.parquet", "new/file.parquet"),
    ],
)
def test_relative_paths_resolve_inside_root(root: Path, user_path: str, expected: str) -> None:
    assert safe_path(root, user_path) == root.resolve() / expected


def test_absolute_path_inside_root_is_accepted(root: Path) -> None:
    target = root / "mc" / "events.csv"
    assert safe_path(root, str(target)) == target.resolve()


def test_relative_root_is_resolved_against_cwd(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root.parent)
    assert safe_path("data", "mc/events.csv") == root.resolve() / "mc" / "events.csv"


@pytest.mark.parametrize(
    "user_path, words",
    [
        ("../outside.csv", "'..' climbs above it"),
        ("mc/../../outside.csv", "'..' climbs above it"),
        ("/etc/passwd", "absolute path outside"),
        ("~/x.csv", "absolute path outside"),
        ("", "empty path"),
        ("   ", "empty path"),
        ("a\x00b", "NUL"),
    ],
)
def test_escapes_are_refused_with_a_clear_message(root: Path, user_path: str, words: str) -> None:
    with pytest.raises(UnsafePathError, match=words):
        safe_path(root, user_path)


def test_sibling_folder_with_common_prefix_is_outside(root: Path) -> None:
    sibling = root.parent / "data-other"
    sibling.mkdir()
    with pytest.raises(UnsafePathError, match="absolute path outside"):
        safe_path(root, str(sibling / "x.csv"))


def test_symlink_pointing_outside_is_refused(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    (root / "link.txt").symlink_to(secret)
    (root / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_path(root, "link.txt")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_path(root, "linkdir/secret.txt")


def test_symlink_inside_root_is_followed(root: Path) -> None:
    (root / "alias.csv").symlink_to(root / "mc" / "events.csv")
    assert safe_path(root, "alias.csv") == (root / "mc" / "events.csv").resolve()


def test_root_that_is_itself_a_symlink_works(root: Path, tmp_path: Path) -> None:
    link_root = tmp_path / "root-link"
    link_root.symlink_to(root, target_is_directory=True)
    assert safe_path(link_root, "mc/events.csv") == root.resolve() / "mc" / "events.csv"
    assert safe_path(link_root, str(link_root / "mc" / "events.csv")) == root.resolve() / "mc" / "events.csv"


def test_save_upload_writes_bytes_and_text(root: Path) -> None:
    path = save_upload(root / "uploads", "mc data.csv", "p,q\n1,2\n", max_bytes=1000)
    assert path == (root / "uploads" / "mc data.csv").resolve()
    assert path.read_text() == "p,q\n1,2\n"
    raw = save_upload(root / "uploads", "w.npy", b"\x00\x01\x02", max_bytes=3)
    assert raw.read_bytes() == b"\x00\x01\x02"
    leftovers = [p for p in os.listdir(root / "uploads") if p.endswith(".tmp")]
    assert leftovers == []


def test_save_upload_enforces_the_size_limit(root: Path) -> None:
    with pytest.raises(UploadTooLarge, match=r"'big.csv' is 2.0 kB; the upload limit is 1.0 kB"):
        save_upload(root, "big.csv", b"x" * 2000, max_bytes=1000)
    assert not (root / "big.csv").exists()


@pytest.mark.parametrize("name", ["../evil.csv", "a/b.csv", ".hidden", "..", "/etc/passwd", "x\x00.csv", ""])
def test_save_upload_refuses_names_that_are_not_plain(root: Path, name: str) -> None:
    with pytest.raises(UnsafePathError, match="not a plain file name"):
        save_upload(root, name, b"1", max_bytes=10)


def test_save_upload_never_writes_through_an_outside_symlink(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "victim.csv"
    target.write_text("keep")
    (root / "victim.csv").symlink_to(target)
    saved = save_upload(root, "victim.csv", b"overwritten", max_bytes=100)
    assert target.read_text() == "keep"
    assert saved == root.resolve() / "victim-2.csv" and saved.read_bytes() == b"overwritten"


def test_save_upload_never_overwrites_an_earlier_upload(root: Path) -> None:
    first = save_upload(root, "mc.csv", b"first", max_bytes=100, folder="uploads/a")
    second = save_upload(root, "mc.csv", b"second", max_bytes=100, folder="uploads/a")
    assert (first.name, second.name) == ("mc.csv", "mc-2.csv")
    assert first.read_bytes() == b"first" and second.read_bytes() == b"second"


@pytest.mark.parametrize("name", ["x.csv\n", "x.csv\r", "ok.csv\n.sh"])
def test_save_upload_refuses_names_with_line_breaks(root: Path, name: str) -> None:
    with pytest.raises(UnsafePathError, match="not a plain file name"):
        save_upload(root, name, b"1", max_bytes=10)
    assert sorted(p.name for p in root.iterdir()) == ["mc"]


def test_save_upload_refuses_an_upload_folder_that_links_outside(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "uploads").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        save_upload(root, "mc.csv", b"1", max_bytes=10, folder="uploads")
    assert list(outside.iterdir()) == []


def test_a_symlink_loop_is_a_named_error(root: Path) -> None:
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    with pytest.raises(UnsafePathError, match="'a/x.csv' cannot be resolved"):
        safe_path(root, "a/x.csv")
