"""Importing a labeled face set: pre-cropped faces plus a labels CSV, as training data.

From a folder (the import_faces command) or an uploaded zip (the study's import page, run by
the import_faces task). Each face becomes Face(origin=imported, coding_status=complete), so it
is never handed to coders, with a KnownLabel(usage=train, source=<labels file name>) kept apart
from coder votes. Each face and its label are stored in one transaction; a bad row never stops
the others. Both run under a claim with heartbeat and progress, finished by the holder of the
claim, and a lost worker's batch is swept like an image import (annotate.services.import_jobs).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from annotate.ingest.archive import (
    ENTRY_TOO_LARGE,
    MAX_ENTRY_BYTES,
    ArchiveRejected,
    EntryRejected,
    folder_list,
    upload_list,
)
from annotate.ingest.crops import CROP_SIZE, square_resize
from annotate.ingest.csvtext import CsvError
from annotate.ingest.images import ImageRejected, image_open
from annotate.ingest.labels_csv import LabelRow, LabelVocabulary, labels_parse
from annotate.ingest.paths import UnsafePath, path_normalise
from annotate.ingest.phash import (
    HashIndex,
    crop_print,
    crop_probes,
    dhash,
    hash_hex,
    hash_int,
    print_hex,
)
from annotate.labels import CLASSES, AgeBand, Glasses, Quality, Race
from annotate.models import Face, FaceStatus, ImportBatch, JobStatus, KnownLabel, Study
from annotate.services.import_jobs import Claim, ClaimLost, Progress, batch_claim, batch_conclude
from annotate.services.import_report import (
    BATCH_CRASHED,
    BATCH_LABELS_UNUSABLE,
    BATCH_UPLOAD_UNUSABLE,
    REJECT_DUPLICATE,
    REJECT_STORE,
    ImportReport,
)
from annotate.services.import_sweep import imports_sweep_due
from annotate.services.ingest import archive_limits
from annotate.services.storage import files_delete, jpeg_bytes
from config.celery import broker_check

logger = logging.getLogger(__name__)

REJECT_NO_FILE = "no such file in the folder"
REJECT_NOT_FILE = "not a regular file (link or folder) and was refused"
LABELS_FILE = "labels file"
LABEL_FIELDS = ("gender", "race", "age_band", "glasses", "quality")

LABEL_VOCABULARY = LabelVocabulary(
    gender=CLASSES,
    race=tuple(Race.values),
    age_band=tuple(AgeBand.values),
    glasses=tuple(Glasses.values),
    quality=tuple(Quality.values),
)


def faces_import(
    *, study: Study, folder: Path, labels: bytes, labels_name: str, user=None
) -> ImportBatch:
    """Import pre-cropped faces with known labels as training data now, in this process (the
    import_faces command), under a claim like every import (annotate.services.import_jobs).

    Each face becomes Face(origin=imported, coding_status=complete), so it is never handed to
    coders, plus a KnownLabel(usage=train, source=labels_name), kept apart from coder votes.
    """
    batch = ImportBatch.objects.create(
        study=study,
        kind=ImportBatch.Kind.FACES,
        created_by=user,
        source_name=f"{folder} ({labels_name})"[:500],
    )
    claim = batch_claim(batch_id=batch.pk, kind=ImportBatch.Kind.FACES)
    if claim is None:  # cannot happen: the batch was created queued, just now, by this call
        raise RuntimeError(f"import batch {batch.pk} was taken before it started")
    return _faces_run(batch, claim, labels, labels_name, lambda: _FolderFiles(folder))


def labels_batch_create(
    *, study: Study, user, upload: UploadedFile, labels: UploadedFile
) -> ImportBatch:
    """Store an uploaded zip of face crops and its labels CSV, and enqueue their import after
    commit (annotate.tasks.import_faces). The labels file is kept as the batch's manifest.

    Raises BrokerUnavailable before creating anything when the task queue is down.
    """
    from annotate.tasks import import_faces

    broker_check()
    with transaction.atomic():
        batch = ImportBatch(
            study=study,
            kind=ImportBatch.Kind.FACES,
            created_by=user,
            source_name=f"{upload.name or 'faces.zip'} ({labels.name or 'labels.csv'})"[:500],
        )
        batch.upload.save(upload.name or "faces.zip", upload, save=False)
        batch.manifest.save(labels.name or "labels.csv", labels, save=False)
        batch.save()
        transaction.on_commit(lambda: import_faces.delay(batch.pk))
    return batch


def faces_batch_process(*, batch_id: int) -> ImportBatch:
    """Run a queued labeled-face upload (the Celery task's body). Safe to deliver twice: the
    batch is claimed first, so a second copy finds it taken or finished and does nothing; a
    copy run again after its worker was lost counts the faces it stored, not twice."""
    imports_sweep_due()
    claim = batch_claim(batch_id=batch_id, kind=ImportBatch.Kind.FACES)
    if claim is None:
        return ImportBatch.objects.get(pk=batch_id)
    batch = ImportBatch.objects.select_related("study").get(pk=batch_id)
    labels_name = PurePosixPath(batch.manifest.name).name if batch.manifest.name else LABELS_FILE
    try:
        with batch.manifest.open("rb") as handle:
            labels = handle.read()
        with batch.upload.open("rb") as upload:
            return _faces_run(batch, claim, labels, labels_name, lambda: _ArchiveFiles(upload))
    except Exception as exc:  # the stored upload is unreadable: nothing to import
        logger.exception("face import batch %s could not read its upload", batch_id)
        return batch_conclude(
            claim=claim,
            report=ImportReport(rows_file=LABELS_FILE).as_dict(),
            status=JobStatus.FAILED,
            error=BATCH_CRASHED.format(reason=f"{type(exc).__name__}: {exc}"[:1000]),
        )


class _FolderFiles:
    """The face files of a folder on this machine (the command), read safely by name."""

    def __init__(self, folder: Path) -> None:
        self.listing = folder_list(folder)  # ArchiveRejected when it is not a folder
        self.root = Path(folder).resolve()

    def read(self, relative: str) -> bytes:
        return _face_file_read(self.root, relative)

    def unlabeled(self, labeled: set[str]) -> list[str]:
        return [entry.name for entry in self.listing.entries if entry.name not in labeled]


class _ArchiveFiles:
    """The face files of an uploaded zip, read by the names in the labels file. When every
    file lies in one top folder (a zipped folder), names are also looked up inside it."""

    def __init__(self, upload) -> None:
        self.listing = upload_list(upload, limits=archive_limits())
        self.entries = {entry.name: entry for entry in self.listing.entries}
        self.refused = {skipped.name: skipped.reason for skipped in self.listing.rejected}
        tops = {name.split("/", 1)[0] for name in self.entries if "/" in name}
        nested = all("/" in name for name in self.entries)
        self.prefix = f"{tops.pop()}/" if len(tops) == 1 and nested else ""

    def _names(self, relative: str) -> list[str]:
        try:
            name = path_normalise(relative)
        except UnsafePath as exc:
            raise EntryRejected(str(exc)) from None
        return [name, self.prefix + name] if self.prefix else [name]

    def read(self, relative: str) -> bytes:
        for name in self._names(relative):
            if name in self.entries:
                return self.entries[name].read()
            if name in self.refused:
                raise EntryRejected(self.refused[name])
        raise EntryRejected(REJECT_NO_FILE)

    def unlabeled(self, labeled: set[str]) -> list[str]:
        named: set[str] = set()
        for path in labeled:
            try:
                named.update(self._names(path))
            except EntryRejected:
                continue
        return [name for name in self.entries if name not in named]


def _faces_run(
    batch: ImportBatch,
    claim: Claim,
    labels: bytes,
    labels_name: str,
    files_open: Callable[[], _FolderFiles | _ArchiveFiles],
) -> ImportBatch:
    """Import every labeled row under `claim`: progress and heartbeat through Progress, the
    batch finished by batch_conclude (only while the claim holds)."""
    study = batch.study
    report = ImportReport(rows_file=LABELS_FILE)
    try:
        try:
            parsed = labels_parse(labels, vocabulary=LABEL_VOCABULARY)
        except CsvError as exc:
            return batch_conclude(
                claim=claim,
                report=report.as_dict(),
                status=JobStatus.FAILED,
                error=BATCH_LABELS_UNUSABLE.format(reason=exc),
            )
        try:
            files = files_open()
        except ArchiveRejected as exc:
            return batch_conclude(
                claim=claim,
                report=report.as_dict(),
                status=JobStatus.FAILED,
                error=BATCH_UPLOAD_UNUSABLE.format(reason=exc),
            )
        report.notes.extend(parsed.notes)
        for problem in parsed.problems:
            report.reject_row(problem.as_dict())
        for warning in parsed.warnings:
            report.warn_row(warning.as_dict())
        ImportBatch.objects.filter(pk=batch.pk).update(total=len(parsed.rows))
        progress = Progress(claim)
        # Imported faces have no query: each is compared with every imported face of the
        # study, keyed by the first face of its cluster.
        known = HashIndex(
            (first or pk, value)
            for pk, first, text in Face.objects.filter(study=study, source_image=None).values_list(
                "id", "near_duplicate_of_id", "crop_print"
            )
            if (value := hash_int(text)) is not None
        )
        existing: dict[str, _Kept] = {
            sha: _Kept(
                name,
                extra.get("line") if isinstance(extra, dict) else None,
                labels,
                extra.get("batch") if isinstance(extra, dict) else None,
            )
            for sha, name, extra, *labels in KnownLabel.objects.filter(
                face__study=study, face__origin=Face.Origin.IMPORTED
            )
            .order_by("pk")
            .values_list(
                "face__crop_sha256",
                "face__original_name",
                "extra",
                *LABEL_FIELDS,
            )
        }
        # A file whose row was rejected is reported with its row, not as unlisted.
        labeled = {problem.path for problem in parsed.problems}
        for row in parsed.rows:
            labeled.add(row.path)
            _face_import_one(study, batch, files, row, labels_name, report, known, existing)
            progress.advance(1)
        progress.advance(0, flush=True)
        for name in files.unlabeled(labeled):
            report.file_without_row(name)
        result = report.as_dict()
        result["labels_imported"] = report.imported
        return batch_conclude(claim=claim, report=result)
    except ClaimLost:
        logger.warning(
            "face import batch %s was taken over by another delivery; this copy stops", batch.pk
        )
        batch.refresh_from_db()
        return batch
    except Exception as exc:
        logger.exception("face import batch %s failed", batch.pk)
        return batch_conclude(
            claim=claim,
            report=report.as_dict(),
            status=JobStatus.FAILED,
            error=BATCH_CRASHED.format(reason=f"{type(exc).__name__}: {exc}"[:1000]),
        )


@dataclass(frozen=True)
class _Kept:
    """The face a picture was first imported as: what a later copy's labels are checked against."""

    file: str
    line: int | None
    labels: list[str]
    batch: int | None  # the import that stored it


def _labels_text(labels: list[str]) -> str:
    return ", ".join(
        f"{name}={value}" for name, value in zip(LABEL_FIELDS, labels, strict=True) if value
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
    files: _FolderFiles | _ArchiveFiles,
    row: LabelRow,
    source: str,
    report: ImportReport,
    known: HashIndex,
    existing: dict[str, _Kept],
) -> None:
    try:
        data = files.read(row.path)
        opened = image_open(data)
    except (EntryRejected, ImageRejected, OSError) as exc:
        report.reject_row({"line": row.line, "file": row.path, "reason": str(exc)})
        return
    crop = square_resize(opened.image, size=CROP_SIZE)
    crop_bytes = jpeg_bytes(crop)
    crop_sha = hashlib.sha256(crop_bytes).hexdigest()
    labels = [row.gender, row.race, row.age_band, row.glasses, row.quality]
    kept = existing.get(crop_sha)
    if kept is not None and kept.batch == batch.pk and kept.file == row.path[:500]:
        # This very row, stored by an earlier run of this batch (a task run again after its
        # worker was lost): count it, do not store it twice.
        report.imported += 1
        report.faces_found += 1
        return
    if kept is not None:
        report.duplicate(row.path, REJECT_DUPLICATE.format(name=kept.file))
        if kept.labels != labels:
            report.label_conflict(
                {
                    "line": row.line,
                    "file": row.path,
                    "labels": _labels_text(labels),
                    "kept_line": kept.line,
                    "kept_file": kept.file,
                    "kept_labels": _labels_text(kept.labels),
                }
            )
        return
    fingerprint = crop_print(crop)
    near = known.nearest(*crop_probes(crop))
    written: list[str] = []
    try:
        with transaction.atomic():
            face = Face(
                study=study,
                origin=Face.Origin.IMPORTED,
                crop_sha256=crop_sha,
                original_name=row.path[:500],
                phash=hash_hex(dhash(crop)),
                crop_print=print_hex(fingerprint),
                near_duplicate_of_id=near,
                coding_status=FaceStatus.COMPLETE,
                votes_target=study.votes_per_face,
            )
            face.crop.save("crop.jpg", ContentFile(crop_bytes), save=False)  # named at random
            assert face.crop.name is not None  # save() named it
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
        files_delete(written)
        logger.warning("storing imported face %s failed", row.path, exc_info=True)
        report.reject_row(
            {"line": row.line, "file": row.path, "reason": REJECT_STORE.format(detail=exc)}
        )
        return
    existing[crop_sha] = _Kept(row.path, row.line, labels, batch.pk)
    known.add(near or face.pk, fingerprint)
    report.imported += 1
    report.faces_found += 1
    report.near_duplicate_faces += near is not None
