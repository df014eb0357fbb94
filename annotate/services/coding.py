"""Recording a coder's vote and undoing it; the consensus is updated in the same transaction.

Lock order: the assignment row, then the face row (as in annotate.assignment); both are
locked by one statement here.

A gold lease (Assignment.gold) is answered through the same calls, so a coder cannot tell it
apart; its answer is written by annotate.services.gold as a GoldAnswer, never a Vote.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from annotate.access import Grant, grant_checks, grant_holds
from annotate.assignment import slot_retake
from annotate.compiled_sql import (
    compiled,
    compiled_rows,
    from_db_row,
    prepared_cursor,
    queryset_sql,
    quoted_columns,
)
from annotate.consensus import consensus_refresh, live_votes_query, live_votes_split
from annotate.labels import ATTRIBUTE_QUESTIONS, GENDER_QUESTION, Gender
from annotate.models import (
    Assignment,
    AssignmentStatus,
    CoderExclusion,
    Face,
    FaceStatus,
    GoldAnswer,
    Study,
    Vote,
)
from annotate.roles import Role, user_roles
from annotate.services.gold import gold_answer_record, gold_answer_retract

logger = logging.getLogger(__name__)

NOT_YOUR_ASSIGNMENT = "This face is not assigned to you."
LEASE_LOST = (
    "Your time on this face ran out and other coders have labeled it. "
    "Your answer was not needed; here is the next face."
)
FACE_RESET = "A researcher restarted this face; your answer was not needed."
NOTHING_TO_UNDO = "There is no vote to undo."
UNDO_EXPIRED = "Too late to undo: your time on that face has run out."
UNDO_DECIDED = "Too late to undo: a researcher has decided that face."
MISSING_ANSWER = "Please answer: {question}."
UNKNOWN_VALUE = "Unknown answer {value!r} for {question}."
UNEXPECTED_FIELD = "Unexpected field {field!r}."
BAD_ASSIGNMENT = "The assignment id is missing or invalid."
BAD_SECONDS = "The time taken must be a number of seconds."
MAX_ID = 2**63 - 1
MAX_SECONDS = 24 * 3600.0
# Fields a vote request may carry besides the answers.
ENVELOPE_FIELDS = frozenset({"assignment", "seconds", "csrfmiddlewaretoken"})
# Roles that can see other coders' votes and the model's predictions: their votes are
# recorded as non-blind (Vote.non_blind).
NON_BLIND_ROLES = frozenset({Role.ADMIN})


class CodingError(Exception):
    """A vote or undo that was refused; `message` is shown to the coder as it is."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidVote(CodingError):
    status = 400


class NotYourAssignment(CodingError):
    status = 403


class LeaseLost(CodingError):
    status = 409


@dataclass(frozen=True)
class VoteRequest:
    assignment_id: int
    answers: dict[str, str]
    seconds: float | None


def vote_request_parse(*, study: Study, data: object) -> VoteRequest:
    """Validate a vote payload against the study's questions; raise InvalidVote if it is off.

    Answers are the gender plus exactly the attributes the study asks (none when the coder
    says "not a face"); any other field is refused rather than silently ignored.
    """
    if not isinstance(data, Mapping):
        raise InvalidVote(BAD_ASSIGNMENT)
    asked = [name for name in study.attributes_asked if name in ATTRIBUTE_QUESTIONS]
    allowed = ENVELOPE_FIELDS | {GENDER_QUESTION.key} | set(asked)
    for field in data:
        if field not in allowed:
            raise InvalidVote(UNEXPECTED_FIELD.format(field=str(field)[:40]))
    assignment_id = _assignment_id(data.get("assignment"))

    answers = {
        "gender": _choice(data, GENDER_QUESTION.key, GENDER_QUESTION.title, GENDER_QUESTION.values)
    }
    for name in asked:
        question = ATTRIBUTE_QUESTIONS[name]
        if answers["gender"] == Gender.NOT_FACE and not data.get(name):
            answers[name] = ""
            continue
        answers[name] = _choice(data, name, question.title, question.values)

    seconds = data.get("seconds")
    if seconds in (None, ""):
        seconds = None
    else:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float | str):
            raise InvalidVote(BAD_SECONDS)
        try:
            seconds = float(seconds)
        except (ValueError, OverflowError):
            raise InvalidVote(BAD_SECONDS) from None
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidVote(BAD_SECONDS)
        seconds = min(seconds, MAX_SECONDS)
    return VoteRequest(assignment_id, answers, seconds)


def _assignment_id(raw_id: object) -> int:
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str):
        raise InvalidVote(BAD_ASSIGNMENT)
    try:
        assignment_id = int(str(raw_id).strip())
    except ValueError:
        raise InvalidVote(BAD_ASSIGNMENT) from None
    if not 0 < assignment_id <= MAX_ID:
        raise InvalidVote(BAD_ASSIGNMENT)
    return assignment_id


