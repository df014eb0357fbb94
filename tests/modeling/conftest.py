from __future__ import annotations

import pytest

from tests.modeling.coding_flow import CodingFlowCalls, coding_flow_record


@pytest.fixture
def coding_flow(monkeypatch) -> CodingFlowCalls:
    """Record faces_prioritize / face_votes_reset calls instead of reaching the coding flow."""
    return coding_flow_record(monkeypatch)
