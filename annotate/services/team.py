"""Who works on a study: adding, pausing, resuming and removing members.

The one writer of `Membership`. Removal and pause take effect at once: the member's live
leases in the study are released in the same transaction (their slots go back to the pool),
and every request reads the membership afresh (annotate.access, annotate.selectors.media),
so the next page, vote or image the member asks for is refused. A coder's "Stop for now"
releases their leases the same way (`leases_release`).

Lock order, as in annotate.assignment: assignment rows before face rows.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotate.consensus import escalations_review
from annotate.models import Assignment, AssignmentStatus, Face, MemberRole, Membership, Study
from annotate.roles import groups_ensure

logger = logging.getLogger(__name__)

NOT_A_MEMBER_OF = "{user} is not a member of study {study!r}."
PAUSE_REASON_MAX = Membership._meta.get_field("paused_reason").max_length


def _now() -> datetime:
    return timezone.now()


@transaction.atomic
def member_add(*, study: Study, user, role: MemberRole | str) -> Membership:
    """Make `user` a member of `study` with `role` (idempotent; an existing member's role
    becomes `role`), and put the user in the global group of that role, which picks their
    home page and lets them through the role checks of the views."""
    role = MemberRole(role)
    membership, created = Membership.objects.get_or_create(
        study=study, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    user.groups.add(groups_ensure()[role])
    # The roles cached on this user object (annotate.roles.user_roles) are stale now.
    user.__dict__.pop("_facet_roles", None)
    logger.info("%s is a %s of study %s", user, role, study.slug)
    return membership


@transaction.atomic
def leases_release(*, study: Study, user) -> int:
    """Release the user's unsubmitted leases in `study` at once and give their slots back, so
    the faces are free for other coders now rather than when the leases lapse; returns the
    number of leases released (0 when the user held none). Other users' leases are untouched.

    Locks the assignment rows, then the faces. After the commit, split faces that were waiting
    for this user's extra vote are decided again (another coder, or a researcher).
    """
    rows = list(
        Assignment.objects.select_for_update()
        .filter(face__study=study, coder=user, status=AssignmentStatus.LEASED)
        .order_by("pk")
        .values_list("pk", "face_id", "gold")
    )
    if not rows:
        return 0
    Assignment.objects.filter(pk__in=[pk for pk, _, _ in rows]).update(
        status=AssignmentStatus.RELEASED
    )
    # A gold lease holds no slot (annotate.services.gold); the others give theirs back.
    face_ids = sorted({face_id for _, face_id, gold in rows if not gold})
    # One coder holds at most one slot per face, so each face gives back exactly one.
    for face_id in face_ids:
        Face.objects.filter(pk=face_id).update(slots_taken=F("slots_taken") - 1)
    logger.info("released %d leases of %s in study %s", len(rows), user, study.slug)
    if face_ids:
        transaction.on_commit(lambda: escalations_review(face_ids=face_ids))
    return len(rows)


@transaction.atomic
def member_remove(*, study: Study, user) -> None:
    """Take `user` off `study` at once: the membership goes and their live leases are
    released. Their votes stay (votes are never deleted). Removing a non-member does nothing."""
    deleted, _ = Membership.objects.filter(study=study, user=user).delete()
    leases_release(study=study, user=user)
    if deleted:
        logger.info("%s removed from study %s", user, study.slug)


@transaction.atomic
def member_pause(*, study: Study, user, reason: str) -> None:
    """Stop `user` taking faces in `study` until resumed; their live leases are released.

    Raises Membership.DoesNotExist (with a message naming both) for a non-member. Pausing a
    paused member keeps the first pause time and takes the new reason.
    """
    membership = _membership_lock(study=study, user=user)
    membership.paused_reason = reason.strip()[:PAUSE_REASON_MAX]
    if membership.paused_at is None:
        membership.paused_at = _now()
    membership.save(update_fields=["paused_at", "paused_reason"])
    leases_release(study=study, user=user)
    logger.info("%s paused in study %s: %s", user, study.slug, membership.paused_reason)


@transaction.atomic
def member_resume(*, study: Study, user) -> None:
    """Let a paused member take faces again (idempotent for one who is not paused)."""
    membership = _membership_lock(study=study, user=user)
    if membership.paused_at is None and not membership.paused_reason:
        return
    membership.paused_at = None
    membership.paused_reason = ""
    membership.save(update_fields=["paused_at", "paused_reason"])
    logger.info("%s resumed in study %s", user, study.slug)


def _membership_lock(*, study: Study, user) -> Membership:
    membership = Membership.objects.select_for_update().filter(study=study, user=user).first()
    if membership is None:
        raise Membership.DoesNotExist(NOT_A_MEMBER_OF.format(user=user, study=study.slug))
    return membership
