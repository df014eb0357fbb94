"""Simulated coders: label a study through the same services real coders use.

Each simulated coder answers with the hidden truth (KnownLabel usage=truth) with probability
`accuracy` (or an override for faces in a subgroup), else with another gender; attributes
come from the truth where known, else at random. Without truth, answers are random.
"""

from __future__ import annotations

import random

from django.contrib.auth import get_user_model

from annotate.assignment import assignments_take
from annotate.labels import ATTRIBUTE_QUESTIONS, Gender
from annotate.models import KnownLabel, Study
from annotate.roles import Role, groups_ensure
from annotate.services.coding import CodingError, VoteRequest, vote_submit

SIM_PREFIX = "sim-coder-"
MAX_REFUSALS = 20
BAD_ACCURACY = "Accuracy must be between 0 and 1, got {value}."
BAD_OVERRIDE = "Override {key}={value}: the attribute must be one of {names}."
# Gender answers a simulated coder may get wrong into (never "not a face" by mistake).
WRONG_CHOICES = {
    Gender.FEMALE: [Gender.MALE],
    Gender.MALE: [Gender.FEMALE],
    Gender.CANT_TELL: [Gender.FEMALE, Gender.MALE],
    Gender.NOT_FACE: [Gender.FEMALE, Gender.MALE],
}


def sim_coders_ensure(*, study: Study, coders: int) -> list:
    """Users sim-coder-1..N in the coder group and members of the study (idempotent)."""
    group = groups_ensure()[Role.CODER]
    User = get_user_model()
    users = []
    for i in range(1, coders + 1):
        user, created = User.objects.get_or_create(username=f"{SIM_PREFIX}{i}")
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        user.groups.add(group)
        users.append(user)
    study.members.add(*users)
    return users


def _accuracy_for(
    truth: KnownLabel | None, accuracy: float, overrides: dict[tuple[str, str], float]
) -> float:
    if truth is None:
        return accuracy
    matching = [acc for (name, value), acc in overrides.items() if getattr(truth, name) == value]
    return min(matching) if matching else accuracy


def _answers(
    *,
    study: Study,
    truth: KnownLabel | None,
    accuracy: float,
    overrides: dict[tuple[str, str], float],
    rng: random.Random,
) -> dict[str, str]:
    if truth is None:
        gender: str = rng.choice([Gender.FEMALE, Gender.MALE])
    elif rng.random() < _accuracy_for(truth, accuracy, overrides):
        gender = truth.gender
    else:
        gender = rng.choice(WRONG_CHOICES[Gender(truth.gender)])
    answers = {"gender": str(gender)}
    for name in study.attributes_asked:
        question = ATTRIBUTE_QUESTIONS.get(name)
        if question is None:
            continue
        known = getattr(truth, name, "") if truth is not None else ""
        answers[name] = known or rng.choice(question.choices.values)
    return answers


def coders_simulate(
    *,
    study: Study,
    coders: int,
    accuracy: float,
    overrides: dict[tuple[str, str], float] | None = None,
    seed: int = 0,
    max_votes: int | None = None,
) -> int:
    """Let `coders` simulated coders label the study until no work is left (or max_votes).

    Votes go through annotate.assignment and annotate.services.coding, so leases, consensus
    and escalation behave exactly as for people. Returns the number of votes cast.
    """
    if not 0 <= accuracy <= 1:
        raise ValueError(BAD_ACCURACY.format(value=accuracy))
    overrides = dict(overrides or {})
    for (name, value), acc in overrides.items():
        if name not in ATTRIBUTE_QUESTIONS:
            raise ValueError(
                BAD_OVERRIDE.format(key=name, value=value, names=", ".join(ATTRIBUTE_QUESTIONS))
            )
        if not 0 <= acc <= 1:
            raise ValueError(BAD_ACCURACY.format(value=acc))
    rng = random.Random(seed)
    users = sim_coders_ensure(study=study, coders=coders)
    truths = {
        t.face_id: t
        for t in KnownLabel.objects.filter(face__study=study, usage=KnownLabel.Usage.TRUTH)
    }
    cast = 0
    active = list(users)
    refused: dict[int, int] = {}
    while active:
        for user in list(active):
            if max_votes is not None and cast >= max_votes:
                return cast
            leases = assignments_take(study=study, coder=user, n=1)
            if not leases:
                active.remove(user)
                continue
            lease = leases[0]
            answers = _answers(
                study=study,
                truth=truths.get(lease.face_id),
                accuracy=accuracy,
                overrides=overrides,
                rng=rng,
            )
            try:
                outcome = vote_submit(
                    study=study,
                    coder=user,
                    request=VoteRequest(lease.pk, answers, round(rng.uniform(0.5, 3.0), 2)),
                )
            except CodingError:
                # A refused vote (e.g. a lost lease) moves on; a coder refused over and over
                # stops rather than spin.
                refused[user.pk] = refused.get(user.pk, 0) + 1
                if refused[user.pk] >= MAX_REFUSALS:
                    active.remove(user)
                continue
            if not outcome.duplicate:
                cast += 1
    return cast
