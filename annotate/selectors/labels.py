"""The gender label each coded face carries downstream: training data, validation truth and
estimates all read it here, so a study's aggregation method applies everywhere at once.

The rule, for a study aggregating by `Study.aggregation`:

- Only faces whose coding is final and trusted carry a label: consensus status agreed or
  adjudicated. Consensus rows stay the per-face coding state (escalation, assignment,
  progress, the "not a face" exclusion); the method decides only what those faces are labeled.
- majority: the Consensus row's label (source "consensus", confidence its share of the votes).
- dawid_skene: the EM posterior over ALL the study's live gender votes, fitted at the moment
  of the call (a training snapshot, a validation frame, an estimate): every face's votes,
  open ones included, inform the coders' estimated confusion (source "dawid_skene",
  confidence the posterior). A tie in the posteriors is not broken: the label is "".
- Either way an adjudication overrides: a face decided by a researcher takes the label of
  its latest Adjudication (source "adjudication", confidence NaN: no votes behind it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from annotate import aggregation
from annotate.labels import ATTRIBUTE_QUESTIONS, GENDER_QUESTION
from annotate.models import (
    Adjudication,
    AggregationMethod,
    Consensus,
    ConsensusStatus,
    Study,
    Vote,
)

QUESTIONS = {GENDER_QUESTION.key: GENDER_QUESTION, **ATTRIBUTE_QUESTIONS}
SOURCE_CONSENSUS = "consensus"
SOURCE_ADJUDICATION = "adjudication"
SOURCE_DAWID_SKENE = "dawid_skene"
TRUSTED_STATUSES = (ConsensusStatus.AGREED, ConsensusStatus.ADJUDICATED)
LABEL_COLUMNS = ["label", "source", "confidence"]
UNKNOWN_QUESTION = "Unknown question {question!r}; choose one of {choices}."
UNKNOWN_METHOD = "Study {study} aggregates by {method!r}, which is not one of: {choices}."


def votes_frame(
    *, study: Study, batch_id: int | None = None, question: str = "gender"
) -> pd.DataFrame:
    """Counted votes of a study (or of the faces from one import batch) as item, coder, label:
    live, and not cast by a coder excluded from the study (Vote.objects.counted)."""
    if question not in QUESTIONS:
        raise ValueError(UNKNOWN_QUESTION.format(question=question, choices=", ".join(QUESTIONS)))
    votes = Vote.objects.filter(face__study=study).counted()
    if batch_id is not None:
        votes = votes.filter(face__source_image__batch_id=batch_id)
    rows = votes.exclude(**{question: ""}).values_list("face_id", "coder_id", question)
    return pd.DataFrame(list(rows), columns=["item", "coder", "label"])


@dataclass(frozen=True)
class FaceLabels:
    """The labels of a study's trusted faces, and the Dawid–Skene fit behind them if any."""

    method: str
    frame: pd.DataFrame  # indexed by face_id: label ("" for none), source, confidence
    fit: aggregation.DawidSkeneFit | None = None

    def label_of(self, face_ids: pd.Series) -> pd.Series:
        """The label of each face in `face_ids` ("" where it has none), aligned with it."""
        return face_ids.map(self.frame["label"]).astype(object).fillna("")

    def provenance(self) -> dict[str, object]:
        """What a snapshot records: the method and, for Dawid–Skene, how the EM ended."""
        record: dict[str, object] = {"method": self.method}
        if self.fit is not None:
            record["dawid_skene"] = self.fit.convergence.as_dict()
        return record


def face_labels(*, study: Study, face_ids: Iterable[int] | None = None) -> FaceLabels:
    """The label of each trusted face of `study` by its aggregation method (module docstring).

    `face_ids` limits the rows returned (a few thousand at most; pass none for the whole
    study); Dawid–Skene is fitted on all of the study's votes either way.
    """
    if study.aggregation not in AggregationMethod.values:
        raise ValueError(
            UNKNOWN_METHOD.format(
                study=study.slug,
                method=study.aggregation,
                choices=", ".join(AggregationMethod.values),
            )
        )
    consensus = Consensus.objects.filter(face__study=study, status__in=TRUSTED_STATUSES)
    if face_ids is not None:
        consensus = consensus.filter(face_id__in=list(face_ids))
    frame = pd.DataFrame(
        list(consensus.values_list("face_id", "status", "label", "agreement")),
        columns=["face_id", "status", "label", "confidence"],
    ).set_index("face_id")
    frame = frame.sort_index()
    frame["label"] = frame["label"].astype(object)
    frame["source"] = SOURCE_CONSENSUS
    fit = None
    if study.aggregation == AggregationMethod.DAWID_SKENE:
        fit = aggregation.dawid_skene_fit(votes_frame(study=study))
        estimated = fit.labels.reindex(frame.index)
        frame["label"] = estimated["label"].astype(object).where(estimated["label"].notna(), "")
        frame["confidence"] = estimated["confidence"].astype(float)
        frame["source"] = SOURCE_DAWID_SKENE
    decided = frame.index[frame["status"] == ConsensusStatus.ADJUDICATED].tolist()
    latest: dict[int, str] = {}
    for face_id, label in (
        Adjudication.objects.filter(face_id__in=decided)
        .order_by("face_id", "created_at", "pk")
        .values_list("face_id", "label")
    ):
        latest[face_id] = label
    if latest:
        ids = list(latest)
        frame.loc[ids, "label"] = [latest[i] for i in ids]
        frame.loc[ids, "source"] = SOURCE_ADJUDICATION
        frame.loc[ids, "confidence"] = np.nan
    return FaceLabels(method=study.aggregation, frame=frame[LABEL_COLUMNS], fit=fit)
