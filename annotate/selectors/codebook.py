"""Reads for the codebook: what coders are shown, and the faces a researcher may pick from.

Coders see the study's instructions and the example faces grouped by question and answer,
each crop served by annotate.views.codebook.codebook_crop (example ids, never face ids).
Candidates are faces that are no longer open for coding and whose consensus or known label
gives the answer, so an example never shows coders the answer to a face they may be handed.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.urls import reverse

from annotate.models import CodebookExample, Face, FaceStatus, Study
from annotate.selectors.coding import study_questions

CANDIDATES_LIMIT = 60


def codebook_examples(*, study: Study) -> QuerySet[CodebookExample]:
    return study.codebook_examples.order_by("order", "pk")


def codebook_groups(*, study: Study) -> list[dict]:
    """The examples grouped by the study's questions (in the order coders answer them) and
    each question's answers (in the order of its keys); empty answers and questions are left
    out. Examples of a question the study no longer asks are left out too."""
    examples = list(codebook_examples(study=study))
    groups = []
    for question in study_questions(study=study):
        answers = []
        for key, value in question.keys.items():
            shown = [e for e in examples if e.question == question.key and e.answer == value]
            if shown:
                answers.append(
                    {
                        "value": str(value),
                        "label": question.choices(value).label,
                        "key": key,
                        "examples": [
                            {
                                "id": e.pk,
                                "note": e.note,
                                "crop": reverse("annotate:codebook_crop", args=[study.slug, e.pk]),
                            }
                            for e in shown
                        ],
                    }
                )
        if answers:
            groups.append({"key": question.key, "title": question.title, "answers": answers})
    return groups


def codebook_for_coder(*, study: Study) -> dict:
    """The study's instructions and grouped examples; `empty` when there is neither."""
    groups = codebook_groups(study=study)
    instructions = study.instructions.strip()
    return {"instructions": instructions, "groups": groups, "empty": not (instructions or groups)}


def codebook_candidates(
    *, study: Study, question: str, answer: str = "", limit: int = CANDIDATES_LIMIT
) -> list[Face]:
    """Faces of `study` a researcher may pick as examples for `question`: not open for coding,
    with a consensus or known label for it (equal to `answer` when given), not already an
    example of that question. Each face carries `consensus_value` and `known_value`."""
    if question == "gender":
        consensus_field, known_field = "consensus__label", "known_labels__gender"
    else:
        consensus_field, known_field = (
            f"consensus__attributes__{question}",
            f"known_labels__{question}",
        )
    labeled = Q(consensus__isnull=False) | Q(known_labels__isnull=False)
    if answer:
        labeled = Q(**{consensus_field: answer}) | Q(**{known_field: answer})
    taken = CodebookExample.objects.filter(study=study, question=question).values("face_id")
    faces = (
        Face.objects.filter(study=study)
        .exclude(coding_status=FaceStatus.OPEN)
        .exclude(crop="")
        .exclude(pk__in=taken)
        .filter(labeled)
        .select_related("consensus")
        .prefetch_related("known_labels")
        .distinct()
        .order_by("pk")[:limit]
    )
    result = []
    for face in faces:
        consensus = getattr(face, "consensus", None)
        if consensus is None:
            consensus_value = ""
        elif question == "gender":
            consensus_value = consensus.label
        else:
            consensus_value = (consensus.attributes or {}).get(question, "")
        known = [getattr(label, question, "") for label in face.known_labels.all()]
        known_value = next((value for value in known if value), "")
        if consensus_value or known_value:
            # Shown on the face's card (annotate/codebook.html).
            face.consensus_value = consensus_value  # type: ignore[attr-defined]
            face.known_value = known_value  # type: ignore[attr-defined]
            result.append(face)
    return result
