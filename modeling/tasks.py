"""Celery tasks of the modeling app. Thin: ids in, one service call; each task names its queue
(`facet_queue`, read by config.celery.queue_route) and time limits in its decorator, and the
worker sweep runs when a worker starts.

The `name=` strings are the routing keys of messages that may already sit in a queue, so they
stay as they were when the validation task lived in `modeling/validation_tasks.py`.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from config.celery import Queue
from modeling.services.prediction import (
    predictions_chunk_execute,
    predictions_run_plan,
    predictions_runs_sweep,
)
from modeling.services.training import training_run_execute, training_runs_sweep
from modeling.services.validation import validation_results_compute, validation_results_fail

logger = logging.getLogger(__name__)
SOFT_LIMIT = settings.FACET_TRAIN_SOFT_TIME_LIMIT


@shared_task(  # type: ignore[call-overload]  # facet_queue (config.celery) is unknown to its stubs
    name="modeling.tasks.training_run",
    facet_queue=Queue.GPU,
    soft_time_limit=SOFT_LIMIT,
    time_limit=SOFT_LIMIT + 300,
)
def training_run_task(run_id: int) -> None:
    training_run_execute(run_id=run_id)


@shared_task(  # type: ignore[call-overload]  # facet_queue (config.celery) is unknown to its stubs
    name="modeling.tasks.prediction_run",
    facet_queue=Queue.GPU,
    soft_time_limit=SOFT_LIMIT,
    time_limit=SOFT_LIMIT + 300,
)
def prediction_run_task(run_id: int) -> None:
    """Plan a prediction run: its chunks go out as prediction_chunk_task messages."""
    predictions_run_plan(run_id=run_id)


# Redelivered chunk messages (a lost worker, Redis's visibility timeout) find the chunk taken
# or finished and do nothing; a lost chunk is found by predictions_runs_sweep.
@shared_task(  # type: ignore[call-overload]  # facet_queue (config.celery) is unknown to its stubs
    name="modeling.tasks.prediction_chunk",
    facet_queue=Queue.GPU,
    soft_time_limit=SOFT_LIMIT,
    time_limit=SOFT_LIMIT + 300,
)
def prediction_chunk_task(chunk_id: int) -> None:
    predictions_chunk_execute(chunk_id=chunk_id)


@shared_task(  # type: ignore[call-overload]  # facet_queue (config.celery) is unknown to its stubs
    name="modeling.validation_tasks.validation_results",
    facet_queue=Queue.DEFAULT,
    soft_time_limit=600,
    time_limit=660,
)
def validation_results(round_id: int) -> None:
    """Compute and store a round's results; a failure is recorded on the round."""
    try:
        validation_results_compute(round_id=round_id)
    except Exception as exc:
        logger.exception("validation round %s: computing results failed", round_id)
        validation_results_fail(round_id=round_id, error=f"{type(exc).__name__}: {exc}")
        raise


@worker_ready.connect
def _sweep_on_start(**_) -> None:
    """A worker that starts after a crash finds the runs its predecessor left 'running'."""
    try:
        swept = training_runs_sweep() + predictions_runs_sweep()
    except Exception:  # the database may be down; the next poll sweeps instead
        logger.exception("stale-run sweep at worker start failed")
        return
    if swept:
        logger.warning("marked %d stale run(s) failed at worker start", swept)
