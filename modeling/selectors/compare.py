"""Reads for validating and comparing versions of a study: which versions have predictions
(any of them, active or not, can be validated), each one's newest validation round beside its
CV accuracy, and two versions on the same faces (paired, with McNemar's exact test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import pandas as pd
from django.db.models import Count

from annotate.labels import SUBGROUP_ATTRIBUTES
from annotate.models import Consensus, ConsensusStatus, Study
from annotate.selectors.attributes import face_attributes_frame
from modeling import evaluation
from modeling.models import ModelVersion, Prediction, ValidationRound
from modeling.selectors.triage import triage_not_face_ids
from modeling.selectors.validation import (
    BINARY,
    validation_round_latest,
    version_training_face_ids,
)
from modeling.services.validation import cv_by_subgroup, records

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

HUMAN_LABELLED = (ConsensusStatus.AGREED, ConsensusStatus.ADJUDICATED)
DIFFERENT_STUDIES = "Versions of two different studies cannot be compared."


class _Predicted(TypedDict):
    n_predictions: int


@dataclass(frozen=True)
class Comparison:
    a: ModelVersion
    b: ModelVersion
    round_a: ValidationRound | None
    round_b: ValidationRound | None
    # One row per single-attribute group: each version's round row ("a", "b"), its CV row
    # ("cv_a", "cv_b"), the change b − a and whether a flagged gap closed.
    rounds: list[dict[str, Any]]
    # evaluation.paired_by_group records on the faces both predicted and humans labelled,
    # the overall row first; empty when there are no such faces.
    paired: list[dict[str, Any]]
    # Human-labelled faces both versions predicted that one of them trained on (left out).
    trained_on: int

    @property
    def paired_overall(self) -> dict[str, Any] | None:
        return self.paired[0] if self.paired and self.paired[0]["n"] else None


def study_versions_predicted(*, study: Study) -> list[WithAnnotations[ModelVersion, _Predicted]]:
    """The study's versions, newest first, each with `n_predictions`; a version with
    predictions can have a validation round whether or not it is active.
    """
    return list(
        ModelVersion.objects.filter(study=study)
        .annotate(n_predictions=Count("predictions"))
        .order_by("-number")
    )


def versions_paired_frame(*, a: ModelVersion, b: ModelVersion) -> tuple[pd.DataFrame, int]:
    """Faces both versions predicted, with a final female/male human consensus, that neither
    version trained on and no triage called "not a face": `face_id`, `truth`, `predicted_a`,
    `predicted_b` and the subgroup attributes. Also returns how many were left out because a
    version trained on them (comparing on those would favour the version that saw them).
    """
    predictions = pd.DataFrame(
        Prediction.objects.filter(version_id__in=[a.pk, b.pk]).values_list(
            "face_id", "version_id", "label"
        ),
        columns=["face_id", "version_id", "label"],
    )
    wide = predictions.pivot(index="face_id", columns="version_id", values="label")
    wide = wide.reindex(columns=[a.pk, b.pk]).dropna()
    wide.columns = ["predicted_a", "predicted_b"]
    truth = pd.DataFrame(
        Consensus.objects.filter(
            face__study_id=a.study_id, status__in=HUMAN_LABELLED, label__in=BINARY
        ).values_list("face_id", "label"),
        columns=["face_id", "truth"],
    ).set_index("face_id")
    frame = wide.join(truth, how="inner")
    frame = frame[~frame.index.isin(triage_not_face_ids(study_id=a.study_id))]
    trained = version_training_face_ids(version=a) | version_training_face_ids(version=b)
    used = frame.index.isin(trained)
    frame = frame[~used].rename_axis("face_id").reset_index()
    attributes = face_attributes_frame(face_ids=frame["face_id"].tolist())
    return frame.merge(attributes, on="face_id", how="left"), int(used.sum())


def _rounds_table(
    a: ModelVersion, b: ModelVersion, round_a: ValidationRound | None, round_b
) -> list[dict[str, Any]]:
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for side, version, round in (("a", a, round_a), ("b", b, round_b)):
        for row in round.results.get("by_subgroup", []) if round else []:
            if evaluation.INTERSECTION_SEPARATOR not in row["attribute"]:
                table.setdefault((row["attribute"], row["group"]), {})[side] = row
        for row in cv_by_subgroup(version):
            table.setdefault((row["attribute"], row["group"]), {})[f"cv_{side}"] = row
    rows = []
    for (attribute, group), sides in sorted(table.items()):
        row_a, row_b = sides.get("a"), sides.get("b")
        change = (
            row_b["accuracy"] - row_a["accuracy"]
            if row_a
            and row_b
            and row_a.get("accuracy") is not None
            and row_b.get("accuracy") is not None
            else None
        )
        rows.append(
            {
                "attribute": attribute,
                "group": group,
                "a": row_a,
                "b": row_b,
                "cv_a": sides.get("cv_a"),
                "cv_b": sides.get("cv_b"),
                "change": change,
                "closed": bool(
                    row_a and row_a.get("flagged") and row_b and not row_b.get("flagged")
                ),
            }
        )
    return rows


def versions_compare(
    *, a: ModelVersion, b: ModelVersion, min_n: int = evaluation.MIN_N
) -> Comparison:
    """Everything the comparison page shows for `a` (before) against `b` (after)."""
    if a.study_id != b.study_id:
        raise ValueError(DIFFERENT_STUDIES)
    round_a, round_b = validation_round_latest(version=a), validation_round_latest(version=b)
    frame, trained_on = versions_paired_frame(a=a, b=b)
    paired = (
        records(
            evaluation.paired_by_group(
                frame,
                attributes=[c for c in SUBGROUP_ATTRIBUTES if c in frame.columns],
                min_n=min_n,
            )
        )
        if not frame.empty
        else []
    )
    return Comparison(
        a=a,
        b=b,
        round_a=round_a,
        round_b=round_b,
        rounds=_rounds_table(a, b, round_a, round_b),
        paired=paired,
        trained_on=trained_on,
    )
