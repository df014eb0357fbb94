"""Importing search-result images (folder or zip + manifest) and labeled face sets.

The pure work (reading files safely, parsing CSVs, detecting, cropping, hashing) lives in
`annotate.ingest`; this module stores the results. Its promises:

- one bad file never aborts a batch: it is rejected with a reason in the report;
- nothing is half-written: each image and its faces (or each imported face and its label) are
  stored in one transaction, and the files written for a row that fails are deleted again;
- duplicates (same bytes) within a study are skipped and reported, never stored twice;
- near-duplicate faces within a query are flagged (`Face.near_duplicate_of`), not dropped;
- progress is visible while it runs (`ImportBatch.done` / `total`), and a batch that cannot
  run at all ends `failed` with the reason in `ImportBatch.error`.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image

from annotate.ingest.archive import (
    ENTRY_TOO_LARGE,
    MAX_ENTRY_BYTES,
    ArchiveRejected,
    Entry,
    EntryRejected,
    folder_list,
    upload_list,
)
from annotate.ingest.crops import CROP_MARGIN, CROP_SIZE, face_crop, square_resize
from annotate.ingest.csvtext import CsvError
from annotate.ingest.detect import DEFAULT_DETECTOR, Detection, Detector, detector_make
from annotate.ingest.images import SUFFIX_FOR_FORMAT, ImageRejected, OpenedImage, image_open
from annotate.ingest.labels_csv import LabelRow, LabelVocabulary, labels_parse
from annotate.ingest.manifest import Manifest, ManifestRow, manifest_parse
from annotate.ingest.paths import UnsafePath, path_normalise
from annotate.ingest.phash import HashIndex, dhash, hash_hex, hash_int
from annotate.labels import CLASSES, AgeBand, Glasses, Quality, Race
from annotate.models import (
    Face,
    FaceStatus,
    ImportBatch,
    JobStatus,
    KnownLabel,
    SourceImage,
    Study,
)
from config.celery import broker_check

logger = logging.getLogger(__name__)

MANIFEST_IN_ARCHIVE = "manifest.csv"
# Images detected together: one detector call (a GPU batch) per chunk, bounded in pixels too,
# so memory stays flat however large the upload.
CHUNK_IMAGES = 16
CHUNK_PIXELS = 120_000_000
# Detection runs on a copy no larger than this (boxes are scaled back to the full image).
DETECT_MAX_SIDE = 1600
REPORT_LIST_LIMIT = 2000

BATCH_MANIFEST_UNUSABLE = "The manifest cannot be used, so nothing was imported: {reason}"
BATCH_UPLOAD_UNUSABLE = "The upload cannot be used, so nothing was imported: {reason}"
BATCH_CRASHED = "The import stopped: {reason}. Images stored before this point are kept."
REJECT_DUPLICATE = "duplicate: same content as {name!r} already in this study"
REJECT_DUPLICATE_IN_BATCH = "duplicate: same content as {name!r} earlier in this upload"
REJECT_DETECTION = "face detection failed: {detail}"
REJECT_STORE = "could not be stored: {detail}"
REJECT_NO_FILE = "no such file in the folder"
REJECT_NOT_FILE = "not a regular file (link or folder) and was refused"
NOTE_MANIFEST_FROM_ARCHIVE = "used the manifest.csv found inside the upload"
NOTE_NO_MANIFEST = "no manifest: images carry no query, job, country or rank"

LABEL_VOCABULARY = LabelVocabulary(
    gender=CLASSES,
    race=tuple(Race.values),
    age_band=tuple(AgeBand.values),
    glasses=tuple(Glasses.values),
    quality=tuple(Quality.values),
)


class StudyNotFound(LookupError):
    pass


STUDY_NOT_FOUND = "no study {slug!r}; existing studies: {existing}"


def study_get(*, slug: str) -> Study:
    """The study named `slug`, or StudyNotFound listing the existing ones."""
    try:
        return Study.objects.get(slug=slug)
    except Study.DoesNotExist:
        existing = ", ".join(Study.objects.values_list("slug", flat=True)[:50]) or "none"
        raise StudyNotFound(STUDY_NOT_FOUND.format(slug=slug, existing=existing)) from None


# --- the report --------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did; stored as ImportBatch.report and printed by the commands."""

    imported: int = 0
    faces_found: int = 0
    faces_too_small: int = 0
    near_duplicate_faces: int = 0
    images_without_faces: int = 0
    duplicates: list[dict] = field(default_factory=list)
    rejected_files: list[dict] = field(default_factory=list)
    rejected_rows: list[dict] = field(default_factory=list)
    files_without_manifest_row: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    detector: str = ""
    truncated: int = 0

    def _append(self, items: list, item) -> None:
        if len(items) < REPORT_LIST_LIMIT:
            items.append(item)
        else:
            self.truncated += 1

    def duplicate(self, name: str, reason: str) -> None:
        self._append(self.duplicates, {"file": name, "reason": reason})

    def reject_file(self, name: str, reason: str) -> None:
        self._append(self.rejected_files, {"file": name, "reason": reason})

    def reject_row(self, problem: dict) -> None:
        self._append(self.rejected_rows, problem)

    def file_without_row(self, name: str) -> None:
        self._append(self.files_without_manifest_row, name)

    def as_dict(self) -> dict:
        return {
            "imported": self.imported,
            "duplicates_skipped": len(self.duplicates),
            "rejected": len(self.rejected_files),
            "faces_found": self.faces_found,
            "faces_too_small": self.faces_too_small,
            "near_duplicate_faces": self.near_duplicate_faces,
            "images_without_faces": self.images_without_faces,
            "duplicates": self.duplicates,
            "rejected_files": self.rejected_files,
            "rejected_rows": self.rejected_rows,
            "files_without_manifest_row": self.files_without_manifest_row,
            "notes": self.notes,
            "detector": self.detector,
            "entries_left_out_of_lists": self.truncated,
        }


