"""Reads about studies for the landing pages."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from annotate.models import FaceStatus, Study
from annotate.roles import Role, user_roles


def studies_for_user(*, user) -> QuerySet[Study]:
    if Role.ADMIN in user_roles(user):
        return Study.objects.all()
    return Study.objects.filter(members=user)


@dataclass(frozen=True)
class StudyOverview:
    study: Study
    images: int
    faces: int
    faces_open: int
    faces_complete: int
    faces_adjudication: int
    faces_excluded: int
    votes: int

    @property
    def percent_complete(self) -> int:
        counted = self.faces - self.faces_excluded
        return int(100 * self.faces_complete / counted) if counted else 0


def study_overview(*, study: Study) -> StudyOverview:
    faces = study.faces.aggregate(
        total=Count("id"),
        open=Count("id", filter=Q(coding_status=FaceStatus.OPEN)),
        complete=Count("id", filter=Q(coding_status=FaceStatus.COMPLETE)),
        adjudication=Count("id", filter=Q(coding_status=FaceStatus.ADJUDICATION)),
        excluded=Count("id", filter=Q(coding_status=FaceStatus.EXCLUDED)),
    )
    return StudyOverview(
        study=study,
        images=study.images.count(),
        faces=faces["total"],
        faces_open=faces["open"],
        faces_complete=faces["complete"],
        faces_adjudication=faces["adjudication"],
        faces_excluded=faces["excluded"],
        votes=study.faces.filter(votes__retracted_at__isnull=True).aggregate(n=Count("votes"))["n"],
    )
