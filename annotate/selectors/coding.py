"""Reads for the coding flow: what a coder may see of a face, and its progress.

Blinding: `assignment_payload` is the ONLY description of a face sent to a coder. It names
the lease, the crop and (on request) the source image with the box, and nothing about other
coders' votes, the consensus, or any model's prediction.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo
from functools import lru_cache

from django.contrib.auth import get_user_model
from django.db.models import IntegerField, QuerySet, Subquery
from django.urls import get_script_prefix, reverse
from django.utils import timezone

# The queue work is handed out from: counted here so "faces you can still take" follows the
# one rule that hands them out (annotate.assignment), not a copy of it.
from annotate.assignment import _work_queue
from annotate.compiled_sql import compiled, queryset_sql
from annotate.labels import ATTRIBUTE_QUESTIONS, GENDER_QUESTION, Question
from annotate.models import Assignment, FaceStatus, GoldAnswer, Study, Vote
from annotate.selectors.gold import gold_answer_undone, gold_answers_counts

PAYLOAD_KEYS = ("assignment", "crop", "source", "expires_at")
# Free faces are counted up to this many (then shown as "100+"): every vote's reply counts
# them, and at 1000 the count was most of the database's work on a vote. A coder pacing
# their work learns as much from "100+".
OPEN_COUNT_CAP = 100
MORE_THAN_CAP = f"{OPEN_COUNT_CAP}+"


def study_questions(*, study: Study) -> list[Question]:
    """What coders of `study` are asked, in order: gender, then the attributes it asks."""
    asked = [ATTRIBUTE_QUESTIONS[n] for n in study.attributes_asked if n in ATTRIBUTE_QUESTIONS]
    return [GENDER_QUESTION, *asked]


def assignment_payload(*, study: Study, assignment: Assignment) -> dict:
    face = assignment.face
    has_source = face.source_image_id is not None and face.box_x is not None
    return {
        "assignment": assignment.pk,
        "crop": url_with_id("annotate:face_crop", face.pk) if face.crop else "",
        "source": (
            url_with_id("annotate:code_source", assignment.pk, study.slug) if has_source else None
        ),
        "expires_at": assignment.expires_at.isoformat(),
    }


def url_with_id(name: str, pk: int, *args: str) -> str:
    """reverse(name, args=[*args, pk]) for a route whose last part is an id: the text around
    the id is kept per process (reversing cost more CPU than the rest of a face's payload)."""
    head, tail = _around_id(name, get_script_prefix(), args)
    return f"{head}{pk}{tail}"


_ID_STAND_IN = 7_000_000_000_001


@lru_cache(maxsize=1024)
def _around_id(name: str, prefix: str, args: tuple[str, ...]) -> tuple[str, str]:
    """The reversed URL before and after its id; `prefix` (the script prefix reverse() puts
    in front) is part of the key."""
    head, _, tail = reverse(name, args=[*args, _ID_STAND_IN]).rpartition(str(_ID_STAND_IN))
    return head, tail


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
    """Midnight of today in the current time zone (TIME_ZONE), as an aware datetime; the day
    last asked for is kept (every vote asks)."""
    global _day
    now = now or timezone.now()
    zone = timezone.get_current_timezone()
    kept = _day
    if kept is not None and kept[0] is zone and kept[1] <= now < kept[2]:
        return kept[1]
    day = timezone.localdate(now, zone)
    start, end = (
        timezone.make_aware(datetime.combine(d, time.min), zone)
        for d in (day, day + timedelta(days=1))
    )
    _day = (zone, start, end)
    return start


_day: tuple[tzinfo, datetime, datetime] | None = None  # zone, midnight, the next midnight


def coder_progress_counts(*, study: Study, coder, since: datetime) -> QuerySet:
    """The coder's live counts as one bounded single-row `.values()` query: `total` and
    `today` (their live votes, counted on the `vote_coder_study_live` index alone),
    `gold_total` and `gold_today` (their live gold answers, which count as faces done: a gold
    face must look like any other) and `free`, the open faces with a free slot they hold none
    of (the rule annotate.assignment hands work out by), counted up to OPEN_COUNT_CAP + 1 over
    the `face_work_queue` index; `today` counts from `since`. The submit reply carries it,
    read in the statement that hands out the next faces (annotate.assignment
    .assignments_take_reading), so its cost must not grow with the study, and grows with the
    coder's votes only as index entries counted."""
    votes = Vote.objects.filter(study=study, coder=coder, retracted_at__isnull=True)
    gold = GoldAnswer.objects.filter(
        gold__face__study=study, coder=coder, retracted_at__isnull=True
    )
    # In the queue's own order, so the count walks the `face_work_queue` index as the claim
    # does, probing each face for the coder's lease. Unordered, the planner was free to
    # merge-join the study's faces with every lease of every coder: 1.8 ms a vote at 50
    # coders, most of the database's work on it.
    free_faces = _work_queue(study=study, coder=coder).values("pk")[: OPEN_COUNT_CAP + 1]
    return (
        Study.objects.filter(pk=study.pk)
        .annotate(
            total=_RowCount(votes.values("pk")),
            today=_RowCount(votes.filter(created_at__gte=since).values("pk")),
            gold_total=_RowCount(gold.values("pk")),
            gold_today=_RowCount(gold.filter(created_at__gte=since).values("pk")),
            free=_RowCount(free_faces),
        )
        .values("total", "today", "gold_total", "gold_today", "free")
    )


def progress_from_counts(
    counts: dict, *, leases_held: int, claimed: int = 0
) -> dict[str, int | str]:
    """The progress line from `coder_progress_counts`: votes today and in total (gold answers
    included, undone votes not), and the faces the coder can still take: `leases_held` plus
    the free faces, less `claimed` (faces the same statement handed out, still free in its
    snapshot), shown as "100+" above the cap."""
    if counts["free"] > OPEN_COUNT_CAP:  # the claimed ones are among them, and held now
        available: int | str = MORE_THAN_CAP
    else:
        available = max(0, counts["free"] - claimed) + leases_held
    return {
        "today": counts["today"] + counts["gold_today"],
        "total": counts["total"] + counts["gold_total"],
        "available": available,
    }


def coder_progress(
    *, study: Study, coder, leases_held: int, now: datetime | None = None
) -> dict[str, int | str]:
    """The coder's live counts (`coder_progress_counts`, one query) as the progress line, with
    `leases_held` the live leases the caller just handed out."""
    counts = coder_progress_counts(study=study, coder=coder, since=_today_start(now)).get()
    return progress_from_counts(counts, leases_held=leases_held)


def coder_progress_sql(*, study: Study, coder, now: datetime | None = None) -> tuple[str, tuple]:
    """coder_progress_counts as SQL and parameters, compiled once per process."""

    def build(study_id: int, coder_id: int, since: datetime) -> tuple[str, tuple]:
        return queryset_sql(
            coder_progress_counts(study=Study(pk=study_id), coder=_user(coder_id), since=since)
        )

    return compiled(
        "coder_progress", build, study_id=study.pk, coder_id=coder.pk, since=_today_start(now)
    )


def _user(pk: int):
    return get_user_model()(pk=pk)


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
    """Open faces in the study for the coder's progress line, counted up to a cap ("100+"),
    so the cost does not grow with the study."""
    n = study.faces.filter(coding_status=FaceStatus.OPEN)[: OPEN_COUNT_CAP + 1].count()
    return MORE_THAN_CAP if n > OPEN_COUNT_CAP else str(n)
