"""Torch tests stay small: two threads, tiny images, a small backbone without weights."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

TINY = {
    "backbone": "resnet18",
    "weights": "none",
    "image_size": 64,
    "epochs": 15,
    "batch_size": 32,
    "folds": 3,
    "seed": 1,
}


@pytest.fixture
def tiny_config() -> dict:
    return dict(TINY)
