"""Torch tests stay small: two threads, tiny images, a small backbone without weights."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class CodingFlowCalls:
    prioritized: list[tuple[list[int], int]] = field(default_factory=list)
    reset: list[tuple[int, str]] = field(default_factory=list)


@pytest.fixture
def coding_flow(monkeypatch) -> CodingFlowCalls:
    """Record the calls validation and triage make into the coding flow (annotate.assignment's
    faces_prioritize and face_votes_reset); the real functions still run."""
    from annotate import assignment
    from modeling.services import triage, validation

    calls = CodingFlowCalls()

    def faces_prioritize(*, face_ids, priority):
        calls.prioritized.append((list(face_ids), priority))
        return assignment.faces_prioritize(face_ids=face_ids, priority=priority)

    def face_votes_reset(*, face, reason):
        calls.reset.append((face.pk, reason))
        assignment.face_votes_reset(face=face, reason=reason)

    monkeypatch.setattr(validation, "faces_prioritize", faces_prioritize)
    monkeypatch.setattr(triage, "face_votes_reset", face_votes_reset)
    return calls
