"""Batch prediction: crops stream through a DataLoader, probabilities come out per batch."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import torch
from torch.utils.data import DataLoader

from modeling.ml.backbones import backbone_from_state
from modeling.ml.checkpoint import checkpoint_load, source_name
from modeling.ml.data import CropDataset, CropRead, file_read
from modeling.ml.device import amp_enabled
from modeling.ml.errors import CHECKPOINT_CORRUPT, CheckpointError
from modeling.ml.head import Classifier, Head
from modeling.ml.transforms import Preprocessing


@dataclass
class LoadedClassifier:
    model: Classifier
    preprocessing: Preprocessing
    classes: list[str]
    threshold: float
    device: torch.device
    channels_last: bool


def classifier_load(
    path: str | os.PathLike[str] | BinaryIO, *, device: torch.device, channels_last: bool = True
) -> LoadedClassifier:
    """The trunk + head stored in a checkpoint (a file, or its bytes as a binary file-like
    object), ready for inference on `device`."""
    checkpoint = checkpoint_load(path)
    name = source_name(path)
    preprocessing = Preprocessing.from_dict(checkpoint["preprocessing"])
    try:
        backbone = backbone_from_state(
            name=checkpoint["backbone"],
            state_dict=checkpoint["trunk"],
            preprocessing=preprocessing,
            weights_id=checkpoint["weights_id"],
        )
        head = Head(int(checkpoint["features"]), int(checkpoint["config"].get("hidden", 512)))
        head.load_state_dict(checkpoint["head"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            CHECKPOINT_CORRUPT.format(path=name, reason=f"state does not fit the model: {exc}")
        ) from exc
    model = Classifier(backbone.trunk, head).to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return LoadedClassifier(
        model,
        preprocessing,
        list(checkpoint["classes"]),
        float(checkpoint["threshold"]),
        device,
        channels_last,
    )


def probabilities_iter(
    classifier: LoadedClassifier,
    paths: Sequence[str | os.PathLike[str]],
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    read: CropRead = file_read,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (indices into `paths`, P(positive class)) batch by batch; only one batch of
    images is in memory at a time (plus the loader's prefetch). `paths` are crop keys that
    `read` turns into bytes (local paths by default)."""
    loader = DataLoader(
        CropDataset(paths, classifier.preprocessing.transform(), read),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=classifier.device.type == "cuda",
    )
    device = classifier.device
    with torch.inference_mode():
        for images, indices in loader:
            images = images.to(device, non_blocking=True)
            if classifier.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp_enabled(device)):
                logits = classifier.model(images)
            yield indices.numpy(), torch.sigmoid(logits.float()).cpu().numpy()
