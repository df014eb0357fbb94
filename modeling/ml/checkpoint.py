"""A checkpoint is one file holding one dict: state dicts, config, classes, metrics.

The service layer keeps checkpoints in storage (local disk or object storage) as bytes:
`checkpoint_bytes` makes them, `checkpoint_load` reads them from a file-like object (or a
local path, as benchmarks and tests use with `checkpoint_save`).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from modeling.ml.errors import CHECKPOINT_CORRUPT, CheckpointError

CHECKPOINT_FORMAT = "facet-classifier/1"
REQUIRED_KEYS = (
    "format",
    "backbone",
    "weights_id",
    "features",
    "preprocessing",
    "config",
    "classes",
    "threshold",
    "metrics",
    "trunk",
    "head",
)


def checkpoint_build(
    *,
    backbone: Any,
    trunk: torch.nn.Module,
    head: torch.nn.Module,
    config: dict[str, Any],
    classes: list[str],
    threshold: float,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The checkpoint dict for a built backbone (modeling.ml.backbones), its trunk (the
    backbone's own, or a fine-tuned copy) and head, with CPU copies of both state dicts."""
    return {
        "format": CHECKPOINT_FORMAT,
        "backbone": backbone.name,
        "weights_id": backbone.weights_id,
        "features": backbone.features,
        "preprocessing": backbone.preprocessing.to_dict(),
        "config": config,
        "classes": list(classes),
        "threshold": threshold,
        "metrics": metrics,
        "trunk": {k: v.detach().cpu() for k, v in trunk.state_dict().items()},
        "head": {k: v.detach().cpu() for k, v in head.state_dict().items()},
    }


def checkpoint_bytes(checkpoint: dict[str, Any]) -> bytes:
    """The checkpoint serialised, as `checkpoint_load` reads it back."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def checkpoint_save(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> str:
    """Write to a local file atomically (a reader never sees half a file); returns the
    file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = checkpoint_bytes(checkpoint)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_load(source: str | os.PathLike[str] | BinaryIO) -> dict[str, Any]:
    """Read a checkpoint back from a path or a binary file-like object (named by its `name`
    attribute in errors), or raise CheckpointError saying which file and why."""
    path = source_name(source)
    try:
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            CHECKPOINT_CORRUPT.format(path=path, reason="file not found")
        ) from None
    except Exception as exc:  # pickle/zip errors vary with how the file is damaged
        raise CheckpointError(
            CHECKPOINT_CORRUPT.format(path=path, reason=f"{type(exc).__name__}: {exc}")
        ) from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(CHECKPOINT_CORRUPT.format(path=path, reason="not a Facet checkpoint"))
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(
            CHECKPOINT_CORRUPT.format(path=path, reason=f"missing {', '.join(missing)}")
        )
    return checkpoint


def source_name(source: str | os.PathLike[str] | BinaryIO) -> str:
    """How errors name a checkpoint: its path, or the `name` a file-like object carries."""
    if isinstance(source, str | os.PathLike):
        return str(source)
    return str(getattr(source, "name", "checkpoint"))