def report_lines(report: dict) -> Iterator[str]:
    """The report as plain text lines (command output)."""
    keys = (
        ("imported", "imported"),
        ("duplicates_skipped", "duplicates skipped"),
        ("rejected", "files rejected"),
        ("faces_found", "faces found"),
        ("faces_too_small", "faces below the minimum size (skipped)"),
        ("near_duplicate_faces", "near-duplicate faces (flagged)"),
        ("images_without_faces", "images without faces"),
        ("labels_imported", "labels imported"),
    )
    for key, title in keys:
        if key in report:
            yield f"{title}: {report[key]}"
    for item in report.get("duplicates", []):
        yield f"  skipped {item['file']}: {item['reason']}"
    for item in report.get("rejected_files", []):
        yield f"  rejected file {item['file']}: {item['reason']}"
    for item in report.get("rejected_rows", []):
        yield f"  rejected row {item['line']} ({item['file']}): {item['reason']}"
    missing = report.get("files_without_manifest_row", [])
    if missing:
        yield f"files without a manifest row ({len(missing)}): " + ", ".join(missing[:20])
    for note in report.get("notes", []):
        yield f"note: {note}"


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


def _batch_start(batch: ImportBatch, total: int = 0) -> None:
    batch.status = JobStatus.RUNNING
    batch.started_at = timezone.now()
    batch.total = total
    batch.done = 0
    batch.save(update_fields=["status", "started_at", "total", "done"])


def _batch_finish(
    batch: ImportBatch, report: dict, *, status: str = JobStatus.SUCCEEDED, error: str = ""
) -> ImportBatch:
    batch.status = status
    batch.report = report
    batch.error = error
    batch.finished_at = timezone.now()
    batch.save(update_fields=["status", "report", "error", "finished_at", "done", "total"])
    logger.info("import batch %s %s: %s", batch.pk, status, error or report.get("imported"))
    return batch