def _choice(data: Mapping, key: str, title: str, values: frozenset[str]) -> str:
    value = data.get(key)
    if value in (None, ""):
        raise InvalidVote(MISSING_ANSWER.format(question=title))
    if not isinstance(value, str) or value not in values:
        raise InvalidVote(UNKNOWN_VALUE.format(value=str(value)[:40], question=title))
    return value


@dataclass(frozen=True)
class VoteOutcome:
    vote: Vote | GoldAnswer  # a GoldAnswer for a gold lease
    duplicate: bool  # the same vote was already recorded (a double submit)
    late: bool  # the lease had expired and a free slot was taken again
    paused: bool = False  # this answer (on a gold face) paused the coder: hand out no work
    study: Study | None = None  # the study as the vote's statement read it


class GrantLapsed(Exception):
    """The process's grant for this coder no longer holds (annotate.access.grant_checks):
    nothing was written; the caller decides the request the long way."""


def _assignment_lock(
    *, study: Study | None, coder, assignment_id: int, grant: Grant | None = None
) -> Assignment:
    """Lock the coder's assignment and its face in one statement; `assignment.face` is the
    locked face row. Raises NotYourAssignment for another coder's or another study's.

    With a `grant` instead of a study the statement also reads the study row (unlocked) and
    checks the grant still holds; GrantLapsed if not, or if there is no such assignment (the
    long way then tells a removed member from a wrong id)."""
    if grant is None:
        assignment = (
            Assignment.objects.select_for_update(of=("self", "face"))
            .select_related("face")
            .filter(pk=assignment_id, face__study=study)
            .first()
        )
    else:
        assignment = _granted_lock(grant=grant, assignment_id=assignment_id)
    if grant is not None and (assignment is None or not grant_holds(grant, assignment)):
        raise GrantLapsed
    if assignment is None or assignment.coder_id != coder.pk:
        raise NotYourAssignment(NOT_YOUR_ASSIGNMENT)
    if study is not None:
        assignment.face.study = study
    return assignment


_ASSIGNMENT = [f.attname for f in Assignment._meta.concrete_fields]
_FACE = [f.attname for f in Face._meta.concrete_fields]
# The study's free text (a codebook can run to pages) is not read on every vote: it loads if
# something asks for it.
_STUDY = [
    f.attname for f in Study._meta.concrete_fields if f.name not in ("description", "instructions")
]
_GRANT = ("grant_user", "grant_member", "grant_coder", "grant_admin", "grant_crowd")


def _granted_lock_sql(
    assignment_id: int, study_id: int, user_id: int, password: str
) -> tuple[str, tuple]:
    sql, params = queryset_sql(
        Assignment.objects.filter(pk=assignment_id, face__study_id=study_id)
        .annotate(**grant_checks(user_id=user_id, password=password, study="face__study_id"))
        .values(
            *_ASSIGNMENT,
            *(f"face__{name}" for name in _FACE),
            *(f"face__study__{name}" for name in _STUDY),
            *_GRANT,
        )
    )
    # The lock of select_for_update(of=("self", "face")), which .values() cannot take.
    return f"{sql} FOR UPDATE OF {Assignment._meta.db_table}, {Face._meta.db_table}", params


def _granted_lock(*, grant: Grant, assignment_id: int) -> Assignment | None:
    """The lock statement of `_assignment_lock` for a grant, compiled once per process: the
    assignment, its face (both locked) and its study, with the grant's checks (of the user as
    the grant remembers them) as attributes."""
    rows = compiled_rows(
        "granted_lock",
        _granted_lock_sql,
        assignment_id=assignment_id,
        study_id=grant.study_id,
        user_id=grant.user_id,
        password=grant.password_md5,
    )
    if not rows:
        return None
    [row] = rows
    a, f = len(_ASSIGNMENT), len(_ASSIGNMENT) + len(_FACE)
    s = f + len(_STUDY)
    study = from_db_row(Study, _STUDY, row[f:s])
    face = Face.from_db(connection.alias, _FACE, row[a:f])
    face.study = study
    assignment = Assignment.from_db(connection.alias, _ASSIGNMENT, row[:a])
    assignment.face = face
    for name, value in zip(_GRANT, row[s:], strict=True):
        setattr(assignment, name, value)
    return assignment


@transaction.atomic
def vote_submit(*, study: Study, coder, request: VoteRequest) -> VoteOutcome:
    """Record the coder's answers on its assignment; idempotent; consensus in the same commit.

    A repeat of a submitted assignment returns the recorded vote (no second vote). A vote on
    an expired lease is accepted while the face still has a free slot, else LeaseLost. A
    vote by a user in NON_BLIND_ROLES is flagged non_blind (left out of agreement figures).
    Locks the assignment and its face.
    """
    assignment = _assignment_lock(study=study, coder=coder, assignment_id=request.assignment_id)
    non_blind = bool(user_roles(coder) & NON_BLIND_ROLES)
    return _vote_record(assignment=assignment, coder=coder, request=request, non_blind=non_blind)


