"""Importing search-result images: a folder or zip, plus a manifest of where each came from.

The pure work (reading files safely, parsing CSVs, detecting, cropping, hashing) lives in
`annotate.ingest`; this module stores the results. Its promises:

- one bad file never aborts a batch: it is rejected with a reason in the report;
- nothing is half-written: each image and its faces are stored in one transaction, and the files written for a row that fails are deleted again;
- duplicates (same bytes) within a study are skipped and reported, never stored twice;
- near-duplicate faces within a query are flagged (`Face.near_duplicate_of`), not dropped;
- progress is visible while it runs (`ImportBatch.done` / `total`), and a batch that cannot
  run at all ends `failed` with the reason in `ImportBatch.error`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from PIL import Image

from annotate.ingest.archive import (
    ArchiveLimits,
    ArchiveRejected,
    Entry,
    EntryRejected,
    upload_list,
)
from annotate.ingest.crops import CROP_MARGIN, CROP_SIZE, face_crop
from annotate.ingest.csvtext import CsvError
from annotate.ingest.detect import (
    DEFAULT_DETECTOR,
    Detection,
    Detector,
    detection_copy,
    detections_scale,
    detector_make,
)
from annotate.ingest.images import SUFFIX_FOR_FORMAT, ImageRejected, OpenedImage, image_open
from annotate.ingest.manifest import Manifest, ManifestRow, manifest_parse
from annotate.ingest.phash import HashIndex, dhash, hash_hex, hash_int
from annotate.models import Face, ImportBatch, JobStatus, SourceImage, Study
from annotate.services.ingest_common import (
    BATCH_CRASHED,
    BATCH_MANIFEST_UNUSABLE,
    BATCH_UPLOAD_UNUSABLE,
    REJECT_DUPLICATE,
    REJECT_STORE,
    ImportReport,
    batch_finish,
    batch_start,
    files_delete,
    jpeg_bytes,
)
from config.celery import broker_check

logger = logging.getLogger(__name__)

MANIFEST_IN_ARCHIVE = "manifest.csv"
# Images detected together: one detector call (a GPU batch) per chunk, bounded in pixels too,
# so memory stays flat however large the upload.
CHUNK_IMAGES = 16
CHUNK_PIXELS = 120_000_000

REJECT_DUPLICATE_IN_BATCH = "duplicate: same content as {name!r} earlier in this upload"
REJECT_DETECTION = "face detection failed: {detail}"
NOTE_MANIFEST_FROM_ARCHIVE = "used the manifest.csv found inside the upload"
NOTE_NO_MANIFEST = "no manifest: images carry no query, job, country or rank"

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


def import_batch_process(*, batch_id: int, detector: Detector | None = None) -> ImportBatch:
    """Run a queued upload batch (the Celery task's body). Safe to call twice."""
    batch = ImportBatch.objects.select_related("study").get(pk=batch_id)
    if batch.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        logger.info("import batch %s is already %s; nothing to do", batch.pk, batch.status)
        return batch
    manifest_bytes = None
    if batch.manifest:
        with batch.manifest.open("rb") as handle:
            manifest_bytes = handle.read()
    with batch.upload.open("rb") as upload:
        return _images_run(batch, upload, manifest_bytes, detector)


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
    return _images_run(batch, source, manifest, detector)


def archive_limits() -> ArchiveLimits:
    """Limits on uploads, from settings (FACET_IMPORT_MAX_FILES / _MAX_BYTES / _MAX_FILE_BYTES)."""
    default = ArchiveLimits()
    return ArchiveLimits(
        max_files=getattr(settings, "FACET_IMPORT_MAX_FILES", default.max_files),
        max_total_bytes=getattr(settings, "FACET_IMPORT_MAX_BYTES", default.max_total_bytes),
        max_entry_bytes=getattr(settings, "FACET_IMPORT_MAX_FILE_BYTES", default.max_entry_bytes),
    )


_detector_cache: dict[str, Detector] = {}


def detector_default() -> Detector:
    """The configured detector, loaded once per process (workers keep it between tasks)."""
    name = getattr(settings, "FACET_DETECTOR", DEFAULT_DETECTOR)
    if name not in _detector_cache:
        _detector_cache[name] = detector_make(name)
    return _detector_cache[name]


@dataclass
class _Prepared:
    entry: Entry
    data: bytes
    sha256: str
    opened: OpenedImage
    row: ManifestRow | None


def _images_run(
    batch: ImportBatch,
    source: Path | BinaryIO,
    manifest_bytes: bytes | None,
    detector: Detector | None,
) -> ImportBatch:
    report = ImportReport()
    batch_start(batch)
    try:
        try:
            listing = upload_list(source, limits=archive_limits())
        except ArchiveRejected as exc:
            return batch_finish(
                batch,
                report.as_dict(),
                status=JobStatus.FAILED,
                error=BATCH_UPLOAD_UNUSABLE.format(reason=exc),
            )
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
                return batch_finish(
                    batch,
                    report.as_dict(),
                    status=JobStatus.FAILED,
                    error=BATCH_MANIFEST_UNUSABLE.format(reason=exc),
                )
            report.notes.extend(manifest.notes)
            for problem in manifest.problems:
                report.reject_row(problem.as_dict())
        else:
            report.notes.append(NOTE_NO_MANIFEST)
        for skipped in listing.rejected:
            report.reject_file(skipped.name, skipped.reason)

        detector = detector or detector_default()
        report.detector = detector.name
        batch.total = len(listing.entries)
        batch.save(update_fields=["total"])
        pipeline = _ImagePipeline(batch, detector, report)
        used_rows: set[str] = set()
        for entry in listing.entries:
            row = manifest.row_for(entry.name) if manifest else None
            if manifest is not None:
                if row is None:
                    report.file_without_row(entry.name)
                else:
                    used_rows.add(row.file)
            pipeline.add(entry, row)
        pipeline.flush()
        if manifest is not None:
            for problem in manifest.rows_without_files(used_rows):
                report.reject_row(problem.as_dict())
        return batch_finish(batch, report.as_dict())
    except Exception as exc:
        # A failure outside any one file (database gone, time limit): record it, keep what
        # was stored (each image is complete), and let the caller see the batch as failed.
        logger.exception("import batch %s failed", batch.pk)
        return batch_finish(
            batch,
            report.as_dict(),
            status=JobStatus.FAILED,
            error=BATCH_CRASHED.format(reason=f"{type(exc).__name__}: {exc}"[:1000]),
        )


class _ImagePipeline:
    """Reads, checks and decodes entries; detects faces a chunk at a time; stores each image."""

    def __init__(self, batch: ImportBatch, detector: Detector, report: ImportReport) -> None:
        self.batch = batch
        self.study = batch.study
        self.detector = detector
        self.report = report
        self.chunk: list[_Prepared] = []
        self.chunk_pixels = 0
        self.seen_in_batch: dict[str, str] = {}
        self.hash_indexes: dict[str, HashIndex] = {}

    def add(self, entry: Entry, row: ManifestRow | None) -> None:
        prepared = self._prepare(entry, row)
        if prepared is None:
            self._progress(1)
            return
        self.chunk.append(prepared)
        self.chunk_pixels += prepared.opened.width * prepared.opened.height
        if len(self.chunk) >= CHUNK_IMAGES or self.chunk_pixels >= CHUNK_PIXELS:
            self.flush()

    def _progress(self, n: int) -> None:
        self.batch.done += n
        ImportBatch.objects.filter(pk=self.batch.pk).update(done=self.batch.done)

    def _prepare(self, entry: Entry, row: ManifestRow | None) -> _Prepared | None:
        try:
            data = entry.read()
        except EntryRejected as exc:
            self.report.reject_file(entry.name, str(exc))
            return None
        sha = hashlib.sha256(data).hexdigest()
        if sha in self.seen_in_batch:
            self.report.duplicate(
                entry.name, REJECT_DUPLICATE_IN_BATCH.format(name=self.seen_in_batch[sha])
            )
            return None
        existing = (
            SourceImage.objects.filter(study=self.study, sha256=sha)
            .values_list("original_name", flat=True)
            .first()
        )
        if existing is not None:
            self.report.duplicate(entry.name, REJECT_DUPLICATE.format(name=existing))
            return None
        try:
            opened = image_open(data)
        except ImageRejected as exc:
            self.report.reject_file(entry.name, exc.reason)
            return None
        self.seen_in_batch[sha] = entry.name
        return _Prepared(entry, data, sha, opened, row)

    def flush(self) -> None:
        chunk, self.chunk, self.chunk_pixels = self.chunk, [], 0
        if not chunk:
            return
        detections = self._detect([item.opened.image for item in chunk])
        for item, found in zip(chunk, detections, strict=True):
            if isinstance(found, Exception):
                self.report.reject_file(item.entry.name, REJECT_DETECTION.format(detail=found))
            else:
                self._store(item, found)
            item.opened.image.close()
        self._progress(len(chunk))

    def _detect(self, images: list[Image.Image]) -> list[list[Detection] | Exception]:
        small = [detection_copy(image) for image in images]
        try:
            found = self.detector.detect([image for image, _ in small])
            return [
                detections_scale(boxes, scale)
                for boxes, (_, scale) in zip(found, small, strict=True)
            ]
        except Exception:
            logger.warning("batched detection failed; retrying image by image", exc_info=True)
        results: list[list[Detection] | Exception] = []
        for image, scale in small:
            try:
                results.append(detections_scale(self.detector.detect([image])[0], scale))
            except Exception as exc:
                results.append(exc)
        return results

    def _hash_index(self, query: str) -> HashIndex:
        if query not in self.hash_indexes:
            known = Face.objects.filter(study=self.study, source_image__query=query).values_list(
                "id", "phash"
            )
            pairs = [(pk, value) for pk, text in known if (value := hash_int(text)) is not None]
            self.hash_indexes[query] = HashIndex(pairs)
        return self.hash_indexes[query]

    def _store(self, item: _Prepared, detections: list[Detection]) -> None:
        min_side = self.study.min_face_px
        kept = [d for d in detections if d.side >= min_side]
        row = item.row
        query = row.query if row else ""
        index = self._hash_index(query)
        crops = []
        for detection in kept:
            crop = face_crop(item.opened.image, detection, size=CROP_SIZE, margin=CROP_MARGIN)
            crops.append((detection, jpeg_bytes(crop), dhash(crop)))
        written: list[str] = []
        added: list[tuple[int, int]] = []
        flagged = 0
        try:
            with transaction.atomic():
                image = SourceImage(
                    study=self.study,
                    batch=self.batch,
                    original_name=item.entry.name[:500],
                    sha256=item.sha256,
                    width=item.opened.width,
                    height=item.opened.height,
                    bytes=len(item.data),
                    query=query,
                    job=row.job if row else "",
                    country=row.country if row else "",
                    language=row.language if row else "",
                    rank=row.rank if row else None,
                    source_url=row.source_url if row else "",
                    metadata=_metadata(item, row),
                )
                suffix = SUFFIX_FOR_FORMAT.get(item.opened.format, ".img")
                image.file.save(f"{item.sha256}{suffix}", ContentFile(item.data), save=False)
                written.append(image.file.name)
                image.save()
                for number, (detection, crop_bytes, phash) in enumerate(crops):
                    near = index.nearest(phash)
                    if near is None:
                        near = next(
                            (
                                pk
                                for pk, other in added
                                if (phash ^ other).bit_count() <= index.max_bits
                            ),
                            None,
                        )
                    face = Face(
                        study=self.study,
                        source_image=image,
                        origin=Face.Origin.DETECTED,
                        crop_sha256=hashlib.sha256(crop_bytes).hexdigest(),
                        original_name=item.entry.name[:500],
                        box_x=detection.x,
                        box_y=detection.y,
                        box_w=detection.w,
                        box_h=detection.h,
                        detector=self.detector.name,
                        detector_score=detection.score,
                        phash=hash_hex(phash),
                        near_duplicate_of_id=near,
                        votes_target=self.study.votes_per_face,
                    )
                    face.crop.save(
                        f"{item.sha256[:16]}-{number}.jpg", ContentFile(crop_bytes), save=False
                    )
                    written.append(face.crop.name)
                    face.save()
                    added.append((face.pk, phash))
                    flagged += near is not None
        except IntegrityError:
            files_delete(written)
            self.report.duplicate(item.entry.name, REJECT_DUPLICATE.format(name="another import"))
            return
        except Exception as exc:
            files_delete(written)
            logger.warning("storing %s failed", item.entry.name, exc_info=True)
            self.report.reject_file(item.entry.name, REJECT_STORE.format(detail=exc))
            return
        for pk, phash in added:
            index.add(pk, phash)
        self.report.imported += 1
        self.report.faces_found += len(kept)
        self.report.faces_too_small += len(detections) - len(kept)
        self.report.near_duplicate_faces += flagged
        self.report.images_without_faces += not kept


def _metadata(item: _Prepared, row: ManifestRow | None) -> dict:
    metadata = dict(row.metadata) if row else {}
    if row is not None:
        metadata["manifest_line"] = row.line
    if item.opened.notes:
        metadata["ingest_notes"] = list(item.opened.notes)
    return metadata
