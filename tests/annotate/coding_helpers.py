"""Helpers for the coding tests: faces without image files (fast), votes through services."""

from __future__ import annotations

from annotate.assignment import assignment_next
from annotate.models import Face, Study
from annotate.services.coding import VoteRequest, vote_submit


def bare_faces(study: Study, n: int, **fields) -> list[Face]:
    faces = [
        Face(
            study=study,
            crop=f"faces/bare-{study.pk}-{i}.jpg",
            crop_sha256=f"{study.pk:08d}{i:056d}",
            votes_target=study.votes_per_face,
            **fields,
        )
        for i in range(n)
    ]
    return Face.objects.bulk_create(faces)


def answers_for(study: Study, gender: str = "female") -> dict[str, str]:
    defaults = {"race": "white", "age_band": "30-39", "glasses": "none", "quality": "good"}
    return {"gender": gender, **{a: defaults[a] for a in study.attributes_asked}}


def vote_next(study: Study, coder, gender: str = "female"):
    """Take the coder's next face and vote on it; returns (assignment, outcome) or None."""
    assignment = assignment_next(study=study, coder=coder)
    if assignment is None:
        return None
    outcome = vote_submit(
        study=study,
        coder=coder,
        request=VoteRequest(assignment.pk, answers_for(study, gender), 1.0),
    )
    return assignment, outcome


_quick = iter(range(10**9))


def quick_users(study: Study, n: int, role: str = "coder") -> list:
    """Users without password hashing (fast), in a role group and members of the study."""
    from django.contrib.auth import get_user_model

    from annotate.roles import groups_ensure

    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"quick-{role}-{next(_quick)}", password="!") for _ in range(n)]
    )
    groups_ensure()[role].user_set.add(*users)
    study.members.add(*users)
    return users
