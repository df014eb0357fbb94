"""Datasets over crop files: images are read lazily, one batch at a time."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

UNREADABLE_CROP = "The face crop {path} cannot be read ({reason})."


class CropUnreadable(ValueError):
    """A crop file is missing or is not an image."""


def crop_open(path: str | os.PathLike[str]) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise CropUnreadable(UNREADABLE_CROP.format(path=path, reason=exc)) from exc


class CropDataset(Dataset[tuple[torch.Tensor, int]]):
    """(image tensor, index) for each path; labels, if any, are looked up by the caller."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        transform: Callable[[Image.Image], torch.Tensor],
    ) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(crop_open(self.paths[index])), index
