"""Who labels what next: the one place that hands out work.

A face's `slots_taken` counts its unreleased, unexpired-or-unreclaimed assignments (a live
lease or a submitted vote each hold one slot); it never exceeds `votes_target`, and one
coder never holds two slots on a face (database constraints back both). Leases expire after
`Study.lease_minutes`; `leases_reclaim` returns their slots to the pool, cheaply (an index
range scan over `(status, expires_at)`), on every call for work. The same call sends split
faces that waited too long for an extra coder to a researcher (annotate.consensus), so no
face waits forever even when no coder can take the extra vote.

Lock order, everywhere: assignment rows before face rows. Handing out work locks only the
face it picks (`SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent coders never queue on the
same row) and then inserts a new assignment. On SQLite the database runs write transactions
with `BEGIN IMMEDIATE`, so they serialize instead.

Gold faces (annotate.selectors.gold) are mixed in at the study's `gold_rate`: the same lease,
the same payload, but `Assignment.gold` is set and no slot is taken, so a gold face's own vote
slots never move and its answer never becomes a vote. Gold faces are never in the work queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery
from django.utils import timezone

from annotate.compiled_sql import compiled, prepared_cursor, queryset_sql
from annotate.consensus import escalations_review, escalations_sweep
from annotate.models import (
    Assignment,
    AssignmentStatus,
    Consensus,
    Face,
    FaceStatus,
    GoldFace,
    Study,
    Vote,
)
from annotate.selectors.gold import faces_served_count, gold_key, gold_queue, gold_turn
from annotate.selectors.waiting import SLOT_STATUSES

logger = logging.getLogger(__name__)

# A coder holds the face on screen plus one prefetched face.
LEASES_PER_CODER = 2
RECLAIM_BATCH = 100
VALIDATION_PRIORITY = 100


def _now() -> datetime:
    return timezone.now()


def leases_reclaim(*, now: datetime | None = None, limit: int = RECLAIM_BATCH) -> int:
    """Mark up to `limit` expired leases expired and give their slots back; returns how many.

    Locks the expired assignment rows (skipping any another transaction holds), then their
    faces, in that order. A split face whose extra coder let the lease lapse is then decided
    again: with no other coder who could take it, it goes to a researcher.
    """
    now = now or _now()
    # The common case, nothing expired, costs one index probe and no transaction.
    if not Assignment.objects.filter(status=AssignmentStatus.LEASED, expires_at__lte=now).exists():
        return 0
    expired = (
        Assignment.objects.filter(status=AssignmentStatus.LEASED, expires_at__lte=now)
        .order_by("expires_at")
        .select_for_update(skip_locked=True)
        .values_list("pk", "face_id", "gold")[:limit]
    )
    with transaction.atomic():
        rows = list(expired)
        if not rows:
            return 0
        Assignment.objects.filter(pk__in=[pk for pk, _, _ in rows]).update(
            status=AssignmentStatus.EXPIRED
        )
        per_face: dict[int, int] = {}
        for _, face_id, gold in rows:
            if not gold:  # a gold lease holds no slot
                per_face[face_id] = per_face.get(face_id, 0) + 1
        for face_id, n in sorted(per_face.items()):
            Face.objects.filter(pk=face_id).update(slots_taken=F("slots_taken") - n)
    logger.info("reclaimed %d expired leases", len(rows))
    escalations_review(face_ids=sorted(per_face), now=now)
    return len(rows)


def leases_live(*, study: Study, coder, now: datetime | None = None):
    """The coder's unexpired leases in `study`, oldest first."""
    return (
        Assignment.objects.filter(
            face__study=study,
            coder=coder,
            status=AssignmentStatus.LEASED,
            expires_at__gt=now or _now(),
        )
        .select_related("face")
        .order_by("leased_at", "pk")
    )


def _work_queue(*, study: Study, coder):
    """Open faces with a free slot on which this coder holds no slot, best first.

    A face whose lease this coder let lapse comes back to them: with exactly K coders in a
    study, no one else could give it its K-th vote.
    Served by the `face_work_queue` index (study, coding_status, -priority, -slots_taken, id):
    the first rows of the index are the answer unless they are full or already this coder's.
    """
    holding = Assignment.objects.filter(face=OuterRef("pk"), coder=coder, status__in=SLOT_STATUSES)
    return (
        Face.objects.filter(
            study=study, coding_status=FaceStatus.OPEN, slots_taken__lt=F("votes_target")
        )
        .filter(~Exists(GoldFace.objects.filter(face=OuterRef("pk"))))
        .filter(~Exists(holding))
        .order_by("-priority", "-slots_taken", "id")
    )


