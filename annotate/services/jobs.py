"""One life cycle for background work: claim, heartbeat, stale sweep, cancel, finish.

Imports (`annotate.services.import_jobs`), training runs (`modeling.services.training`) and
prediction runs (`modeling.services.prediction`) are rows of an `annotate.models.Job` model and
move through it only by these functions:

- **claim** (`job_claim`): a conditional update moves queued work, or running work whose
  heartbeat went stale and that has attempts left, to running under a fresh token. A second
  delivery of a message finds the work finished, or running with a fresh heartbeat, and does
  nothing.
- **heartbeat** (`job_beat`): written with the progress while the token still holds the work;
  ClaimLost when it does not (taken over, swept, ended). A job split into parts rolls its
  parts' progress up into the parent (`parts_rollup`).
- **finish** (`job_finish`, `part_finish`): only the holder of the claim ends the work; of two
  parts finishing together exactly one sees itself last (the parent's row lock).
- **cancel** (`job_cancel`): queued work ends at once; running work at its holder's next
  heartbeat.
- **stale sweep** (`jobs_lost`, `job_recover`): work whose heartbeat is older than its stale
  period is queued again, or failed with the reason once it used its attempts. Each update is
  conditional on the heartbeat the sweep saw, so a sweep racing another, or the work's own
  worker, changes nothing.

Each kind of work keeps its own stale period and number of attempts: an import is run again
up to FACET_IMPORT_MAX_ATTEMPTS times; a training or prediction run has one attempt, because a
person starts the next one (predictions already written are kept).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import DateTimeField, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from annotate.models import CancellableJob, Job, JobStatus

logger = logging.getLogger(__name__)

UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
ERROR_MAX_CHARS = 5000

J = TypeVar("J", bound=Job)
C = TypeVar("C", bound=CancellableJob)


class ClaimLost(Exception):
    """The work was taken over by another delivery (its heartbeat had gone stale), or ended."""


def claim_token() -> str:
    """Who holds a claim: host, process and a nonce, so two copies never share one."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]


def stale(*, cutoff: datetime) -> Q:
    """Running work last heard from before `cutoff` (work from before heartbeats: started then)."""
    return Q(status=JobStatus.RUNNING) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )


def job_claim(
    jobs: QuerySet[J],
    *,
    stale_after: timedelta,
    max_attempts: int,
    now: datetime | None = None,
    **fields: object,
) -> str | None:
    """Claim the work `jobs` selects (one row) for this task; its token, or None.

    Claimable: queued, or running with a heartbeat older than `stale_after` and fewer than
    `max_attempts` claims (its worker was lost). `fields` are written with the claim.
    """
    now = now or timezone.now()
    token = claim_token()
    lost = stale(cutoff=now - stale_after) & Q(attempts__lt=max_attempts)
    claimed = jobs.filter(Q(status=JobStatus.QUEUED) | lost).update(
        status=JobStatus.RUNNING,
        claimed_by=token,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        started_at=Coalesce(F("started_at"), Value(now, output_field=DateTimeField())),
        **fields,
    )
    return token if claimed else None


def held(model: type[J], *, pk: int, token: str) -> QuerySet[J]:
    """The work, if `token` still holds it and it is running."""
    return model._default_manager.filter(pk=pk, claimed_by=token, status=JobStatus.RUNNING)


def job_beat(
    model: type[Job], *, pk: int, token: str, now: datetime | None = None, **fields: object
) -> bool:
    """Write the heartbeat (and `fields`, the progress) while `token` holds the running work.

    Returns True when someone asked to cancel it. Raises ClaimLost when the claim was taken
    over or the work ended meanwhile, so the copy stops.
    """
    mine = held(model, pk=pk, token=token)
    if not mine.update(heartbeat_at=now or timezone.now(), **fields):
        raise ClaimLost(f"{model._meta.verbose_name} {pk}")
    return (
        issubclass(model, CancellableJob)
        and held(model, pk=pk, token=token).filter(cancel_requested=True).exists()
    )


