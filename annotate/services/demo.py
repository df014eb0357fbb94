"""The demo: accounts for every role, a study of synthetic faces (annotate.synthetic) and a
study of real labeled faces (the FairFace sample shipped in annotate/demo/fairface224)."""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from annotate.models import (
    Face,
    FaceStatus,
    ImportBatch,
    JobStatus,
    KnownLabel,
    MemberRole,
    SourceImage,
    Study,
)
from annotate.roles import Role, groups_ensure
from annotate.services.ingest_faces import faces_import
from annotate.services.studies import study_slug_check
from annotate.services.team import member_add
from annotate.synthetic import WEAK_SUBGROUP, SyntheticFace, draw_face, draw_scene, face_specs

if TYPE_CHECKING:
    from modeling.models import TrainingRun

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "facet-demo"
DEMO_ACCOUNTS: tuple[tuple[str, Role], ...] = (
    ("admin", Role.ADMIN),
    ("researcher", Role.RESEARCHER),
    ("coder1", Role.CODER),
    ("coder2", Role.CODER),
    ("coder3", Role.CODER),
)
TRUTH_SOURCE = "demo generator (hidden truth)"
TRAIN_SOURCE = "demo labeled set"
# Share of demo faces that arrive as an already-labeled training set (the published study
# started from ~10,000 human-coded faces); the rest go to the coders.
LABELED_SHARE = 0.4
FACES_PER_SCENE = 2


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    password: str
    created: bool


def demo_accounts_ensure() -> list[DemoAccount]:
    """Create the demo users (idempotent); existing users keep their passwords."""
    groups = groups_ensure()
    User = get_user_model()
    accounts = []
    for username, role in DEMO_ACCOUNTS:
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.is_staff = user.is_superuser = role == Role.ADMIN
            user.save()
        user.groups.add(groups[role])
        accounts.append(DemoAccount(username, role, DEMO_PASSWORD, created))
    return accounts


@dataclass(frozen=True)
class DemoResult:
    study: Study
    created: bool
    faces: int
    labeled: int
    images: int


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def demo_study_load(*, slug: str = "demo", faces: int = 400, seed: int = 7) -> DemoResult:
    """Create the demo study with `faces` synthetic faces, unless it already has demo data.

    Deterministic by seed. Faces in the first LABELED_SHARE arrive as an imported labeled set
    (training labels); the others come inside 'search result' images and go to the coders.
    Every face carries its hidden truth as a KnownLabel with usage=truth. Raises
    ValidationError for a slug no study may have.
    """
    study_slug_check(slug)
    study, _ = Study.objects.get_or_create(
        slug=slug,
        defaults={
            "title": "Demo: who is pictured at work?",
            "description": (
                "Synthetic faces for jobs × countries. Planted weakness: gender cues are weak "
                f"for {WEAK_SUBGROUP[0]} = {WEAK_SUBGROUP[1]}, so models are less accurate there."
            ),
        },
    )
    existing = study.imports.filter(kind=ImportBatch.Kind.DEMO, status=JobStatus.SUCCEEDED).first()
    if existing is not None:
        return DemoResult(
            study,
            False,
            study.faces.count(),
            existing.report.get("labeled", 0),
            study.images.count(),
        )
    specs = list(face_specs(faces, seed=seed))
    n_labeled = int(len(specs) * LABELED_SHARE)
    with transaction.atomic():
        batch = ImportBatch.objects.create(
            study=study,
            kind=ImportBatch.Kind.DEMO,
            source_name=f"synthetic seed={seed}",
            status=JobStatus.RUNNING,
            total=len(specs),
            started_at=timezone.now(),
        )
        labeled = [_labeled_face(study, spec, seed) for spec in specs[:n_labeled]]
        coded: list[tuple[Face, SyntheticFace]] = []
        images = 0
        by_query = sorted(specs[n_labeled:], key=lambda spec: (spec.job, spec.country, spec.index))
        for _, grouped in groupby(by_query, key=lambda spec: (spec.job, spec.country)):
            group = list(grouped)
            for start in range(0, len(group), FACES_PER_SCENE):
                coded.extend(
                    _scene_faces(study, batch, group[start : start + FACES_PER_SCENE], seed)
                )
                images += 1
        pairs = labeled + coded
        Face.objects.bulk_create([face for face, _ in pairs], batch_size=500)
        KnownLabel.objects.bulk_create(
            [_known(face, spec, TRUTH_SOURCE, KnownLabel.Usage.TRUTH) for face, spec in pairs]
            + [_known(face, spec, TRAIN_SOURCE, KnownLabel.Usage.TRAIN) for face, spec in labeled],
            batch_size=500,
        )
        batch.status = JobStatus.SUCCEEDED
        batch.done = len(specs)
        batch.finished_at = timezone.now()
        batch.report = {
            "faces": len(specs),
            "labeled": n_labeled,
            "images": images,
            "seed": seed,
            "weak_subgroup": list(WEAK_SUBGROUP),
        }
        batch.save()
    logger.info(
        "demo study %s: %d faces (%d labeled), %d images", slug, len(specs), n_labeled, images
    )
    return DemoResult(study, True, len(specs), n_labeled, images)


