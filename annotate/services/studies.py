"""Creating and changing a study's settings: the one home of the rules, for the web and the CLI.

Field rules (slug, K range, known attributes...) are validators on `Study`'s fields, run by
`full_clean()` here; the rules that need the study's data (K against the votes already given)
are checked here too. Both functions raise django's ValidationError, keyed by field, which the
form shows beside the field and the `study` command prints as one line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q

from annotate.models import Face, FaceStatus, MemberRole, Study
from annotate.services.team import member_add

logger = logging.getLogger(__name__)

# What set-up may write; everything else on a study belongs to other services.
STUDY_SETTINGS = (
    "title",
    "description",
    "instructions",
    "votes_per_face",
    "lease_minutes",
    "attributes_asked",
    "aggregation",
    "min_face_px",
    "escalation_wait_minutes",
    "allow_admin_votes",
)
UNKNOWN_SETTING = "Unknown study setting {name!r}; settings are: {names}."
SLUG_TAKEN = "A study with the slug {slug!r} already exists."
K_BELOW_VOTES = (
    "Votes per face (K) cannot drop below {minimum}: coders have already given "
    "{votes} votes on a face{waiting}."
)
K_WAITING = ", and faces with {votes} votes still wait for more"


SLUG_EMPTY = "A study needs a slug."


def study_slug_check(slug: str) -> None:
    """Raise ValidationError (keyed `slug`) unless `slug` may name a study: the slug field's
    own validators, for paths that create studies without a form (demo commands)."""
    if not slug:
        raise ValidationError({"slug": [SLUG_EMPTY]})
    try:
        Study._meta.get_field("slug").run_validators(slug)
    except ValidationError as exc:
        raise ValidationError({"slug": exc.messages}) from None


def _settings_check(values: Mapping[str, object]) -> None:
    unknown = sorted(set(values) - set(STUDY_SETTINGS))
    if unknown:
        # A programming error, not bad user input: a caller passed a field set-up does not own.
        raise ValueError(UNKNOWN_SETTING.format(name=unknown[0], names=", ".join(STUDY_SETTINGS)))


@transaction.atomic
def study_create(*, slug: str, creator=None, **values: object) -> Study:
    """A new study with these settings (model defaults for the rest); its creator, if given,
    becomes a researcher of it. Raises ValidationError for invalid or taken slugs and values."""
    _settings_check(values)
    study = Study(slug=slug, **values)
    study.title = study.title or slug
    study.full_clean()
    try:
        with transaction.atomic():
            study.save()
    except IntegrityError:  # created by someone else between the check and the insert
        raise ValidationError({"slug": [SLUG_TAKEN.format(slug=slug)]}) from None
    if creator is not None:
        member_add(study=study, user=creator, role=MemberRole.RESEARCHER)
    logger.info("study %s created by %s", study.slug, creator or "the command line")
    return study


def _most_votes(*, study: Study) -> tuple[int, int]:
    """The most live votes on one face of the study, and on one face still open."""
    per_face = Face.objects.filter(study=study).annotate(
        n=Count("votes", filter=Q(votes__retracted_at__isnull=True))
    )
    most_all = per_face.aggregate(most=Max("n"))["most"] or 0
    most_open = per_face.filter(coding_status=FaceStatus.OPEN).aggregate(most=Max("n"))["most"] or 0
    return most_all, most_open


def study_votes_minimum(*, study: Study) -> int:
    """The smallest K the study can take now: no face may hold more live votes than K, and a
    face still open with n votes must still want one more (K > n), or it would wait forever."""
    most_all, most_open = _most_votes(study=study)
    return max(1, most_all, most_open + 1 if most_open else 0)


@transaction.atomic
def study_update(*, study: Study, **values: object) -> Study:
    """Change these settings of `study`. K may go up at any time and down to
    study_votes_minimum; faces still open take the new K (complete faces stay complete).
    Locks the study row, then its open faces. Raises ValidationError and changes nothing on
    bad values."""
    _settings_check(values)
    locked = Study.objects.select_for_update().get(pk=study.pk)
    old_k = locked.votes_per_face
    for name, value in values.items():
        setattr(locked, name, value)
    locked.full_clean()
    new_k = locked.votes_per_face
    if new_k < old_k:
        minimum = study_votes_minimum(study=locked)
        if new_k < minimum:
            raise ValidationError({"votes_per_face": [_k_refusal(study=locked, minimum=minimum)]})
    locked.save(update_fields=list(values))
    if new_k != old_k:
        # Faces waiting for an extra coder after a split keep their K + 1.
        # A face can hold more slots (leases) than a lowered K; it keeps them as its target.
        for face_id, taken in (
            Face.objects.select_for_update()
            .filter(study=locked, coding_status=FaceStatus.OPEN, votes_target=old_k)
            .order_by("pk")
            .values_list("pk", "slots_taken")
        ):
            Face.objects.filter(pk=face_id).update(votes_target=max(new_k, taken))
        logger.info("study %s: K %d -> %d", locked.slug, old_k, new_k)
    for name in values:
        setattr(study, name, getattr(locked, name))
    return study


def _k_refusal(*, study: Study, minimum: int) -> str:
    most_all, most_open = _most_votes(study=study)
    waiting = K_WAITING.format(votes=most_open) if most_open else ""
    return K_BELOW_VOTES.format(minimum=minimum, votes=most_all, waiting=waiting)
