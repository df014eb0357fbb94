"""Triage of misclassified faces: a researcher's verdict per face (and so per study).

A verdict made from any version's gallery holds for every version of the study: training,
estimates, validation sampling and every gallery read it through modeling.selectors.triage.
Every change is appended to the face's history (TriageEvent); the Triage row is the verdict
in effect, which is the latest decision not undone, and only this module writes it.

- Deciding again changes the verdict (a new event); deciding exactly what is in effect is
  refused (UNCHANGED) so a double submit does not pad the history.
- Undo withdraws the verdict in effect and brings back the one before it, if any: the
  history is a stack of decisions, each undone at most once.
- A label error sends the face back to the coders for fresh votes (annotate.assignment.face_votes_reset) when it
  becomes the verdict in effect. Votes are never deleted, and the coders' fresh work is not
  thrown away, so undoing a label error withdraws the verdict only: the old votes stay
  retracted and the face's label comes from the fresh votes. A label error that comes back
  into effect through an undo does not send the face back a second time.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from annotate.assignment import face_votes_reset
from annotate.models import Face
from modeling.models import ModelVersion, Triage, TriageEvent

TAGS = ("blurry", "occluded", "child", "glasses", "profile", "low_light", "cartoon", "group")
NOTE_MAX = 2000
UNKNOWN_DECISION = "Unknown decision {decision!r}; choose one of: {choices}."
UNKNOWN_TAGS = "Unknown tags {tags}; choose from: {choices}."
WRONG_STUDY = "Face {face} does not belong to the study of {version}."
NOTE_TOO_LONG = "The note is {n} characters long; keep it under {limit}."
UNCHANGED = (
    "Face {face} is already triaged as {decision} with these tags and note; nothing changed."
)
NOTHING_TO_UNDO = "Face {face} has no triage decision to undo."
CONCURRENT = "Face {face} was triaged by someone else at the same moment; reload and try again."
LABEL_ERROR_REASON = "triage: label error seen on {version}'s gallery (by {who})"


class TriageError(ValueError):
    """The change was refused and nothing was written; the message says why."""


def _check(*, face: Face, version: ModelVersion) -> None:
    if face.study_id != version.study_id:
        raise TriageError(WRONG_STUDY.format(face=face.pk, version=version))


def _current_locked(face: Face) -> Triage | None:
    return Triage.objects.select_for_update().filter(face=face).first()


def _current_write(*, face: Face, current: Triage | None, event: TriageEvent) -> Triage:
    """Make `event` (a decision) the verdict in effect, in the row `current` or a new one."""
    values = {
        "version_id": event.version_id,
        "decision": event.decision,
        "tags": event.tags,
        "note": event.note,
        "decided_by_id": event.actor_id,
        "decided_at": event.created_at,
    }
    if current is not None:
        for name, value in values.items():
            setattr(current, name, value)
        current.save(update_fields=[name.removesuffix("_id") for name in values])
        return current
    try:
        with transaction.atomic():
            return Triage.objects.create(face=face, **values)
    except IntegrityError:  # a concurrent first verdict won the race (triage_once_per_face)
        raise TriageError(CONCURRENT.format(face=face.pk)) from None


@transaction.atomic
def triage_record(
    *,
    face: Face,
    version: ModelVersion,
    decision: str,
    decided_by,
    tags: list[str] | tuple[str, ...] = (),
    note: str = "",
) -> Triage:
    """Make `decision` the face's verdict, seen on `version`'s gallery; returns it.

    A label error that replaces another verdict (or none) asks the coding flow for fresh
    votes. Raises TriageError (nothing written) for an unknown decision or tag, an over-long
    note, a face from another study, or a verdict identical to the one in effect. Locks the
    face's Triage row.
    """
    if decision not in Triage.Decision.values:
        raise TriageError(
            UNKNOWN_DECISION.format(decision=decision, choices=", ".join(Triage.Decision.values))
        )
    unknown = sorted(set(tags) - set(TAGS))
    if unknown:
        raise TriageError(UNKNOWN_TAGS.format(tags=", ".join(unknown), choices=", ".join(TAGS)))
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise TriageError(NOTE_TOO_LONG.format(n=len(note), limit=NOTE_MAX))
    _check(face=face, version=version)
    tags = sorted(set(tags))
    current = _current_locked(face)
    if current is not None and (current.decision, current.tags, current.note) == (
        decision,
        tags,
        note,
    ):
        raise TriageError(UNCHANGED.format(face=face.pk, decision=current.get_decision_display()))
    reset = decision == Triage.Decision.LABEL_ERROR and (
        current is None or current.decision != Triage.Decision.LABEL_ERROR
    )
    event = TriageEvent.objects.create(
        face=face,
        version=version,
        action=TriageEvent.Action.DECIDED,
        decision=decision,
        tags=tags,
        note=note,
        votes_reset=reset,
        actor=decided_by,
        created_at=timezone.now(),
    )
    triage = _current_write(face=face, current=current, event=event)
    if reset:
        face_votes_reset(
            face=face, reason=LABEL_ERROR_REASON.format(version=version, who=decided_by)
        )
    return triage


@transaction.atomic
def triage_undo(*, face: Face, version: ModelVersion, undone_by, note: str = "") -> Triage | None:
    """Withdraw the face's verdict in effect, from `version`'s gallery; returns the verdict
    now in effect (the one before it) or None.

    Votes are not touched (see the module docstring for a label error). Raises TriageError
    (nothing written) for a face from another study or a face with no verdict. Locks the
    face's Triage row.
    """
    _check(face=face, version=version)
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise TriageError(NOTE_TOO_LONG.format(n=len(note), limit=NOTE_MAX))
    current = _current_locked(face)
    if current is None:
        raise TriageError(NOTHING_TO_UNDO.format(face=face.pk))
    in_effect = _decisions_in_effect(face)
    try:
        with transaction.atomic():
            TriageEvent.objects.create(
                face=face,
                version=version,
                action=TriageEvent.Action.UNDONE,
                decision=in_effect[0].decision,
                undoes=in_effect[0],
                note=note,
                actor=undone_by,
                created_at=timezone.now(),
            )
    except IntegrityError:  # the same decision undone concurrently (undoes is one-to-one)
        raise TriageError(CONCURRENT.format(face=face.pk)) from None
    if len(in_effect) == 1:
        current.delete()  # the row is the cache of the history, which keeps everything
        return None
    return _current_write(face=face, current=current, event=in_effect[1])


def _decisions_in_effect(face: Face) -> list[TriageEvent]:
    """The face's decisions not undone, latest first (at most the two that undo needs)."""
    return list(
        TriageEvent.objects.filter(
            face=face, action=TriageEvent.Action.DECIDED, undone_by__isnull=True
        ).order_by("-created_at", "-pk")[:2]
    )
