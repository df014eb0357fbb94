"""Listing and reading the files of an upload (a zip or a folder) without being hurt by them.

A zip is listed from its directory, and every entry is judged before a byte is extracted:
absolute names and `../` are refused, symlinks are refused, nested archives are ignored with a
reason, and the number of files and the declared total size are capped. Reading an entry
counts the bytes actually inflated, so a zip whose directory lies about sizes is still stopped
at the limit. Nothing is ever extracted to disk by name.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from annotate.ingest.paths import (
    ARCHIVE_SUFFIXES,
    IMAGE_SUFFIXES,
    UnsafePath,
    is_hidden,
    path_normalise,
    path_suffix,
)

MAX_FILES = 100_000
MAX_TOTAL_BYTES = 8 * 1024**3
MAX_ENTRY_BYTES = 60 * 1024 * 1024
CHUNK = 1024 * 1024

ARCHIVE_NOT_ZIP = "the upload is not a readable zip file ({detail})"
ARCHIVE_TOO_MANY_FILES = "the archive holds {count:,} files; the limit is {limit:,}"
ARCHIVE_TOO_LARGE = (
    "the archive would unpack to {size:,} bytes; the limit is {limit:,} bytes (zip bomb?)"
)
ARCHIVE_NOT_FOUND = "no such file or folder: {path}"
ENTRY_SYMLINK = "symbolic link refused"
ENTRY_NESTED_ARCHIVE = "nested archive ignored: unpack it and upload its files instead"
ENTRY_NOT_IMAGE_TYPE = "not an image file type ({suffix}); accepted: {accepted}"
ENTRY_TOO_LARGE = "file unpacks to more than {limit:,} bytes"
ENTRY_TOTAL_EXCEEDED = "the archive's total unpacked size passed the limit of {limit:,} bytes"
ENTRY_ENCRYPTED = "encrypted file refused"
ENTRY_UNREADABLE = "cannot read the file from the archive: {detail}"
ENTRY_DUPLICATE_NAME = "another file in the upload has the same name"
ENTRY_OUTSIDE = "the file lies outside the folder (link) and was refused"
ENTRY_NOT_REGULAR = "not a regular file (device, pipe or socket) and was refused"


class ArchiveRejected(ValueError):
    """The whole upload cannot be used; the message says why."""


class EntryRejected(ValueError):
    """One file of the upload cannot be used; the message says why."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int = MAX_FILES
    max_total_bytes: int = MAX_TOTAL_BYTES
    max_entry_bytes: int = MAX_ENTRY_BYTES


@dataclass(frozen=True)
class Entry:
    """One candidate image file: its normalised name, declared size and a way to read it."""

    name: str
    size: int
    _read: Callable[[], bytes] = field(repr=False, compare=False)

    def read(self) -> bytes:
        """The file's bytes; raises EntryRejected past the size limits."""
        return self._read()


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.name, "reason": self.reason}


@dataclass
class Listing:
    entries: list[Entry]
    rejected: list[Skipped]
    others: dict[str, Entry]  # non-image files by name (e.g. a manifest.csv inside the zip)


def _judge_name(raw: str, *, is_link: bool) -> tuple[str | None, str | None]:
    """(normalised name, None) for a usable image name, else (name or None, reason)."""
    try:
        name = path_normalise(raw)
    except UnsafePath as exc:
        return None, str(exc)
    if is_link:
        return name, ENTRY_SYMLINK
    suffix = path_suffix(name)
    if suffix in ARCHIVE_SUFFIXES:
        return name, ENTRY_NESTED_ARCHIVE
    if suffix not in IMAGE_SUFFIXES:
        accepted = ", ".join(sorted(IMAGE_SUFFIXES))
        return name, ENTRY_NOT_IMAGE_TYPE.format(suffix=suffix or "no suffix", accepted=accepted)
    return name, None


