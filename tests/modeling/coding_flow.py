"""The coding flow's two entry points, recorded instead of called (see coding_bridge)."""

from __future__ import annotations

from modeling.services import coding_bridge


class CodingFlowCalls:
    def __init__(self) -> None:
        self.prioritized: list[tuple[list[int], int]] = []
        self.reset: list[tuple[int, str]] = []


def coding_flow_record(monkeypatch) -> CodingFlowCalls:
    calls = CodingFlowCalls()

    def faces_prioritize(*, face_ids, priority=coding_bridge.VALIDATION_PRIORITY):
        calls.prioritized.append((list(face_ids), priority))
        return len(face_ids)

    def face_votes_reset(*, face, reason):
        calls.reset.append((face.pk, reason))

    monkeypatch.setattr(coding_bridge, "faces_prioritize", faces_prioritize)
    monkeypatch.setattr(coding_bridge, "face_votes_reset", face_votes_reset)
    return calls
