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
        return self.fc2(self.relu(self.fc1(x))).squeeze(1)

    def standardize_from(self, x: torch.Tensor) -> None:
        """Set the standardization from training features (N, F)."""
        self.shift.copy_(x.mean(dim=0))
        self.scale.copy_(
            x.std(dim=0).clamp_min(1e-6) if x.shape[0] > 1 else torch.ones_like(self.scale)
        )


class Classifier(nn.Module):
    """Trunk + head: images in, logits for the positive class out."""

    def __init__(self, trunk: nn.Module, head: Head) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


def pooled(trunk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The trunk's globally average-pooled features (what the cache stores)."""
    return trunk(x).float().mean(dim=(2, 3))