def _labeled_face(study: Study, spec: SyntheticFace, seed: int) -> tuple[Face, SyntheticFace]:
    data = _jpeg(draw_face(spec, seed=seed))
    face = Face(
        study=study,
        origin=Face.Origin.IMPORTED,
        crop_sha256=hashlib.sha256(data).hexdigest(),
        original_name=f"labeled/{spec.index:05d}.jpg",
        coding_status=FaceStatus.COMPLETE,
        votes_target=study.votes_per_face,
    )
    face.crop.save(f"demo-{spec.index:05d}.jpg", ContentFile(data), save=False)
    return face, spec


def _scene_faces(study: Study, batch: ImportBatch, specs: list[SyntheticFace], seed: int):
    tiles = [draw_face(spec, seed=seed) for spec in specs]
    scene, boxes = draw_scene(tiles, seed=seed * 7919 + specs[0].index)
    data = _jpeg(scene)
    first = specs[0]
    image = SourceImage(
        study=study,
        batch=batch,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        width=scene.width,
        height=scene.height,
        original_name=f"{first.country}/{first.job}/{first.rank:04d}.jpg",
        query=first.query,
        job=first.job,
        country=first.country,
        language=first.language,
        rank=first.rank,
        source_url=f"https://example.org/demo/{first.country}/{first.job}/{first.rank}",
    )
    image.file.save(f"demo-scene-{first.index:05d}.jpg", ContentFile(data), save=False)
    image.save()
    faces = []
    for spec, tile, (x, y, w, h) in zip(specs, tiles, boxes, strict=True):
        crop = _jpeg(tile)
        face = Face(
            study=study,
            source_image=image,
            origin=Face.Origin.DEMO,
            crop_sha256=hashlib.sha256(crop).hexdigest(),
            box_x=x,
            box_y=y,
            box_w=w,
            box_h=h,
            detector="demo-generator",
            detector_score=1.0,
            votes_target=study.votes_per_face,
        )
        face.crop.save(f"demo-{spec.index:05d}.jpg", ContentFile(crop), save=False)
        faces.append((face, spec))
    return faces


def _known(face: Face, spec: SyntheticFace, source: str, usage: str) -> KnownLabel:
    return KnownLabel(
        face=face,
        source=source,
        usage=usage,
        gender=spec.gender,
        race=spec.race,
        age_band=spec.age_band,
        glasses=spec.glasses,
        quality=spec.quality,
        extra={
            "skin_tone": spec.skin_tone,
            "cue_strength": round(spec.cue_strength, 3),
            "job": spec.job,
            "country": spec.country,
        },
    )


