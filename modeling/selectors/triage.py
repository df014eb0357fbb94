"""Reads of triage verdicts: the one way the gallery, training, validation sampling and the
estimates learn which faces were triaged and how.

A verdict belongs to the face (so to its study), whichever version's gallery it was made
from; see modeling.services.triage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count

from annotate.models import Study
from modeling.models import Triage, TriageEvent


@dataclass(frozen=True)
class FaceTriage:
    """A face's verdict in effect (None when it has none) and its history, oldest first."""

    current: Triage | None
    history: list[TriageEvent] = field(default_factory=list)


def triage_current(*, study: Study) -> dict[int, str]:
    """The verdict in effect per face of the study: {face_id: decision}."""
    return dict(Triage.objects.filter(face__study=study).values_list("face_id", "decision"))


def triage_not_face_ids(*, study_id: int) -> set[int]:
    """Faces whose verdict in effect is "not a face"; training, validation sampling and the
    estimates leave them out for every version of the study."""
    return set(
        Triage.objects.filter(
            face__study_id=study_id, decision=Triage.Decision.NOT_FACE
        ).values_list("face_id", flat=True)
    )


def triage_counts(*, study: Study) -> dict[str, int]:
    """Verdicts in effect in the study by decision (every decision present, 0 if none)."""
    counts = dict.fromkeys(Triage.Decision.values, 0)
    for row in (
        Triage.objects.filter(face__study=study)
        .values("decision")
        .annotate(n=Count("id"))
        .order_by()
    ):
        counts[row["decision"]] = row["n"]
    return counts


def triage_for_faces(*, face_ids: list[int]) -> dict[int, FaceTriage]:
    """Verdict and history of each face in `face_ids` that was ever triaged (two queries)."""
    result: dict[int, FaceTriage] = {}
    current = {
        t.face_id: t
        for t in Triage.objects.filter(face_id__in=face_ids).select_related("decided_by", "version")
    }
    for event in (
        TriageEvent.objects.filter(face_id__in=face_ids)
        .select_related("actor", "version")
        .order_by("created_at", "pk")
    ):
        if event.face_id not in result:
            result[event.face_id] = FaceTriage(current=current.get(event.face_id))
        result[event.face_id].history.append(event)
    for face_id, triage in current.items():
        result.setdefault(face_id, FaceTriage(current=triage))
    return result
