"""Crowd workers: an external-worker link whose participant ids become coders of one study.

A crowd platform (Prolific, MTurk, ...) opens `/crowd/<token>/?<param_name>=<participant id>`.
The id becomes a coder account `crowd-<study slug>-<id>` without a password, a member of that
study only, signed in by the link itself. The worker codes up to the link's
`faces_per_worker` faces (the coding path asks `crowd_faces_left` before it hands out work)
and is then shown the completion code. Blinding and leases are those of every coder.
"""

from __future__ import annotations

import logging
import re
import secrets

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from annotate.models import (
    CrowdLink,
    CrowdWorker,
    MemberRole,
    Membership,
    Study,
)
from annotate.selectors.coding import coder_votes_count
from annotate.services.invitations import token_hash, token_new
from annotate.services.team import member_add

logger = logging.getLogger(__name__)

PID_MAX = 64
PID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
PARAM_PATTERN = re.compile(r"[A-Za-z0-9_]{1,40}")
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_FACES_PER_WORKER = 10_000

PID_MISSING = "The link has no participant id (URL parameter {param})."
PID_TOO_LONG = f"The participant id is longer than {PID_MAX} characters."
PID_BAD_CHARACTERS = "The participant id may contain only letters, digits, '-' and '_'."
LINK_UNKNOWN = "This study link is not valid."
LINK_CLOSED = "This study is not taking more workers through this link."
WORKER_REMOVED = "This participant id was removed from the study."
USERNAME_CLASH = "An account named {username} already exists and is not a crowd worker."
BAD_FACES = f"Faces per worker must be between 1 and {MAX_FACES_PER_WORKER}."
BAD_PARAM = "The URL parameter name may contain only letters, digits and '_' (up to 40)."
BAD_CODE = "The completion code may contain only letters, digits, '-' and '_' (up to 64)."


class CrowdError(Exception):
    """A crowd link or participant id that cannot be used; `message` is shown as it is,
    with the HTTP `status` of the page that says it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def pid_check(pid: str | None, *, param: str) -> str:
    """The participant id if it is 1-64 characters of [A-Za-z0-9_-], else CrowdError."""
    pid = (pid or "").strip()
    if not pid:
        raise CrowdError(PID_MISSING.format(param=param))
    if len(pid) > PID_MAX:
        raise CrowdError(PID_TOO_LONG)
    if not PID_PATTERN.fullmatch(pid):
        raise CrowdError(PID_BAD_CHARACTERS)
    return pid


def crowd_username(*, study: Study, pid: str) -> str:
    return f"crowd-{study.slug}-{pid}"


def crowd_link_create(
    *,
    study: Study,
    faces_per_worker: int,
    created_by,
    completion_code: str = "",
    param_name: str = "PROLIFIC_PID",
) -> tuple[CrowdLink, str]:
    """Open an external-worker link; returns it and the token (shown once, never stored).
    Without a completion code a random one is made."""
    if not 1 <= faces_per_worker <= MAX_FACES_PER_WORKER:
        raise CrowdError(BAD_FACES)
    if not PARAM_PATTERN.fullmatch(param_name):
        raise CrowdError(BAD_PARAM)
    completion_code = completion_code.strip() or secrets.token_hex(4).upper()
    if not CODE_PATTERN.fullmatch(completion_code):
        raise CrowdError(BAD_CODE)
    token, digest = token_new()
    link = CrowdLink.objects.create(
        study=study,
        token_hash=digest,
        faces_per_worker=faces_per_worker,
        completion_code=completion_code,
        param_name=param_name,
        created_by=created_by,
    )
    logger.info("crowd link %s opened on %s by %s", link.pk, study, created_by)
    return link, token


def crowd_link_close(*, link: CrowdLink) -> None:
    """Take no new workers through `link`; workers already in keep coding to their quota."""
    CrowdLink.objects.filter(pk=link.pk).update(is_open=False)
    link.is_open = False


def crowd_link_check(*, token: str) -> CrowdLink:
    link = CrowdLink.objects.select_related("study").filter(token_hash=token_hash(token)).first()
    if link is None:
        raise CrowdError(LINK_UNKNOWN, status=404)
    return link


def crowd_worker_enter(*, link: CrowdLink, pid: str):
    """The coder account for participant `pid` in the link's study, made on first entry.

    A returning participant gets their account back (even after the link closed, so they
    can finish); a new one needs an open link. A participant a researcher removed from the
    study is refused, not added back. Two tabs entering at once end with one account.
    """
    study = link.study
    worker = CrowdWorker.objects.select_related("user").filter(study=study, participant_id=pid)
    found = worker.first()
    if found is None:
        if not link.is_open:
            raise CrowdError(LINK_CLOSED, status=410)
        try:
            return _worker_create(link=link, pid=pid)
        except IntegrityError:  # the same participant entered in another tab just now
            found = worker.first()
            if found is None:
                raise CrowdError(
                    USERNAME_CLASH.format(username=crowd_username(study=study, pid=pid))
                ) from None
    if not Membership.objects.filter(study=study, user=found.user).exists():
        raise CrowdError(WORKER_REMOVED, status=403)
    return found.user


@transaction.atomic
def _worker_create(*, link: CrowdLink, pid: str):
    user = get_user_model()(username=crowd_username(study=link.study, pid=pid))
    user.set_unusable_password()
    user.save()
    CrowdWorker.objects.create(study=link.study, link=link, user=user, participant_id=pid)
    member_add(study=link.study, user=user, role=MemberRole.CODER)
    logger.info("crowd worker %s joined %s through link %s", pid, link.study, link.pk)
    return user


def crowd_faces_left(*, study: Study, user) -> int | None:
    """Faces the crowd worker `user` may still code in `study` (their link's quota minus
    their answers that stand, gold included); None for a user who is not a crowd worker of `study`."""
    worker = (
        CrowdWorker.objects.filter(study=study, user=user.pk)
        .values_list("link__faces_per_worker", flat=True)
        .first()
    )
    if worker is None:
        return None
    # The coder's own count (votes and gold answers that stand): gold faces look like any
    # other face to the worker, so their answers count too.
    return max(0, worker - coder_votes_count(study=study, coder=user))