@transaction.atomic
def vote_submit_granted(*, grant: Grant, coder, data: object) -> VoteOutcome:
    """vote_submit for a coder the process holds a grant for (annotate.access.coder_grant):
    the statement that locks the assignment reads the study afresh and checks the grant
    (GrantLapsed: nothing written); then `data` is parsed against that study, as
    vote_request_parse does. The study is `outcome.study`. A grant never covers an admin, so
    the vote is blind."""
    if coder.is_superuser:
        raise GrantLapsed
    raw_id = data.get("assignment") if isinstance(data, Mapping) else None
    assignment_id = _assignment_id(raw_id)
    assignment = _assignment_lock(study=None, coder=coder, assignment_id=assignment_id, grant=grant)
    request = vote_request_parse(study=assignment.face.study, data=data)
    return _vote_record(assignment=assignment, coder=coder, request=request, non_blind=False)


def _vote_record(
    *, assignment: Assignment, coder, request: VoteRequest, non_blind: bool
) -> VoteOutcome:
    """The vote on a locked assignment (see vote_submit)."""
    now = timezone.now()
    study = assignment.face.study
    if assignment.gold:
        return _gold_submit(assignment=assignment, coder=coder, request=request, now=now)
    if assignment.status == AssignmentStatus.SUBMITTED:
        vote = Vote.objects.filter(assignment=assignment, retracted_at__isnull=True).first()
        if vote is not None:
            return VoteOutcome(vote, duplicate=True, late=False, study=study)
    if assignment.status == AssignmentStatus.RELEASED:
        raise LeaseLost(FACE_RESET)
    face = assignment.face
    late = False
    if assignment.status == AssignmentStatus.EXPIRED:
        if not slot_retake(face=face):
            raise LeaseLost(LEASE_LOST)
        late = True
    elif assignment.expires_at <= now:
        late = True  # expired but its slot was never given away: still ours
    if face.coding_status != FaceStatus.OPEN:
        raise LeaseLost(LEASE_LOST)
    vote = Vote(
        face=face,
        study_id=face.study_id,
        coder=coder,
        assignment=assignment,
        seconds_taken=request.seconds,
        non_blind=non_blind,
        created_at=now,
        **request.answers,
    )
    if connection.vendor == "postgresql":
        live = _vote_write(vote=vote, assignment=assignment, now=now)
    else:  # no data-modifying WITH: the same writes, one by one
        vote.save()
        assignment.status = AssignmentStatus.SUBMITTED
        assignment.submitted_at = now
        assignment.save(update_fields=["status", "submitted_at"])
        live = None
    consensus_refresh(face=face, live=live)
    return VoteOutcome(vote, duplicate=False, late=late, study=study)


_VOTE_WRITTEN = [f for f in Vote._meta.concrete_fields if not f.primary_key]
_VOTE_READ = [f.attname for f in Vote._meta.concrete_fields]


@cache
def _vote_columns() -> tuple[str, str]:
    """The columns `_vote_write` inserts and those it reads back, as SQL lists."""
    return quoted_columns(_VOTE_WRITTEN), quoted_columns(Vote._meta.concrete_fields)


def _vote_write(*, vote: Vote, assignment: Assignment, now: datetime) -> tuple[list[Vote], int]:
    """Insert `vote`, mark its assignment submitted and read the face's live votes
    (annotate.consensus.live_votes_query, with the new one) in one statement; the caller holds
    the face's lock, taken by an earlier statement, so this one's snapshot has every vote
    committed before. Sets vote.pk; returns what annotate.consensus.live_votes returns."""
    db = connections[DEFAULT_DB_ALIAS]
    columns, returning = _vote_columns()
    values = [f.get_db_prep_save(getattr(vote, f.attname), db) for f in _VOTE_WRITTEN]
    live_sql, live_params = compiled(
        "live_votes",
        lambda face_id: queryset_sql(live_votes_query(face_id=face_id)),
        face_id=vote.face_id,
    )
    excluded_sql, excluded_params = compiled(
        "coder_excluded",
        lambda study_id, coder_id: queryset_sql(
            CoderExclusion.of(study_id=study_id, coder_id=coder_id).values("pk")
        ),
        study_id=vote.face.study_id,
        coder_id=vote.coder_id,
    )
    sql = f"""
    WITH new AS (
        INSERT INTO {Vote._meta.db_table} ({columns}) VALUES ({", ".join(["%s"] * len(_VOTE_WRITTEN))})
        RETURNING {returning}
    ),
    submitted AS (
        UPDATE {Assignment._meta.db_table} SET status = %s, submitted_at = %s WHERE id = %s
        RETURNING id
    )
    SELECT * FROM (
        SELECT {returning}, NOT EXISTS ({excluded_sql}) AS counts FROM new
        UNION ALL
        SELECT * FROM ({live_sql}) live
    ) v ORDER BY 1
    """
    params = (
        *values,
        AssignmentStatus.SUBMITTED,
        now,
        assignment.pk,
        *excluded_params,
        *live_params,
    )
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    assignment.status, assignment.submitted_at = AssignmentStatus.SUBMITTED, now
    votes = []
    for row in rows:
        voted = Vote.from_db(db.alias, _VOTE_READ, row[: len(_VOTE_READ)])
        voted.counts = row[len(_VOTE_READ)]  # type: ignore[attr-defined]  # as live_votes_query
        votes.append(voted)
    vote.pk = next(v.pk for v in votes if v.assignment_id == assignment.pk)
    vote._state.adding = False
    return live_votes_split(votes)


