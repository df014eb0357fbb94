"""The two calls validation makes into the coding flow (annotate.assignment).

The coding flow owns the work queue and votes; validation only asks it to put faces first
(`faces_prioritize`) and to send a face back for fresh votes (`face_votes_reset`). Imported
lazily, so this module is the one seam tests replace and the one place to check at merge.
"""

from __future__ import annotations

from annotate.models import Face

VALIDATION_PRIORITY = 100
CODING_FLOW_MISSING = (
    "The coding flow (annotate.assignment.{name}) is not installed, so validation cannot "
    "hand faces to the coders."
)


class CodingFlowMissing(RuntimeError):
    """annotate.assignment does not provide the function validation needs."""


def _assignment_function(name: str):
    try:
        from annotate import assignment
    except ImportError as exc:
        raise CodingFlowMissing(CODING_FLOW_MISSING.format(name=name)) from exc
    function = getattr(assignment, name, None)
    if function is None:
        raise CodingFlowMissing(CODING_FLOW_MISSING.format(name=name))
    return function


def faces_prioritize(*, face_ids: list[int], priority: int = VALIDATION_PRIORITY) -> int:
    """Ask the coding flow to hand these faces out first; returns how many it changed."""
    return _assignment_function("faces_prioritize")(face_ids=face_ids, priority=priority)


def face_votes_reset(*, face: Face, reason: str) -> None:
    """Ask the coding flow to collect fresh votes for `face` (old votes stay recorded)."""
    _assignment_function("face_votes_reset")(face=face, reason=reason)
