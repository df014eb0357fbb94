"""Gold faces and coder quality: marking, correcting and unmarking gold faces, recording a
coder's answer on one, pausing a coder whose accuracy falls too low, and excluding a coder's
votes from consensus (and counting them again).

A gold face is served like any face (annotate.assignment) and answered through the same
endpoint (annotate.services.coding.vote_submit), which hands the write to
`gold_answer_record`; the answer is a GoldAnswer, never a Vote. Accuracy is read, never
stored (annotate.selectors.gold), so a corrected gold answer re-scores everyone at once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from annotate.consensus import consensus_refresh
from annotate.labels import Gender
from annotate.models import (
    Assignment,
    AssignmentStatus,
    CoderExclusion,
    Face,
    GoldAnswer,
    GoldFace,
    KnownLabel,
    Membership,
    Study,
    Vote,
)
from annotate.selectors.gold import (
    gold_answer_known,
    gold_counts,
    gold_pause_due,
    gold_source_would_tell,
)
from annotate.services.team import member_pause

logger = logging.getLogger(__name__)

NO_KNOWN_ANSWER = "Face {face} has no imported label or researcher's decision to use as gold."
UNKNOWN_ANSWER = "Unknown answer {value!r}; choose one of {choices}."
NO_SOURCE_TELL = (
    "Face {face} has no source image while the study's faces do: its Source button would be "
    "off, and coders could tell it is a check. Use a detected face with a known answer."
)


PAUSE_REASON = "Gold accuracy {accuracy:.0%} on {n} gold faces, below the study's {threshold:.0%}."
EXCLUSION_REASON_MAX = CoderExclusion._meta.get_field("reason").max_length


@transaction.atomic
def gold_mark(*, face: Face, by) -> GoldFace:
    """Make `face` a gold face whose answer is its known one (latest adjudication, else its
    imported label); idempotent: an existing gold face is returned unchanged.
    Raises ValueError (NO_KNOWN_ANSWER) for a face with neither."""
    existing = GoldFace.objects.filter(face=face).first()
    if existing is not None:
        return existing
    known = gold_answer_known(face=face)
    if known is None:
        raise ValueError(NO_KNOWN_ANSWER.format(face=face.pk))
    if face.source_image_id is None and gold_source_would_tell(face.study_id):
        raise ValueError(NO_SOURCE_TELL.format(face=face.pk))
    gender, source = known
    gold = GoldFace.objects.create(face=face, gender=gender, source=source, marked_by=by)
    logger.info("face %s marked gold (%s, from %s) by %s", face.pk, gender, source, by)
    return gold


@transaction.atomic
def gold_mark_imported(*, study: Study, by) -> int:
    """Mark every face of `study` with an imported label as gold (its first label's gender);
    faces already gold keep their answer, and crop-only faces are left out where they would
    stand out (NO_SOURCE_TELL). Returns how many became gold."""
    labels = KnownLabel.objects.filter(face__study=study, face__gold__isnull=True)
    if gold_source_would_tell(study.pk):
        labels = labels.filter(face__source_image__isnull=False)
    answers: dict[int, str] = {}
    for face_id, gender in labels.order_by("face_id", "usage", "pk").values_list(
        "face_id", "gender"
    ):
        answers.setdefault(face_id, gender)
    created = GoldFace.objects.bulk_create(
        [
            GoldFace(
                face_id=face_id, gender=gender, source=GoldFace.Source.KNOWN_LABEL, marked_by=by
            )
            for face_id, gender in answers.items()
        ],
        ignore_conflicts=True,
    )
    logger.info("%d imported faces of study %s marked gold by %s", len(created), study.slug, by)
    return len(created)


@transaction.atomic
def gold_unmark(*, gold: GoldFace, by) -> None:
    """Stop using a face as gold. Its answers go with it (they were never votes); live gold
    leases on it are released, so a coder holding one is moved on when they answer."""
    released = Assignment.objects.filter(
        face_id=gold.face_id,
        gold=True,
        status__in=(AssignmentStatus.LEASED, AssignmentStatus.EXPIRED),
    ).update(status=AssignmentStatus.RELEASED)
    face_id = gold.face_id
    gold.delete()
    logger.info("face %s no longer gold (by %s; %d leases released)", face_id, by, released)


@transaction.atomic
def gold_correct(*, gold: GoldFace, gender: str, by) -> GoldFace:
    """Correct a gold face's answer. Every coder's accuracy follows at once (it is computed
    from the current answer); coders who now fall below the study's threshold are paused."""
    if gender not in Gender.values:
        raise ValueError(UNKNOWN_ANSWER.format(value=gender, choices=", ".join(Gender.values)))
    locked = GoldFace.objects.select_for_update().select_related("face__study").get(pk=gold.pk)
    if locked.gender != gender:
        before = locked.gender
        locked.gender = gender
        locked.corrected_at = timezone.now()
        locked.save(update_fields=["gender", "corrected_at"])
        logger.info(
            "gold face %s corrected from %s to %s by %s", locked.face_id, before, gender, by
        )
        coder_ids = list(
            locked.answers.filter(retracted_at__isnull=True).values_list("coder_id", flat=True)
        )
        gold_pause_check(study=locked.face.study, coder_ids=coder_ids)
    return locked


BAD_SETTING = "{name} must be a number from {low} to {high}; got {value!r}."


@transaction.atomic
def gold_settings_set(
    *, study: Study, rate: str | float, min_answers: str | int, min_accuracy: str | float
) -> Study:
    """Set how often gold faces are served and when a coder is paused; raises ValueError
    (BAD_SETTING, naming the field) and changes nothing when a value is out of range."""
    values = {
        "gold_rate": _number("Gold rate", rate, 0.0, 0.5, float),
        "gold_min_answers": _number("Minimum gold answers", min_answers, 1, 1000, int),
        "gold_min_accuracy": _number("Minimum accuracy", min_accuracy, 0.0, 1.0, float),
    }
    Study.objects.filter(pk=study.pk).update(**values)
    for field, value in values.items():
        setattr(study, field, value)
    logger.info("gold settings of study %s: %s", study.slug, values)
    return study


def _number(name: str, value: str | float, low: float, high: float, kind: type) -> float:
    try:
        number = kind(str(value).strip())
    except ValueError:
        number = None
    if number is None or number != number or not low <= number <= high:
        raise ValueError(BAD_SETTING.format(name=name, low=low, high=high, value=str(value)[:40]))
    return number


def gold_answer_record(
    *, assignment: Assignment, coder, answers: dict[str, str], seconds: float | None, now: datetime
) -> tuple[GoldAnswer, bool]:
    """Record the coder's answers on a gold lease and mark the lease submitted; then pause the
    coder if their accuracy is now too low. Returns the answer and whether it paused them.
    The caller holds the assignment's row lock (in vote_submit's transaction) and has checked
    the lease is theirs and not released."""
    gold = GoldFace.objects.select_related("face__study").get(face_id=assignment.face_id)
    attributes = {key: value for key, value in answers.items() if key != "gender" and value}
    answer = GoldAnswer.objects.create(
        gold=gold,
        coder=coder,
        assignment=assignment,
        gender=answers["gender"],
        attributes=attributes,
        seconds_taken=seconds,
    )
    assignment.status = AssignmentStatus.SUBMITTED
    assignment.submitted_at = now
    assignment.save(update_fields=["status", "submitted_at"])
    paused = gold_pause_check(study=gold.face.study, coder_ids=[coder.pk])
    return answer, bool(paused)


def gold_answer_retract(*, answer: GoldAnswer, assignment: Assignment, now: datetime) -> None:
    """Undo a gold answer: the row stays, retracted; the lease is live again. The caller holds
    the assignment's row lock."""
    GoldAnswer.objects.filter(pk=answer.pk, retracted_at__isnull=True).update(retracted_at=now)
    assignment.status = AssignmentStatus.LEASED
    assignment.submitted_at = None
    assignment.save(update_fields=["status", "submitted_at"])


def gold_pause_check(*, study: Study, coder_ids: list[int]) -> list[int]:
    """Pause each of these coders whose gold accuracy breaks the study's rule
    (`gold_pause_due`) and who is an unpaused member; returns who was paused. The researcher
    is told by the notice on the agreement and gold pages (the pause's reason) and the log."""
    paused = []
    members = {
        m.user_id: m
        for m in Membership.objects.filter(
            study=study, user_id__in=coder_ids, paused_at__isnull=True
        ).select_related("user")
    }
    for coder_id, (n, correct) in sorted(gold_counts(study=study, coder_ids=coder_ids).items()):
        member = members.get(coder_id)
        if member is None or not gold_pause_due(
            n=n,
            correct=correct,
            min_answers=study.gold_min_answers,
            min_accuracy=study.gold_min_accuracy,
        ):
            continue
        reason = PAUSE_REASON.format(accuracy=correct / n, n=n, threshold=study.gold_min_accuracy)
        member_pause(study=study, user=member.user, reason=reason)
        logger.warning("coder %s paused in study %s: %s", member.user, study.slug, reason)
        paused.append(coder_id)
    return paused


def _consensus_recompute(*, study: Study, coder_id: int) -> int:
    """Recompute the consensus of every face in `study` the coder has a live vote on; the
    caller holds a transaction. Locks those faces, in id order; returns how many."""
    face_ids = (
        Vote.objects.filter(face__study=study, coder_id=coder_id, retracted_at__isnull=True)
        .values_list("face_id", flat=True)
        .distinct()
    )
    faces = list(
        Face.objects.select_for_update(of=("self",))
        .select_related("study")
        .filter(pk__in=list(face_ids))
        .order_by("pk")
    )
    for face in faces:
        consensus_refresh(face=face)
    return len(faces)


@transaction.atomic
def coder_exclude(*, study: Study, coder, by, reason: str = "") -> CoderExclusion:
    """Leave the coder's votes in `study` out of consensus, labels and agreement, and recompute
    the consensus of the faces they voted on. No vote is deleted; `coder_include` undoes it.
    Idempotent. Locks the faces the coder voted on."""
    exclusion, created = CoderExclusion.objects.get_or_create(
        study=study,
        coder=coder,
        defaults={"excluded_by": by, "reason": reason.strip()[:EXCLUSION_REASON_MAX]},
    )
    if created:
        n = _consensus_recompute(study=study, coder_id=coder.pk)
        logger.info("%s's votes excluded from study %s by %s (%d faces)", coder, study.slug, by, n)
    return exclusion


@transaction.atomic
def coder_include(*, study: Study, coder, by) -> None:
    """Count the coder's votes in `study` again and recompute the faces they voted on."""
    deleted, _ = CoderExclusion.objects.filter(study=study, coder=coder).delete()
    if deleted:
        n = _consensus_recompute(study=study, coder_id=coder.pk)
        logger.info(
            "%s's votes count again in study %s (by %s, %d faces)", coder, study.slug, by, n
        )