def _gold_submit(
    *, assignment: Assignment, coder, request: VoteRequest, now: datetime
) -> VoteOutcome:
    """The answer on a gold lease: idempotent like a vote; a gold lease holds no slot, so a
    late answer is always taken. Nothing about it tells the coder it was gold."""
    if assignment.status == AssignmentStatus.SUBMITTED:
        answer = GoldAnswer.objects.filter(assignment=assignment, retracted_at__isnull=True).first()
        if answer is not None:
            return VoteOutcome(answer, duplicate=True, late=False, study=assignment.face.study)
    if assignment.status == AssignmentStatus.RELEASED:
        raise LeaseLost(FACE_RESET)
    late = assignment.status == AssignmentStatus.EXPIRED or assignment.expires_at <= now
    answer, paused = gold_answer_record(
        assignment=assignment,
        coder=coder,
        answers=request.answers,
        seconds=request.seconds,
        now=now,
    )
    return VoteOutcome(
        answer, duplicate=False, late=late, paused=paused, study=assignment.face.study
    )


def _last_gold_answer(*, study: Study, coder) -> GoldAnswer | None:
    return (
        GoldAnswer.objects.filter(gold__face__study=study, coder=coder, retracted_at__isnull=True)
        .order_by("-created_at", "-pk")
        .first()
    )


def _last_vote(*, study: Study, coder) -> Vote | None:
    return (
        Vote.objects.filter(face__study=study, coder=coder, retracted_at__isnull=True)
        .order_by("-created_at", "-pk")
        .first()
    )


@transaction.atomic
def vote_undo(*, study: Study, coder, now: datetime | None = None) -> Assignment:
    """Retract the coder's last vote while its lease lasts; the face is theirs to label again.

    The vote row stays (retracted_at is set); the assignment becomes a live lease again, so
    the slot is not given away. Locks the assignment and its face.
    """
    now = now or timezone.now()
    vote = _last_vote(study=study, coder=coder)
    answer = _last_gold_answer(study=study, coder=coder)
    if answer is not None and (vote is None or answer.created_at > vote.created_at):
        return _gold_undo(study=study, coder=coder, answer=answer, now=now)
    if vote is None or vote.assignment_id is None:
        raise CodingError(NOTHING_TO_UNDO)
    assignment = _assignment_lock(study=study, coder=coder, assignment_id=vote.assignment_id)
    if assignment.status != AssignmentStatus.SUBMITTED:
        raise CodingError(NOTHING_TO_UNDO)
    if assignment.expires_at <= now:
        raise LeaseLost(UNDO_EXPIRED)
    face = assignment.face
    if face.adjudications.exists():
        raise LeaseLost(UNDO_DECIDED)
    Vote.objects.filter(pk=vote.pk, retracted_at__isnull=True).update(retracted_at=now)
    assignment.status = AssignmentStatus.LEASED
    assignment.submitted_at = None
    assignment.save(update_fields=["status", "submitted_at"])
    consensus_refresh(face=face)
    return assignment


def _gold_undo(*, study: Study, coder, answer: GoldAnswer, now: datetime) -> Assignment:
    """Undo the coder's last answer when it was on a gold face: the same rules as a vote."""
    if answer.assignment_id is None:
        raise CodingError(NOTHING_TO_UNDO)
    assignment = _assignment_lock(study=study, coder=coder, assignment_id=answer.assignment_id)
    if assignment.status != AssignmentStatus.SUBMITTED:
        raise CodingError(NOTHING_TO_UNDO)
    if assignment.expires_at <= now:
        raise LeaseLost(UNDO_EXPIRED)
    gold_answer_retract(answer=answer, assignment=assignment, now=now)
    return assignment