@transaction.atomic
def _lease_one(*, study: Study, coder, now: datetime) -> Assignment | None:
    face = _work_queue(study=study, coder=coder).select_for_update(skip_locked=True).first()
    if face is None:
        return None
    assignment = _lease_write(study=study, coder=coder, face=face, now=now, gold=False)
    Face.objects.filter(pk=face.pk).update(slots_taken=F("slots_taken") + 1)
    face.slots_taken += 1
    return assignment


@transaction.atomic
def _lease_gold(*, study: Study, coder, now: datetime) -> Assignment | None:
    """Lease the coder a gold face they have not answered; no slot is taken."""
    face = gold_queue(study=study, coder=coder).select_for_update(skip_locked=True).first()
    if face is None:
        return None
    return _lease_write(study=study, coder=coder, face=face, now=now, gold=True)


def _lease_write(*, study: Study, coder, face: Face, now: datetime, gold: bool) -> Assignment:
    lease = {
        "status": AssignmentStatus.LEASED,
        "leased_at": now,
        "expires_at": now + timedelta(minutes=study.lease_minutes),
        "gold": gold,
    }
    # The coder's lapsed lease on this face, if any, is leased again: one row per coder.
    assignment = Assignment.objects.filter(
        face=face, coder=coder, status=AssignmentStatus.EXPIRED
    ).first()
    if assignment is None:
        assignment = Assignment.objects.create(face=face, coder=coder, **lease)
    else:
        for field, value in lease.items():
            setattr(assignment, field, value)
        assignment.save(update_fields=list(lease))
    return assignment


def _lease_next(*, study: Study, coder, now: datetime) -> Assignment | None:
    """The coder's next new lease: a gold face when their stream is at a gold position
    (`gold_turn`) and one is left, else a face from the work queue. Gold faces come only
    while real work remains, so the end of a coder's work never looks different."""
    if study.gold_rate > 0 and _work_queue(study=study, coder=coder).exists():
        index = faces_served_count(study=study, coder=coder)
        if gold_turn(index=index, rate=study.gold_rate, key=gold_key(study=study, coder=coder)):
            assignment = _lease_gold(study=study, coder=coder, now=now)
            if assignment is not None:
                return assignment
    return _lease_one(study=study, coder=coder, now=now)


# A split is minutes overdue at the earliest, so calls for work sweep at most once a minute
# per process (by the time they are given) rather than on every request of a busy study.
SWEEP_EVERY = timedelta(seconds=60)
_last_sweep: datetime | None = None


def _escalations_sweep_due(now: datetime) -> None:
    global _last_sweep
    if _last_sweep is not None and timedelta(0) <= now - _last_sweep < SWEEP_EVERY:
        return
    _last_sweep = now
    escalations_sweep(now=now)


def assignments_take(*, study: Study, coder, n: int = LEASES_PER_CODER) -> list[Assignment]:
    """The coder's live leases in `study`, topped up to `n` with new ones where work remains;
    each comes with its face (`assignment.face`: at least its id, crop and source fields)."""
    return assignments_take_reading(study=study, coder=coder, n=n, also=None).leases


@dataclass(frozen=True)
class Taken:
    leases: list[Assignment]  # the coder's live leases, oldest first, then the new ones
    read: dict  # the row of `also`, read before the new leases were written ({} without)
    claimed: int  # how many of the leases are new


def assignments_take_reading(
    *, study: Study, coder, n: int, also: tuple[str, tuple] | None
) -> Taken:
    """assignments_take, and `also` (the SQL and parameters of a one-row SELECT) read with it,
    as of just before the new leases are written: faces this call claims still look free
    there. On
    PostgreSQL `also` is read by the claim's own statement: the coding endpoints pass their
    progress counts, so a vote's reply costs no statement of its own for them.

    On PostgreSQL a study without gold faces claims in one statement (`_claim_sql`); gold
    studies (whose stream needs the coder's position, `_lease_next`) and SQLite take the
    faces one by one.
    """
    now = _now()
    _escalations_sweep_due(now)
    if connection.vendor == "postgresql" and study.gold_rate <= 0 and n > 0:
        taken = _claim(study=study, coder=coder, n=n, now=now, also=also)
        if taken is None:  # expired leases first: their slots go back before the claim
            leases_reclaim(now=now)
            taken = _claim(study=study, coder=coder, n=n, now=now, also=also)
        if taken is not None:
            return taken
    leases_reclaim(now=now)
    leases = list(leases_live(study=study, coder=coder, now=now)[:n])
    read = _row(*also) if also is not None else {}
    live = len(leases)
    while len(leases) < n:
        assignment = _lease_next(study=study, coder=coder, now=now)
        if assignment is None:
            break
        leases.append(assignment)
    return Taken(leases, read, len(leases) - live)


