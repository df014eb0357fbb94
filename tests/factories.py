"""Factories for test rows. Crops are real JPEGs drawn by annotate.synthetic."""

from __future__ import annotations

import hashlib
import io
import itertools

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from annotate.models import Face, MemberRole, Membership, SourceImage, Study
from annotate.roles import Role, groups_ensure
from annotate.services.team import member_add
from annotate.synthetic import draw_face, face_specs

_counter = itertools.count(1)
PASSWORD = "test-pass-123"


def make_user(
    role: Role | None = Role.CODER, *, username: str | None = None, study: Study | None = None
):
    username = username or f"{role or 'user'}{next(_counter)}"
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    if role is not None:
        user.groups.add(groups_ensure()[role])
    if role == Role.ADMIN:
        user.is_staff = user.is_superuser = True
        user.save()
    if study is not None:
        if role in MemberRole.values:
            member_add(study=study, user=user, role=role)
        else:  # admins act on every study; a membership of theirs changes nothing
            study.members.add(user)
    return user


def make_member(study: Study, user, role: MemberRole | str = MemberRole.CODER) -> Membership:
    """`user` joins `study` with `role` there (and its global group), as the team page does."""
    return member_add(study=study, user=user, role=role)


def make_study(slug: str | None = None, **fields) -> Study:
    slug = slug or f"study-{next(_counter)}"
    return Study.objects.create(slug=slug, title=fields.pop("title", slug.title()), **fields)


def jpeg_bytes(index: int = 0, *, seed: int = 1) -> bytes:
    spec = list(face_specs(index + 1, seed=seed))[index]
    buffer = io.BytesIO()
    draw_face(spec, seed=seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_source_image(study: Study, **fields) -> SourceImage:
    data = jpeg_bytes(next(_counter) % 50)
    image = SourceImage(
        study=study,
        sha256=hashlib.sha256(data + str(next(_counter)).encode()).hexdigest(),
        width=128,
        height=128,
        bytes=len(data),
        **fields,
    )
    image.file.save(f"src-{next(_counter)}.jpg", ContentFile(data), save=False)
    image.save()
    return image


def make_faces(study: Study, n: int, *, seed: int = 1, **fields) -> list[Face]:
    """n faces with real crops, created in bulk."""
    faces = []
    for spec in face_specs(n, seed=seed):
        buffer = io.BytesIO()
        draw_face(spec, seed=seed).save(buffer, format="JPEG")
        data = buffer.getvalue()
        face = Face(
            study=study,
            crop_sha256=hashlib.sha256(data).hexdigest(),
            votes_target=study.votes_per_face,
            **fields,
        )
        face.crop.save(f"face-{next(_counter)}.jpg", ContentFile(data), save=False)
        faces.append(face)
    return Face.objects.bulk_create(faces)
