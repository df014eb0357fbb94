"""Zips and folders: traversal, links, nested archives and bombs are stopped before extraction."""

from __future__ import annotations

import io
import os

import pytest

from annotate.ingest.archive import (
    ENTRY_NESTED_ARCHIVE,
    ENTRY_NOT_REGULAR,
    ENTRY_SYMLINK,
    ENTRY_TOO_LARGE,
    ArchiveLimits,
    ArchiveRejected,
    EntryRejected,
    folder_list,
    zip_list,
)
from annotate.ingest.paths import UnsafePath, path_normalise
from tests.annotate import hostile


def _zip(entries, **kwargs) -> io.BytesIO:
    return io.BytesIO(hostile.zip_bytes(entries, **kwargs))


def _reasons(listing) -> dict[str, str]:
    return {item.name: item.reason for item in listing.rejected}


@pytest.mark.parametrize(
    "name,expected",
    [("a/b.jpg", "a/b.jpg"), ("a\\b.jpg", "a/b.jpg"), ("./a//b.jpg", "a/b.jpg")],
)
def test_names_are_normalised(name, expected):
    assert path_normalise(name) == expected


@pytest.mark.parametrize(
    "name", ["../x.jpg", "a/../../x.jpg", "/etc/x.jpg", "C:\\x.jpg", "a\\..\\..\\x.jpg", ""]
)
def test_escaping_names_are_unsafe(name):
    with pytest.raises(UnsafePath):
        path_normalise(name)


def test_zip_traversal_and_absolute_names_are_refused_and_the_rest_listed():
    listing = zip_list(
        _zip({"../evil.jpg": b"x", "/abs/evil.jpg": b"x", "ok/good.jpg": hostile.good_jpeg(64)})
    )
    assert [entry.name for entry in listing.entries] == ["ok/good.jpg"]
    reasons = _reasons(listing)
    assert "climbs out of the folder" in reasons["../evil.jpg"]
    assert "absolute path" in reasons["/abs/evil.jpg"]


def test_zip_symlinks_are_refused():
    listing = zip_list(_zip({"good.jpg": b"x"}, symlinks={"link.jpg": "/etc/passwd"}))
    assert _reasons(listing) == {"link.jpg": ENTRY_SYMLINK}


def test_nested_zips_are_ignored_with_a_reason():
    inner = hostile.zip_bytes({"a.jpg": hostile.good_jpeg(64)})
    listing = zip_list(_zip({"inner.zip": inner, "a.jpg": hostile.good_jpeg(64)}))
    assert _reasons(listing) == {"inner.zip": ENTRY_NESTED_ARCHIVE}
    assert [entry.name for entry in listing.entries] == ["a.jpg"]


def test_zip_bomb_entry_over_the_per_file_limit_is_refused_alone():
    zeros = b"\0" * 3_000_000  # deflates to a few kB
    listing = zip_list(
        _zip({"bomb.jpg": zeros, "good.jpg": hostile.good_jpeg(64)}),
        limits=ArchiveLimits(max_entry_bytes=1_000_000),
    )
    assert _reasons(listing) == {"bomb.jpg": ENTRY_TOO_LARGE.format(limit=1_000_000)}
    assert [entry.name for entry in listing.entries] == ["good.jpg"]


def test_zip_bomb_over_the_total_size_is_refused_whole():
    entries = {f"{i}.jpg": b"\0" * 1_000_000 for i in range(5)}
    with pytest.raises(ArchiveRejected, match="would unpack to 5,000,000 bytes"):
        zip_list(_zip(entries), limits=ArchiveLimits(max_total_bytes=4_000_000))


def test_zip_with_too_many_files_is_refused_whole():
    entries = {f"{i}.jpg": b"x" for i in range(30)}
    with pytest.raises(ArchiveRejected, match="holds 30 files; the limit is 20"):
        zip_list(_zip(entries), limits=ArchiveLimits(max_files=20))


def test_reading_counts_inflated_bytes_against_the_total():
    entries = {"a.jpg": b"\0" * 600_000, "b.jpg": b"\0" * 600_000}
    limits = ArchiveLimits(max_total_bytes=1_500_000, max_entry_bytes=1_000_000)
    listing = zip_list(_zip(entries), limits=limits)
    first, second = listing.entries
    assert len(first.read()) == 600_000
    assert len(second.read()) == 600_000
    with pytest.raises(EntryRejected, match="total unpacked size"):
        first.read()  # a third read would pass the total


def test_not_a_zip_is_refused_whole():
    with pytest.raises(ArchiveRejected, match="not a readable zip"):
        zip_list(io.BytesIO(b"PK\x03\x04 but not really"))


def test_hidden_files_and_macos_forks_are_skipped_silently_and_csv_kept_aside():
    listing = zip_list(
        _zip(
            {"__MACOSX/._a.jpg": b"x", ".DS_Store": b"x", "manifest.csv": b"file\n", "a.jpg": b"x"}
        )
    )
    assert [entry.name for entry in listing.entries] == ["a.jpg"]
    assert listing.rejected == []
    assert list(listing.others) == ["manifest.csv"]


def test_folder_symlinks_are_refused_not_followed(tmp_path):
    (tmp_path / "good.jpg").write_bytes(b"x")
    outside = tmp_path.parent / "outside.jpg"
    outside.write_bytes(b"secret")
    os.symlink(outside, tmp_path / "link.jpg")
    os.symlink(tmp_path.parent, tmp_path / "linkdir")
    listing = folder_list(tmp_path)
    assert [entry.name for entry in listing.entries] == ["good.jpg"]
    assert _reasons(listing) == {"link.jpg": ENTRY_SYMLINK, "linkdir": ENTRY_SYMLINK}


def test_a_named_pipe_in_a_folder_is_refused_without_reading_it(tmp_path):
    """A FIFO named like an image would block the import forever on its first read."""
    (tmp_path / "good.jpg").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.jpg")
    listing = folder_list(tmp_path)
    assert [entry.name for entry in listing.entries] == ["good.jpg"]
    assert _reasons(listing) == {"pipe.jpg": ENTRY_NOT_REGULAR}