def _row(sql: str, params: tuple) -> dict:
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]  # DB-API: the name comes first
        return dict(zip(names, cursor.fetchone(), strict=True))


def _claim_sql(*, study: Study, coder, n: int, now: datetime, also: tuple[str, tuple] | None):
    """`_claim_text` with this call's values, and `also` joined on."""
    sql, params = compiled(
        ("claim", n),
        lambda **values: _claim_text(n=n, **values),
        study_id=study.pk,
        coder_id=coder.pk,
        now=now,
        expires=now + timedelta(minutes=study.lease_minutes),
    )
    also_sql, also_params = also if also is not None else ("SELECT 1 AS one", ())
    return sql.replace("{also_sql}", also_sql), (*params, *also_params)


def _claim_text(
    *, n: int, study_id: int, coder_id: int, now: datetime, expires: datetime
) -> tuple[str, tuple]:
    """One statement: the coder's live leases, and new leases on the best faces of the work
    queue (`_work_queue`, locked FOR UPDATE SKIP LOCKED) up to `n`, each a lapsed lease of
    theirs leased again or a new row, with the faces' slots taken. Nothing is claimed while
    expired leases wait to be reclaimed (the first row says so): their slots go back first.
    """
    study = Study(pk=study_id)
    coder = coder_id  # the filters take the coder's id
    live_sql, live_params = queryset_sql(
        leases_live(study=study, coder=coder, now=now).values("pk", "face_id", "expires_at")[:n]
    )
    queue_sql, queue_params = queryset_sql(_work_queue(study=study, coder=coder).values("pk")[:n])
    # Written out, not select_for_update(): the ORM refuses that outside a transaction, and
    # this statement is its own transaction.
    queue_sql += f" FOR UPDATE OF {Face._meta.db_table} SKIP LOCKED"
    expired_sql, expired_params = queryset_sql(
        Assignment.objects.filter(status=AssignmentStatus.LEASED, expires_at__lte=now).values("pk")[
            :1
        ]
    )
    sql = f"""
    WITH due AS (SELECT EXISTS ({expired_sql}) AS due),
    live AS (
        SELECT row_number() OVER () AS rank, q.pk AS id, q.face_id, q.expires_at
        FROM ({live_sql}) q
    ),
    queue AS (SELECT row_number() OVER () AS rank, q.pk AS id FROM ({queue_sql}) q),
    chosen AS (
        SELECT rank, id FROM queue
        WHERE NOT (SELECT due FROM due) AND rank <= %s - (SELECT count(*) FROM live)
    ),
    relet AS (
        UPDATE annotate_assignment SET status = %s, leased_at = %s, expires_at = %s, gold = false
        WHERE coder_id = %s AND status = %s AND face_id IN (SELECT id FROM chosen)
        RETURNING id, face_id, expires_at
    ),
    fresh AS (
        INSERT INTO annotate_assignment
            (face_id, coder_id, status, leased_at, expires_at, submitted_at, gold)
        SELECT id, %s, %s, %s, %s, NULL, false FROM chosen
        WHERE id NOT IN (SELECT face_id FROM relet)
        RETURNING id, face_id, expires_at
    ),
    taken AS (
        UPDATE annotate_face SET slots_taken = slots_taken + 1
        WHERE id IN (SELECT id FROM chosen) RETURNING id
    ),
    leases AS (
        SELECT rank, id, face_id, expires_at, 0 AS fresh FROM live
        UNION ALL
        SELECT %s + chosen.rank, n.id, n.face_id, n.expires_at, 1
        FROM (SELECT * FROM relet UNION ALL SELECT * FROM fresh) n
        JOIN chosen ON chosen.id = n.face_id
    )
    SELECT (SELECT due FROM due), l.id, l.face_id, l.expires_at, l.fresh,
           f.crop, f.source_image_id, f.box_x, extra.*
    FROM ({{also_sql}}) extra
    LEFT JOIN leases l ON true
    LEFT JOIN annotate_face f ON f.id = l.face_id
    ORDER BY l.rank
    """
    params = (
        *expired_params,
        *live_params,
        *queue_params,
        n,
        AssignmentStatus.LEASED,
        now,
        expires,
        coder_id,
        AssignmentStatus.EXPIRED,
        coder_id,
        AssignmentStatus.LEASED,
        now,
        expires,
        n,
    )
    return sql, params


def _read(model, **values):
    """A `model` row of which only `values` were read (by field attname), as from_db builds
    it: from_db takes the values in the model's field order, whatever order it is told."""
    names = _in_field_order(model, tuple(values))
    return model.from_db(DEFAULT_DB_ALIAS, names, [values[name] for name in names])


