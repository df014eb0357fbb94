"""The coder's page and its JSON endpoints: next faces, submit a vote, undo the last one,
stop for now (give the leases back).

Every endpoint is POST with CSRF. Errors come back as `{"error": message}` with a status the
page acts on: 400 bad input, 403 not this coder's face, 409 lease lost (move on), 503 the
database failed (nothing was saved; the coder presses the key again).
"""

from __future__ import annotations

import json
import logging

from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotate.access import (
    USER_FROM_GRANT,
    GrantedUserLapsed,
    coder_endpoint,
    coder_grant,
    coder_study,
    grant_forget,
    vote_endpoint,
)
from annotate.assignment import LEASES_PER_CODER, assignments_take_reading, leases_live
from annotate.models import Assignment, AssignmentStatus, Study
from annotate.selectors.codebook import codebook_for_coder
from annotate.selectors.coding import (
    OPEN_COUNT_CAP,
    assignment_payload,
    coder_progress,
    coder_progress_sql,
    coder_votes_count,
    faces_open_count,
    progress_from_counts,
    study_questions,
    vote_undone_answers,
)
from annotate.selectors.media import face_media_allowed
from annotate.services.coding import (
    NOT_YOUR_ASSIGNMENT,
    CodingError,
    GrantLapsed,
    InvalidVote,
    VoteOutcome,
    vote_request_parse,
    vote_submit,
    vote_submit_granted,
    vote_undo,
)
from annotate.services.crowd import crowd_faces_left
from annotate.services.team import leases_release
from annotate.views.media import face_source_response

logger = logging.getLogger(__name__)

VOTE_NOT_SAVED = (
    "Your answer was not saved because of a server error. Press the key again to resubmit."
)
SERVER_BUSY = "The server could not hand out work just now. Try again in a moment."
STOP_FAILED = (
    "Your faces could not be given back just now; they go back to the pool when your time on"
    " them runs out."
)
BAD_JSON = "The request body is not a JSON object."
NESTED_JSON = "The request body is nested too deeply to be a vote."


def _items(
    request: HttpRequest, study: Study, *, crowd: bool = True
) -> tuple[list[dict], dict[str, int | str], int | None]:
    """The coder's next faces (the one to code next and the one after it, for the page to
    prefetch), their progress line, read by the statement that hands the faces out, and the
    faces a crowd worker's quota has left (None for other coders).
    `crowd=False`: the caller knows the coder is no crowd worker (their grant says so)."""
    # A crowd worker is handed no more faces than their quota has left.
    left = crowd_faces_left(study=study, user=request.user) if crowd else None
    n = LEASES_PER_CODER if left is None else min(left, LEASES_PER_CODER)
    taken = assignments_take_reading(
        study=study,
        coder=request.user,
        n=n,
        also=coder_progress_sql(study=study, coder=request.user),
    )
    items = [assignment_payload(study=study, assignment=a) for a in taken.leases]
    progress = progress_from_counts(taken.read, leases_held=len(items), claimed=taken.claimed)
    return items, _crowd_capped(progress, left), left


def _crowd_capped(progress: dict[str, int | str], crowd_left: int | None) -> dict[str, int | str]:
    """The progress line with "faces you can still take" capped by a crowd worker's quota."""
    if crowd_left is not None:
        available = progress["available"]
        if not isinstance(available, str):
            progress["available"] = min(available, crowd_left)
        elif crowd_left <= OPEN_COUNT_CAP:  # "100+" free faces: the quota is the bound
            progress["available"] = crowd_left
    return progress


def _progress(
    request: HttpRequest, study: Study, *, leases_held: int, crowd_left: int | None
) -> dict[str, int | str]:
    """coder_progress, with "faces you can still take" capped by a crowd worker's quota."""
    progress = coder_progress(study=study, coder=request.user, leases_held=leases_held)
    return _crowd_capped(progress, crowd_left)


def _payload(request: HttpRequest) -> object:
    if request.content_type == "application/json":
        try:
            return json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise InvalidVote(BAD_JSON) from None
        except RecursionError:  # the parser gives up on arrays or objects nested too deep
            raise InvalidVote(NESTED_JSON) from None
    return {key: request.POST.get(key) for key in request.POST}


@coder_endpoint
def code(request: HttpRequest, slug: str) -> HttpResponse:
    study = coder_study(request.user, slug)
    crowd_left = crowd_faces_left(study=study, user=request.user)
    if crowd_left == 0:  # a crowd worker who coded their quota: the completion code
        return redirect("annotate:crowd_done", slug=study.slug)
    questions = [
        {
            "key": q.key,
            "title": q.title,
            "options": [
                {"key": key, "value": str(value), "label": q.choices(value).label}
                for key, value in q.keys.items()
            ],
        }
        for q in study_questions(study=study)
    ]
    done = coder_votes_count(study=study, coder=request.user)
    codebook = codebook_for_coder(study=study)
    return render(
        request,
        "annotate/code.html" if crowd_left is None else "annotate/team/crowd_code.html",
        {
            "study": study,
            "questions": questions,
            "done": done,
            "progress": _progress(
                request,
                study,
                leases_held=leases_live(study=study, coder=request.user).count(),
                crowd_left=crowd_left,
            ),
            "codebook": codebook,
            # Before the coder's first face the codebook comes first, when there is one.
            "codebook_first": done == 0 and not codebook["empty"],
        },
    )


