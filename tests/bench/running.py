"""Running a benchmark script as a test: a free port and its one JSON line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_line(script: str, *args: str, timeout: float = 240) -> tuple[dict, str]:
    """Run `bench/<script>` with `args` on a free port; its JSON line and the end of stderr."""
    result = subprocess.run(
        [sys.executable, f"bench/{script}", *args, "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr[-2000:]
