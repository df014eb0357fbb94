"""Consensus: the one writer of the Consensus cache, and of a face's coding status as votes come
and go (annotate.assignment.face_votes_reset reopens a face for fresh votes; imported faces are
created complete).

Called inside the transaction that records (or retracts) a vote, with the face's row lock
held, so the K-th vote and its consensus commit together. When a face's coding becomes final,
validation is told after the commit (modeling.services.validation
.validation_rounds_after_consensus), so a round's results start as soon as it is fully coded. The rule, for a study with K
coders per face:

- fewer than K live votes: the face is open and has no Consensus row;
- K or more live votes and one label is the unique most frequent: agreed
  (or, when that label is "not a face", the face is excluded from training and validation);
- K votes and a tie at the top: one extra coder is asked (votes_target = K + 1, escalated),
  but only while a coder who could take it exists (`extra_vote_outlook`) and for at
  most `Study.escalation_wait_minutes` after the K-th vote (plus the lease of an extra coder
  already at work); otherwise the face goes straight to a researcher (adjudication queue);
- still tied after the extra vote: the face waits for a researcher.

So nothing waits forever: `escalations_sweep` (run with every call for work and by the pages
that list waiting faces) sends overdue splits on, and `escalations_review` decides again when
an extra coder's lease lapses (annotate.assignment.leases_reclaim).

A researcher's decision is an Adjudication row beside the votes, never over them. Votes of a
coder a researcher excluded from the study (CoderExclusion) are not counted (`Vote.objects
.counted()`), but they stay and keep their slots, so such a face asks for that many more votes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from annotate.aggregation import majority_label
from annotate.compiled_sql import prepared_cursor, quoted_columns
from annotate.labels import ATTRIBUTE_QUESTIONS, Gender
from annotate.models import (
    Adjudication,
    Assignment,
    AssignmentStatus,
    CoderExclusion,
    Consensus,
    ConsensusStatus,
    Face,
    FaceStatus,
    Study,
    Vote,
)
from annotate.selectors.waiting import extra_vote_outlook

logger = logging.getLogger(__name__)

NOT_WAITING = "This face is not waiting for a researcher's decision."
UNKNOWN_LABEL = "Unknown label {label!r}."
# A face in one of these has its final consensus; validation hears of it when it gets there.
FINAL_FACE_STATUSES = (FaceStatus.COMPLETE, FaceStatus.EXCLUDED)
# Split faces sent on to a researcher per sweep; the next call for work takes the rest.
SWEEP_BATCH = 100
_CONSENSUS_FIELDS = ("label", "status", "counts", "n_votes", "agreement", "attributes")


def _attributes(votes: list[Vote]) -> dict[str, str]:
    """Majority of each coded attribute among the votes that answered it (ties left out)."""
    result = {}
    for name in ATTRIBUTE_QUESTIONS:
        values = [getattr(v, name) for v in votes if getattr(v, name)]
        winner = majority_label(values)
        if winner:
            result[name] = winner
    return result


def live_votes_query(*, face_id: int):
    """The face's live votes, each with `counts`: whether it counts (`Vote.objects.counted()`:
    a live vote counts unless its coder is excluded from the study). The check reads the
    vote's own row: asked as "is this vote among the counted ones", a plan prepared once
    (annotate.compiled_sql) hashed every counted vote in the database on each call."""
    excluded = CoderExclusion.of(study_id=OuterRef("study_id"), coder_id=OuterRef("coder_id"))
    return (
        Vote.objects.filter(face_id=face_id, retracted_at__isnull=True)
        .annotate(counts=~Exists(excluded))
        .order_by("pk")
    )


def live_votes_split(rows: list[Vote]) -> tuple[list[Vote], int]:
    """Rows of `live_votes_query` as (the votes that count, how many live votes do not)."""
    votes = [v for v in rows if v.counts]  # type: ignore[attr-defined]  # live_votes_query's
    return votes, len(rows) - len(votes)


def live_votes(*, face: Face) -> tuple[list[Vote], int]:
    """The face's live votes that count, in order, and how many live votes do not (an
    excluded coder's): one query."""
    return live_votes_split(list(live_votes_query(face_id=face.pk)))


