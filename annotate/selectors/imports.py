"""Reads for the import pages and the face-source view."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from annotate.models import Assignment, AssignmentStatus, Face, ImportBatch, Study, Vote
from annotate.roles import Role, user_roles


def imports_for_study(*, study: Study, limit: int = 10) -> QuerySet[ImportBatch]:
    return study.imports.exclude(kind=ImportBatch.Kind.DEMO).order_by("-created_at")[:limit]


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
        "report": batch.report if finished else None,
    }


def face_source_allowed(*, face: Face, user) -> bool:
    """Researchers see faces of their studies; coders only faces they hold or voted on."""
    roles = user_roles(user)
    if Role.ADMIN in roles:
        return True
    if Role.RESEARCHER in roles and face.study.members.filter(pk=user.pk).exists():
        return True
    if Role.CODER in roles:
        live_lease = Q(status=AssignmentStatus.LEASED, expires_at__gt=timezone.now())
        if (
            Assignment.objects.filter(face=face, coder=user)
            .filter(live_lease | Q(status=AssignmentStatus.SUBMITTED))
            .exists()
        ):
            return True
        return Vote.objects.filter(face=face, coder=user).exists()
    return False
