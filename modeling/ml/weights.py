"""Weights resolution, in one place: explicit file, torchvision's cache, or a download.

Offline with nothing in the cache, the error names the exact file and the folder to put it in.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modeling.ml.errors import WEIGHTS_FILE_MISSING, WEIGHTS_MISSING, WeightsMissing

logger = logging.getLogger(__name__)
NO_WEIGHTS = "none"


@dataclass(frozen=True)
class ResolvedWeights:
    """A state dict (or None for random init) and the identifier recorded with it."""

    state_dict: dict[str, torch.Tensor] | None
    identifier: str  # e.g. "ResNet50_Weights.IMAGENET1K_V2", "none(seed=0)", "file:sha256…"


def hub_checkpoints_dir() -> Path:
    """torchvision's weights cache: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_resolve(
    *,
    backbone: str,
    weights: Any,
    seed: int,
    weights_file: str | os.PathLike | None = None,
    download: bool = True,
) -> ResolvedWeights:
    """Find the state dict for `weights` (a torchvision Weights entry, or None for random init).

    Order: the explicit `weights_file`; the file in torchvision's cache; a download when
    `download` is on and the machine has internet. Otherwise WeightsMissing, naming the file.
    """
    if weights is None:
        # Random init depends on the seed, so the seed is part of what the features mean.
        return ResolvedWeights(None, f"{NO_WEIGHTS}(seed={seed})")
    identifier = f"{type(weights).__name__}.{weights.name}"
    if weights_file:
        path = Path(weights_file)
        if not path.is_file():
            raise WeightsMissing(WEIGHTS_FILE_MISSING.format(path=path))
        logger.info("weights for %s from explicit file %s", backbone, path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        return ResolvedWeights(state, f"{identifier}@file-sha256:{_file_sha256(path)[:16]}")
    file_name = os.path.basename(weights.url)
    folder = hub_checkpoints_dir()
    cached = folder / file_name
    if cached.is_file():
        logger.info("weights for %s from torchvision cache %s", backbone, cached)
        return ResolvedWeights(
            torch.load(cached, map_location="cpu", weights_only=True), identifier
        )
    if download:
        try:
            state = torch.hub.load_state_dict_from_url(
                weights.url, map_location="cpu", progress=False, check_hash=True
            )
            return ResolvedWeights(state, identifier)
        except Exception as exc:  # URLError, socket errors, hash mismatch: all "not available"
            logger.warning("could not download %s: %s", weights.url, exc)
    raise WeightsMissing(
        WEIGHTS_MISSING.format(
            backbone=backbone, weights=identifier, file_name=file_name, folder=folder
        )
    )
