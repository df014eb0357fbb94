"""Helpers for the coding tests: a coder's answers, and votes cast through the services."""

from __future__ import annotations

from annotate.assignment import assignment_next
from annotate.models import Study
from annotate.services.coding import VoteRequest, vote_submit


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
