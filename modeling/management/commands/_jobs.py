"""What the train and predict commands share: run a job here, wait for a worker, or return."""

from __future__ import annotations

import time
from collections.abc import Callable

from annotate.services.jobs import FINISHED

POLL_S = 1.0


def job_finish(run, *, execute: Callable, inline: bool, wait: bool):
    """The finished run: executed in this process (`inline`) or polled until a worker ends it
    (`wait`); None when the caller neither runs nor waits (the job stays queued)."""
    if inline:
        return execute(run_id=run.pk)
    if not wait:
        return None
    while run.status not in FINISHED:
        time.sleep(POLL_S)
        run.refresh_from_db()
    return run
