"""Importing a labeled face set: pre-cropped faces plus a labels CSV, as training data.

Each face becomes Face(origin=imported, coding_status=complete), so it is never handed to
coders, with a KnownLabel(usage=train, source=<labels file name>) kept apart from coder votes.
Each face and its label are stored in one transaction; a bad row never stops the others.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from django.core.files.base import ContentFile
from django.db import transaction

from annotate.ingest.archive import (
    ENTRY_TOO_LARGE,
    MAX_ENTRY_BYTES,
    ArchiveRejected,
    EntryRejected,
    folder_list,
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
from annotate.services.ingest_common import (
    BATCH_CRASHED,
    BATCH_LABELS_UNUSABLE,
    BATCH_UPLOAD_UNUSABLE,
    REJECT_DUPLICATE,
    REJECT_STORE,
    ImportReport,
    batch_finish,
    batch_start,
    files_delete,
    jpeg_bytes,
)

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
    report = ImportReport(rows_file=LABELS_FILE)
    batch_start(batch)
    try:
        try:
            parsed = labels_parse(labels, vocabulary=LABEL_VOCABULARY)
        except CsvError as exc:
            return batch_finish(
                batch,
                report.as_dict(),
                status=JobStatus.FAILED,
                error=BATCH_LABELS_UNUSABLE.format(reason=exc),
            )
        try:
            listing = folder_list(folder)
        except ArchiveRejected as exc:
            return batch_finish(
                batch,
                report.as_dict(),
                status=JobStatus.FAILED,
                error=BATCH_UPLOAD_UNUSABLE.format(reason=exc),
            )
        report.notes.extend(parsed.notes)
        for problem in parsed.problems:
            report.reject_row(problem.as_dict())
        for warning in parsed.warnings:
            report.warn_row(warning.as_dict())
        batch.total = len(parsed.rows)
        batch.save(update_fields=["total"])
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
            sha: _Kept(name, extra.get("line") if isinstance(extra, dict) else None, labels)
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
        return batch_finish(batch, result)
    except Exception as exc:
        logger.exception("face import batch %s failed", batch.pk)
        return batch_finish(
            batch,
            report.as_dict(),
            status=JobStatus.FAILED,
            error=BATCH_CRASHED.format(reason=f"{type(exc).__name__}: {exc}"[:1000]),
        )


@dataclass(frozen=True)
class _Kept:
    """The face a picture was first imported as: what a later copy's labels are checked against."""

    file: str
    line: int | None
    labels: list[str]


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
    root: Path,
    row: LabelRow,
    source: str,
    report: ImportReport,
    known: HashIndex,
    existing: dict[str, _Kept],
) -> None:
    try:
        data = _face_file_read(root, row.path)
        opened = image_open(data)
    except (EntryRejected, ImageRejected, OSError) as exc:
        report.reject_row({"line": row.line, "file": row.path, "reason": str(exc)})
        return
    crop = square_resize(opened.image, size=CROP_SIZE)
    crop_bytes = jpeg_bytes(crop)
    crop_sha = hashlib.sha256(crop_bytes).hexdigest()
    labels = [row.gender, row.race, row.age_band, row.glasses, row.quality]
    kept = existing.get(crop_sha)
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
    existing[crop_sha] = _Kept(row.path, row.line, labels)
    known.add(near or face.pk, fingerprint)
    report.imported += 1
    report.faces_found += 1
    report.near_duplicate_faces += near is not None
