"""A web worker killed in the middle of votes loses no vote it acknowledged."""

from __future__ import annotations

import json

import pytest

from tests.bench.running import bench_line

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_a_worker_killed_mid_request_loses_no_acknowledged_vote():
    figures, stderr = bench_line(
        "coding.py",
        "--coders", "8", "--seconds", "6", "--faces", "300",
        "--workers", "2", "--kill-worker-at", "2",
    )  # fmt: skip
    line = json.dumps(figures)
    assert figures["killed_workers"] == 1
    assert figures["votes_per_s"] > 0, line
    # Requests in flight on the killed worker fail (the coder presses the key again); every
    # vote that was answered 200 is in the database, and no face is over-assigned.
    for key in ("lost_votes", "over_assigned", "duplicate_votes"):
        assert figures[key] == 0, (key, line, stderr)
