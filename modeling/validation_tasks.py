"""Celery tasks of validation. Routed to queue default in config/celery.py (`modeling.tasks.*`
goes to gpu, which is why these live apart)."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(
    name="modeling.validation_tasks.validation_results",
    soft_time_limit=600,
    time_limit=660,
)
def validation_results(round_id: int) -> None:
    """Compute and store a round's results; a failure is recorded on the round."""
    from modeling.services.validation import validation_results_compute, validation_results_fail

    try:
        validation_results_compute(round_id=round_id)
    except Exception as exc:
        logger.exception("validation round %s: computing results failed", round_id)
        validation_results_fail(round_id=round_id, error=f"{type(exc).__name__}: {exc}")
        raise
