"""A short run of bench/coding.py on the stack docker-compose runs (gunicorn, PostgreSQL,
sessions through Redis): what it reports, and the statement budget the issue sets."""

from __future__ import annotations

import json

import pytest

from tests.bench.running import bench_line

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def test_a_vote_takes_at_most_six_statements_with_sessions_in_redis(redis_url):
    figures, stderr = bench_line(
        "coding.py",
        "--coders", "4", "--seconds", "4", "--faces", "200", "--workers", "2",
        "--cache-url", redis_url, "--analyze-every", "1",
    )  # fmt: skip
    line = json.dumps(figures)
    assert figures["sessions"] == "redis cache"
    assert figures["votes_per_s"] > 0, line
    for key in ("errors", "lost_votes", "over_assigned", "duplicate_votes"):
        assert figures[key] == 0, (key, line, stderr)
    # Counted inside the web workers: the vote (its user checked by its lock statement), its
    # consensus and the next two faces: 3 statements, 5 when the vote completes its face.
    assert 3 <= figures["queries_per_vote"] <= 6, line
    # This run's baseline: a missing page through the same middleware and session.
    assert 0 < figures["bare_request_cpu_ms"] < figures["cpu_ms_per_vote"], line
    assert figures["cpu_vote_to_bare"] > 1, line
    # Where the rest of the machine went: the coders' own process, and PostgreSQL with the
    # backends that ended in the run (its server process counts them).
    assert figures["client_cpu_ms_per_vote"] > 0, line
    assert figures["database_cpu_ms_per_vote"] > 0, line
    assert 0 < figures["box_busy"] <= 1, line
    assert figures["analyze_every_s"] == 1, line
