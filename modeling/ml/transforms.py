"""Preprocessing, taken from the weights object and recorded, so prediction repeats it exactly."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Resize (shorter side) → centre crop → tensor → normalize. Part of the feature-cache key."""

    resize: int
    crop: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"

    @classmethod
    def from_weights(cls, weights: Any, *, image_size: int | None = None) -> Preprocessing:
        """The weights object's own transforms (torchvision `weights.transforms()`, or the
        recipe a PackagedWeights carries).

        With no weights (random init) the ImageNet recipe is used; `image_size` (tests,
        small demos) resizes and crops to that size instead, and is recorded like the rest.
        """
        if weights is None:
            base = cls(resize=256, crop=224)
        elif isinstance(getattr(weights, "preprocessing", None), Preprocessing):
            base = weights.preprocessing  # weights that carry their own recipe (PackagedWeights)
        else:
            t = weights.transforms()
            base = cls(
                resize=int(t.resize_size[0]),
                crop=int(t.crop_size[0]),
                mean=tuple(float(v) for v in t.mean),
                std=tuple(float(v) for v in t.std),
                interpolation=t.interpolation.value,
            )
        if image_size is not None:
            base = dataclasses.replace(base, resize=image_size, crop=image_size)
        return base

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        return cls(
            resize=int(values["resize"]),
            crop=int(values["crop"]),
            mean=tuple(values["mean"]),
            std=tuple(values["std"]),
            interpolation=values.get("interpolation", "bilinear"),
        )

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def transform(self) -> T.Compose:
        return T.Compose(
            [
                T.Resize(self.resize, interpolation=InterpolationMode(self.interpolation)),
                T.CenterCrop(self.crop),
                T.ToTensor(),
                T.Normalize(self.mean, self.std),
            ]
        )

    def augment(self) -> T.Compose:
        """Training-time augmentation for fine-tuning: mild crops, flips and colour jitter."""
        return T.Compose(
            [
                T.RandomResizedCrop(
                    self.crop,
                    scale=(0.75, 1.0),
                    ratio=(0.9, 1.1),
                    interpolation=InterpolationMode(self.interpolation),
                ),
                T.RandomHorizontalFlip(),
                T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1),
                T.ToTensor(),
                T.Normalize(self.mean, self.std),
            ]
        )
