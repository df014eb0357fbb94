"""Weights resolution, in one place: an explicit file, a package that ships the file,
torchvision's cache, or a download.

Two kinds of pretrained weights exist: torchvision's Weights entries (cache or download) and
`PackagedWeights`, which a pip package carries (no network at all). Offline with nothing
found, the error names the exact file and where to put it (or which package to install).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modeling.ml.checkpoint import file_sha256
from modeling.ml.errors import (
    FILE_REMEDY,
    PACKAGED_REMEDY,
    PACKAGED_WEIGHTS_MISSING,
    WEIGHTS_CORRUPT,
    WEIGHTS_FILE_MISSING,
    WEIGHTS_MISSING,
    WeightsCorrupt,
    WeightsMissing,
)
from modeling.ml.transforms import Preprocessing

logger = logging.getLogger(__name__)
NO_WEIGHTS = "none"


@dataclass(frozen=True)
class PackagedWeights:
    """Pretrained weights inside an installed Python package, with the preprocessing they
    expect and the file's known SHA-256 (a changed file is reported as corrupted)."""

    name: str  # e.g. "IMAGENET1K"
    distribution: str  # pip name
    module: str  # import name of the package
    relative_path: str  # the file inside the package folder
    sha256: str
    preprocessing: Preprocessing

    @property
    def file_name(self) -> str:
        return os.path.basename(self.relative_path)

    def path(self) -> Path | None:
        """Where the file is on this machine; None when the package is not installed."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative_path
        return path if path.is_file() else None


@dataclass(frozen=True)
class ResolvedWeights:
    """A state dict (or None for random init) and what is recorded with it."""

    state_dict: dict[str, torch.Tensor] | None
    identifier: str  # e.g. "ResNet50_Weights.IMAGENET1K_V2", "none(seed=0)"
    sha256: str = ""  # of the file the state came from ("" for random init)
    source: str = ""  # where it came from: package, torchvision cache, file, download


def hub_checkpoints_dir() -> Path:
    """torchvision's weights cache: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_identifier(weights: Any) -> str:
    """The name recorded for a weights entry (part of the feature-cache key)."""
    if isinstance(weights, PackagedWeights):
        return f"{weights.distribution}:{weights.file_name}"
    return f"{type(weights).__name__}.{weights.name}"


def _load(path: Path, *, backbone: str, remedy: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and tensor errors all mean "not a usable file"
        raise WeightsCorrupt(
            WEIGHTS_CORRUPT.format(path=path, backbone=backbone, reason=exc, remedy=remedy)
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsCorrupt(
            WEIGHTS_CORRUPT.format(
                path=path, backbone=backbone, reason="not a state dict of tensors", remedy=remedy
            )
        )
    return state


def weights_locate(
    *, weights: Any, weights_file: str | os.PathLike[str] | None = None
) -> Path | None:
    """The local file that would provide `weights`, without reading it; None if none is here
    (a download may still work on a machine with internet)."""
    if weights is None:
        return None
    if weights_file:
        path = Path(weights_file)
        return path if path.is_file() else None
    if isinstance(weights, PackagedWeights):
        return weights.path()
    cached = hub_checkpoints_dir() / os.path.basename(weights.url)
    return cached if cached.is_file() else None


def weights_resolve(
    *,
    backbone: str,
    weights: Any,
    seed: int,
    weights_file: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> ResolvedWeights:
    """Find the state dict for `weights` (a torchvision Weights entry, PackagedWeights, or None
    for random init).

    Order: the explicit `weights_file`; the package's own file (PackagedWeights); the file in
    torchvision's cache; a download when `download` is on and the machine has internet.
    Otherwise WeightsMissing, naming the file. A file that cannot be read, or a packaged file
    whose hash differs, raises WeightsCorrupt.
    """
    if weights is None:
        # Random init depends on the seed, so the seed is part of what the features mean.
        return ResolvedWeights(None, f"{NO_WEIGHTS}(seed={seed})")
    identifier = weights_identifier(weights)
    if weights_file:
        path = Path(weights_file)
        if not path.is_file():
            raise WeightsMissing(WEIGHTS_FILE_MISSING.format(path=path))
        logger.info("weights for %s from explicit file %s", backbone, path)
        state = _load(path, backbone=backbone, remedy=FILE_REMEDY)
        sha = file_sha256(path)
        return ResolvedWeights(state, f"{identifier}@file-sha256:{sha[:16]}", sha, "file")
    if isinstance(weights, PackagedWeights):
        return _packaged_resolve(backbone, weights, identifier)
    file_name = os.path.basename(weights.url)
    folder = hub_checkpoints_dir()
    cached = folder / file_name
    if cached.is_file():
        logger.info("weights for %s from torchvision cache %s", backbone, cached)
        state = _load(cached, backbone=backbone, remedy=FILE_REMEDY)
        return ResolvedWeights(state, identifier, file_sha256(cached), "torchvision cache")
    if download:
        try:
            state = torch.hub.load_state_dict_from_url(
                weights.url, map_location="cpu", progress=False, check_hash=True
            )
            return ResolvedWeights(state, identifier, file_sha256(cached), "download")
        except Exception as exc:  # URLError, socket errors, hash mismatch: all "not available"
            logger.warning("could not download %s: %s", weights.url, exc)
    raise WeightsMissing(
        WEIGHTS_MISSING.format(
            backbone=backbone, weights=identifier, file_name=file_name, folder=folder
        )
    )


def _packaged_resolve(backbone: str, weights: PackagedWeights, identifier: str) -> ResolvedWeights:
    path = weights.path()
    if path is None:
        raise WeightsMissing(
            PACKAGED_WEIGHTS_MISSING.format(
                backbone=backbone, distribution=weights.distribution, file_name=weights.file_name
            )
        )
    remedy = PACKAGED_REMEDY.format(distribution=weights.distribution, file_name=weights.file_name)
    sha = file_sha256(path)
    if sha != weights.sha256:
        reason = f"SHA-256 {sha[:16]}… where the package's file has {weights.sha256[:16]}…"
        raise WeightsCorrupt(
            WEIGHTS_CORRUPT.format(path=path, backbone=backbone, reason=reason, remedy=remedy)
        )
    logger.info("weights for %s from package %s (%s)", backbone, weights.distribution, path)
    state = _load(path, backbone=backbone, remedy=remedy)
    return ResolvedWeights(state, identifier, sha, f"package {weights.distribution}")
