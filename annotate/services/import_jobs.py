"""Image imports as jobs that survive lost workers and redelivered messages.

Work is done under a *claim* (`annotate.services.jobs`, the life cycle every job shares) on the
batch (an upload imported in one task) or on one of its chunks (a large upload). A second
delivery of a message finds the work finished, or running with a fresh heartbeat, and does
nothing. The holder writes its heartbeat with its progress (`Progress`); `done` only grows.
Work whose worker was lost is found by `annotate.services.import_sweep`.

A finished batch's counts are read from its rows (`annotate.selectors.imports.import_counts`),
and only the holder of the claim may finish it, so no late copy can leave a report that
contradicts the database. Finishing also deletes uploads whose retention is over
(`annotate.services.uploads`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from annotate.models import ImportBatch, ImportChunk, JobStatus
from annotate.selectors.imports import import_counts
from annotate.services.import_report import report_merge
from annotate.services.jobs import (
    ERROR_MAX_CHARS,
    UNFINISHED,
    ClaimLost,
    held,
    job_beat,
    job_claim,
    part_finish,
    parts_rollup,
)
from annotate.services.uploads import uploads_expire

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5

CHUNK_FAILED = (
    "Files {first}–{last} could not be imported ({reason}); the other files were. Upload the "
    "same files again to retry them: files already imported are skipped as duplicates."
)


@dataclass(frozen=True)
class Claim:
    """Who holds a piece of import work: the batch alone, or one chunk of it."""

    batch_id: int
    token: str
    chunk_id: int | None = None


def stale_after() -> timedelta:
    """How long work may go without a heartbeat before it counts as lost."""
    return timedelta(seconds=settings.FACET_IMPORT_STALE_SECONDS)


def max_attempts() -> int:
    """Claims a piece of work may have before a lost worker fails it."""
    return settings.FACET_IMPORT_MAX_ATTEMPTS


def _chunks_of_batch():
    return ImportChunk.objects.filter(batch=OuterRef("pk"))


# --- claims ----------------------------------------------------------------------------------


def batch_claim(
    *, batch_id: int, now: datetime | None = None, kind: str = ImportBatch.Kind.IMAGES
) -> Claim | None:
    """Take a batch of `kind` to import it in this task (images: or to split it into chunks).

    Succeeds for a queued batch, or a running one not split into chunks whose heartbeat is
    stale and that has attempts left (its worker was lost); None otherwise, with a log line:
    the message was delivered again while the work is done, or still being done elsewhere.
    """
    token = job_claim(
        ImportBatch.objects.filter(pk=batch_id, kind=kind).filter(~Exists(_chunks_of_batch())),
        stale_after=stale_after(),
        max_attempts=max_attempts(),
        now=now,
    )
    if token is None:
        state = ImportBatch.objects.filter(pk=batch_id).values("status", "claimed_by").first()
        logger.info(
            "import batch %s: this delivery does nothing (%s)",
            batch_id,
            "no such batch" if state is None else f"{state['status']}, {state['claimed_by']}",
        )
        return None
    return Claim(batch_id=batch_id, token=token)


def chunk_claim(
    *, batch_id: int, start: int, stop: int, now: datetime | None = None
) -> Claim | None:
    """Take chunk [start, stop) of a running batch; None when this delivery has nothing to do.

    Claimable: queued, or running with a stale heartbeat and attempts left. A second delivery
    of a finished chunk, or of one running with a fresh heartbeat, is logged and does nothing.
    """
    now = now or timezone.now()
    chunk = ImportChunk.objects.filter(batch_id=batch_id, start=start, stop=stop).first()
    if chunk is None:
        logger.warning("import batch %s has no chunk %s-%s; nothing to do", batch_id, start, stop)
        return None
    token = job_claim(
        ImportChunk.objects.filter(pk=chunk.pk, batch__status=JobStatus.RUNNING),
        stale_after=stale_after(),
        max_attempts=max_attempts(),
        now=now,
    )
    if token is None:
        chunk.refresh_from_db()
        logger.info(
            "import batch %s chunk %s-%s is %s (claimed by %s); this delivery does nothing",
            batch_id,
            start,
            stop,
            chunk.status,
            chunk.claimed_by or "nobody",
        )
        return None
    ImportBatch.objects.filter(pk=batch_id).update(heartbeat_at=now)
    return Claim(batch_id=batch_id, token=token, chunk_id=chunk.pk)


class Progress:
    """Heartbeat and progress of one claim, written at most every PROGRESS_INTERVAL_S.

    `done` only grows: a run that starts again from the first file leaves the stored figure
    where the lost run got to until it passes it. Raises ClaimLost when the claim was taken
    over (the heartbeat had gone stale) or the work ended meanwhile, so the copy stops.
    """

    def __init__(self, claim: Claim, *, interval: float | None = None) -> None:
        self.claim = claim
        # A commit per file would cost as much as storing it; the page polls once a second.
        self.interval = PROGRESS_INTERVAL_S if interval is None else interval
        self.done = 0
        self.saved_at = time.monotonic()

    def advance(self, n: int, *, flush: bool = False) -> None:
        self.done += n
        if flush or time.monotonic() - self.saved_at >= self.interval:
            self.save()

    def save(self) -> None:
        self.saved_at = time.monotonic()
        now = timezone.now()
        claim = self.claim
        done = Greatest(F("done"), Value(self.done))
        if claim.chunk_id is None:
            job_beat(ImportBatch, pk=claim.batch_id, token=claim.token, now=now, done=done)
            return
        job_beat(ImportChunk, pk=claim.chunk_id, token=claim.token, now=now, done=done)
        parts_rollup(
            ImportBatch.objects.filter(pk=claim.batch_id),
            ImportChunk.objects.filter(batch_id=claim.batch_id),
            now=now,
        )


# --- finishing -------------------------------------------------------------------------------


def batch_conclude(
    *, claim: Claim, report: dict, status: str = JobStatus.SUCCEEDED, error: str = ""
) -> ImportBatch:
    """Finish a batch imported in one task, if `claim` still holds it (takes its row lock).

    The counts of the stored report are read from the rows. A copy whose claim was taken over
    writes nothing. The upload is then deleted when its retention is 0.
    """
    with transaction.atomic():
        batch = ImportBatch.objects.select_for_update().get(pk=claim.batch_id)
        if batch.status != JobStatus.RUNNING or batch.claimed_by != claim.token:
            logger.warning(
                "import batch %s is %s and held by %s; this copy does not finish it",
                batch.pk,
                batch.status,
                batch.claimed_by or "nobody",
            )
            return batch
        batch_end(batch, report, status=status, error=error)
    return batch


def chunk_finish(*, claim: Claim, report: dict, error: str = "") -> bool:
    """Record a claimed chunk's outcome; True when no chunk of its batch is left to run.

    Raises ClaimLost (and records nothing) when the chunk was taken over meanwhile. Takes the
    batch's row lock, so of two chunks finishing together exactly one sees itself last.
    """
    assert claim.chunk_id is not None
    return part_finish(
        ImportChunk,
        parent=ImportBatch.objects.filter(pk=claim.batch_id),
        parts=ImportChunk.objects.filter(batch_id=claim.batch_id),
        pk=claim.chunk_id,
        token=claim.token,
        status=JobStatus.FAILED if error else JobStatus.SUCCEEDED,
        error=error,
        report=report,
        done=F("stop") - F("start"),
    )


def chunks_finished(*, batch_id: int) -> bool:
    """True when a running batch was split into chunks and none is left to run."""
    chunks = ImportChunk.objects.filter(batch_id=batch_id)
    return (
        ImportBatch.objects.filter(pk=batch_id, status=JobStatus.RUNNING).exists()
        and chunks.exists()
        and not chunks.filter(status__in=UNFINISHED).exists()
    )


def batch_conclude_chunks(*, batch_id: int) -> ImportBatch:
    """Finish a batch whose chunks all finished: their reports merged into the plan's, counts
    read from the rows, failed when any chunk failed. Takes the batch's row lock; does
    nothing when the batch is no longer running or a chunk is still to run."""
    with transaction.atomic():
        batch = ImportBatch.objects.select_for_update().get(pk=batch_id)
        chunks = list(batch.chunks.order_by("start"))
        if batch.status != JobStatus.RUNNING or any(c.status in UNFINISHED for c in chunks):
            return batch
        report = dict(batch.report)
        for chunk in chunks:
            report = report_merge(report, chunk.report)
        report.update(chunks=len(chunks), chunks_done=len(chunks))
        error = " ".join(chunk.error for chunk in chunks if chunk.error)
        batch.done = batch.total
        batch_end(
            batch,
            report,
            status=JobStatus.FAILED if error else JobStatus.SUCCEEDED,
            error=error,
            fields=("done",),
        )
    return batch


def batch_end(
    batch: ImportBatch, report: dict, *, status: str, error: str, fields: tuple[str, ...] = ()
) -> None:
    """Store the end of a batch, an image import's counts read from the rows (the caller holds
    its row lock); uploads whose retention is over are deleted after commit. A labeled face
    set runs in one task under its claim, so its report's counts are that task's."""
    counts = import_counts(batch_id=batch.pk) if batch.kind == ImportBatch.Kind.IMAGES else {}
    batch.report = {**report, **counts}
    batch.status = status
    batch.error = error[:ERROR_MAX_CHARS]
    batch.finished_at = timezone.now()
    batch.save(update_fields=["report", "status", "error", "finished_at", *fields])
    transaction.on_commit(uploads_expire)
    logger.info(
        "import batch %s %s: %s imported", batch.pk, status, batch.report.get("imported", 0)
    )


def import_batch_fail(*, batch_id: int, reason: str) -> None:
    """Mark a batch failed (used by the task when the worker hits its time limit)."""
    ImportBatch.objects.filter(
        pk=batch_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
    ).update(status=JobStatus.FAILED, error=reason[:2000], finished_at=timezone.now())


def batch_split(*, claim: Claim, report: dict, bounds: list[tuple[int, int]]) -> None:
    """Store the chunks of a claimed batch and send one task per chunk after commit.

    `report` is what planning found (listing and manifest problems); the chunks' reports are
    merged into it at the end. Raises ClaimLost when the claim was taken over.
    """
    from annotate.tasks import import_images_chunk

    with transaction.atomic():
        kept = held(ImportBatch, pk=claim.batch_id, token=claim.token).update(
            report={**report, "chunks": len(bounds), "chunks_done": 0},
            total=bounds[-1][1] if bounds else 0,
            heartbeat_at=timezone.now(),
        )
        if not kept:
            raise ClaimLost(f"import batch {claim.batch_id}")
        # While a chunk is queued, heartbeat_at is when its message was (last) sent.
        sent_at = timezone.now()
        ImportChunk.objects.bulk_create(
            ImportChunk(batch_id=claim.batch_id, start=start, stop=stop, heartbeat_at=sent_at)
            for start, stop in bounds
        )
        for start, stop in bounds:
            transaction.on_commit(partial(import_images_chunk.delay, claim.batch_id, start, stop))