class _Budget:
    """Bytes actually inflated so far, shared by all entries of one archive."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise EntryRejected(ENTRY_TOTAL_EXCEEDED.format(limit=self.limit))


def zip_list(source: str | Path | BinaryIO, *, limits: ArchiveLimits = ArchiveLimits()) -> Listing:
    """List a zip's usable image entries and the rejected ones (with reasons).

    Raises ArchiveRejected when the file is not a zip, holds too many files, or declares a
    total size over the limit. The returned entries read lazily from the open zip.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ArchiveRejected(ARCHIVE_NOT_ZIP.format(detail=str(exc)[:200])) from None
    infos = [info for info in archive.infolist() if not info.is_dir()]
    if len(infos) > limits.max_files:
        raise ArchiveRejected(
            ARCHIVE_TOO_MANY_FILES.format(count=len(infos), limit=limits.max_files)
        )
    declared = sum(info.file_size for info in infos)
    if declared > limits.max_total_bytes:
        raise ArchiveRejected(ARCHIVE_TOO_LARGE.format(size=declared, limit=limits.max_total_bytes))
    budget = _Budget(limits.max_total_bytes)
    listing = Listing([], [], {})
    seen: set[str] = set()
    for info in infos:
        mode = info.external_attr >> 16
        name, reason = _judge_name(info.filename, is_link=stat.S_ISLNK(mode))
        shown = name or info.filename[:300]
        if name is not None and is_hidden(name):
            continue
        if name is not None and reason is None and info.flag_bits & 0x1:
            reason = ENTRY_ENCRYPTED
        if name is not None and reason is None and info.file_size > limits.max_entry_bytes:
            reason = ENTRY_TOO_LARGE.format(limit=limits.max_entry_bytes)
        if name is not None and name in seen:
            reason = ENTRY_DUPLICATE_NAME
        reader = _zip_reader(archive, info, limits.max_entry_bytes, budget)
        if reason is not None:
            if name is not None and path_suffix(name) == ".csv" and not info.flag_bits & 0x1:
                listing.others[name] = Entry(name, info.file_size, reader)
            else:
                listing.rejected.append(Skipped(shown, reason))
            continue
        assert name is not None  # _judge_name gives a reason whenever it gives no name
        seen.add(name)
        listing.entries.append(Entry(name, info.file_size, reader))
    return listing


def _zip_reader(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, budget: _Budget
) -> Callable[[], bytes]:
    def read() -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            with archive.open(info) as handle:
                while chunk := handle.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise EntryRejected(ENTRY_TOO_LARGE.format(limit=limit))
                    budget.take(len(chunk))
                    chunks.append(chunk)
        except EntryRejected:
            raise
        except Exception as exc:  # bad CRC, unsupported compression, truncated archive
            raise EntryRejected(ENTRY_UNREADABLE.format(detail=str(exc)[:200])) from None
        return b"".join(chunks)

    return read


def folder_list(root: str | Path, *, limits: ArchiveLimits = ArchiveLimits()) -> Listing:
    """List a folder's image files (recursively) like a zip's; links are refused, not followed."""
    root = Path(root)
    if not root.is_dir():
        raise ArchiveRejected(ARCHIVE_NOT_FOUND.format(path=root))
    listing = Listing([], [], {})
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        for dirname in list(dirnames):
            if (here / dirname).is_symlink():
                dirnames.remove(dirname)
                listing.rejected.append(
                    Skipped((here / dirname).relative_to(root).as_posix(), ENTRY_SYMLINK)
                )
        for filename in sorted(filenames):
            path = here / filename
            relative = path.relative_to(root).as_posix()
            count += 1
            if count > limits.max_files:
                raise ArchiveRejected(
                    ARCHIVE_TOO_MANY_FILES.format(count=count, limit=limits.max_files)
                )
            name, reason = _judge_name(relative, is_link=path.is_symlink())
            if name is not None and is_hidden(name):
                continue
            size = 0 if path.is_symlink() else path.stat().st_size
            if reason is None and not path.is_symlink() and not path.is_file():
                reason = ENTRY_NOT_REGULAR
            if reason is None and size > limits.max_entry_bytes:
                reason = ENTRY_TOO_LARGE.format(limit=limits.max_entry_bytes)
            if reason is not None:
                if name is not None and path_suffix(name) == ".csv" and not path.is_symlink():
                    listing.others[name] = Entry(name, size, _file_reader(path, limits))
                else:
                    listing.rejected.append(Skipped(name or relative, reason))
                continue
            assert name is not None  # as in zip_list
            listing.entries.append(Entry(name, size, _file_reader(path, limits)))
    return listing


def _file_reader(path: Path, limits: ArchiveLimits) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with path.open("rb") as handle:
                data = handle.read(limits.max_entry_bytes + 1)
        except OSError as exc:
            raise EntryRejected(ENTRY_UNREADABLE.format(detail=str(exc)[:200])) from None
        if len(data) > limits.max_entry_bytes:
            raise EntryRejected(ENTRY_TOO_LARGE.format(limit=limits.max_entry_bytes))
        return data

    return read


def upload_list(
    source: str | Path | BinaryIO, *, limits: ArchiveLimits = ArchiveLimits()
) -> Listing:
    """A folder path or a zip (path or open binary file), listed the same way."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return folder_list(source, limits=limits)
    if isinstance(source, (str, Path)) and not Path(source).exists():
        raise ArchiveRejected(ARCHIVE_NOT_FOUND.format(path=source))
    return zip_list(source, limits=limits)
