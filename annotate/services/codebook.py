"""Writing the codebook: the example faces a researcher picks for each answer.

Every change to a study's examples takes the study's row lock, so two researchers editing
one codebook at once cannot give two examples the same position.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from annotate.models import CodebookExample, Face, FaceStatus, Study
from annotate.selectors.coding import study_questions

UNKNOWN_QUESTION = "This study does not ask {question!r}; it asks: {asked}."
UNKNOWN_ANSWER = "{answer!r} is not an answer to {question}; answers: {answers}."
FACE_NOT_IN_STUDY = "No face {face} in this study."
FACE_STILL_OPEN = (
    "Face {face} is still being coded; pick a face whose coding is finished, so the codebook "
    "never shows coders the answer to a face they may be handed."
)
NO_SUCH_EXAMPLE = "No such codebook example in this study."
NOTE_TOO_LONG = "The note is longer than {limit} characters."
NOTE_LIMIT = 300


class CodebookError(ValueError):
    """A codebook change that was refused; the message says why, for the researcher."""


def _check_answer(*, study: Study, question: str, answer: str) -> None:
    questions = {q.key: q for q in study_questions(study=study)}
    if question not in questions:
        raise CodebookError(
            UNKNOWN_QUESTION.format(question=question[:40], asked=", ".join(questions))
        )
    values = [str(v) for v in questions[question].choices.values]
    if answer not in values:
        raise CodebookError(
            UNKNOWN_ANSWER.format(
                answer=answer[:40], question=questions[question].title, answers=", ".join(values)
            )
        )


def _study_lock(study: Study) -> None:
    Study.objects.select_for_update().filter(pk=study.pk).first()


@transaction.atomic
def codebook_example_add(
    *, study: Study, face_id: int, question: str, answer: str, note: str = ""
) -> CodebookExample:
    """Make face `face_id` the example of `answer` to `question`, last in its answer's row.

    A face that already illustrates `question` gets the new answer and note (one example per
    face and question). The face must belong to the study and be finished with coding.
    Takes the study's row lock.
    """
    _check_answer(study=study, question=question, answer=answer)
    note = note.strip()
    if len(note) > NOTE_LIMIT:
        raise CodebookError(NOTE_TOO_LONG.format(limit=NOTE_LIMIT))
    face = Face.objects.filter(pk=face_id, study=study).first()
    if face is None:
        raise CodebookError(FACE_NOT_IN_STUDY.format(face=face_id))
    if face.coding_status == FaceStatus.OPEN:
        raise CodebookError(FACE_STILL_OPEN.format(face=face_id))
    _study_lock(study)
    last = study.codebook_examples.aggregate(n=Max("order"))["n"]
    example, created = CodebookExample.objects.get_or_create(
        study=study,
        face=face,
        question=question,
        defaults={"answer": answer, "note": note, "order": (last or 0) + 1},
    )
    if not created:
        example.answer, example.note, example.order = answer, note, (last or 0) + 1
        example.save(update_fields=["answer", "note", "order"])
    return example


@transaction.atomic
def codebook_example_remove(*, study: Study, example_id: int) -> None:
    """Take an example out of the codebook (the face itself is untouched)."""
    deleted, _ = CodebookExample.objects.filter(pk=example_id, study=study).delete()
    if not deleted:
        raise CodebookError(NO_SUCH_EXAMPLE)


@transaction.atomic
def codebook_example_move(*, study: Study, example_id: int, up: bool) -> None:
    """Swap an example with its neighbour among the examples of the same answer (earlier when
    `up`); at either end nothing moves. Takes the study's row lock."""
    _study_lock(study)
    example = CodebookExample.objects.filter(pk=example_id, study=study).first()
    if example is None:
        raise CodebookError(NO_SUCH_EXAMPLE)
    row = list(
        study.codebook_examples.filter(question=example.question, answer=example.answer).order_by(
            "order", "pk"
        )
    )
    index = next(i for i, e in enumerate(row) if e.pk == example.pk)
    other = index - 1 if up else index + 1
    if not 0 <= other < len(row):
        return
    row[index], row[other] = row[other], row[index]
    # Positions are renumbered within the answer's row so ties from older rows cannot stick.
    slots = sorted(e.order for e in row)
    for position, item in zip(slots, row, strict=True):
        item.order = position
    if len(set(slots)) < len(slots):
        base = slots[0]
        for offset, item in enumerate(row):
            item.order = base + offset
    CodebookExample.objects.bulk_update(row, ["order"])
