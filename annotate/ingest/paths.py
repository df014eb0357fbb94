"""Names of files inside uploads: normalised, and refused when they could escape a folder."""

from __future__ import annotations

import posixpath
import re

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
ARCHIVE_SUFFIXES = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"})

UNSAFE_ABSOLUTE = "absolute path {name!r} refused"
UNSAFE_PARENT = "path {name!r} climbs out of the folder (..) and was refused"
UNSAFE_EMPTY = "empty file name"
UNSAFE_CONTROL = "file name {name!r} contains control characters"

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePath(ValueError):
    """A file name that must not be used; the message says why."""


def path_normalise(name: str) -> str:
    """The relative POSIX form of `name`, or UnsafePath when it is absolute or climbs out.

    Backslashes count as separators (zips made on Windows use them); `./` parts and repeated
    slashes are dropped.
    """
    raw = name.replace("\\", "/")
    if not raw.strip():
        raise UnsafePath(UNSAFE_EMPTY)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise UnsafePath(UNSAFE_CONTROL.format(name=name))
    if raw.startswith("/") or _DRIVE.match(raw):
        raise UnsafePath(UNSAFE_ABSOLUTE.format(name=name))
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise UnsafePath(UNSAFE_PARENT.format(name=name))
    if not parts:
        raise UnsafePath(UNSAFE_EMPTY)
    return "/".join(parts)


def path_suffix(name: str) -> str:
    return posixpath.splitext(name)[1].lower()


def is_hidden(name: str) -> bool:
    """macOS resource forks and dot-files that zip tools add; skipped without a report line."""
    parts = name.split("/")
    return parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts)


def path_keys(name: str) -> list[str]:
    """The keys under which a manifest row may name this file: full path, then basename."""
    keys = [name]
    base = posixpath.basename(name)
    if base != name:
        keys.append(base)
    return keys
