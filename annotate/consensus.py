"""Consensus: the one writer of the Consensus cache and of a face's coding status.

Called inside the transaction that records (or retracts) a vote, with the face's row lock
held, so the K-th vote and its consensus commit together. The rule, for a study with K
coders per face:

- fewer than K live votes: the face is open and has no Consensus row;
- the target number of votes reached and one label is the unique most frequent: agreed
  (or, when that label is "not a face", the face is excluded from training and validation);
- K votes and a tie at the top: one extra coder is asked (votes_target = K + 1, escalated);
- still tied after the extra vote: the face waits for a researcher (adjudication queue).

A researcher's decision is an Adjudication row beside the votes, never over them.
"""

from __future__ import annotations

import logging

from django.db import transaction

from annotate.aggregation import majority_label
from annotate.labels import ATTRIBUTE_QUESTIONS, Gender
from annotate.models import (
    Adjudication,
    Consensus,
    ConsensusStatus,
    Face,
    FaceStatus,
    Vote,
)
from annotate.signals import face_coded

logger = logging.getLogger(__name__)

NOT_WAITING = "This face is not waiting for a researcher's decision."
UNKNOWN_LABEL = "Unknown label {label!r}."
# A face in one of these has its final consensus; `face_coded` is sent when it gets there.
FINAL_FACE_STATUSES = (FaceStatus.COMPLETE, FaceStatus.EXCLUDED)


def _attributes(votes: list[Vote]) -> dict[str, str]:
    """Majority of each coded attribute among the votes that answered it (ties left out)."""
    result = {}
    for name in ATTRIBUTE_QUESTIONS:
        values = [getattr(v, name) for v in votes if getattr(v, name)]
        winner = majority_label(values)
        if winner:
            result[name] = winner
    return result


def consensus_refresh(*, face: Face) -> Consensus | None:
    """Recompute a face's consensus and coding status from its live votes.

    The caller holds the face's row lock (select_for_update) inside a transaction; `face`
    carries the locked row's values and is updated in place.
    """
    k = face.study.votes_per_face
    votes = list(Vote.objects.filter(face=face, retracted_at__isnull=True).order_by("pk"))
    labels = [v.gender for v in votes]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    n = len(votes)

    if n < k:
        # Only a retraction (undo, reset) can leave a consensus row behind below K votes.
        if face.coding_status != FaceStatus.OPEN or face.votes_target != k:
            Consensus.objects.filter(face=face).delete()
        _face_status_set(face, FaceStatus.OPEN, target=max(face.votes_target, k))
        return None

    winner = majority_label(labels)
    agreement = counts.get(winner, 0) / n if winner else max(counts.values()) / n
    target = face.votes_target
    if n < target:  # escalated; waiting for the extra coder
        status, face_status = ConsensusStatus.ESCALATED, FaceStatus.OPEN
    elif winner == Gender.NOT_FACE:
        status, face_status = ConsensusStatus.NOT_FACE, FaceStatus.EXCLUDED
    elif winner:
        status, face_status = ConsensusStatus.AGREED, FaceStatus.COMPLETE
    elif target <= k:
        status, face_status, target = ConsensusStatus.ESCALATED, FaceStatus.OPEN, k + 1
    else:
        status, face_status = ConsensusStatus.ADJUDICATION, FaceStatus.ADJUDICATION

    label = winner or ""
    adjudication = (
        face.adjudications.order_by("-created_at").first()
        if status == ConsensusStatus.ADJUDICATION
        else None
    )
    if adjudication is not None:
        status, label = ConsensusStatus.ADJUDICATED, adjudication.label
        face_status = (
            FaceStatus.EXCLUDED if adjudication.label == Gender.NOT_FACE else FaceStatus.COMPLETE
        )
    consensus, _ = Consensus.objects.update_or_create(
        face=face,
        defaults={
            "label": label if status != ConsensusStatus.ESCALATED else "",
            "status": status,
            "counts": counts,
            "n_votes": n,
            "agreement": agreement,
            "attributes": _attributes(votes),
        },
    )
    _face_status_set(face, face_status, target=target)
    return consensus


def _face_status_set(face: Face, status: str, *, target: int) -> None:
    if face.coding_status != status or face.votes_target != target:
        Face.objects.filter(pk=face.pk).update(coding_status=status, votes_target=target)
        if status in FINAL_FACE_STATUSES and face.coding_status != status:
            face_id, priority = face.pk, face.priority
            transaction.on_commit(
                lambda: face_coded.send(sender=Face, face_id=face_id, priority=priority),
                robust=True,
            )
        face.coding_status, face.votes_target = status, target


@transaction.atomic
def face_adjudicate(*, face: Face, researcher, label: str, reason: str = "") -> Adjudication:
    """Record a researcher's label for a split face; the votes stay as they are.

    Locks the face. The face leaves the queue: complete, or excluded for "not a face".
    """
    if label not in Gender.values:
        raise ValueError(UNKNOWN_LABEL.format(label=label))
    locked = Face.objects.select_for_update().select_related("study").get(pk=face.pk)
    if locked.coding_status != FaceStatus.ADJUDICATION:
        raise ValueError(NOT_WAITING)
    adjudication = Adjudication.objects.create(
        face=locked, researcher=researcher, label=label, reason=reason
    )
    consensus_refresh(face=locked)
    logger.info("face %s adjudicated as %s by %s", locked.pk, label, researcher)
    return adjudication
