"""The load benchmark in a short bounded form: the whole stack keeps every invariant."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_short_load_run_loses_no_vote_and_over_assigns_no_face(redis_url):
    result = subprocess.run(
        [
            sys.executable,
            "bench/load.py",
            "--coders",
            "6",
            "--seconds",
            "6",
            "--faces",
            "300",
            "--workers",
            "2",
            "--threads",
            "2",
            "--port",
            str(free_port()),
            "--redis-url",
            redis_url,
        ],  # fmt: skip
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = result.stdout.strip().splitlines()[-1]
    figures = json.loads(line)
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
        assert figures[key] == 0, (key, line, result.stderr[-2000:])
