"""Where the pure ML code keeps named bytes (the feature cache): a small interface, so the
code here never learns whether they live on local disk or in object storage.

The service layer passes an adapter over a Django storage (config.storage.StorageBlobs);
tests and benchmarks pass a `DirectoryStore`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    """Named bytes. A write replaces whole, so a reader never sees half of one."""

    def read(self, name: str) -> bytes | None:
        """The bytes stored under `name`, or None when there are none."""

    def write(self, name: str, data: bytes) -> None: ...

    def delete(self, name: str) -> None:
        """Remove `name`; nothing happens when it is absent."""


class DirectoryStore:
    """A BlobStore over a local folder: names are relative paths, writes go through a
    temporary file and a rename."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / name

    def read(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
