"""Who may see which face crop and source image: the one rule behind every media view.

Admins see everything. Everyone else must be a member of the study now, read on every
request (no cached permission), so removal from a study revokes access at once. Researchers
of the study (their membership's role) see all its faces and images; coders only faces they hold a live lease on or
have coded, and of source images only the box-drawn views of those faces
(annotate.views.media.face_source), never the image file itself.
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from annotate.models import (
    Assignment,
    AssignmentStatus,
    Face,
    MemberRole,
    Membership,
    SourceImage,
    Vote,
)
from annotate.roles import Role, user_roles


def _member_role(*, study_id: int, user) -> str | None:
    """The user's role in the study (MemberRole), or None for a non-member."""
    return (
        Membership.objects.filter(study_id=study_id, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )


def _coder_holds_or_coded(*, face_id: int, user) -> bool:
    live_lease = Q(status=AssignmentStatus.LEASED, expires_at__gt=timezone.now())
    held = Assignment.objects.filter(face_id=face_id, coder=user).filter(
        live_lease | Q(status=AssignmentStatus.SUBMITTED)
    )
    return held.exists() or Vote.objects.filter(face_id=face_id, coder=user).exists()


def face_media_allowed(*, face: Face, user) -> bool:
    """May `user` see `face`'s crop and its source image with the box drawn?"""
    roles = user_roles(user)
    if Role.ADMIN in roles:
        return True
    member_role = _member_role(study_id=face.study_id, user=user)
    if member_role is None:
        return False
    if member_role == MemberRole.RESEARCHER and Role.RESEARCHER in roles:
        return True
    return Role.CODER in roles and _coder_holds_or_coded(face_id=face.pk, user=user)


def image_media_allowed(*, image: SourceImage, user) -> bool:
    """May `user` open `image` itself (display copy or original)? Researchers of its study."""
    roles = user_roles(user)
    if Role.ADMIN in roles:
        return True
    return (
        Role.RESEARCHER in roles
        and _member_role(study_id=image.study_id, user=user) == MemberRole.RESEARCHER
    )


def face_for_media(*, pk: int, user) -> Face | None:
    """Face `pk` with its source image when `user` may see it; None when there is no such
    face or the user may not see it (the views answer both with the same 404)."""
    face = Face.objects.select_related("source_image").filter(pk=pk).first()
    if face is None or not face_media_allowed(face=face, user=user):
        return None
    return face


def image_for_media(*, pk: int, user) -> SourceImage | None:
    """Source image `pk` when `user` may open it, else None (as face_for_media)."""
    image = SourceImage.objects.filter(pk=pk).first()
    if image is None or not image_media_allowed(image=image, user=user):
        return None
    return image
