"""Triage of misclassified faces: a researcher's verdict, once per face and version.

A second verdict on the same face for the same version is refused (TRIAGED_ALREADY), not
silently overwritten: a "label error" verdict has already sent the face back for fresh
votes, and the record of who decided what must stay as it was. The next training run reads
the verdicts (not-a-face faces excluded, label errors relabelled by the fresh votes).
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from annotate.models import Face
from modeling.models import ModelVersion, Triage
from modeling.services import coding_bridge

TAGS = ("blurry", "occluded", "child", "glasses", "profile", "low_light", "cartoon", "group")
TRIAGED_ALREADY = (
    "Face {face} was already triaged for {version} ({decision} by {who}); a verdict is "
    "recorded once per face and version."
)
UNKNOWN_DECISION = "Unknown decision {decision!r}; choose one of: {choices}."
UNKNOWN_TAGS = "Unknown tags {tags}; choose from: {choices}."
WRONG_STUDY = "Face {face} does not belong to the study of {version}."
LABEL_ERROR_REASON = "triage: label error for {version} (by {who})"


class TriageError(ValueError):
    """The verdict was refused; the message says why."""


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
    """Record a verdict; for a label error, ask the coding flow for fresh votes.

    Raises TriageError (nothing written) for an unknown decision or tag, a face from another
    study, or a face already triaged for this version.
    """
    if decision not in Triage.Decision.values:
        raise TriageError(
            UNKNOWN_DECISION.format(decision=decision, choices=", ".join(Triage.Decision.values))
        )
    unknown = sorted(set(tags) - set(TAGS))
    if unknown:
        raise TriageError(UNKNOWN_TAGS.format(tags=", ".join(unknown), choices=", ".join(TAGS)))
    if face.study_id != version.study_id:
        raise TriageError(WRONG_STUDY.format(face=face.pk, version=version))
    existing = (
        Triage.objects.filter(face=face, version=version).select_related("decided_by").first()
    )
    if existing is not None:
        raise _already(existing, face, version)
    try:
        with transaction.atomic():
            triage = Triage.objects.create(
                face=face,
                version=version,
                decision=decision,
                tags=sorted(set(tags)),
                note=note.strip(),
                decided_by=decided_by,
            )
    except IntegrityError:  # a concurrent verdict won the race (triage_once_per_version)
        existing = Triage.objects.select_related("decided_by").get(face=face, version=version)
        raise _already(existing, face, version) from None
    if decision == Triage.Decision.LABEL_ERROR:
        coding_bridge.face_votes_reset(
            face=face, reason=LABEL_ERROR_REASON.format(version=version, who=decided_by)
        )
    return triage


def _already(existing: Triage, face: Face, version: ModelVersion) -> TriageError:
    return TriageError(
        TRIAGED_ALREADY.format(
            face=face.pk,
            version=version,
            decision=existing.get_decision_display(),
            who=existing.decided_by,
        )
    )
