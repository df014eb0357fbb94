"""Celery tasks of the annotate app. Thin: take ids, call one service."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from annotate.services.health import health_ping_receive
from annotate.services.ingest import import_batch_process, import_chunk_process
from annotate.services.ingest_common import import_batch_fail

IMPORT_TIME_LIMIT = "The import ran past its time limit; images stored so far are kept."


@shared_task(name="annotate.tasks.health_ping", soft_time_limit=30, time_limit=60)
def health_ping(ping_id: int) -> None:
    health_ping_receive(ping_id=ping_id, worker=health_ping.request.hostname or "")


# Imports are safe to run again (files this batch already stored are counted, not stored
# twice), so a task whose worker was lost goes back to the queue instead of being dropped.
@shared_task(
    name="annotate.tasks.import_images",
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 300,
    reject_on_worker_lost=True,
)
def import_images(batch_id: int) -> None:
    """Import an uploaded zip (+ manifest); on the default queue (app.conf.task_default_queue).

    ImportBatch.done/total show progress while it runs; the detector batches on the GPU when
    the worker has one.
    """
    try:
        import_batch_process(batch_id=batch_id)
    except SoftTimeLimitExceeded:
        import_batch_fail(batch_id=batch_id, reason=IMPORT_TIME_LIMIT)
        raise


@shared_task(
    name="annotate.tasks.import_images_chunk",
    soft_time_limit=3600,
    time_limit=3900,
    reject_on_worker_lost=True,
)
def import_images_chunk(batch_id: int, start: int, stop: int) -> None:
    """Import files [start, stop) of a large upload; any worker may take any chunk."""
    import_chunk_process(batch_id=batch_id, start=start, stop=stop)
