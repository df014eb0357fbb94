"""Reads for the coding flow: what a coder may see of a face, and its progress.

Blinding: `assignment_payload` is the ONLY description of a face sent to a coder. It names
the lease, the crop and (on request) the source image with the box, and nothing about other
coders' votes, the consensus, or any model's prediction.
"""

from __future__ import annotations

from datetime import datetime, time

from django.db.models import IntegerField, Subquery
from django.urls import reverse
from django.utils import timezone

# The queue work is handed out from: counted here so "faces you can still take" follows the
# one rule that hands them out (annotate.assignment), not a copy of it.
from annotate.assignment import _work_queue
from annotate.labels import ATTRIBUTE_QUESTIONS, GENDER_QUESTION, Question
from annotate.models import Assignment, FaceStatus, Study, Vote
from annotate.selectors.gold import gold_answer_undone, gold_answers_counts

PAYLOAD_KEYS = ("assignment", "crop", "source", "expires_at")
OPEN_COUNT_CAP = 1000


def study_questions(*, study: Study) -> list[Question]:
    """What coders of `study` are asked, in order: gender, then the attributes it asks."""
    asked = [ATTRIBUTE_QUESTIONS[n] for n in study.attributes_asked if n in ATTRIBUTE_QUESTIONS]
    return [GENDER_QUESTION, *asked]


def assignment_payload(*, study: Study, assignment: Assignment) -> dict:
    face = assignment.face
    has_source = face.source_image_id is not None and face.box_x is not None
    return {
        "assignment": assignment.pk,
        "crop": reverse("annotate:face_crop", args=[face.pk]) if face.crop else "",
        "source": (
            reverse("annotate:code_source", args=[study.slug, assignment.pk])
            if has_source
            else None
        ),
        "expires_at": assignment.expires_at.isoformat(),
    }


def coder_votes_count(*, study: Study, coder) -> int:
    """Faces the coder has answered: their live votes plus live answers on gold faces (which
    are no votes, but must not show as a count that stood still)."""
    votes = Vote.objects.filter(face__study=study, coder=coder, retracted_at__isnull=True).count()
    return votes + gold_answers_counts(study=study, coder=coder)[0]


class _RowCount(Subquery):
    """The number of rows of a queryset (sliced or not), as a scalar subquery."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) _rows)"
    output_field = IntegerField()


def _today_start(now: datetime | None = None) -> datetime:
    """Midnight of today in the site's time zone (TIME_ZONE), as an aware datetime."""
    now = now or timezone.now()
    return timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))


def coder_progress(
    *, study: Study, coder, leases_held: int, now: datetime | None = None
) -> dict[str, int | str]:
    """The coder's live counts: votes today and in total (undone votes not counted), and the
    faces they can still take: `leases_held` (the live leases the caller just handed out)
    plus the open faces with a free slot they hold none of (the rule annotate.assignment
    hands work out by), counted up to a cap ("1000+").

    One bounded query for the coder's votes today and in total (the `vote_coder_time` index)
    and the capped count over the `face_work_queue` index, as scalar subqueries of one
    SELECT, plus one for the coder's gold answers (annotate.selectors.gold); the submit reply
    carries it, so its cost must not grow with the study or the coder's votes.
    """
    votes = Vote.objects.filter(face__study=study, coder=coder, retracted_at__isnull=True)
    free_faces = _work_queue(study=study, coder=coder).values("pk")[: OPEN_COUNT_CAP + 1]
    counts = (
        Study.objects.filter(pk=study.pk)
        .annotate(
            total=_RowCount(votes.values("pk")),
            today=_RowCount(votes.filter(created_at__gte=_today_start(now)).values("pk")),
            free=_RowCount(free_faces),
        )
        .values("total", "today", "free")
        .get()
    )
    # Gold answers count as faces done: a gold face must look like any other (blind).
    gold_total, gold_today = gold_answers_counts(study=study, coder=coder, since=_today_start(now))
    free = counts["free"]
    available = free + leases_held
    return {
        "today": counts["today"] + gold_today,
        "total": counts["total"] + gold_total,
        "available": f"{OPEN_COUNT_CAP}+" if free > OPEN_COUNT_CAP else available,
    }


def vote_undone_answers(*, study: Study, assignment: Assignment) -> list[dict[str, str]]:
    """What the coder's vote just undone on `assignment` said, as the page shows it: one
    {"question": title, "answer": label} per question answered, in the order asked. Only the
    coder's own answers, in words; nothing of other coders' votes."""
    vote = (
        Vote.objects.filter(assignment=assignment, retracted_at__isnull=False)
        .order_by("-retracted_at", "-pk")
        .first()
    )
    if vote is not None:
        said = {q.key: getattr(vote, q.key, "") for q in study_questions(study=study)}
    else:  # an answer on a gold face is undone the same way (blind)
        said = gold_answer_undone(assignment=assignment) or {}
    return [
        {"question": q.title, "answer": str(q.choices(value).label)}
        for q in study_questions(study=study)
        if (value := said.get(q.key, ""))
    ]


def faces_open_count(*, study: Study) -> str:
    """Open faces in the study for the coder's progress line, counted up to a cap ("1000+"),
    so the cost does not grow with the study."""
    n = study.faces.filter(coding_status=FaceStatus.OPEN)[: OPEN_COUNT_CAP + 1].count()
    return f"{OPEN_COUNT_CAP}+" if n > OPEN_COUNT_CAP else str(n)
