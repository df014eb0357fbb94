"""Rows for validation and estimates tests: versions, faces with known truth, predictions
with planted error rates, and consensus from coders' votes (tests.factories.faces_code).
"""

from __future__ import annotations

import numpy as np

from annotate.models import Face, Study
from modeling.models import ModelVersion, Prediction, TrainingRun
from tests.factories import faces_code

AGE_BANDS = ("20-29", "30-39", "40-49", "3-9")
RACES = ("white", "black", "east_asian")


def make_version(
    study: Study,
    *,
    number: int | None = None,
    active: bool = False,
    training_face_ids: list[int] | None = None,
    metrics: dict | None = None,
) -> ModelVersion:
    run = TrainingRun.objects.create(
        study=study,
        status="succeeded",
        dataset={"face_ids": training_face_ids or []},
    )
    number = number or (study.model_versions.count() + 1)
    return ModelVersion.objects.create(
        study=study,
        number=number,
        training_run=run,
        backbone="resnet18",
        weights="none",
        artifact=f"models/dummy-{number}.pt",
        is_active=active,
        metrics=metrics or {},
    )


def plant(
    faces: list[Face],
    version: ModelVersion,
    *,
    seed: int = 1,
    female_share: float = 0.4,
    base_error: float = 0.04,
    weak: tuple[str, str] = ("age_band", "3-9"),
    weak_error: float = 0.4,
    coded: bool = True,
) -> dict[int, dict]:
    """Give each face a truth and attributes, a prediction of `version` that is wrong with
    `base_error` (or `weak_error` inside the weak subgroup), and (if `coded`) a consensus.
    Returns {face_id: {"truth", "predicted", attributes...}}.
    """
    rng = np.random.default_rng(seed)
    truth = {}
    predictions = []
    for face in faces:
        attributes = {
            "race": str(rng.choice(RACES)),
            "age_band": str(rng.choice(AGE_BANDS, p=[0.3, 0.3, 0.25, 0.15])),
            "glasses": str(rng.choice(["none", "glasses"], p=[0.8, 0.2])),
            "quality": "good",
        }
        label = "female" if rng.random() < female_share else "male"
        error = weak_error if attributes.get(weak[0]) == weak[1] else base_error
        wrong = rng.random() < error
        predicted = ("male" if label == "female" else "female") if wrong else label
        confidence = rng.uniform(0.55, 0.99)
        probability = confidence if predicted == "female" else 1 - confidence
        predictions.append(
            Prediction(face=face, version=version, probability=probability, label=predicted)
        )
        truth[face.pk] = {"truth": label, "predicted": predicted, **attributes}
    Prediction.objects.bulk_create(predictions)
    if coded:
        code_faces(truth, truth)
    return truth


def code_faces(face_ids, truth: dict[int, dict]) -> None:
    """Code faces through votes as three (the study's K) agreeing coders would, answering the
    attribute questions their study asks from `truth`."""
    asked_by_face = dict(
        Face.objects.filter(pk__in=list(face_ids)).values_list("pk", "study__attributes_asked")
    )
    faces_code(
        {
            face_id: {"gender": truth[face_id]["truth"]}
            | {k: truth[face_id][k] for k in asked_by_face[face_id]}
            for face_id in face_ids
        }
    )


def predict_from_hidden_truth(
    study: Study, version: ModelVersion, *, error: float = 0.1, seed: int = 1
) -> dict[int, dict]:
    """Predictions of `version` for every face of a demo study, wrong with rate `error`
    against the demo's hidden truth. Returns the truth dict `code_faces` takes.
    """
    from annotate.models import KnownLabel

    rng = np.random.default_rng(seed)
    truth, predictions = {}, []
    for known in KnownLabel.objects.filter(face__study=study, usage=KnownLabel.Usage.TRUTH):
        wrong = rng.random() < error
        predicted = ("male" if known.gender == "female" else "female") if wrong else known.gender
        confidence = rng.uniform(0.55, 0.99)
        predictions.append(
            Prediction(
                face_id=known.face_id,
                version=version,
                label=predicted,
                probability=confidence if predicted == "female" else 1 - confidence,
            )
        )
        truth[known.face_id] = {
            "truth": known.gender,
            "predicted": predicted,
            "race": known.race,
            "age_band": known.age_band,
            "glasses": known.glasses,
            "quality": known.quality,
        }
    Prediction.objects.bulk_create(predictions)
    return truth