@cache
def _in_field_order(model, names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` in `model`'s field order (worked out once: every vote reads two leases)."""
    return tuple(f.attname for f in model._meta.concrete_fields if f.attname in names)


def _claim(
    *, study: Study, coder, n: int, now: datetime, also: tuple[str, tuple] | None
) -> Taken | None:
    """Run `_claim_sql`; None when expired leases must be reclaimed first."""
    sql, params = _claim_sql(study=study, coder=coder, n=n, now=now, also=also)
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description][8:]  # DB-API: the name first
        rows = cursor.fetchall()
    if rows and rows[0][0]:
        return None
    leases = []
    claimed = 0
    for _, pk, face_id, expires_at, fresh, crop, source_image_id, box_x, *_ in rows:
        if pk is None:
            continue
        # The fields the statement read; the others load on use, as a .only() query's would.
        lease = _read(
            Assignment,
            id=pk,
            face_id=face_id,
            coder_id=coder.pk,
            status=AssignmentStatus.LEASED,
            expires_at=expires_at,
            gold=False,
        )
        lease.face = _read(
            Face,
            id=face_id,
            study_id=study.pk,
            crop=crop,
            source_image_id=source_image_id,
            box_x=box_x,
        )
        leases.append(lease)
        claimed += fresh
    read = dict(zip(names, rows[0][8:], strict=True)) if rows and also is not None else {}
    return Taken(leases, read, claimed)


def assignment_next(*, study: Study, coder) -> Assignment | None:
    """The face this coder should label now: its oldest live lease, or a new one; None if done."""
    leases = assignments_take(study=study, coder=coder, n=1)
    return leases[0] if leases else None


def slot_retake(*, face: Face) -> bool:
    """Take a free slot on `face` for a late vote; the caller holds the face's row lock."""
    if face.coding_status != FaceStatus.OPEN or face.slots_taken >= face.votes_target:
        return False
    Face.objects.filter(pk=face.pk).update(slots_taken=F("slots_taken") + 1)
    face.slots_taken += 1
    return True


def faces_prioritize(*, face_ids: list[int], priority: int) -> int:
    """Set `priority` on these faces (validation rounds use 100); returns how many are open."""
    faces = Face.objects.filter(pk__in=list(face_ids))
    faces.update(priority=priority)
    return faces.filter(coding_status=FaceStatus.OPEN).count()


@transaction.atomic
def face_votes_reset(*, face: Face, reason: str) -> None:
    """Start a face's coding over ("label error" triage); nothing is deleted but the cache.

    Retracts its live votes, releases all its assignments (so earlier coders may lease it
    again), removes its Consensus, and opens it with no slots taken and the study's K.
    Locks the face's assignments, then the face.
    """
    now = _now()
    list(Assignment.objects.select_for_update().filter(face=face).values_list("pk", flat=True))
    locked = Face.objects.select_for_update().select_related("study").get(pk=face.pk)
    retracted = Vote.objects.filter(face=locked, retracted_at__isnull=True).update(retracted_at=now)
    Assignment.objects.filter(face=locked).exclude(status=AssignmentStatus.RELEASED).update(
        status=AssignmentStatus.RELEASED
    )
    Consensus.objects.filter(face=locked).delete()
    Face.objects.filter(pk=locked.pk).update(
        coding_status=FaceStatus.OPEN, slots_taken=0, votes_target=locked.study.votes_per_face
    )
    face.refresh_from_db()
    logger.info("face %s reset (%d votes retracted): %s", face.pk, retracted, reason)


def slots_held(*, face_id: int) -> int:
    """Assignments that hold a slot on a face, counted from the rows (for invariant checks)."""
    return Assignment.objects.filter(face_id=face_id, status__in=SLOT_STATUSES, gold=False).count()


def faces_over_assigned(*, study: Study) -> list[int]:
    """Faces whose slot-holding assignments exceed their target or disagree with the counter."""
    held = Assignment.objects.filter(face=OuterRef("pk"), status__in=SLOT_STATUSES, gold=False)
    counted = Subquery(
        held.order_by().values("face").annotate(n=Count("pk")).values("n")[:1],
    )
    rows = (
        Face.objects.filter(study=study)
        .annotate(held=counted)
        .values_list("pk", "held", "slots_taken", "votes_target")
    )
    return [
        pk
        for pk, n, taken, target in rows
        if (n or 0) > target or (n or 0) != taken or taken > target
    ]


__all__ = [
    "LEASES_PER_CODER",
    "VALIDATION_PRIORITY",
    "assignment_next",
    "assignments_take",
    "Taken",
    "assignments_take_reading",
    "face_votes_reset",
    "faces_over_assigned",
    "faces_prioritize",
    "leases_live",
    "leases_reclaim",
    "slot_retake",
    "slots_held",
]
