"""Reads about studies: one by its name (the commands), and the landing pages."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from annotate.models import FaceStatus, MemberRole, Membership, Study
from annotate.roles import Role, user_roles
from annotate.selectors.waiting import WAITING_STATUSES

STUDY_NOT_FOUND = (
    "no study {slug!r}; existing studies: {existing} "
    "(create one with: python manage.py study create {slug} --title ...)"
)


class StudyNotFound(LookupError):
    pass


def study_get(*, slug: str) -> Study:
    """The study named `slug`, or StudyNotFound listing the existing ones."""
    try:
        return Study.objects.get(slug=slug)
    except Study.DoesNotExist:
        existing = ", ".join(Study.objects.values_list("slug", flat=True)[:50]) or "none"
        raise StudyNotFound(STUDY_NOT_FOUND.format(slug=slug, existing=existing)) from None


def studies_for_user(*, user, role: MemberRole | None = None) -> QuerySet[Study]:
    """The studies `user` belongs to (with `role` there, if given; admins: all), each with
    `paused_reason` and `paused_at` of the user's membership (None when not paused)."""
    if Role.ADMIN in user_roles(user):
        studies = Study.objects.all()
    else:
        memberships = Membership.objects.filter(user=user.pk)
        if role is not None:
            memberships = memberships.filter(role=role)
        studies = Study.objects.filter(pk__in=memberships.values("study_id"))
    mine = Membership.objects.filter(study=OuterRef("pk"), user=user.pk)
    return studies.annotate(
        paused_at=Subquery(mine.values("paused_at")[:1]),
        paused_reason=Subquery(mine.values("paused_reason")[:1]),
    )


@dataclass(frozen=True)
class StudyOverview:
    study: Study
    images: int
    faces: int
    faces_open: int
    faces_complete: int
    faces_adjudication: int
    faces_excluded: int
    faces_waiting: int  # split faces waiting for an extra coder or a researcher
    votes: int
    # When the rows were read, for figures stored by annotate.services.summaries.
    as_of: datetime | None = None

    def figures(self) -> dict[str, int]:
        """The counts, as annotate.services.summaries stores them."""
        return {k: v for k, v in asdict(self).items() if k not in ("study", "as_of")}

    @classmethod
    def from_figures(
        cls, study: Study, figures: dict[str, int], *, as_of: datetime
    ) -> StudyOverview:
        return cls(study=study, as_of=as_of, **figures)

    @property
    def percent_complete(self) -> int:
        counted = self.faces - self.faces_excluded
        return int(100 * self.faces_complete / counted) if counted else 0


def study_overview(*, study: Study) -> StudyOverview:
    """The study's counts, read from its rows now (the pages show the stored copy:
    annotate.services.summaries.overview_read)."""
    faces = study.faces.aggregate(
        total=Count("id"),
        open=Count("id", filter=Q(coding_status=FaceStatus.OPEN)),
        complete=Count("id", filter=Q(coding_status=FaceStatus.COMPLETE)),
        adjudication=Count("id", filter=Q(coding_status=FaceStatus.ADJUDICATION)),
        excluded=Count("id", filter=Q(coding_status=FaceStatus.EXCLUDED)),
        waiting=Count("id", filter=Q(consensus__status__in=WAITING_STATUSES)),
    )
    return StudyOverview(
        study=study,
        images=study.images.count(),
        faces=faces["total"],
        faces_open=faces["open"],
        faces_complete=faces["complete"],
        faces_adjudication=faces["adjudication"],
        faces_excluded=faces["excluded"],
        faces_waiting=faces["waiting"],
        votes=study.faces.filter(votes__retracted_at__isnull=True).aggregate(n=Count("votes"))["n"],
    )