def consensus_refresh(
    *, face: Face, now: datetime | None = None, live: tuple[list[Vote], int] | None = None
) -> Consensus | None:
    """Recompute a face's consensus and coding status from its live votes.

    The caller holds the face's row lock (select_for_update) inside a transaction; `face`
    carries the locked row's values and is updated in place. `now` decides whether a split
    face has waited long enough for an extra coder. `live` is `live_votes(face=face)` when
    the caller has read it already, after taking the lock (the vote service reads it in the
    statement that writes the vote).
    """
    k = face.study.votes_per_face
    # Excluded coders' votes still hold their slots: the face needs as many more to reach K.
    votes, set_aside = live if live is not None else live_votes(face=face)
    labels = [v.gender for v in votes]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    n = len(votes)

    if n < k:
        # Only a retraction (undo, reset) can leave a consensus row behind below K votes.
        if face.coding_status != FaceStatus.OPEN or face.votes_target != k:
            Consensus.objects.filter(face=face).delete()
        _face_status_set(face, FaceStatus.OPEN, target=max(face.votes_target, k + set_aside))
        return None

    winner = majority_label(labels)
    agreement = counts.get(winner, 0) / n if winner else max(counts.values()) / n
    target = face.votes_target
    if winner == Gender.NOT_FACE:
        status, face_status = ConsensusStatus.NOT_FACE, FaceStatus.EXCLUDED
    elif winner:
        status, face_status = ConsensusStatus.AGREED, FaceStatus.COMPLETE
    elif n == k and _extra_vote_expected(face=face, votes=votes, now=now or timezone.now()):
        status, face_status = ConsensusStatus.ESCALATED, FaceStatus.OPEN
        target = k + 1 + set_aside
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
    consensus = Consensus(
        face=face,
        study_id=face.study_id,
        label=label if status != ConsensusStatus.ESCALATED else "",
        status=status,
        counts=counts,
        n_votes=n,
        agreement=agreement,
        attributes=_attributes(votes),
    )
    _consensus_write(consensus, face, face_status, target=target)
    return consensus


def _consensus_write(consensus: Consensus, face: Face, status: str, *, target: int) -> None:
    """Upsert the face's Consensus row and set its coding status (`_face_status_set`); the
    face's row lock keeps this from racing another writer. On PostgreSQL one statement
    (`_consensus_write_sql`), prepared by the server: through the ORM the two cost a vote that
    completes a face more web-worker CPU than the rest of its writes."""
    if connection.vendor != "postgresql":
        Consensus.objects.bulk_create(
            [consensus],
            update_conflicts=True,
            unique_fields=["face"],
            update_fields=[*_CONSENSUS_FIELDS, "updated_at"],
        )
        _face_status_set(face, status, target=target)
        return
    consensus.updated_at = timezone.now()  # auto_now, as save() would set it
    db = connections[DEFAULT_DB_ALIAS]
    values = [field.get_db_prep_save(getattr(consensus, field.attname), db) for field in _COLUMNS]
    with prepared_cursor() as cursor:
        cursor.execute(_consensus_write_sql(), (*values, status, target, face.pk, status, target))
    consensus._state.adding, consensus._state.db = False, db.alias  # saved, as bulk_create sets
    _face_status_written(face, status, target=target)


_COLUMNS = list(Consensus._meta.concrete_fields)


@cache
def _consensus_write_sql() -> str:
    """The upsert of a Consensus row (`_COLUMNS`), and the face's status and target where
    they change."""
    quote = connection.ops.quote_name
    updated = [f for f in _COLUMNS if f.name in (*_CONSENSUS_FIELDS, "updated_at")]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (quoted_columns([f]) for f in updated))
    return " ".join(
        [
            f"WITH upsert AS (INSERT INTO {quote(Consensus._meta.db_table)}",
            f"({quoted_columns(_COLUMNS)})",
            f"VALUES ({', '.join(['%s'] * len(_COLUMNS))})",
            f"ON CONFLICT ({quoted_columns([Consensus._meta.pk])}) DO UPDATE SET {updates})",
            f"UPDATE {quote(Face._meta.db_table)} SET coding_status = %s, votes_target = %s",
            "WHERE id = %s AND (coding_status <> %s OR votes_target <> %s)",
        ]
    )


