"""The coder's page and its JSON endpoints: next faces, submit a vote, undo the last one.

Every endpoint is POST with CSRF. Errors come back as `{"error": message}` with a status the
page acts on: 400 bad input, 403 not this coder's face, 409 lease lost (move on), 503 the
database failed (nothing was saved; the coder presses the key again).
"""

from __future__ import annotations

import json
import logging

from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from annotate.access import role_required, study_for_member
from annotate.assignment import assignments_take
from annotate.labels import ATTRIBUTE_QUESTIONS, GENDER_QUESTION
from annotate.models import Assignment, AssignmentStatus, Study
from annotate.roles import Role
from annotate.selectors.coding import assignment_payload, coder_votes_count, faces_open_count
from annotate.selectors.media import face_media_allowed
from annotate.services.coding import (
    NOT_YOUR_ASSIGNMENT,
    CodingError,
    InvalidVote,
    vote_request_parse,
    vote_submit,
    vote_undo,
)
from annotate.views.media import face_source_response

logger = logging.getLogger(__name__)

VOTE_NOT_SAVED = (
    "Your answer was not saved because of a server error. Press the key again to resubmit."
)
SERVER_BUSY = "The server could not hand out work just now. Try again in a moment."
BAD_JSON = "The request body is not a JSON object."
NESTED_JSON = "The request body is nested too deeply to be a vote."


def _items(request: HttpRequest, study: Study) -> list[dict]:
    return [
        assignment_payload(study=study, assignment=a)
        for a in assignments_take(study=study, coder=request.user)
    ]


def _payload(request: HttpRequest) -> object:
    if request.content_type == "application/json":
        try:
            return json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise InvalidVote(BAD_JSON) from None
        except RecursionError:  # the parser gives up on arrays or objects nested too deep
            raise InvalidVote(NESTED_JSON) from None
    return {key: request.POST.get(key) for key in request.POST}


def _questions(study: Study) -> list:
    asked = [ATTRIBUTE_QUESTIONS[n] for n in study.attributes_asked if n in ATTRIBUTE_QUESTIONS]
    return [GENDER_QUESTION, *asked]


@role_required(Role.CODER)
def code(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_member(request.user, slug)
    questions = [
        {
            "key": q.key,
            "title": q.title,
            "options": [
                {"key": key, "value": str(value), "label": q.choices(value).label}
                for key, value in q.keys.items()
            ],
        }
        for q in _questions(study)
    ]
    return render(
        request,
        "annotate/code.html",
        {
            "study": study,
            "questions": questions,
            "done": coder_votes_count(study=study, coder=request.user),
        },
    )


@role_required(Role.CODER)
@require_POST
def code_next(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_member(request.user, slug)
    try:
        items = _items(request, study)
    except DatabaseError:
        logger.exception("handing out work failed in study %s", study.slug)
        return JsonResponse({"error": SERVER_BUSY}, status=503)
    return JsonResponse(
        {
            "items": items,
            "done": coder_votes_count(study=study, coder=request.user),
            "open": faces_open_count(study=study),
        }
    )


@role_required(Role.CODER)
@require_POST
def code_submit(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_member(request.user, slug)
    try:
        vote_request = vote_request_parse(study=study, data=_payload(request))
        outcome = vote_submit(study=study, coder=request.user, request=vote_request)
    except CodingError as exc:
        body: dict = {"error": exc.message}
        if exc.status == 409:  # the coder moves on: hand out the next faces with the reply
            try:
                body["items"] = _items(request, study)
            except DatabaseError:
                logger.exception("handing out work failed in study %s", study.slug)
                body["items"] = []
        return JsonResponse(body, status=exc.status)
    except DatabaseError:
        # The service's transaction rolled back: nothing of this vote was written.
        logger.exception("recording a vote failed in study %s", study.slug)
        return JsonResponse({"error": VOTE_NOT_SAVED}, status=503)
    try:
        items = _items(request, study)
    except DatabaseError:
        logger.exception("handing out work failed in study %s", study.slug)
        items = []
    return JsonResponse(
        {
            "ok": True,
            "vote": outcome.vote.pk,
            "duplicate": outcome.duplicate,
            "late": outcome.late,
            "items": items,
        }
    )


@role_required(Role.CODER)
@require_POST
def code_undo(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_member(request.user, slug)
    try:
        assignment = vote_undo(study=study, coder=request.user)
    except CodingError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status)
    except DatabaseError:
        logger.exception("undo failed in study %s", study.slug)
        return JsonResponse({"error": VOTE_NOT_SAVED}, status=503)
    assignment = Assignment.objects.select_related("face").get(pk=assignment.pk)
    return JsonResponse(
        {"ok": True, "item": assignment_payload(study=study, assignment=assignment)}
    )


@role_required(Role.CODER)
@require_GET
def code_source(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    """The source image with the face's box drawn in, for the coder holding the face."""
    study = study_for_member(request.user, slug)
    assignment = (
        Assignment.objects.select_related("face__source_image")
        .filter(pk=assignment_id, face__study=study)
        .exclude(status=AssignmentStatus.RELEASED)
        .first()
    )
    if (
        assignment is None
        or assignment.coder_id != request.user.pk
        or not face_media_allowed(face=assignment.face, user=request.user)
    ):
        raise Http404(NOT_YOUR_ASSIGNMENT)
    return face_source_response(assignment.face)
