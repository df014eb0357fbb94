"""Reads for the import pages."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from annotate.models import Face, ImportBatch, SourceImage, Study


def imports_for_study(*, study: Study, limit: int = 10) -> QuerySet[ImportBatch]:
    return study.imports.exclude(kind=ImportBatch.Kind.DEMO).order_by("-created_at")[:limit]


def import_counts(*, batch_id: int) -> dict[str, int]:
    """The counts of an image import, read from its rows: images stored, their faces, faces
    flagged as near-duplicates, images without faces. Reports show these, never numbers a
    task carried, so no copy of a task (redelivered, run twice) can contradict the database."""
    images = SourceImage.objects.filter(batch_id=batch_id)
    faces = Face.objects.filter(source_image__batch_id=batch_id)
    return {
        "imported": images.count(),
        "faces_found": faces.count(),
        "near_duplicate_faces": faces.filter(near_duplicate_of__isnull=False).count(),
        "images_without_faces": images.filter(
            ~Exists(Face.objects.filter(source_image=OuterRef("pk")))
        ).count(),
    }


def import_report(*, batch: ImportBatch) -> dict:
    """A finished batch's report; for image imports with the counts read from the rows."""
    if batch.kind != ImportBatch.Kind.IMAGES or not batch.report:
        return batch.report
    return {**batch.report, **import_counts(batch_id=batch.pk)}


def import_status(*, batch: ImportBatch) -> dict:
    """What the progress page polls: status, counts and, once finished, the report."""
    finished = batch.status not in ("queued", "running")
    return {
        "id": batch.pk,
        "status": batch.status,
        "status_display": batch.get_status_display(),
        "done": batch.done,
        "total": batch.total,
        "percent": batch.percent,
        "finished": finished,
        "error": batch.error,
        "report": import_report(batch=batch) if finished else None,
    }
