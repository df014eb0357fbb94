"""Files the management commands read or write, checked before any work is done.

An input must be a regular file under a size limit: a device (`/dev/zero`), a pipe or a file
larger than the limit is refused from its metadata, before a byte is read, so a mistyped path
cannot make a command read without end. An `--out` path must name a file in a folder that
already exists: no folder is created on the user's behalf, and a path that cannot be written
ends the command with one line saying why. Every refusal is a CommandError of one line.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from django.core.management.base import CommandError

NO_SUCH_FILE = "no such {what}: {path}"
NOT_REGULAR_FILE = "{what} {path} is not a regular file (a device, pipe or socket is not read)"
FILE_TOO_LARGE = "{what} {path} holds {size:,} bytes; the limit is {limit:,} ({setting})"
FILE_UNREADABLE = "cannot read {what} {path}: {reason}"
OUT_IS_FOLDER = "--out {path} is a folder; give a file name inside it"
OUT_NO_FOLDER = "--out {path}: folder {folder} does not exist (create it first)"
OUT_UNWRITABLE = "cannot write --out {path}: {reason}"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def input_file_check(path: Path, *, what: str, limit: int, setting: str) -> os.stat_result:
    """The metadata of `path` if it is a regular file of at most `limit` bytes; CommandError
    (naming `what` and, for size, the `setting` that sets the limit) otherwise."""
    try:
        found = os.stat(path)  # follows links: a link to /dev/zero is refused as the device
    except FileNotFoundError:
        raise CommandError(NO_SUCH_FILE.format(what=what, path=path)) from None
    except OSError as exc:
        raise CommandError(
            FILE_UNREADABLE.format(what=what, path=path, reason=_reason(exc))
        ) from None
    if not stat.S_ISREG(found.st_mode):
        raise CommandError(NOT_REGULAR_FILE.format(what=what, path=path))
    if found.st_size > limit:
        raise CommandError(
            FILE_TOO_LARGE.format(
                what=what, path=path, size=found.st_size, limit=limit, setting=setting
            )
        )
    return found


def input_file_read(path: Path, *, what: str, limit: int, setting: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, checked before reading.

    The descriptor itself is checked (the path may have been swapped since), opened without
    blocking so a pipe put in its place cannot hang the command, and no more than `limit` + 1
    bytes are read, so a file that grows meanwhile is refused too.
    """
    input_file_check(path, what=what, limit=limit, setting=setting)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise CommandError(
            FILE_UNREADABLE.format(what=what, path=path, reason=_reason(exc))
        ) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CommandError(NOT_REGULAR_FILE.format(what=what, path=path))
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise CommandError(
                FILE_UNREADABLE.format(what=what, path=path, reason=_reason(exc))
            ) from None
    if len(data) > limit:
        raise CommandError(
            FILE_TOO_LARGE.format(
                what=what, path=path, size=len(data), limit=limit, setting=setting
            )
        )
    return data


def output_check(path: Path) -> Path:
    """`path` if a command can write its result there; CommandError otherwise. Call it before
    the work, so a typo costs nothing; `output_write` still reports a failure at writing."""
    path = Path(path)
    if path.is_dir():
        raise CommandError(OUT_IS_FOLDER.format(path=path))
    folder = path.parent
    if not folder.is_dir():
        raise CommandError(OUT_NO_FOLDER.format(path=path, folder=folder))
    target = path if path.exists() else folder
    if not os.access(target, os.W_OK):
        raise CommandError(OUT_UNWRITABLE.format(path=path, reason="permission denied"))
    return path


def output_write(path: Path, data: bytes) -> Path:
    """Write `data` to `path` (checked by `output_check`); a failure is one CommandError, and a
    file this call created is removed rather than left half-written."""
    path = output_check(path)
    existed = path.exists()
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        if not existed:
            with contextlib.suppress(OSError):
                path.unlink()
        raise CommandError(OUT_UNWRITABLE.format(path=path, reason=_reason(exc))) from None
    return path