def import_batch_fail(*, batch_id: int, reason: str) -> None:
    """Mark a batch failed (used by the task when the worker hits its time limit)."""
    ImportBatch.objects.filter(
        pk=batch_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
    ).update(status=JobStatus.FAILED, error=reason[:2000], finished_at=timezone.now())


# --- images ------------------------------------------------------------------------------


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
    _batch_start(batch)
    try:
        try:
            listing = upload_list(source)
        except ArchiveRejected as exc:
            return _batch_finish(
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
                return _batch_finish(
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
        return _batch_finish(batch, report.as_dict())
    except Exception as exc:
        # A failure outside any one file (database gone, time limit): record it, keep what
        # was stored (each image is complete), and let the caller see the batch as failed.
        logger.exception("import batch %s failed", batch.pk)
        return _batch_finish(
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
        small = [_for_detection(image) for image in images]
        try:
            found = self.detector.detect([image for image, _ in small])
            return [_scale(boxes, scale) for boxes, (_, scale) in zip(found, small, strict=True)]
        except Exception:
            logger.warning("batched detection failed; retrying image by image", exc_info=True)
        results: list[list[Detection] | Exception] = []
        for image, scale in small:
            try:
                results.append(_scale(self.detector.detect([image])[0], scale))
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
            crops.append((detection, _jpeg(crop), dhash(crop)))
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
            _delete_files(written)
            self.report.duplicate(item.entry.name, REJECT_DUPLICATE.format(name="another import"))
            return
        except Exception as exc:
            _delete_files(written)
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


def _for_detection(image: Image.Image) -> tuple[Image.Image, float]:
    longest = max(image.size)
    if longest <= DETECT_MAX_SIDE:
        return image, 1.0
    scale = longest / DETECT_MAX_SIDE
    size = (max(1, round(image.width / scale)), max(1, round(image.height / scale)))
    return image.resize(size, Image.Resampling.BILINEAR), scale


def _scale(detections: list[Detection], scale: float) -> list[Detection]:
    if scale == 1.0:
        return detections
    return [
        Detection(
            round(d.x * scale), round(d.y * scale), round(d.w * scale), round(d.h * scale), d.score
        )
        for d in detections
    ]


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # the row is gone either way; an orphan file is logged, not fatal
            logger.warning("could not delete %s after a failed import", name, exc_info=True)


# --- labeled face sets -------------------------------------------------------------------


def faces_import(
    *, study: Study, folder: Path, labels: bytes, labels_name: str, user=None
) -> ImportBatch:
    """Import pre-cropped faces with known labels as training data (the import_faces command).

    Each face becomes Face(origin=imported, coding_status=complete), so it is never handed to
    coders, plus a KnownLabel(usage=train, source=labels_name), kept apart from coder votes.
    """
    batch = ImportBatch.objects.create(
        study=study,
        kind=ImportBatch.Kind.FACES,
        created_by=user,
        source_name=f"{folder} ({labels_name})"[:500],
    )
    report = ImportReport()
    _batch_start(batch)
    try:
        try:
            parsed = labels_parse(labels, vocabulary=LABEL_VOCABULARY)
        except CsvError as exc:
            return _batch_finish(
                batch,
                report.as_dict(),
                status=JobStatus.FAILED,
                error=BATCH_MANIFEST_UNUSABLE.format(reason=exc),
            )
        try:
            listing = folder_list(folder)
        except ArchiveRejected as exc:
            return _batch_finish(
                batch,
                report.as_dict(),
                status=JobStatus.FAILED,
                error=BATCH_UPLOAD_UNUSABLE.format(reason=exc),
            )
        report.notes.extend(parsed.notes)
        for problem in parsed.problems:
            report.reject_row(problem.as_dict())
        batch.total = len(parsed.rows)
        batch.save(update_fields=["total"])
        known = HashIndex(
            (pk, value)
            for pk, text in Face.objects.filter(study=study, source_image=None).values_list(
                "id", "phash"
            )
            if (value := hash_int(text)) is not None
        )
        existing = set(
            Face.objects.filter(study=study, origin=Face.Origin.IMPORTED).values_list(
                "crop_sha256", flat=True
            )
        )
        labeled: set[str] = set()
        root = folder.resolve()
        for row in parsed.rows:
            labeled.add(row.path)
            _face_import_one(study, batch, root, row, labels_name, report, known, existing)
            batch.done += 1
            ImportBatch.objects.filter(pk=batch.pk).update(done=batch.done)
        unlabeled = [entry.name for entry in listing.entries if entry.name not in labeled]
        for name in unlabeled:
            report.file_without_row(name)
        result = report.as_dict()
        result["labels_imported"] = report.imported
        return _batch_finish(batch, result)
    except Exception as exc:
        logger.exception("face import batch %s failed", batch.pk)
        return _batch_finish(
            batch,
            report.as_dict(),
            status=JobStatus.FAILED,
            error=BATCH_CRASHED.format(reason=f"{type(exc).__name__}: {exc}"[:1000]),
        )


def _face_file_read(root: Path, relative: str) -> bytes:
    """The bytes of root/relative, refusing links and anything resolving outside root."""
    try:
        name = path_normalise(relative)
    except UnsafePath as exc:
        raise EntryRejected(str(exc)) from None
    path = root / name
    if not path.exists() and not path.is_symlink():
        raise EntryRejected(REJECT_NO_FILE)
    if path.is_symlink() or not path.is_file():
        raise EntryRejected(REJECT_NOT_FILE)
    if not path.resolve().is_relative_to(root):
        raise EntryRejected(REJECT_NOT_FILE)
    return folder_entry_read(path)


def folder_entry_read(path: Path) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(MAX_ENTRY_BYTES + 1)
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryRejected(ENTRY_TOO_LARGE.format(limit=MAX_ENTRY_BYTES))
    return data


def _face_import_one(
    study: Study,
    batch: ImportBatch,
    root: Path,
    row: LabelRow,
    source: str,
    report: ImportReport,
    known: HashIndex,
    existing: set[str],
) -> None:
    try:
        data = _face_file_read(root, row.path)
        opened = image_open(data)
    except (EntryRejected, ImageRejected, OSError) as exc:
        report.reject_row({"line": row.line, "file": row.path, "reason": str(exc)})
        return
    crop = square_resize(opened.image, size=CROP_SIZE)
    crop_bytes = _jpeg(crop)
    crop_sha = hashlib.sha256(crop_bytes).hexdigest()
    if crop_sha in existing:
        report.duplicate(row.path, REJECT_DUPLICATE.format(name="an imported face"))
        return
    phash = dhash(crop)
    near = known.nearest(phash)
    written: list[str] = []
    try:
        with transaction.atomic():
            face = Face(
                study=study,
                origin=Face.Origin.IMPORTED,
                crop_sha256=crop_sha,
                original_name=row.path[:500],
                phash=hash_hex(phash),
                near_duplicate_of_id=near,
                coding_status=FaceStatus.COMPLETE,
                votes_target=study.votes_per_face,
            )
            face.crop.save(f"{crop_sha[:24]}.jpg", ContentFile(crop_bytes), save=False)
            written.append(face.crop.name)
            face.save()
            KnownLabel.objects.create(
                face=face,
                source=source[:200],
                usage=KnownLabel.Usage.TRAIN,
                gender=row.gender,
                race=row.race,
                age_band=row.age_band,
                glasses=row.glasses,
                quality=row.quality,
                extra={**row.extra, "batch": batch.pk, "line": row.line},
            )
    except Exception as exc:
        _delete_files(written)
        logger.warning("storing imported face %s failed", row.path, exc_info=True)
        report.reject_row(
            {"line": row.line, "file": row.path, "reason": REJECT_STORE.format(detail=exc)}
        )
        return
    existing.add(crop_sha)
    known.add(face.pk, phash)
    report.imported += 1
    report.faces_found += 1
    report.near_duplicate_faces += near is not None
