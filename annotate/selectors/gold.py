"""Reads for gold faces: which face of a coder's stream is gold, the gold faces a coder may
still be served, the faces a researcher may mark gold, and each coder's accuracy on gold.

Accuracy is derived from the rows every time it is read: a coder's live answers on a study's
gold faces, each compared with the gold face's current answer on the gender question. So a
corrected gold answer re-scores every coder who answered it, and nothing stored can drift.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from annotate.models import (
    Adjudication,
    Assignment,
    CoderExclusion,
    Face,
    GoldAnswer,
    GoldFace,
    KnownLabel,
    Membership,
    Study,
)
from annotate.selectors.waiting import SLOT_STATUSES
from modeling.evaluation import wilson_bounds

ACCURACY_KEYS = ("coder_id", "username", "n", "correct", "accuracy", "low", "high")
CANDIDATE_LIMIT = 500


def gold_block(rate: float) -> int:
    """How many served faces hold one gold face at `rate` (0 < rate <= 0.5): round(1/rate)."""
    return max(2, round(1 / rate))


def gold_turn(*, index: int, rate: float, key: str) -> bool:
    """Whether the coder's `index`-th served face (0-based) is a gold face.

    Each block of `gold_block(rate)` faces holds exactly one gold face, at a position drawn
    from a hash of `key` (the study and coder) and the block number: the rate is exact, the
    position differs per coder and block (a coder cannot count to it), and it is the same on
    every run, so tests can predict it.
    """
    if rate <= 0:
        return False
    block = gold_block(rate)
    digest = hashlib.sha256(f"{key}:{index // block}".encode()).digest()
    return index % block == int.from_bytes(digest[:8], "big") % block


def gold_key(*, study: Study, coder) -> str:
    return f"{study.pk}:{coder.pk}"


def faces_served_count(*, study: Study, coder) -> int:
    """Faces handed to the coder in `study` so far (each lease row; a lapsed lease leased again
    counts once): the position of the next face in their stream."""
    return Assignment.objects.filter(face__study=study, coder=coder).count()


def gold_queue(*, study: Study, coder) -> QuerySet[Face]:
    """The study's gold faces this coder may be served: not answered by them (a live answer),
    not held by them (a gold lease or an earlier vote on the face), in a fixed order."""
    holding = Assignment.objects.filter(face=OuterRef("pk"), coder=coder, status__in=SLOT_STATUSES)
    answered = GoldAnswer.objects.filter(
        gold__face=OuterRef("pk"), coder=coder, retracted_at__isnull=True
    )
    return (
        Face.objects.filter(study=study)
        # Exists, not a join: the caller locks the face row (FOR UPDATE) and nothing else.
        .filter(Exists(GoldFace.objects.filter(face=OuterRef("pk"))))
        .filter(~Exists(holding))
        .filter(~Exists(answered))
        .order_by("pk")
    )


def gold_faces(*, study: Study) -> QuerySet[GoldFace]:
    """The study's gold faces with how many live answers each has and how many were right."""
    live = Q(answers__retracted_at__isnull=True)
    return (
        GoldFace.objects.filter(face__study=study)
        .select_related("face", "marked_by")
        .annotate(
            n_answers=Count("answers", filter=live),
            n_correct=Count("answers", filter=live & Q(answers__gender=F("gender"))),
        )
        .order_by("face_id")
    )


def gold_source_would_tell(study_id: int) -> bool:
    """Would a gold face without a source image stand out? Yes when the study's faces have
    source images (the coding page offers their Source view; a crop-only face has none)."""
    return Face.objects.filter(study_id=study_id, source_image__isnull=False).exists()


def gold_candidates(*, study: Study, limit: int = CANDIDATE_LIMIT) -> list[dict]:
    """Faces a researcher may mark gold, not gold yet, with the answer `gold_answer_known`
    would give: those with a researcher's decision (the latest) or an imported label; not
    crop-only faces where they would stand out (`gold_source_would_tell`)."""
    labelled = KnownLabel.objects.filter(face=OuterRef("pk"))
    decided = Adjudication.objects.filter(face=OuterRef("pk"))
    faces = Face.objects.filter(study=study, gold__isnull=True).filter(
        Exists(labelled) | Exists(decided)
    )
    if gold_source_would_tell(study.pk):
        faces = faces.filter(source_image__isnull=False)
    chosen = list(faces.order_by("pk")[:limit])
    ids = [f.pk for f in chosen]
    decisions: dict[int, str] = {}
    for face_id, label in (
        Adjudication.objects.filter(face_id__in=ids)
        .order_by("face_id", "created_at", "pk")
        .values_list("face_id", "label")
    ):
        decisions[face_id] = label  # the latest wins
    labels: dict[int, str] = {}
    for face_id, gender in (
        KnownLabel.objects.filter(face_id__in=ids)
        .order_by("face_id", "usage", "pk")
        .values_list("face_id", "gender")
    ):
        labels.setdefault(face_id, gender)
    rows = []
    for face in chosen:
        if face.pk in decisions:
            rows.append({"face": face, "gender": decisions[face.pk], "source": "adjudication"})
        elif face.pk in labels:
            rows.append({"face": face, "gender": labels[face.pk], "source": "imported label"})
    return rows