@coder_endpoint
@require_POST
def code_next(request: HttpRequest, slug: str) -> HttpResponse:
    study = coder_study(request.user, slug)
    try:
        items, progress, crowd_left = _items(request, study)
    except DatabaseError:
        logger.exception("handing out work failed in study %s", study.slug)
        return JsonResponse({"error": SERVER_BUSY}, status=503)
    body = {
        "items": items,
        "done": progress["total"],
        "open": faces_open_count(study=study),
        "progress": progress,
    }
    if not items and crowd_left == 0:
        body["finished_url"] = reverse("annotate:crowd_done", args=[study.slug])
    return JsonResponse(body)


def _vote(request: HttpRequest, slug: str) -> tuple[Study, VoteOutcome, bool]:
    """The vote in the request, its study and whether the coder may be a crowd worker:
    through the process's grant for this coder and study (its check rides on the vote's own
    lock statement), else the long way. A coder's first vote in this process asks for the
    grant first: each web process learns each coder so, and a crowd arriving at once would
    otherwise cast a vote the long way in every process."""
    data = _payload(request)
    study = None
    grant = coder_grant(request.user, slug)
    if grant is None:
        study = coder_study(request.user, slug)  # refuses who may not code; grants a coder
        grant = coder_grant(request.user, slug)
    if grant is not None:
        try:
            outcome = vote_submit_granted(grant=grant, coder=request.user, data=data)
        except GrantLapsed:
            grant_forget(grant)
            if getattr(request, USER_FROM_GRANT, False):
                raise GrantedUserLapsed from None  # decided again with the user loaded
            study = None  # decided again, the long way
        else:
            assert outcome.study is not None
            return outcome.study, outcome, grant.crowd
    study = study or coder_study(request.user, slug)
    vote_request = vote_request_parse(study=study, data=data)
    return study, vote_submit(study=study, coder=request.user, request=vote_request), True


@vote_endpoint
@require_POST
def code_submit(request: HttpRequest, slug: str) -> HttpResponse:
    """Record a vote; the reply carries the coder's next two faces (the next one to code and
    the one after, for the page to prefetch) and their progress, so coding needs no other
    request."""
    study = None
    try:
        study, outcome, crowd = _vote(request, slug)
    except CodingError as exc:
        body: dict = {"error": exc.message}
        if exc.status == 409:  # the coder moves on: hand out the next faces with the reply
            study = study or coder_study(request.user, slug)
            try:
                body["items"], _, _ = _items(request, study)
            except DatabaseError:
                logger.exception("handing out work failed in study %s", study.slug)
                body["items"] = []
        return JsonResponse(body, status=exc.status)
    except DatabaseError:
        # The service's transaction rolled back: nothing of this vote was written.
        logger.exception("recording a vote failed in study %s", slug)
        return JsonResponse({"error": VOTE_NOT_SAVED}, status=503)
    try:
        # A coder this answer paused gets no new work (their leases were released).
        items: list[dict]
        if outcome.paused:
            items, progress = [], _progress(request, study, leases_held=0, crowd_left=None)
        else:
            items, progress, _ = _items(request, study, crowd=crowd)
    except DatabaseError:
        logger.exception("handing out work failed in study %s", study.slug)
        items, progress = [], {}
    return JsonResponse(
        {
            "ok": True,
            "vote": outcome.vote.pk,
            "duplicate": outcome.duplicate,
            "late": outcome.late,
            "items": items,
            "progress": progress,
        }
    )


@coder_endpoint
@require_POST
def code_undo(request: HttpRequest, slug: str) -> HttpResponse:
    study = coder_study(request.user, slug)
    try:
        assignment = vote_undo(study=study, coder=request.user)
    except CodingError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status)
    except DatabaseError:
        logger.exception("undo failed in study %s", study.slug)
        return JsonResponse({"error": VOTE_NOT_SAVED}, status=503)
    assignment = Assignment.objects.select_related("face").get(pk=assignment.pk)
    return JsonResponse(
        {
            "ok": True,
            "item": assignment_payload(study=study, assignment=assignment),
            "undone": vote_undone_answers(study=study, assignment=assignment),
            "progress": _progress(
                request,
                study,
                leases_held=leases_live(study=study, coder=request.user).count(),
                crowd_left=crowd_faces_left(study=study, user=request.user),
            ),
        }
    )


@coder_endpoint
@require_POST
def code_stop(request: HttpRequest, slug: str) -> HttpResponse:
    """The coder's "Stop for now": their live leases in the study go back at once, so other
    coders can take those faces now; the reply carries the counts of the session summary."""
    study = coder_study(request.user, slug)
    try:
        released = leases_release(study=study, user=request.user)
    except DatabaseError:
        logger.exception("releasing leases failed in study %s", study.slug)
        return JsonResponse({"error": STOP_FAILED}, status=503)
    return JsonResponse(
        {
            "ok": True,
            "released": released,
            "progress": _progress(
                request,
                study,
                leases_held=0,
                crowd_left=crowd_faces_left(study=study, user=request.user),
            ),
        }
    )


@coder_endpoint
@require_GET
def code_source(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponseBase:
    """The source image with the face's box drawn in, for the coder holding the face."""
    study = coder_study(request.user, slug)
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
