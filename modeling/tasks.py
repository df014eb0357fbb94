"""Celery tasks of the modeling app (queue `gpu`, routed in config/celery.py). Thin: ids in,
one service call; they own only the time limits and the sweep when a worker starts."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from modeling.services.prediction import predictions_run_execute, predictions_runs_sweep
from modeling.services.training import training_run_execute, training_runs_sweep

logger = logging.getLogger(__name__)
SOFT_LIMIT = getattr(settings, "FACET_TRAIN_SOFT_TIME_LIMIT", 4 * 3600)


@shared_task(
    name="modeling.tasks.training_run",
    soft_time_limit=SOFT_LIMIT,
    time_limit=SOFT_LIMIT + 300,
)
def training_run_task(run_id: int) -> None:
    training_run_execute(run_id=run_id)


@shared_task(
    name="modeling.tasks.prediction_run",
    soft_time_limit=SOFT_LIMIT,
    time_limit=SOFT_LIMIT + 300,
)
def prediction_run_task(run_id: int) -> None:
    predictions_run_execute(run_id=run_id)


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
