"""The frozen training configuration: everything that decides what a run computes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from modeling.ml.backbones import BACKBONES, DEFAULT_BACKBONE
from modeling.ml.device import DEVICE_CHOICES


@dataclass(frozen=True)
class TrainConfig:
    backbone: str = DEFAULT_BACKBONE
    weights: str = "default"  # "default", a torchvision weights name, or "none"
    image_size: int | None = None  # None: the weights' own resize/crop (224 for ImageNet)
    folds: int = 5
    # Head epochs on cached features. 6 gave the best CV accuracy on 10k generated faces
    # (0.877 vs 0.863 at 12) in half the time.
    epochs: int = 6
    batch_size: int = 256  # largest head batch; small sets use smaller ones (head_batch_size)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 512
    seed: int = 0
    extract_batch_size: int = 32
    fine_tune: bool = False
    fine_tune_blocks: int = 1
    fine_tune_epochs: int = 5
    fine_tune_lr: float = 1e-4
    fine_tune_batch_size: int = 16
    # Fine-tuning holds out a validation split inside each fold's training faces for early
    # stopping; with fewer faces of a class than this the split says nothing, so it is skipped.
    fine_tune_min_per_class: int = 40
    patience: int = 2
    val_share: float = 0.15
    threshold: float = 0.5
    device: str = "auto"
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            from modeling.ml.errors import UNKNOWN_BACKBONE

            raise ValueError(
                UNKNOWN_BACKBONE.format(name=self.backbone, valid=", ".join(sorted(BACKBONES)))
            )
        if self.device not in DEVICE_CHOICES:
            raise ValueError(
                f"Unknown device {self.device!r}; valid devices: {', '.join(DEVICE_CHOICES)}."
            )
        checks = {
            "folds": self.folds >= 2,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "extract_batch_size": self.extract_batch_size >= 1,
            "fine_tune_epochs": self.fine_tune_epochs >= 1,
            "fine_tune_blocks": self.fine_tune_blocks >= 1,
            "fine_tune_min_per_class": self.fine_tune_min_per_class >= 2,
            "lr": self.lr > 0,
            "fine_tune_lr": self.fine_tune_lr > 0,
            "val_share": 0 < self.val_share < 0.5,
            "threshold": 0 < self.threshold < 1,
            "image_size": self.image_size is None or self.image_size >= 32,
            "hidden": self.hidden >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"Invalid training settings: {', '.join(bad)}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrainConfig:
        """Build from stored JSON; an unknown key is an error, never silently ignored."""
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"Unknown training settings: {', '.join(unknown)}; valid: {', '.join(sorted(names))}."
            )
        return cls(**values)
