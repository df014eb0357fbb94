"""Celery tasks of the annotate app. Thin: take ids, call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready

from annotate.services.health import health_ping_receive
from annotate.services.import_jobs import import_batch_fail
from annotate.services.import_sweep import imports_sweep
from annotate.services.ingest import import_batch_process, import_chunk_process
from annotate.services.ingest_faces import faces_batch_process
from annotate.services.summaries import SummaryKey, summary_refresh

logger = logging.getLogger(__name__)

IMPORT_TIME_LIMIT = "The import ran past its time limit; images stored so far are kept."
IMPORT_SOFT_LIMIT_S = 6 * 3600
CHUNK_SOFT_LIMIT_S = 3600
HARD_LIMIT_GRACE_S = 300


@shared_task(name="annotate.tasks.health_ping", soft_time_limit=30, time_limit=60)
def health_ping(ping_id: int) -> None:
    health_ping_receive(ping_id=ping_id, worker=health_ping.request.hostname or "")


@shared_task(name="annotate.tasks.summary_refresh", soft_time_limit=1800, time_limit=1900)
def summary_refresh_task(study_id: int, kind: str, question: str, batch_id: int | None) -> None:
    """Recompute one stored summary of a study's pages (annotate.services.summaries)."""
    summary_refresh(SummaryKey(study_id, kind, question, batch_id))


# A lost worker is recovered by the import sweep (annotate.services.import_sweep), which counts
# attempts; a message handed back at once when a pool process dies would only find the work
# still claimed, so it is not requeued (reject_on_worker_lost stays off). Redis redelivery
# after the visibility timeout is harmless for the same reason.
@shared_task(
    name="annotate.tasks.import_images",
    soft_time_limit=IMPORT_SOFT_LIMIT_S,
    time_limit=IMPORT_SOFT_LIMIT_S + HARD_LIMIT_GRACE_S,
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
    name="annotate.tasks.import_faces",
    soft_time_limit=IMPORT_SOFT_LIMIT_S,
    time_limit=IMPORT_SOFT_LIMIT_S + HARD_LIMIT_GRACE_S,
)
def import_faces(batch_id: int) -> None:
    """Import an uploaded zip of labeled face crops + its labels CSV (default queue);
    ImportBatch.done/total show progress while it runs."""
    try:
        faces_batch_process(batch_id=batch_id)
    except SoftTimeLimitExceeded:
        import_batch_fail(batch_id=batch_id, reason=IMPORT_TIME_LIMIT)
        raise


@shared_task(
    name="annotate.tasks.import_images_chunk",
    soft_time_limit=CHUNK_SOFT_LIMIT_S,
    time_limit=CHUNK_SOFT_LIMIT_S + HARD_LIMIT_GRACE_S,
)
def import_images_chunk(batch_id: int, start: int, stop: int) -> None:
    """Import files [start, stop) of a large upload; any worker may take any chunk."""
    import_chunk_process(batch_id=batch_id, start=start, stop=stop)


@worker_ready.connect
def _imports_sweep_on_start(**_) -> None:
    """A worker that starts after a crash queues again the imports its predecessor left
    running (the filesystem broker never hands a lost message back)."""
    try:
        swept = imports_sweep()
    except Exception:  # the database may be down; the next import task or page poll sweeps
        logger.exception("import sweep at worker start failed")
        return
    if swept:
        logger.warning("queued again or failed %d lost import(s) at worker start", swept)
