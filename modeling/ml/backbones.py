"""The backbone registry: torchvision models cut to their convolutional trunk.

Each entry knows its feature width, its weights enum and which modules are its top blocks
(the ones fine-tuning unfreezes). An unknown name raises an error listing the valid ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision import models as tvm

from modeling.ml.errors import UNKNOWN_BACKBONE, UNKNOWN_WEIGHTS
from modeling.ml.transforms import Preprocessing
from modeling.ml.weights import NO_WEIGHTS, ResolvedWeights, weights_resolve

DEFAULT_BACKBONE = "resnet50"


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    builder: Callable[..., nn.Module]
    weights_enum: Any
    features: int  # width of the pooled feature vector
    trunk: Callable[[nn.Module], nn.Sequential]
    blocks: Callable[[nn.Sequential], list[nn.Module]]  # trunk blocks, bottom to top


def _resnet_trunk(model: nn.Module) -> nn.Sequential:
    return nn.Sequential(
        model.conv1,
        model.bn1,
        model.relu,
        model.maxpool,
        model.layer1,
        model.layer2,
        model.layer3,
        model.layer4,
    )


def _features_trunk(model: nn.Module) -> nn.Sequential:
    return model.features


BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec(
        "resnet50", tvm.resnet50, tvm.ResNet50_Weights, 2048, _resnet_trunk, lambda t: list(t)[4:]
    ),
    "resnet18": BackboneSpec(
        "resnet18", tvm.resnet18, tvm.ResNet18_Weights, 512, _resnet_trunk, lambda t: list(t)[4:]
    ),
    "mobilenet_v3_large": BackboneSpec(
        "mobilenet_v3_large",
        tvm.mobilenet_v3_large,
        tvm.MobileNet_V3_Large_Weights,
        960,
        _features_trunk,
        lambda t: list(t),
    ),
    "efficientnet_b0": BackboneSpec(
        "efficientnet_b0",
        tvm.efficientnet_b0,
        tvm.EfficientNet_B0_Weights,
        1280,
        _features_trunk,
        lambda t: list(t),
    ),
}


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            UNKNOWN_BACKBONE.format(name=name, valid=", ".join(sorted(BACKBONES)))
        ) from None


def weights_entry(spec: BackboneSpec, weights: str | None) -> Any:
    """The torchvision Weights entry for a name ("default", "IMAGENET1K_V1", …) or None."""
    if weights is None or weights.lower() == NO_WEIGHTS:
        return None
    if weights.lower() == "default":
        return spec.weights_enum.DEFAULT
    name = weights.split(".")[-1]
    valid = ["default", NO_WEIGHTS, *(w.name for w in spec.weights_enum)]
    try:
        return spec.weights_enum[name]
    except KeyError:
        raise ValueError(
            UNKNOWN_WEIGHTS.format(weights=weights, backbone=spec.name, valid=", ".join(valid))
        ) from None


@dataclass
class Backbone:
    """A trunk (images → feature maps) with what is needed to reproduce its features."""

    name: str
    trunk: nn.Sequential
    features: int
    preprocessing: Preprocessing
    weights_id: str

    def top_blocks(self, n: int) -> list[nn.Module]:
        return backbone_spec(self.name).blocks(self.trunk)[-n:]


def backbone_build(
    *,
    name: str,
    weights: str | None,
    seed: int,
    image_size: int | None = None,
    weights_file: str | os.PathLike | None = None,
    download: bool = True,
) -> Backbone:
    """Build the trunk with resolved weights; random init (weights 'none') is seeded."""
    spec = backbone_spec(name)
    entry = weights_entry(spec, weights)
    resolved: ResolvedWeights = weights_resolve(
        backbone=name, weights=entry, seed=seed, weights_file=weights_file, download=download
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.builder(weights=None)
    if resolved.state_dict is not None:
        model.load_state_dict(resolved.state_dict)
    return Backbone(
        name=name,
        trunk=spec.trunk(model),
        features=spec.features,
        preprocessing=Preprocessing.from_weights(entry, image_size=image_size),
        weights_id=resolved.identifier,
    )


def backbone_from_state(
    *, name: str, state_dict: dict[str, torch.Tensor], preprocessing: Preprocessing, weights_id: str
) -> Backbone:
    """Rebuild a trunk from a checkpoint's state (no weights lookup needed)."""
    spec = backbone_spec(name)
    model = spec.builder(weights=None)
    trunk = spec.trunk(model)
    trunk.load_state_dict(state_dict)
    return Backbone(name, trunk, spec.features, preprocessing, weights_id)
