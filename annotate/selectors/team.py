"""Reads about a study's members for the team page and `manage.py study show`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q

from annotate.models import Membership, Study


@dataclass(frozen=True)
class MemberRow:
    user_id: int
    username: str
    role: str
    paused_at: datetime | None
    paused_reason: str
    added_at: datetime
    faces_coded: int  # live votes in this study: one per face

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None


def study_members(*, study: Study) -> list[MemberRow]:
    """The study's members, researchers first, each with the faces they have coded in it."""
    coded = Count(
        "user__votes",
        filter=Q(user__votes__face__study=study, user__votes__retracted_at__isnull=True),
    )
    rows = (
        Membership.objects.filter(study=study)
        .select_related("user")
        .annotate(faces_coded=coded)
        .order_by("-role", "user__username")
    )
    return [
        MemberRow(
            user_id=m.user_id,
            username=m.user.get_username(),
            role=m.role,
            paused_at=m.paused_at,
            paused_reason=m.paused_reason,
            added_at=m.added_at,
            faces_coded=m.faces_coded,
        )
        for m in rows
    ]
