"""The classification head from the published design, and the full classifier."""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    """GlobalAveragePooling → Linear(F, hidden) → ReLU → Linear(hidden, 1); outputs logits.

    Accepts feature maps (N, F, H, W) or already pooled features (N, F), as cached on disk.
    The pooled features are standardized with the training set's mean and spread (fixed
    buffers, saved with the head), which lets one learning rate suit every backbone.
    Trained with BCEWithLogitsLoss; probability = sigmoid(logit).
    """

    shift: torch.Tensor  # buffers, registered in __init__
    scale: torch.Tensor

    def __init__(self, features: int, hidden: int = 512) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.register_buffer("shift", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.fc1 = nn.Linear(features, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = self.pool(x).flatten(1)
        x = (x - self.shift) / self.scale
        logits: torch.Tensor = self.fc2(self.relu(self.fc1(x)))
        return logits.squeeze(1)

    def standardize_from(self, x: torch.Tensor) -> None:
        """Set the standardization from training features (N, F)."""
        self.shift.copy_(x.mean(dim=0))
        self.scale.copy_(
            x.std(dim=0).clamp_min(1e-6) if x.shape[0] > 1 else torch.ones_like(self.scale)
        )


class Classifier(nn.Module):
    """Trunk + head: images in, logits for the positive class out."""

    def __init__(self, trunk: nn.Sequential, head: Head) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.trunk(x))
        return logits


def pooled(trunk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The trunk's globally average-pooled features (what the cache stores)."""
    features: torch.Tensor = trunk(x)
    return features.float().mean(dim=(2, 3))
