"""Factories for test rows: users, studies, faces (with real crops or bare), and consensus.

Crops are real JPEGs drawn by annotate.synthetic, or, for bare faces, paths with no file
behind them (fast). Rows a service owns come from that service: memberships from
annotate.services.team, votes (and so consensus) from annotate.services.coding.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from annotate.assignment import assignments_take, faces_prioritize
from annotate.labels import Gender
from annotate.models import Assignment, Consensus, Face, MemberRole, Membership, SourceImage, Study
from annotate.roles import Role, groups_ensure
from annotate.services.coding import vote_request_parse, vote_submit
from annotate.services.team import member_add
from annotate.synthetic import draw_face, face_specs
from tests.annotate.coding_helpers import answers_for

_counter = itertools.count(1)
PASSWORD = "test-pass-123"
FIRST_IN_QUEUE = 32767  # the largest Face.priority: ahead of validation samples (100)


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


def _quick_user(study: Study, role: Role | str = Role.CODER, *, username: str | None = None):
    """A member of `study` in `role`, without password hashing (fast; cannot log in)."""
    user = get_user_model().objects.create_user(
        username=username or f"quick-{role}-{next(_counter)}"
    )
    member_add(study=study, user=user, role=role)
    return user


def quick_users(study: Study, n: int, role: Role | str = Role.CODER) -> list:
    """n members of `study` in `role`, without password hashing (fast; cannot log in)."""
    return [_quick_user(study, role) for _ in range(n)]


def make_member(study: Study, user, role: MemberRole | str = MemberRole.CODER) -> Membership:
    """`user` joins `study` with `role` there (and its global group), as the team page does."""
    return member_add(study=study, user=user, role=role)


def make_study(slug: str | None = None, **fields) -> Study:
    slug = slug or f"study-{next(_counter)}"
    return Study.objects.create(slug=slug, title=fields.pop("title", slug.title()), **fields)


def _jpeg(spec, *, seed: int) -> bytes:
    buffer = io.BytesIO()
    draw_face(spec, seed=seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def jpeg_bytes(index: int = 0, *, seed: int = 1) -> bytes:
    return _jpeg(list(face_specs(index + 1, seed=seed))[index], seed=seed)


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


def _bare_face(study: Study, **fields) -> Face:
    token = next(_counter)
    return Face(
        study=study,
        crop=f"faces/bare-{token}.jpg",
        crop_sha256=hashlib.sha256(f"bare-face-{token}".encode()).hexdigest(),
        votes_target=study.votes_per_face,
        **fields,
    )


def bare_faces(study: Study, n: int, **fields) -> list[Face]:
    """n faces whose crops are paths without files (fast), created in bulk."""
    return Face.objects.bulk_create(_bare_face(study, **fields) for _ in range(n))


def make_plain_faces(
    study: Study,
    n: int,
    *,
    jobs=("nurse", "pilot"),
    countries=("de", "us"),
    faces_per_image: int = 2,
) -> list[Face]:
    """n bare faces in search-result images spread over jobs × countries."""
    combos = list(itertools.product(jobs, countries))
    images = []
    for i in range((n + faces_per_image - 1) // faces_per_image):
        job, country = combos[i % len(combos)]
        token = next(_counter)
        images.append(
            SourceImage(
                study=study,
                file=f"images/img-{token}.jpg",
                sha256=hashlib.sha256(f"img{token}".encode()).hexdigest(),
                query=f"{job} {country}",
                job=job,
                country=country,
                language="en",
                rank=i // len(combos) + 1,
            )
        )
    images = SourceImage.objects.bulk_create(images)
    return Face.objects.bulk_create(
        _bare_face(study, source_image=images[i // faces_per_image]) for i in range(n)
    )


def make_faces(study: Study, n: int, *, seed: int = 1, **fields) -> list[Face]:
    """n faces with real crops, created in bulk."""
    faces = []
    for spec in face_specs(n, seed=seed):
        data = _jpeg(spec, seed=seed)
        face = Face(
            study=study,
            crop_sha256=hashlib.sha256(data).hexdigest(),
            votes_target=study.votes_per_face,
            **fields,
        )
        face.crop.save(f"face-{next(_counter)}.jpg", ContentFile(data), save=False)
        faces.append(face)
    return Face.objects.bulk_create(faces)


def _voters(study: Study, n: int) -> list:
    """n coders of `study` kept for faces_vote (made on first need, reused after)."""
    prefix = f"voter-{study.pk}-"
    voters = list(get_user_model().objects.filter(username__startswith=prefix).order_by("pk"))
    for number in range(len(voters), n):
        voters.append(_quick_user(study, username=f"{prefix}{number}"))
    return voters[:n]


def faces_vote(
    answers_by_face: Mapping[int, Sequence[Mapping[str, str]]], *, coders: Sequence | None = None
) -> None:
    """Votes on these faces, cast through the coding service as coders of each face's study
    would cast them: the i-th answers of every face come from the i-th of `coders` (by default
    coders of the study kept for this).

    The faces go to the head of the work queue, each coder takes them one lease at a time
    (assignments_take) and votes (vote_submit); consensus, escalation and the validation hook
    run as for any vote. Questions the study asks that an answers dict leaves out get the
    answers of `answers_for` (none for "not a face"). A face that is not open with a free slot
    is an error.
    """
    faces = Face.objects.filter(pk__in=list(answers_by_face)).select_related("study")
    by_study: dict[int, list[Face]] = {}
    for face in faces:
        by_study.setdefault(face.study_id, []).append(face)
    for study_faces in by_study.values():
        study = study_faces[0].study
        if study.gold_rate > 0:
            raise ValueError("faces_vote: gold faces would mix into the coders' streams")
        n = max(len(answers_by_face[face.pk]) for face in study_faces)
        voters = list(coders) if coders is not None else _voters(study, n)
        with _first_in_queue(study_faces):
            for i, coder in enumerate(voters[:n]):
                pending = {face.pk for face in study_faces if len(answers_by_face[face.pk]) > i}
                while pending:
                    lease = _lease(study, coder, pending)
                    answers = _answers_complete(study, answers_by_face[lease.face_id][i])
                    data = {"assignment": lease.pk, **answers}
                    request = vote_request_parse(study=study, data=data)
                    vote_submit(study=study, coder=coder, request=request)
                    pending.remove(lease.face_id)


def lease_take(face: Face, coder) -> Assignment:
    """`coder`'s lease on `face`, from the one service that hands out work (assignments_take),
    with the face put first in the work queue for that call."""
    with _first_in_queue([face]):
        return _lease(face.study, coder, {face.pk})


@contextmanager
def _first_in_queue(faces: Sequence[Face]) -> Iterator[None]:
    """The faces at the head of the work queue (faces_prioritize), their priorities back after."""
    ids = [face.pk for face in faces]
    priorities: dict[int, list[int]] = {}
    for priority, pk in Face.objects.filter(pk__in=ids).values_list("priority", "pk"):
        priorities.setdefault(priority, []).append(pk)
    faces_prioritize(face_ids=ids, priority=FIRST_IN_QUEUE)
    try:
        yield
    finally:
        for priority, face_ids in priorities.items():
            faces_prioritize(face_ids=face_ids, priority=priority)


def _lease(study: Study, coder, face_ids: set[int]) -> Assignment:
    taken = assignments_take(study=study, coder=coder, n=1)
    if not taken or taken[0].face_id not in face_ids:
        got = f"face {taken[0].face_id}" if taken else "no face"
        raise ValueError(
            f"{coder} was handed {got}, not one of faces {sorted(face_ids)}: are they open "
            "with a free slot, and does the coder hold no other lease?"
        )
    return taken[0]


def _answers_complete(study: Study, given: Mapping[str, str]) -> dict[str, str]:
    if given.get("gender") == Gender.NOT_FACE:  # a coder asked nothing more
        return dict(given)
    return answers_for(study, given["gender"]) | dict(given)


def votes_cast(
    face_id: int, answers: Sequence[Mapping[str, str]], *, coders: Sequence | None = None
) -> Consensus | None:
    """One vote per answers dict on the face (faces_vote); its consensus after them."""
    faces_vote({face_id: answers}, coders=coders)
    return Consensus.objects.filter(face_id=face_id).first()


def faces_code(answers_by_face: Mapping[int, Mapping[str, str]]) -> None:
    """Code each face as its study's K coders would when they all give it these answers."""
    faces = Face.objects.filter(pk__in=list(answers_by_face)).select_related("study")
    k = {face.pk: face.study.votes_per_face for face in faces}
    faces_vote({face_id: [answers] * k[face_id] for face_id, answers in answers_by_face.items()})


def untrained_version(
    study: Study, *, backbone: str, number: int = 1, seed: int = 1, image_size: int | None = None
):
    """A ModelVersion whose checkpoint is `backbone` with random weights and an untrained head,
    saved to the artifacts storage as training saves one: for predictions, which need no
    training (a 64 px resnet18 is fast, a 224 px resnet50 slow enough to kill)."""
    from modeling.ml.backbones import backbone_build
    from modeling.ml.checkpoint import checkpoint_build, checkpoint_bytes
    from modeling.ml.head import Head
    from modeling.models import ModelVersion
    from modeling.services.training import artifact_storage

    built = backbone_build(name=backbone, weights="none", seed=seed, image_size=image_size)
    data = checkpoint_bytes(
        checkpoint_build(
            backbone=built,
            trunk=built.trunk,
            head=Head(built.features),
            config={"hidden": 512},
            classes=["male", "female"],
            threshold=0.5,
            metrics={},
        )
    )
    name = artifact_storage().save(f"models/{study.slug}/v{number}.pt", ContentFile(data))
    return ModelVersion.objects.create(
        study=study,
        number=number,
        backbone=backbone,
        weights="none",
        artifact=name,
        artifact_sha256=hashlib.sha256(data).hexdigest(),
    )
