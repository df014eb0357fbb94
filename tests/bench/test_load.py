"""The load benchmark in a short bounded form: the whole stack keeps every invariant."""

from __future__ import annotations

import json

import pytest

from tests.bench.running import bench_line

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def test_short_load_run_loses_no_vote_and_over_assigns_no_face(redis_url):
    figures, stderr = bench_line(
        "load.py",
        "--coders", "6", "--seconds", "6", "--faces", "300",
        "--workers", "2", "--threads", "2", "--redis-url", redis_url,
    )  # fmt: skip
    line = json.dumps(figures)
    assert list(figures) == [
        "coders",
        "seconds",
        "votes",
        "errors",
        "lost_votes",
        "over_assigned",
        "duplicate_votes",
        "p95_ms",
    ]
    assert figures["votes"] > 0, line
    for key in ("errors", "lost_votes", "over_assigned", "duplicate_votes"):
        assert figures[key] == 0, (key, line, stderr)
