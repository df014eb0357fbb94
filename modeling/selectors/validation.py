"""Reads for validation rounds: the eligible faces, a round's frame, its progress."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from annotate.labels import SUBGROUP_ATTRIBUTES, Gender
from annotate.models import ConsensusStatus, FaceStatus, KnownLabel
from annotate.selectors.attributes import face_attributes_frame
from annotate.selectors.labels import face_labels
from modeling.models import ModelVersion, Prediction, ValidationItem, ValidationRound
from modeling.selectors.triage import triage_not_face_ids

FINAL_STATUSES = (ConsensusStatus.AGREED, ConsensusStatus.ADJUDICATED, ConsensusStatus.NOT_FACE)
BINARY = (Gender.FEMALE.value, Gender.MALE.value)
FRAME_ATTRIBUTES = (*SUBGROUP_ATTRIBUTES, "query")


def version_training_face_ids(*, version: ModelVersion) -> set[int]:
    """Faces in the version's training snapshot (`dataset["face_ids"]`), when recorded."""
    run = version.training_run
    ids = (run.dataset or {}).get("face_ids", []) if run is not None else []
    return {int(i) for i in ids}


@dataclass(frozen=True)
class Eligibility:
    frame: pd.DataFrame  # face_id, predicted, probability, attributes
    predicted: int
    excluded: dict[str, int]


def validation_eligible(*, version: ModelVersion) -> Eligibility:
    """Faces the version predicted and never trained on, minus excluded and already-sampled ones."""
    predictions = pd.DataFrame(
        Prediction.objects.filter(version=version, face__study_id=version.study_id).values_list(
            "face_id", "label", "probability", "face__coding_status"
        ),
        columns=["face_id", "predicted", "probability", "coding_status"],
    )
    excluded: dict[str, int] = {}
    if predictions.empty:
        return Eligibility(predictions, 0, excluded)
    ids = predictions["face_id"]
    rules = {
        "trained on": ids.isin(version_training_face_ids(version=version)),
        "imported training label": ids.isin(
            set(
                KnownLabel.objects.filter(
                    usage=KnownLabel.Usage.TRAIN, face__study_id=version.study_id
                ).values_list("face_id", flat=True)
            )
        ),
        "not a face": (predictions["coding_status"] == FaceStatus.EXCLUDED)
        | ids.isin(triage_not_face_ids(study_id=version.study_id)),
        "already in a round of this version": ids.isin(
            set(
                ValidationItem.objects.filter(round__version=version).values_list(
                    "face_id", flat=True
                )
            )
        ),
    }
    keep = pd.Series(True, index=predictions.index)
    for name, mask in rules.items():
        excluded[name] = int((mask & keep).sum())
        keep &= ~mask
    frame = predictions[keep].drop(columns="coding_status")
    attributes = face_attributes_frame(face_ids=frame["face_id"].tolist())
    frame = frame.merge(attributes, on="face_id", how="left")
    return Eligibility(frame.reset_index(drop=True), len(predictions), excluded)


@dataclass(frozen=True)
class Progress:
    sampled: int
    coded: int

    @property
    def complete(self) -> bool:
        return self.sampled > 0 and self.coded >= self.sampled

    @property
    def percent(self) -> int:
        return int(100 * self.coded / self.sampled) if self.sampled else 0


def validation_round_progress(*, round: ValidationRound) -> Progress:
    """n coded (a final consensus: agreed, adjudicated or not a face) / n sampled."""
    items = round.items.all()
    return Progress(
        sampled=items.count(),
        coded=items.filter(face__consensus__status__in=FINAL_STATUSES).count(),
    )


def validation_round_frame(*, round: ValidationRound) -> pd.DataFrame:
    """One row per sampled face: truth (the face's label by the study's aggregation method,
    see annotate.selectors.labels; "" until its coding is final and trusted), consensus
    status, predicted label and probability from the round's version, subgroup attributes.
    """
    rows = ValidationItem.objects.filter(round=round).values_list(
        "face_id", "stratum", "face__consensus__status"
    )
    frame = pd.DataFrame(rows, columns=["face_id", "stratum", "consensus_status"])
    predictions = pd.DataFrame(
        Prediction.objects.filter(
            version_id=round.version_id, face_id__in=frame["face_id"].tolist()
        ).values_list("face_id", "label", "probability"),
        columns=["face_id", "predicted", "probability"],
    )
    frame = frame.merge(predictions, on="face_id", how="left")
    coded = face_labels(study=round.study, face_ids=frame["face_id"].tolist())
    frame.insert(2, "truth", coded.label_of(frame["face_id"]))
    frame["consensus_status"] = frame["consensus_status"].fillna("")
    attributes = face_attributes_frame(face_ids=frame["face_id"].tolist())
    return frame.merge(attributes, on="face_id", how="left")


def validation_round_latest(*, version: ModelVersion) -> ValidationRound | None:
    """The newest round of a version that has results."""
    return (
        version.validation_rounds.filter(results__has_key="overall")
        .order_by("-created_at", "-pk")
        .first()
    )
