"""A web worker killed in the middle of votes loses no vote it acknowledged."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.bench.test_load import free_port
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_a_worker_killed_mid_request_loses_no_acknowledged_vote():
    result = subprocess.run(
        [
            sys.executable,
            "bench/coding.py",
            "--coders",
            "8",
            "--seconds",
            "6",
            "--faces",
            "300",
            "--workers",
            "2",
            "--kill-worker-at",
            "2",
            "--port",
            str(free_port()),
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
    assert figures["killed_workers"] == 1
    assert figures["votes_per_s"] > 0, line
    # Requests in flight on the killed worker fail (the coder presses the key again); every
    # vote that was answered 200 is in the database, and no face is over-assigned.
    for key in ("lost_votes", "over_assigned", "duplicate_votes"):
        assert figures[key] == 0, (key, line, result.stderr[-2000:])