def parts_rollup(parent: QuerySet, parts: QuerySet, *, now: datetime | None = None) -> None:
    """A parent's progress is the sum of its parts' `done` (it never goes down); a part's
    heartbeat is its parent's too."""
    done = parts.aggregate(n=Sum("done"))["n"] or 0
    parent.update(done=Greatest(F("done"), Value(done)), heartbeat_at=now or timezone.now())


def job_finish(
    model: type[Job],
    *,
    pk: int,
    token: str,
    status: str,
    error: str = "",
    now: datetime | None = None,
    **fields: object,
) -> bool:
    """End the work as `status` if `token` still holds it; False, writing nothing, if not."""
    now = now or timezone.now()
    return bool(
        held(model, pk=pk, token=token).update(
            status=status,
            error=error[:ERROR_MAX_CHARS],
            heartbeat_at=now,
            finished_at=now,
            **fields,
        )
    )


def part_finish(
    model: type[Job],
    *,
    parent: QuerySet,
    parts: QuerySet,
    pk: int,
    token: str,
    status: str,
    error: str = "",
    **fields: Any,
) -> bool:
    """End one part of a split job; True when no part of its parent (`parts`) is left to run.

    Raises ClaimLost (and records nothing) when the part was taken over meanwhile. Takes the
    parent's row lock, so of two parts finishing together exactly one sees itself last.
    """
    with transaction.atomic():
        parent.select_for_update().first()
        if not job_finish(model, pk=pk, token=token, status=status, error=error, **fields):
            raise ClaimLost(f"{model._meta.verbose_name} {pk}")
        return not parts.filter(status__in=UNFINISHED).exists()


def job_cancel(model: type[C], *, pk: int, error: str) -> C:
    """Ask work to stop (takes its row lock): finished work stays as it is, queued work ends
    cancelled at once with `error`, running work at its holder's next heartbeat."""
    with transaction.atomic():
        job = model._default_manager.select_for_update().get(pk=pk)
        if job.status in FINISHED:
            return job
        job.cancel_requested = True
        fields = ["cancel_requested"]
        if job.status == JobStatus.QUEUED:
            job.status = JobStatus.CANCELLED
            job.error = error
            job.finished_at = timezone.now()
            fields += ["status", "error", "finished_at"]
        job.save(update_fields=fields)
    return job


# --- the stale sweep ---------------------------------------------------------------------------


def jobs_lost(jobs: QuerySet[J], *, stale_after: timedelta, now: datetime) -> QuerySet[J]:
    """The work among `jobs` whose worker was lost: running, not heard from for `stale_after`."""
    return jobs.filter(stale(cutoff=now - stale_after))


def as_seen(job: Job) -> QuerySet:
    """The work, if it is still running with the heartbeat this sweep saw (None matches NULL)."""
    return type(job)._default_manager.filter(
        pk=job.pk, status=JobStatus.RUNNING, heartbeat_at=job.heartbeat_at
    )


def job_recover(
    job: Job,
    *,
    now: datetime,
    max_attempts: int,
    fail: Callable[[QuerySet], bool],
    send: Callable[[], object] | None,
    where: str,
) -> int:
    """Recover lost work: 1 when this sweep failed it or queued it again, 0 when it changed
    nothing (another sweep, or the work's own worker, got there first).

    Failed through `fail(as_seen(job))` once it used `max_attempts` claims, or when nothing can
    run it again (`send` None); else queued again and its message sent with `send()`. When the
    broker refuses the message, the work is put back as it was and a later sweep retries.
    """
    if send is None or job.attempts >= max_attempts:
        if not fail(as_seen(job)):
            return 0
        logger.warning("%s failed: its worker was lost (%d claim(s))", where, job.attempts)
        return 1
    if not as_seen(job).update(status=JobStatus.QUEUED, claimed_by="", heartbeat_at=now):
        return 0
    try:
        send()
    except Exception:
        logger.exception("%s: could not queue it again; the next sweep retries", where)
        type(job)._default_manager.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, claimed_by=job.claimed_by, heartbeat_at=job.heartbeat_at
        )
        return 0
    logger.warning("%s: its worker was lost; queued again (attempt %d)", where, job.attempts + 1)
    return 1


def when(moment: datetime | None) -> str:
    """A heartbeat as the error messages show it."""
    return moment.isoformat(timespec="seconds") if moment else "never"
