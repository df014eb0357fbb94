"""Reads for crowd workers: who a crowd worker is, and the per-worker figures for payment.

Time on task is derived from the server's own timestamps (entry, votes, gold answers), never
from the seconds the page reports, so it cannot be inflated from the browser.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import QuerySet

from annotate.models import CrowdLink, CrowdWorker, GoldAnswer, Study, Vote
from annotate.selectors.gold import gold_counts

# A pause longer than this between two answers counts as this long: the worker was away.
IDLE_CAP = timedelta(minutes=5)
EXPORT_COLUMNS = (
    "participant_id",
    "username",
    "link",
    "joined_at",
    "faces_coded",
    "quota",
    "completed",
    "first_answer_at",
    "last_answer_at",
    "active_minutes",
    "gold_n",
    "gold_correct",
    "gold_accuracy",
)


def active_minutes(
    start: datetime, answers: Iterable[datetime], *, cap: timedelta = IDLE_CAP
) -> float:
    """Minutes on task: the gaps from `start` through each answer in time order, each gap
    counted up to `cap`."""
    total = timedelta(0)
    previous = start
    for moment in sorted(answers):
        gap = moment - previous
        if gap > timedelta(0):
            total += min(gap, cap)
        previous = max(previous, moment)
    return round(total.total_seconds() / 60, 2)


def crowd_worker_of(*, study: Study, user) -> CrowdWorker | None:
    return CrowdWorker.objects.select_related("link").filter(study=study, user=user.pk).first()


def crowd_links(*, study: Study) -> QuerySet[CrowdLink]:
    return study.crowd_links.order_by("-created_at")


def crowd_export_rows(*, study: Study) -> list[dict]:
    """One row per crowd worker of `study` (columns EXPORT_COLUMNS): faces coded (votes and
    gold answers that stand), first and last answer, active minutes, accuracy on gold."""
    workers = list(
        CrowdWorker.objects.filter(study=study).select_related("user", "link").order_by("joined_at")
    )
    user_ids = [w.user_id for w in workers]
    times: dict[int, list[datetime]] = {uid: [] for uid in user_ids}
    votes = Vote.objects.filter(face__study=study, coder__in=user_ids, retracted_at__isnull=True)
    gold = GoldAnswer.objects.filter(
        gold__face__study=study, coder__in=user_ids, retracted_at__isnull=True
    )
    for coder_id, created_at in [
        *votes.values_list("coder_id", "created_at"),
        *gold.values_list("coder_id", "created_at"),
    ]:
        times[coder_id].append(created_at)
    scores = gold_counts(study=study, coder_ids=user_ids)
    rows = []
    for worker in workers:
        answers = sorted(times[worker.user_id])
        gold_n, gold_correct = scores.get(worker.user_id, (0, 0))
        rows.append(
            {
                "participant_id": worker.participant_id,
                "username": worker.user.username,
                "link": worker.link_id,
                "joined_at": worker.joined_at.isoformat(),
                "faces_coded": len(answers),
                "quota": worker.link.faces_per_worker,
                "completed": len(answers) >= worker.link.faces_per_worker,
                "first_answer_at": answers[0].isoformat() if answers else "",
                "last_answer_at": answers[-1].isoformat() if answers else "",
                "active_minutes": active_minutes(worker.joined_at, answers),
                "gold_n": gold_n,
                "gold_correct": gold_correct,
                "gold_accuracy": round(gold_correct / gold_n, 4) if gold_n else "",
            }
        )
    return rows
