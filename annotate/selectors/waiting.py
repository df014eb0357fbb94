"""Reads for the faces that wait after a split vote: for an extra coder, or for a researcher.

The round and study pages list them, so a researcher sees which face holds a round back and
why. The decision itself (how long a split waits, when it goes to a researcher) is
annotate.consensus's; this module only reads what it needs (whether a coder could take the
extra vote) and reports the result. It imports models only, so both annotate.assignment and
annotate.consensus can use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Exists, Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from annotate.compiled_sql import compiled_rows, queryset_sql
from annotate.models import Assignment, AssignmentStatus, ConsensusStatus, Face, Study, Vote
from annotate.roles import Role

# Assignments that hold a slot on their face (an expired lease holds it until reclaimed). The
# work queue (annotate.assignment) never hands a face to a coder holding one of these on it.
SLOT_STATUSES = (AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED)
WAITING_STATUSES = (ConsensusStatus.ESCALATED, ConsensusStatus.ADJUDICATION)
WAITING_LIMIT = 50


def _coders_for_extra_vote(*, face_id: int, study_id: int) -> QuerySet:
    """Who could take a split face's extra vote: an active study member in the coder role,
    not paused (annotate.access), who holds no slot on it (has not voted on it and is not
    labeling it now), the same rule by which annotate.assignment hands out work."""
    holding = Assignment.objects.filter(
        face_id=face_id, coder=OuterRef("pk"), status__in=SLOT_STATUSES
    )
    return (
        get_user_model()
        .objects.filter(
            is_active=True,
            groups__name=Role.CODER,
            memberships__study_id=study_id,
            memberships__paused_at__isnull=True,
        )
        .filter(~Exists(holding))
    )


def _extra_vote_outlook_sql(*, face_id: int, study_id: int, now: datetime) -> tuple[str, tuple]:
    lease_live = Assignment.objects.filter(
        face_id=face_id, status=AssignmentStatus.LEASED, expires_at__gt=now
    )
    coders = _coders_for_extra_vote(face_id=face_id, study_id=study_id)
    return queryset_sql(
        Face.objects.filter(pk=face_id)
        .annotate(leased=Exists(lease_live), coder=Exists(coders))
        .values_list("leased", "coder")
    )


def extra_vote_outlook(*, face: Face, now: datetime) -> tuple[bool, bool]:
    """For a split face: whether someone holds a live lease on it now, and whether a coder
    who could take its extra vote exists. One statement, built once per process: a tie at
    K votes asks it inside the vote."""
    [(leased, coder)] = compiled_rows(
        "extra_vote_outlook",
        _extra_vote_outlook_sql,
        face_id=face.pk,
        study_id=face.study_id,
        now=now,
    )
    return bool(leased), bool(coder)


@dataclass(frozen=True)
class WaitingFace:
    face: Face
    for_researcher: bool  # False: waiting for an extra coder
    since: datetime  # the split (K-th vote), or when the face went to a researcher
    # For an extra coder: when the face goes to a researcher unless the extra vote came;
    # an extra coder at work (`in_progress`) may still vote until their lease ends.
    deadline: datetime | None
    in_progress: bool


@dataclass(frozen=True)
class WaitingFaces:
    faces: list[WaitingFace]  # the first `WAITING_LIMIT`, longest waiting first
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.faces)


def faces_waiting(
    *,
    study: Study,
    face_ids: Iterable[int] | QuerySet | None = None,
    now: datetime | None = None,
    limit: int = WAITING_LIMIT,
    total: int | None = None,
) -> WaitingFaces:
    """The study's split faces that wait (optionally only those in `face_ids`), longest
    waiting first. `total`: how many wait, where the caller already knows (the study page's
    stored overview); counted otherwise."""
    now = now or timezone.now()
    faces = Face.objects.filter(study=study)
    if face_ids is not None:
        faces = faces.filter(pk__in=face_ids)
    lease_live = Assignment.objects.filter(
        face=OuterRef("pk"), status=AssignmentStatus.LEASED, expires_at__gt=now
    )
    last_vote = (
        Vote.objects.filter(face=OuterRef("pk"), retracted_at__isnull=True)
        .order_by()
        .values("face")
        .annotate(at=Max("created_at"))
        .values("at")
    )
    # Ordered by when the consensus row last changed (the split, or the move to a
    # researcher), one status at a time along the consensus_study_waiting index, so only the
    # rows shown are read, however many wait and however large the other studies are.
    rows = sorted(
        (
            face
            for status in WAITING_STATUSES
            for face in faces.filter(consensus__study=study, consensus__status=status)
            .select_related("consensus", "source_image")
            .annotate(split_at=Subquery(last_vote), in_progress=Exists(lease_live))
            .order_by("consensus__updated_at", "consensus__face")[:limit]
        ),
        key=lambda face: (face.consensus.updated_at, face.pk),
    )[:limit]
    wait = timedelta(minutes=study.escalation_wait_minutes)
    waiting = []
    for face in rows:
        for_researcher = face.consensus.status == ConsensusStatus.ADJUDICATION
        waiting.append(
            WaitingFace(
                face=face,
                for_researcher=for_researcher,
                since=face.consensus.updated_at if for_researcher else face.split_at,
                deadline=None if for_researcher else face.split_at + wait,
                in_progress=face.in_progress and not for_researcher,
            )
        )
    if len(waiting) < limit:
        total = len(waiting)
    elif total is None:
        total = faces.filter(consensus__status__in=WAITING_STATUSES).count()
    else:
        total = max(total, len(waiting))
    return WaitingFaces(faces=waiting, total=total)
