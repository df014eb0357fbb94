"""Torch tests stay small: two threads, tiny images, a small backbone without weights."""

from __future__ import annotations

import pytest
import torch

from tests.modeling.coding_flow import CodingFlowCalls, coding_flow_record

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


@pytest.fixture
def coding_flow(monkeypatch) -> CodingFlowCalls:
    """Record faces_prioritize / face_votes_reset calls instead of reaching the coding flow."""
    return coding_flow_record(monkeypatch)