def _extra_vote_expected(*, face: Face, votes: list[Vote], now: datetime) -> bool:
    """Whether a face split at K votes should wait for one more coder rather than a researcher.

    Yes while someone holds a live lease on it (an extra coder at work, or a coder who undid
    a vote and may vote again). Otherwise only when it has not been sent to a researcher
    already, the study's wait since the K-th vote has not run out, and a coder who could take
    it exists; with none, waiting would never end.
    """
    leased, coder_free = extra_vote_outlook(face=face, now=now)
    if leased:
        return True
    if face.coding_status == FaceStatus.ADJUDICATION:
        return False
    split_at = max(v.created_at for v in votes)
    if now >= split_at + timedelta(minutes=face.study.escalation_wait_minutes):
        return False
    return coder_free


def escalations_review(*, face_ids: list[int], now: datetime | None = None) -> int:
    """Decide again for these faces, where they wait for an extra coder, whether one can still
    come; send the others to a researcher. Returns how many went to adjudication.

    One transaction per face; locks the face row, skipping one another transaction holds (a
    vote on it decides it anyway).
    """
    now = now or timezone.now()
    escalated = Consensus.objects.filter(
        face_id__in=face_ids, status=ConsensusStatus.ESCALATED
    ).values_list("face_id", flat=True)
    moved = 0
    for face_id in sorted(escalated):
        with transaction.atomic():
            face = (
                Face.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("study")
                .filter(
                    pk=face_id,
                    coding_status=FaceStatus.OPEN,
                    consensus__status=ConsensusStatus.ESCALATED,
                )
                .first()
            )
            if face is None:
                continue
            consensus_refresh(face=face, now=now)
            if face.coding_status == FaceStatus.ADJUDICATION:
                moved += 1
                logger.info("face %s: no extra coder came; sent to adjudication", face.pk)
    return moved


def escalations_sweep(
    *, now: datetime | None = None, study: Study | None = None, limit: int = SWEEP_BATCH
) -> int:
    """Send split faces whose wait for an extra coder has run out to a researcher; returns how
    many. A face an extra coder holds a live lease on keeps waiting until that lease ends.

    Called with every call for work (annotate.assignment) and by the pages that list waiting
    faces, so no scheduler is needed; with nothing escalated it costs one index probe.
    """
    now = now or timezone.now()
    escalated = Consensus.objects.filter(status=ConsensusStatus.ESCALATED)
    if study is not None:
        escalated = escalated.filter(face__study=study)
    if not escalated.exists():
        return 0
    waits = Study.objects.filter(pk__in=escalated.values("face__study_id")).values_list(
        "pk", "escalation_wait_minutes"
    )
    lease_live = Assignment.objects.filter(
        face=OuterRef("pk"), status=AssignmentStatus.LEASED, expires_at__gt=now
    )
    overdue: list[int] = []
    for study_id, wait in waits:
        overdue += (
            Face.objects.filter(study_id=study_id, consensus__status=ConsensusStatus.ESCALATED)
            .annotate(split_at=Max("votes__created_at", filter=Q(votes__retracted_at__isnull=True)))
            .filter(split_at__lte=now - timedelta(minutes=wait))
            .filter(~Exists(lease_live))
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
    return escalations_review(face_ids=overdue[:limit], now=now)


def _validation_hook_after_commit(face: Face) -> None:
    """Once the face's final coding is committed, let validation start the results of any open
    round it completes. Runs outside the vote's transaction; `robust` logs an error there and
    never undoes or fails the vote.
    """
    # Imported here, not at the top: modeling.services.validation imports annotate.assignment,
    # which imports this module.
    from modeling.services.validation import validation_rounds_after_consensus

    transaction.on_commit(lambda: validation_rounds_after_consensus(face=face), robust=True)


def _face_status_set(face: Face, status: str, *, target: int) -> None:
    if face.coding_status != status or face.votes_target != target:
        Face.objects.filter(pk=face.pk).update(coding_status=status, votes_target=target)
        _face_status_written(face, status, target=target)


def _face_status_written(face: Face, status: str, *, target: int) -> None:
    """`face` as its row now is: validation hears of a face its coding made final."""
    if status in FINAL_FACE_STATUSES and face.coding_status != status:
        _validation_hook_after_commit(face)
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