def demo_members_add(
    *, study: Study, roles: tuple[Role, ...] = (Role.RESEARCHER, Role.CODER)
) -> None:
    """Put the demo accounts with these roles on the study (idempotent)."""
    User = get_user_model()
    wanted = {name: role for name, role in DEMO_ACCOUNTS if role in roles}
    for user in User.objects.filter(username__in=wanted):
        # Admins act on every study without a membership.
        if wanted[user.username] in MemberRole.values:
            member_add(study=study, user=user, role=MemberRole(wanted[user.username]))


REAL_FACES_DIR = Path(__file__).resolve().parent.parent / "demo" / "fairface224"
REAL_FACES_SLUG = "fairface"
REAL_FACES_TITLE = "Real faces (FairFace sample)"
REAL_FACES_DESCRIPTION = (
    "540 real face photographs with perceived gender and age band (30 per band and gender), "
    "imported as a labeled training set. From FairFace (Kärkkäinen & Joo, WACV 2021), as "
    "sampled by thlaiquid-ai/demographic-test-images; CC BY 4.0; resized to 224 px. "
    "See annotate/demo/fairface224/README.md."
)
REAL_FACES_MISSING = (
    "The real-faces sample is missing: {folder} should hold labels.csv and the images "
    "(it ships with the project; restore it from git)."
)
# The shipped ImageNet backbone: its weights come inside a package, so this works offline.
REAL_FACES_TRAINING = {"backbone": "efficientnet_lite0", "weights": "default"}


class RealFacesMissing(FileNotFoundError):
    """The shipped sample folder is not there (a damaged checkout)."""


@dataclass(frozen=True)
class RealFacesResult:
    study: Study
    batch: ImportBatch | None  # the import this call ran; None when the study already had it
    faces: int


def demo_real_faces_load(
    *, slug: str = REAL_FACES_SLUG, folder: Path = REAL_FACES_DIR
) -> RealFacesResult:
    """Create the real-faces study and import the labeled sample, unless an import succeeded.

    Goes through `faces_import`, the path of `manage.py import_faces DIR --labels CSV`, so the
    faces are Face(origin=imported) with a KnownLabel(usage=train, source=labels.csv). A run
    after a failed or interrupted import imports again; faces already stored are skipped as
    duplicates. Raises RealFacesMissing, before writing anything, when the folder is gone.
    """
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise RealFacesMissing(REAL_FACES_MISSING.format(folder=folder))
    study_slug_check(slug)
    study, _ = Study.objects.get_or_create(
        slug=slug, defaults={"title": REAL_FACES_TITLE, "description": REAL_FACES_DESCRIPTION}
    )
    if study.imports.filter(kind=ImportBatch.Kind.FACES, status=JobStatus.SUCCEEDED).exists():
        return RealFacesResult(study, None, study.faces.count())
    batch = faces_import(
        study=study, folder=folder, labels=labels.read_bytes(), labels_name=labels.name
    )
    logger.info("real-faces study %s: import batch %s %s", slug, batch.pk, batch.status)
    return RealFacesResult(study, batch, study.faces.count())


def demo_training_ensure(*, study: Study) -> TrainingRun | None:
    """Queue one training run of the shipped pretrained backbone (REAL_FACES_TRAINING).

    Does nothing (returns None) when the study already has a model version or a run queued or
    running. Needs the broker, not a worker: on the filesystem broker the task waits in its
    folder until a worker starts. Raises BrokerUnavailable, creating nothing, when it is down.
    """
    # Imported here: training pulls in torch, which the accounts and the synthetic demo
    # do not need.
    from modeling.services.training import training_run_create, training_runs_sweep

    # A run left "running" by a worker that was stopped is marked failed first, so it does
    # not block a new one.
    training_runs_sweep()
    busy = study.training_runs.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING))
    if study.model_versions.exists() or busy.exists():
        return None
    return training_run_create(study=study, config=dict(REAL_FACES_TRAINING))