def gold_answer_known(*, face: Face) -> tuple[str, str] | None:
    """The known answer of a face and where it comes from: its latest adjudication first (a
    researcher decided it), else its imported label; None when it has neither."""
    decision = face.adjudications.order_by("-created_at", "-pk").first()
    if decision is not None:
        return decision.label, GoldFace.Source.ADJUDICATION
    label = face.known_labels.order_by("usage", "pk").first()
    if label is not None:
        return label.gender, GoldFace.Source.KNOWN_LABEL
    return None


def gold_pause_due(*, n: int, correct: int, min_answers: int, min_accuracy: float) -> bool:
    """The pause rule: at least `min_answers` gold answers and accuracy below `min_accuracy`."""
    return n > 0 and n >= min_answers and correct / n < min_accuracy


def gold_counts(*, study: Study, coder_ids: list[int] | None = None) -> dict[int, tuple[int, int]]:
    """(answers, correct) per coder on the study's gold faces, from the live answers."""
    answers = GoldAnswer.objects.filter(gold__face__study=study, retracted_at__isnull=True)
    if coder_ids is not None:
        answers = answers.filter(coder_id__in=coder_ids)
    rows = (
        answers.values("coder_id")
        .annotate(n=Count("pk"), correct=Count("pk", filter=Q(gender=F("gold__gender"))))
        .values_list("coder_id", "n", "correct")
    )
    return {coder_id: (n, correct) for coder_id, n, correct in rows}


def gold_accuracy(*, study: Study) -> list[dict]:
    """One row per coder who answered the study's gold faces: coder_id, username, n, correct,
    accuracy, low and high (Wilson 95 % interval), plus paused (and why) and excluded."""
    counts = gold_counts(study=study)
    names = dict(get_user_model().objects.filter(pk__in=list(counts)).values_list("pk", "username"))
    paused = dict(
        Membership.objects.filter(
            study=study, user_id__in=list(counts), paused_at__isnull=False
        ).values_list("user_id", "paused_reason")
    )
    excluded = set(
        CoderExclusion.objects.filter(study=study, coder_id__in=list(counts)).values_list(
            "coder_id", flat=True
        )
    )
    rows = []
    for coder_id, (n, correct) in counts.items():
        low, high = wilson_bounds(correct, n)
        rows.append(
            {
                "coder_id": coder_id,
                "username": names.get(coder_id, str(coder_id)),
                "n": n,
                "correct": correct,
                "accuracy": correct / n,
                "low": low,
                "high": high,
                "paused": coder_id in paused,
                "paused_reason": paused.get(coder_id, ""),
                "excluded": coder_id in excluded,
                "below": correct / n < study.gold_min_accuracy,
            }
        )
    return sorted(rows, key=lambda r: (r["accuracy"], r["username"]))


def coders_paused(*, study: Study) -> QuerySet[Membership]:
    """The study's paused members, with why: the researcher's notice on the agreement and gold
    pages (a pause for gold accuracy says so in its reason)."""
    return (
        Membership.objects.filter(study=study, paused_at__isnull=False)
        .select_related("user")
        .order_by("paused_at")
    )


def coder_exclusions(*, study: Study) -> QuerySet[CoderExclusion]:
    return CoderExclusion.objects.filter(study=study).select_related("coder", "excluded_by")


def gold_quality(*, study: Study) -> dict:
    """What the agreement and gold pages show of coder quality (templates/annotate/
    gold_accuracy.html): accuracy rows, paused members, exclusions and the gold block size."""
    return {
        "accuracy": gold_accuracy(study=study),
        "paused": list(coders_paused(study=study)),
        "exclusions": list(coder_exclusions(study=study)),
        "gold_block": gold_block(study.gold_rate) if study.gold_rate > 0 else None,
    }


def gold_answers_counts(*, study: Study, coder, since: datetime | None = None) -> tuple[int, int]:
    """The coder's live gold answers in `study`, in total and since `since` (0 without one):
    the coder's progress counts them as faces done, so a gold face is not told apart by it."""
    answers = GoldAnswer.objects.filter(
        gold__face__study=study, coder=coder, retracted_at__isnull=True
    )
    if since is None:
        return answers.count(), 0
    counts = answers.aggregate(
        total=Count("pk"), recent=Count("pk", filter=Q(created_at__gte=since))
    )
    return counts["total"], counts["recent"]


def gold_answer_undone(*, assignment: Assignment) -> dict[str, str] | None:
    """The answers of the gold answer just undone on `assignment`, by question key, like a
    vote's; None when the assignment has none."""
    answer = (
        GoldAnswer.objects.filter(assignment=assignment, retracted_at__isnull=False)
        .order_by("-retracted_at", "-pk")
        .first()
    )
    if answer is None:
        return None
    return {"gender": answer.gender, **answer.attributes}
