"""Datasets over face crops: images are read lazily, one batch at a time.

A crop is named by a key and read through a `CropRead` callable that returns its bytes: a
local path read from disk by default (`file_read`), or a storage key that the service layer
reads from wherever media live (annotate.services.storage.crop_read), so this module never
needs to know where that is. With a DataLoader's worker processes the callable must pickle
(a module-level function does).
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

UNREADABLE_CROP = "The face crop {path} cannot be read ({reason})."

CropRead = Callable[[str], bytes]


class CropUnreadable(ValueError):
    """A crop file is missing or is not an image."""


def file_read(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a local file: the default `CropRead`."""
    return Path(path).read_bytes()


class CachedRead:
    """A CropRead that keeps the bytes it read, least recently used first out, within
    `max_bytes`: fine-tuning reads every crop once per epoch, and from object storage each read
    is a round trip. Crops never change under a name (media names are random and never
    reused), so a kept copy cannot go stale."""

    def __init__(self, read: CropRead, *, max_bytes: int) -> None:
        self.read = read
        self.max_bytes = max_bytes
        self.kept: OrderedDict[str, bytes] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def __call__(self, key: str) -> bytes:
        with self.lock:
            data = self.kept.get(key)
            if data is not None:
                self.kept.move_to_end(key)
                return data
        data = self.read(key)
        if len(data) <= self.max_bytes:
            with self.lock:
                if key not in self.kept:
                    self.kept[key] = data
                    self.size += len(data)
                while self.size > self.max_bytes:
                    _, dropped = self.kept.popitem(last=False)
                    self.size -= len(dropped)
        return data

    def __getstate__(self) -> dict[str, Any]:  # a DataLoader worker gets its own, empty copy
        return {"read": self.read, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        CachedRead.__init__(self, state["read"], max_bytes=state["max_bytes"])


def crop_open(key: str | os.PathLike[str], read: CropRead = file_read) -> Image.Image:
    """The crop `key` as an RGB image, or CropUnreadable naming it and saying why."""
    try:
        data = read(str(key))
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise CropUnreadable(UNREADABLE_CROP.format(path=key, reason=exc)) from exc


class CropDataset(Dataset[tuple[torch.Tensor, int]]):
    """(image tensor, index) for each key; labels, if any, are looked up by the caller."""

    def __init__(
        self,
        keys: Sequence[str | os.PathLike[str]],
        transform: Callable[[Image.Image], torch.Tensor],
        read: CropRead = file_read,
    ) -> None:
        self.keys = list(keys)
        self.transform = transform
        self.read = read

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(crop_open(self.keys[index], self.read)), index
