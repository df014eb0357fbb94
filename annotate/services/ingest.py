"""Importing search-result images: a folder or zip, plus a manifest of where each came from.

The pure work (reading files safely, parsing CSVs, detecting, cropping, hashing) lives in
`annotate.ingest`; storing the images and their faces is `annotate.services.image_pipeline`.
This module plans and runs a batch. Its promises:

- an upload is planned the same way every time (its files matched to the manifest), so chunks
  of a large upload, each its own task, re-plan alike and import disjoint files;
- progress is visible while it runs (`ImportBatch.done` / `total`), and a batch that cannot
  run at all ends `failed` with the reason in `ImportBatch.error`;
- a lost worker or a message delivered twice costs time, never a wrong count: the work is
  claimed, heartbeated and swept as `annotate.services.import_jobs` describes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from annotate.ingest.archive import (
    ArchiveLimits,
    ArchiveRejected,
    Entry,
    EntryRejected,
    upload_list,
)
from annotate.ingest.csvtext import CsvError
from annotate.ingest.detect import Detector
from annotate.ingest.manifest import Manifest, ManifestRow, manifest_parse
from annotate.models import ImportBatch, JobStatus, Study
from annotate.services.image_pipeline import ImagePipeline, detector_default
from annotate.services.import_jobs import (
    CHUNK_FAILED,
    Claim,
    ClaimLost,
    Progress,
    batch_claim,
    batch_conclude,
    batch_conclude_chunks,
    batch_split,
    chunk_claim,
    chunk_finish,
    chunks_finished,
)
from annotate.services.import_report import (
    BATCH_CRASHED,
    BATCH_MANIFEST_UNUSABLE,
    BATCH_UPLOAD_UNUSABLE,
    ImportReport,
)
from annotate.services.import_sweep import imports_sweep_due
from annotate.services.near_duplicates import near_duplicates_reconcile
from config.celery import broker_check
from config.storage import storage_open_ranged

logger = logging.getLogger(__name__)

MANIFEST_IN_ARCHIVE = "manifest.csv"
NOTE_MANIFEST_FROM_ARCHIVE = "used the manifest.csv found inside the upload"
NOTE_NO_MANIFEST = "no manifest: images carry no query, job, country or rank"
UPLOAD_MISSING = "the uploaded file is no longer in storage; upload it again"

# --- batches: create, run, finish ----------------------------------------------------------


def import_batch_create(
    *, study: Study, user, upload: UploadedFile, manifest: UploadedFile | None = None
) -> ImportBatch:
    """Store an uploaded zip (+ manifest) and enqueue its import after commit.

    Raises BrokerUnavailable before creating anything when the task queue is down.
    """
    from annotate.tasks import import_images

    broker_check()
    with transaction.atomic():
        batch = ImportBatch(
            study=study,
            kind=ImportBatch.Kind.IMAGES,
            created_by=user,
            source_name=(upload.name or "upload.zip")[:500],
        )
        batch.upload.save(upload.name or "upload.zip", upload, save=False)
        if manifest is not None:
            batch.manifest.save(manifest.name or "manifest.csv", manifest, save=False)
        batch.save()
        transaction.on_commit(lambda: import_images.delay(batch.pk))
    return batch


def _batch_files(batch: ImportBatch) -> bytes | None:
    if not batch.manifest:
        return None
    with batch.manifest.open("rb") as handle:
        return handle.read()


def import_batch_process(*, batch_id: int, detector: Detector | None = None) -> ImportBatch:
    """Run a queued upload batch (the Celery task's body). Safe to deliver twice.

    The batch is claimed first (`batch_claim`): a second copy of the message, delivered while
    this one runs or after it finished, does nothing. Uploads of up to FACET_IMPORT_CHUNK_FILES
    files are imported here; larger ones are split into chunks of that many files, each its
    own task keyed by (batch, start, stop), so any number of workers share the job and a lost
    worker costs one chunk.
    """
    imports_sweep_due()
    claim = batch_claim(batch_id=batch_id)
    if claim is None:
        return ImportBatch.objects.get(pk=batch_id)
    batch = ImportBatch.objects.select_related("study").get(pk=batch_id)
    chunk = max(1, settings.FACET_IMPORT_CHUNK_FILES)
    try:
        manifest_bytes = _batch_files(batch)
        with _upload_open(batch) as upload:
            plan = _plan(upload, manifest_bytes)
            if len(plan.work) <= chunk:
                upload.seek(0)
                return _images_run(batch, claim, upload, manifest_bytes, detector)
        bounds = [
            (start, min(start + chunk, len(plan.work))) for start in range(0, len(plan.work), chunk)
        ]
        batch_split(claim=claim, report=plan.report.as_dict(), bounds=bounds)
    except _Unusable as exc:
        return batch_conclude(
            claim=claim, report=ImportReport().as_dict(), status=JobStatus.FAILED, error=str(exc)
        )
    except ClaimLost:
        logger.warning(
            "import batch %s was taken over by another delivery; this copy stops", batch_id
        )
    except Exception as exc:
        logger.exception("import batch %s could not be planned", batch_id)
        return batch_conclude(
            claim=claim,
            report=ImportReport().as_dict(),
            status=JobStatus.FAILED,
            error=BATCH_CRASHED.format(reason=f"{type(exc).__name__}: {exc}"[:1000]),
        )
    batch.refresh_from_db()
    return batch


def import_chunk_process(
    *, batch_id: int, start: int, stop: int, detector: Detector | None = None
) -> None:
    """Import files [start, stop) of a planned batch, under the chunk's claim.

    A second delivery of a finished chunk, or of one running elsewhere with a fresh heartbeat,
    does nothing. A chunk that fails records why and counts as finished, so one bad chunk never
    leaves the batch running forever. The chunk that finishes last (or any delivery that finds
    every chunk finished) flags the near-duplicates chunks could not see and finishes the batch.
    """
    imports_sweep_due()
    claim = chunk_claim(batch_id=batch_id, start=start, stop=stop)
    if claim is None:
        if chunks_finished(batch_id=batch_id):
            _chunks_conclude(batch_id)
        return
    report = ImportReport()
    failure = ""
    try:
        batch = ImportBatch.objects.select_related("study").get(pk=batch_id)
        manifest_bytes = _batch_files(batch)
        with _upload_open(batch) as upload:
            work = _plan(upload, manifest_bytes).work[start:stop]
            detector = detector or detector_default()
            report.detector = detector.name
            ImagePipeline(batch, detector, report, Progress(claim)).run(work)
    except ClaimLost:
        logger.warning(
            "import batch %s chunk %s-%s was taken over by another delivery; this copy stops",
            batch_id,
            start,
            stop,
        )
        return
    except _UploadMissing:
        logger.warning("import batch %s chunk %s-%s: the upload is gone", batch_id, start, stop)
        failure = CHUNK_FAILED.format(first=start + 1, last=stop, reason=UPLOAD_MISSING)
    except Exception as exc:
        logger.exception("import batch %s chunk %s-%s failed", batch_id, start, stop)
        failure = CHUNK_FAILED.format(
            first=start + 1, last=stop, reason=f"{type(exc).__name__}: {exc}"[:500]
        )
    try:
        last = chunk_finish(claim=claim, report=report.as_dict(), error=failure)
    except ClaimLost:
        logger.warning(
            "import batch %s chunk %s-%s was taken over; not recorded", batch_id, start, stop
        )
        return
    if last:
        _chunks_conclude(batch_id)


def _chunks_conclude(batch_id: int) -> None:
    near_duplicates_reconcile(batch_id=batch_id)
    batch_conclude_chunks(batch_id=batch_id)


def images_import(
    *,
    study: Study,
    source: Path,
    manifest: bytes | None = None,
    user=None,
    detector: Detector | None = None,
) -> ImportBatch:
    """Import a local folder or zip now, in this process (the import_images command)."""
    batch = ImportBatch.objects.create(
        study=study, kind=ImportBatch.Kind.IMAGES, created_by=user, source_name=str(source)[:500]
    )
    claim = batch_claim(batch_id=batch.pk)
    if claim is None:  # cannot happen: the batch was created queued, just now, by this call
        raise RuntimeError(f"import batch {batch.pk} was taken before it started")
    return _images_run(batch, claim, source, manifest, detector)


def archive_limits() -> ArchiveLimits:
    """Limits on uploads, from settings (FACET_IMPORT_MAX_FILES / _MAX_BYTES / _MAX_FILE_BYTES)."""
    return ArchiveLimits(
        max_files=settings.FACET_IMPORT_MAX_FILES,
        max_total_bytes=settings.FACET_IMPORT_MAX_BYTES,
        max_entry_bytes=settings.FACET_IMPORT_MAX_FILE_BYTES,
    )


class _Unusable(Exception):
    """The upload or its manifest cannot be used at all; the message says why."""


class _UploadMissing(_Unusable):
    """The batch's upload is not in storage (anymore)."""

    def __init__(self) -> None:
        super().__init__(BATCH_UPLOAD_UNUSABLE.format(reason=UPLOAD_MISSING))


@dataclass
class _Plan:
    work: list[tuple[Entry, ManifestRow | None]]
    report: ImportReport  # what is known before any file is read: rows, listing, notes


def _upload_open(batch: ImportBatch) -> BinaryIO:
    """The batch's upload, open for reading; from object storage, each part as it is read (a
    chunk reads the zip's directory and its own files, not the whole upload)."""
    assert batch.upload.name is not None  # a batch is made with its upload
    try:
        return storage_open_ranged(batch.upload.storage, batch.upload.name)
    except FileNotFoundError:
        raise _UploadMissing from None


def _plan(source: Path | BinaryIO, manifest_bytes: bytes | None) -> _Plan:
    """List the upload and match it to the manifest. Deterministic: chunks re-plan alike."""
    report = ImportReport()
    try:
        listing = upload_list(source, limits=archive_limits())
    except ArchiveRejected as exc:
        raise _Unusable(BATCH_UPLOAD_UNUSABLE.format(reason=exc)) from None
    if manifest_bytes is None and MANIFEST_IN_ARCHIVE in listing.others:
        try:
            manifest_bytes = listing.others[MANIFEST_IN_ARCHIVE].read()
            report.notes.append(NOTE_MANIFEST_FROM_ARCHIVE)
        except EntryRejected as exc:
            report.notes.append(f"{MANIFEST_IN_ARCHIVE} in the upload: {exc}")
    manifest: Manifest | None = None
    if manifest_bytes is not None:
        try:
            manifest = manifest_parse(manifest_bytes)
        except CsvError as exc:
            raise _Unusable(BATCH_MANIFEST_UNUSABLE.format(reason=exc)) from None
        report.notes.extend(manifest.notes)
        for problem in manifest.problems:
            report.reject_row(problem.as_dict())
    else:
        report.notes.append(NOTE_NO_MANIFEST)
    for skipped in listing.rejected:
        report.reject_file(skipped.name, skipped.reason)
    used_rows: set[str] = set()
    work: list[tuple[Entry, ManifestRow | None]] = []
    for entry in listing.entries:
        row = manifest.row_for(entry.name) if manifest else None
        if manifest is not None:
            if row is None:
                report.file_without_row(entry.name)
            else:
                used_rows.add(row.file)
        work.append((entry, row))
    if manifest is not None:
        for problem in manifest.rows_without_files(used_rows):
            report.reject_row(problem.as_dict())
    return _Plan(work, report)


def _images_run(
    batch: ImportBatch,
    claim: Claim,
    source: Path | BinaryIO,
    manifest_bytes: bytes | None,
    detector: Detector | None,
) -> ImportBatch:
    """Plan and import everything in this process, under `claim` (the command; small uploads)."""
    report = ImportReport()
    try:
        try:
            plan = _plan(source, manifest_bytes)
        except _Unusable as exc:
            return batch_conclude(
                claim=claim, report=report.as_dict(), status=JobStatus.FAILED, error=str(exc)
            )
        report = plan.report
        detector = detector or detector_default()
        report.detector = detector.name
        ImportBatch.objects.filter(pk=batch.pk).update(total=len(plan.work))
        ImagePipeline(batch, detector, report, Progress(claim)).run(plan.work)
        return batch_conclude(claim=claim, report=report.as_dict())
    except ClaimLost:
        logger.warning(
            "import batch %s was taken over by another delivery; this copy stops", batch.pk
        )
        batch.refresh_from_db()
        return batch
    except Exception as exc:
        # A failure outside any one file (database gone, time limit): record it, keep what
        # was stored (each image is complete), and let the caller see the batch as failed.
        logger.exception("import batch %s failed", batch.pk)
        return batch_conclude(
            claim=claim,
            report=report.as_dict(),
            status=JobStatus.FAILED,
            error=BATCH_CRASHED.format(reason=f"{type(exc).__name__}: {exc}"[:1000]),
        )
