"""What a training run learns from: the labeled faces of a study, with provenance.

Labels: the consensus of the coders (status agreed or adjudicated; an adjudicated face takes
its latest adjudication's label), then imported training labels (KnownLabel usage=train) for
faces without one. Hidden truth (usage=truth) is never used. Only female/male train.
Excluded: faces in any validation round, faces triaged as "not a face", faces whose coding
status is excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from annotate.labels import CLASSES
from annotate.models import (
    Adjudication,
    Consensus,
    ConsensusStatus,
    Face,
    FaceStatus,
    KnownLabel,
    Study,
)
from modeling.models import Triage, ValidationItem

SOURCE_CONSENSUS = "consensus"
SOURCE_ADJUDICATION = "adjudication"
SOURCE_IMPORTED = "imported"


@dataclass(frozen=True)
class TrainingExample:
    face_id: int
    label: str
    source: str
    crop_name: str
    crop_sha256: str
    group: str  # near-duplicate group: "<query>|<phash>" or "face:<id>"


@dataclass
class TrainingSet:
    examples: list[TrainingExample]
    excluded: dict[str, int] = field(default_factory=dict)
    triage: dict[str, int] = field(default_factory=dict)


def training_set_select(*, study: Study) -> TrainingSet:
    """The study's training examples, sorted by face id, and why others were left out."""
    faces = Face.objects.filter(study=study)
    in_validation = set(
        ValidationItem.objects.filter(face__study=study).values_list("face_id", flat=True)
    )
    not_face = set(
        Triage.objects.filter(face__study=study, decision=Triage.Decision.NOT_FACE).values_list(
            "face_id", flat=True
        )
    )
    excluded_status = set(
        faces.filter(coding_status=FaceStatus.EXCLUDED).values_list("pk", flat=True)
    )
    labels: dict[int, tuple[str, str]] = {}
    adjudicated: list[int] = []
    for face_id, status, label in Consensus.objects.filter(
        face__study=study, status__in=[ConsensusStatus.AGREED, ConsensusStatus.ADJUDICATED]
    ).values_list("face_id", "status", "label"):
        if label in CLASSES:
            labels[face_id] = (label, SOURCE_CONSENSUS)
        if status == ConsensusStatus.ADJUDICATED:
            adjudicated.append(face_id)
    latest: dict[int, str] = {}
    for face_id, label in (
        Adjudication.objects.filter(face_id__in=adjudicated)
        .order_by("face_id", "created_at", "pk")
        .values_list("face_id", "label")
    ):
        latest[face_id] = label
    for face_id, label in latest.items():
        if label in CLASSES:
            labels[face_id] = (label, SOURCE_ADJUDICATION)
        else:  # the researcher decided "can't tell" / "not a face": no training label
            labels.pop(face_id, None)
    for face_id, label in (
        KnownLabel.objects.filter(face__study=study, usage=KnownLabel.Usage.TRAIN)
        .order_by("face_id", "created_at", "pk")
        .values_list("face_id", "gender")
    ):
        if face_id not in labels and label in CLASSES:
            labels[face_id] = (label, SOURCE_IMPORTED)
    excluded = {
        "in_validation": len(in_validation & labels.keys()),
        "triaged_not_face": len(not_face & labels.keys()),
        "coding_excluded": len(excluded_status & labels.keys()),
    }
    keep = labels.keys() - in_validation - not_face - excluded_status
    rows = (
        faces.filter(pk__in=keep)
        .order_by("pk")
        .values_list("pk", "crop", "crop_sha256", "phash", "source_image__query")
    )
    examples = [
        TrainingExample(
            face_id=pk,
            label=labels[pk][0],
            source=labels[pk][1],
            crop_name=crop,
            crop_sha256=sha,
            group=f"{query or ''}|{phash}" if phash else f"face:{pk}",
        )
        for pk, crop, sha, phash, query in rows
    ]
    triage = {
        decision: Triage.objects.filter(face__study=study, decision=decision).count()
        for decision in Triage.Decision.values
    }
    return TrainingSet(examples=examples, excluded=excluded, triage=triage)
