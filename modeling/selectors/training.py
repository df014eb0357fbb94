"""What a training run learns from: the labeled faces of a study, with provenance.

Labels: the coders' label of each trusted face by the study's aggregation method (majority
or Dawid–Skene; an adjudication overrides either; see annotate.selectors.labels), then
imported training labels (KnownLabel usage=train) for faces without one. Hidden truth
(usage=truth) is never used. Only female/male train.
Excluded: faces in any validation round, faces triaged as "not a face", faces whose coding
status is excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from annotate.labels import CLASSES
from annotate.models import Face, FaceStatus, KnownLabel, Study
from annotate.selectors.labels import face_labels
from modeling.models import ValidationItem
from modeling.selectors.triage import triage_counts, triage_not_face_ids

SOURCE_IMPORTED = "imported"


@dataclass(frozen=True)
class TrainingExample:
    face_id: int
    label: str
    source: str
    crop_name: str
    crop_sha256: str
    group: str  # near-duplicate cluster: "face:<id of its first face>" (annotate.ingest.phash)


@dataclass
class TrainingSet:
    examples: list[TrainingExample]
    excluded: dict[str, int] = field(default_factory=dict)
    triage: dict[str, int] = field(default_factory=dict)
    # The aggregation method behind the coders' labels and, for Dawid–Skene, its convergence.
    aggregation: dict[str, object] = field(default_factory=dict)


def training_set_select(*, study: Study) -> TrainingSet:
    """The study's training examples, sorted by face id, and why others were left out."""
    faces = Face.objects.filter(study=study)
    in_validation = set(
        ValidationItem.objects.filter(face__study=study).values_list("face_id", flat=True)
    )
    not_face = triage_not_face_ids(study_id=study.pk)
    excluded_status = set(
        faces.filter(coding_status=FaceStatus.EXCLUDED).values_list("pk", flat=True)
    )
    coded = face_labels(study=study)
    # "can't tell", "not a face" and a Dawid–Skene tie are no training label.
    labels: dict[int, tuple[str, str]] = {
        int(face_id): (label, source)
        for face_id, label, source in zip(
            coded.frame.index, coded.frame["label"], coded.frame["source"], strict=True
        )
        if label in CLASSES
    }
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
        .values_list("pk", "crop", "crop_sha256", "near_duplicate_of_id")
    )
    examples = [
        TrainingExample(
            face_id=pk,
            label=labels[pk][0],
            source=labels[pk][1],
            crop_name=crop,
            crop_sha256=sha,
            group=f"face:{first or pk}",
        )
        for pk, crop, sha, first in rows
    ]
    return TrainingSet(
        examples=examples,
        excluded=excluded,
        triage=triage_counts(study=study),
        aggregation=coded.provenance(),
    )
