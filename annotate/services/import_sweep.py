"""Finding import work whose worker was lost, and queueing it again or failing it.

A killed worker cannot record its own loss. `imports_sweep` runs when a worker starts, when an
import task starts, and when the import pages poll (those at most every SWEEP_EVERY, through
`imports_sweep_due`). It finds work whose heartbeat is older than FACET_IMPORT_STALE_SECONDS
and queues it again, or fails it with the reason once it was claimed FACET_IMPORT_MAX_ATTEMPTS
times (`annotate.services.jobs.job_recover`, the sweep every job shares); the claims of
`annotate.services.import_jobs` make any message it sends that turns out to be spare a no-op. Running work again is safe: files the batch already stored are counted,
not stored twice. It also deletes uploads whose retention is over.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from annotate.models import ImportBatch, ImportChunk, JobStatus
from annotate.services.import_jobs import (
    CHUNK_FAILED,
    batch_end,
    chunks_finished,
    max_attempts,
    stale_after,
)
from annotate.services.jobs import job_recover, jobs_lost, when
from annotate.services.uploads import uploads_expire

logger = logging.getLogger(__name__)

SWEEP_EVERY = timedelta(seconds=30)
WORKER_LOST = (
    "the worker importing them was lost {attempts} time(s), last heard from at {heartbeat}"
)
BATCH_PROCESS_LOST = (
    "The process importing this folder stopped (last heard from at {heartbeat}). Images stored "
    "before that are kept; run the import again to import the rest (files already imported "
    "are skipped as duplicates)."
)
BATCH_WORKER_LOST = (
    "The worker importing this upload was lost {attempts} time(s) (last heard from at "
    "{heartbeat}), so the import was stopped. Images stored before that are kept; upload the "
    "same files again to import the rest (files already imported are skipped as duplicates)."
)


_last_sweep: datetime | None = None
# Kinds of batch run by a task under a claim: an image upload, a labeled face set (the demo
# generator runs in its own process and is never swept).
SWEPT_KINDS = (ImportBatch.Kind.IMAGES, ImportBatch.Kind.FACES)


def _batch_task(batch: ImportBatch):
    """The task that runs a batch of this kind."""
    from annotate.tasks import import_faces, import_images

    return import_faces if batch.kind == ImportBatch.Kind.FACES else import_images


def imports_sweep_due(*, now: datetime | None = None) -> int:
    """`imports_sweep`, at most once per SWEEP_EVERY in this process (pages and tasks call
    it often). A failure is logged: the next call tries again."""
    global _last_sweep
    now = now or timezone.now()
    if _last_sweep is not None and timedelta(0) <= now - _last_sweep < SWEEP_EVERY:
        return 0
    _last_sweep = now
    try:
        return imports_sweep(now=now)
    except Exception:
        logger.exception("import sweep failed")
        return 0


def imports_sweep(*, now: datetime | None = None) -> int:
    """Queue again, or fail, the import work whose worker was lost; delete expired uploads.

    Lost: running, heartbeat older than FACET_IMPORT_STALE_SECONDS (a batch from before
    heartbeats: started that long ago). Work claimed FACET_IMPORT_MAX_ATTEMPTS times is failed
    with the reason instead. A batch whose chunks all finished but that was never finished
    (its last worker was lost in between) gets one chunk message again, which finishes it.

    Queued work whose message was sent longer ago than that, while nothing of its batch moved,
    is sent again: a worker killed between taking a message and claiming its work loses the
    message on the filesystem broker (Redis hands it back only after the visibility timeout).
    A copy that finds the work taken does nothing, so at worst a long queue gets one spare
    message per piece of work per stale period.

    Returns how many pieces of work it queued again, sent again or failed.
    """
    now = now or timezone.now()
    cutoff = now - stale_after()
    swept = _waiting_resend(cutoff=cutoff, now=now)
    lost_chunks = jobs_lost(
        ImportChunk.objects.filter(batch__status=JobStatus.RUNNING),
        stale_after=stale_after(),
        now=now,
    )
    for chunk in lost_chunks:
        swept += _chunk_recover(chunk, now=now)
    lost_batches = jobs_lost(
        ImportBatch.objects.filter(kind__in=SWEPT_KINDS), stale_after=stale_after(), now=now
    ).annotate(split=Exists(ImportChunk.objects.filter(batch=OuterRef("pk"))))
    for batch in lost_batches:
        if not batch.split:
            swept += _batch_recover(batch, now=now)
        elif chunks_finished(batch_id=batch.pk):
            _conclusion_send(batch.pk)
    uploads_expire(now=now)
    return swept


def _waiting_resend(*, cutoff: datetime, now: datetime) -> int:
    """Send again the messages of queued batches and chunks nobody took for a stale period."""
    from annotate.tasks import import_images_chunk

    sent = 0
    batches = (
        ImportBatch.objects.filter(kind__in=SWEPT_KINDS, status=JobStatus.QUEUED)
        .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff))
        .exclude(upload="")
    )
    for batch in batches:
        touched = ImportBatch.objects.filter(
            pk=batch.pk, status=JobStatus.QUEUED, heartbeat_at=batch.heartbeat_at
        ).update(heartbeat_at=now)
        if touched and _send(_batch_task(batch), batch.pk, where=f"import batch {batch.pk}"):
            sent += 1
    # While a chunk of the batch runs, its other chunks are only waiting their turn.
    running = ImportChunk.objects.filter(batch=OuterRef("batch"), status=JobStatus.RUNNING)
    chunks = ImportChunk.objects.filter(
        status=JobStatus.QUEUED,
        heartbeat_at__lt=cutoff,
        batch__status=JobStatus.RUNNING,
        batch__heartbeat_at__lt=cutoff,
    ).filter(~Exists(running))
    for chunk in chunks:
        where = f"import batch {chunk.batch_id} chunk {chunk.start}-{chunk.stop}"
        touched = ImportChunk.objects.filter(
            pk=chunk.pk, status=JobStatus.QUEUED, heartbeat_at=chunk.heartbeat_at
        ).update(heartbeat_at=now)
        if touched and _send(
            import_images_chunk, chunk.batch_id, chunk.start, chunk.stop, where=where
        ):
            sent += 1
    return sent


def _send(task, *args, where: str) -> bool:
    try:
        task.delay(*args)
    except Exception:
        logger.exception("%s: could not send its message again; a later sweep retries", where)
        return False
    logger.warning("%s: queued and untouched for a stale period; sent its message again", where)
    return True


def _chunk_recover(chunk: ImportChunk, *, now: datetime) -> int:
    """Fail a lost chunk that used its attempts (its batch finishes once no chunk is left),
    else queue it again."""
    from annotate.tasks import import_images_chunk

    def fail(same) -> bool:
        reason = WORKER_LOST.format(attempts=chunk.attempts, heartbeat=when(chunk.heartbeat_at))
        error = CHUNK_FAILED.format(first=chunk.start + 1, last=chunk.stop, reason=reason)
        if not same.update(status=JobStatus.FAILED, error=error, finished_at=now):
            return False
        if chunks_finished(batch_id=chunk.batch_id):
            _conclusion_send(chunk.batch_id)
        return True

    return job_recover(
        chunk,
        now=now,
        max_attempts=max_attempts(),
        fail=fail,
        send=lambda: import_images_chunk.delay(chunk.batch_id, chunk.start, chunk.stop),
        where=f"import batch {chunk.batch_id} chunk {chunk.start}-{chunk.stop}",
    )


def _batch_recover(batch: ImportBatch, *, now: datetime) -> int:
    """Fail a lost single-task batch that used its attempts, or that has no upload a worker
    could read (the import command's folder, on the machine that ran it); else queue it again.
    """

    def fail(same) -> bool:
        heard = when(batch.heartbeat_at or batch.started_at)
        error = (
            BATCH_WORKER_LOST.format(attempts=batch.attempts, heartbeat=heard)
            if batch.upload
            else BATCH_PROCESS_LOST.format(heartbeat=heard)
        )
        with transaction.atomic():
            locked = same.select_for_update().first()
            if locked is None:
                return False
            batch_end(locked, locked.report, status=JobStatus.FAILED, error=error)
        return True

    return job_recover(
        batch,
        now=now,
        max_attempts=max_attempts(),
        fail=fail,
        send=(lambda: _batch_task(batch).delay(batch.pk)) if batch.upload else None,
        where=f"import batch {batch.pk}",
    )


def _conclusion_send(batch_id: int) -> None:
    """Send one finished chunk's message again: the task that receives it finds every chunk
    finished and finishes the batch (on a worker, where the last step's file reads belong)."""
    from annotate.tasks import import_images_chunk

    chunk = ImportChunk.objects.filter(batch_id=batch_id).order_by("-start").first()
    if chunk is None:  # only split batches are concluded through a chunk
        logger.error("import batch %s has no chunk to send for its conclusion", batch_id)
        return
    try:
        import_images_chunk.delay(batch_id, chunk.start, chunk.stop)
    except Exception:
        logger.exception("import batch %s: could not send the message that finishes it", batch_id)
        return
    ImportBatch.objects.filter(pk=batch_id).update(heartbeat_at=timezone.now())
    logger.warning("import batch %s: every chunk finished; sent the message to finish it", batch_id)
