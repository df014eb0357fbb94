"""Reads of triage verdicts, for the next training run and the model card."""

from __future__ import annotations

from django.db.models import Count

from modeling.models import ModelVersion, Triage


def triage_counts(*, version: ModelVersion) -> dict[str, int]:
    """Verdicts on a version's errors by decision (every decision present, 0 if none)."""
    counts = dict.fromkeys(Triage.Decision.values, 0)
    for row in Triage.objects.filter(version=version).values("decision").annotate(n=Count("id")):
        counts[row["decision"]] = row["n"]
    return counts


def triage_not_face_ids(*, study_id: int) -> set[int]:
    """Faces any version's triage called "not a face"; training and estimates leave them out."""
    return set(
        Triage.objects.filter(
            version__study_id=study_id, decision=Triage.Decision.NOT_FACE
        ).values_list("face_id", flat=True)
    )
