"""Bringing people into a study: invitation links, and accounts made from a CSV of names.

A link carries a random token (`secrets.token_urlsafe(32)`); only its SHA-256 is stored, so
the link is shown once, when it is made. Joining counts a use with one conditional UPDATE
(`uses < max_uses`, not expired, not revoked): two people racing for the last use cannot
both get in, and a refused join creates nothing.

Accounts made from a CSV have no usable password; each gets a one-time set-password link
(Django's PasswordResetTokenGenerator: the token stops working once the password is set).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from annotate.ingest.csvtext import CsvError, csv_decode, csv_header
from annotate.models import CrowdWorker, Invitation, MemberRole, Membership, Study
from annotate.services.team import member_add

logger = logging.getLogger(__name__)

INVITATION_UNKNOWN = "This invitation link is not valid. Ask the researcher for a new one."
INVITATION_EXPIRED = "This invitation link has expired. Ask the researcher for a new one."
INVITATION_USED_UP = "This invitation link has been used as often as it may be."
INVITATION_REVOKED = "This invitation link was withdrawn by the researcher."
CROWD_ACCOUNT = "A crowd worker's account works in its own study only; it cannot join others."
MAX_USES_LIMIT = 1000
MAX_DAYS = 90
BAD_MAX_USES = f"Maximum uses must be between 1 and {MAX_USES_LIMIT}."
BAD_DAYS = f"The link must be valid for 1 to {MAX_DAYS} days."

CSV_MISSING_COLUMNS = "the CSV file needs the columns name and email (found: {found})"
ROW_NO_EMAIL = "no e-mail address"
ROW_BAD_EMAIL = "{email!r} is not a valid e-mail address"
ROW_EMAIL_TAKEN = "an account with e-mail {email!r} already exists"
ROW_USERNAME_TAKEN = "the username {username!r} is already taken"
ROW_USERNAME_TWICE = "the username {username!r} is also on line {line}"
ROW_EMAIL_TWICE = "the e-mail {email!r} is also on line {line}"
ROW_BAD_USERNAME = "{username!r} is not a valid username: {reason}"
ROW_NAME_TOO_LONG = "the name is longer than 150 characters"
MAX_ACCOUNTS_PER_FILE = 500
MAX_ACCOUNTS_CSV_BYTES = 1024 * 1024
CSV_TOO_MANY_ROWS = f"the CSV file has more than {MAX_ACCOUNTS_PER_FILE} rows; split it"


class InvitationError(Exception):
    """An invitation that cannot be used; `message` is shown to the visitor as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _now() -> datetime:
    return timezone.now()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_new() -> tuple[str, str]:
    """A fresh random token and the hash that is stored for it."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


# --- links -----------------------------------------------------------------------------------


def invitation_create(
    *, study: Study, role: str, days: int, max_uses: int, created_by
) -> tuple[Invitation, str]:
    """Make an invitation link; returns it and the token (shown once, never stored)."""
    if not 1 <= max_uses <= MAX_USES_LIMIT:
        raise InvitationError(BAD_MAX_USES)
    if not 1 <= days <= MAX_DAYS:
        raise InvitationError(BAD_DAYS)
    role = MemberRole(role)
    token, digest = token_new()
    invitation = Invitation.objects.create(
        study=study,
        role=role,
        token_hash=digest,
        expires_at=_now() + timedelta(days=days),
        max_uses=max_uses,
        created_by=created_by,
    )
    logger.info("invitation %s to %s as %s made by %s", invitation.pk, study, role, created_by)
    return invitation, token


def invitation_revoke(*, invitation: Invitation) -> None:
    """Withdraw a link; people who already joined stay members."""
    Invitation.objects.filter(pk=invitation.pk, revoked_at__isnull=True).update(revoked_at=_now())
    invitation.refresh_from_db(fields=["revoked_at"])


def _refusal(invitation: Invitation | None, now: datetime) -> str | None:
    if invitation is None:
        return INVITATION_UNKNOWN
    if invitation.revoked_at is not None:
        return INVITATION_REVOKED
    if invitation.expires_at <= now:
        return INVITATION_EXPIRED
    if invitation.uses >= invitation.max_uses:
        return INVITATION_USED_UP
    return None


INVITATION_STATES = {
    None: "open",
    INVITATION_REVOKED: "withdrawn",
    INVITATION_EXPIRED: "expired",
    INVITATION_USED_UP: "used up",
}


def invitation_state(invitation: Invitation, *, now: datetime | None = None) -> str:
    """open, withdrawn, expired or used up: what the researcher's list says of a link."""
    return INVITATION_STATES[_refusal(invitation, now or _now())]


def invitation_check(*, token: str) -> Invitation:
    """The usable invitation for `token`, else InvitationError saying why not."""
    invitation = (
        Invitation.objects.select_related("study").filter(token_hash=token_hash(token)).first()
    )
    message = _refusal(invitation, _now())
    if message:
        raise InvitationError(message)
    assert invitation is not None  # _refusal refuses a missing one
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user) -> tuple[Membership, bool]:
    """Make `user` a member of the invitation's study in its role, counting one use; returns
    the membership and whether the user just joined.

    A user who is already a member keeps their membership (and role) and uses nothing; a
    crowd worker's account (annotate.services.crowd) is refused: it belongs to one study. The use is
    counted by a conditional UPDATE, so at most `max_uses` people ever join; a refused join
    raises InvitationError and changes nothing.
    """
    invitation = invitation_check(token=token)
    if CrowdWorker.objects.filter(user=user.pk).exists():
        raise InvitationError(CROWD_ACCOUNT)
    existing = Membership.objects.filter(study=invitation.study, user=user).first()
    if existing is not None:
        return existing, False
    now = _now()
    counted = Invitation.objects.filter(
        pk=invitation.pk, revoked_at__isnull=True, expires_at__gt=now, uses__lt=F("max_uses")
    ).update(uses=F("uses") + 1)
    if not counted:
        invitation.refresh_from_db()
        raise InvitationError(_refusal(invitation, now) or INVITATION_USED_UP)
    logger.info(
        "%s joined %s as %s by invitation %s",
        user,
        invitation.study,
        invitation.role,
        invitation.pk,
    )
    return member_add(study=invitation.study, user=user, role=invitation.role), True


@transaction.atomic
def invitation_signup(*, token: str, username: str, password: str):
    """Create an account (validated by the caller's form) and join with it, or nothing at all."""
    invitation_check(token=token)
    user = get_user_model().objects.create_user(username=username, password=password)
    invitation_accept(token=token, user=user)
    return user


# --- accounts from a CSV -------------------------------------------------------------------


@dataclass(frozen=True)
class AccountMade:
    line: int
    name: str
    email: str
    username: str
    user_id: int
    link: str  # path of the one-time set-password page
    emailed: bool = False


@dataclass(frozen=True)
class RowProblem:
    line: int
    email: str
    message: str


@dataclass
class AccountsImport:
    made: list[AccountMade] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def set_password_path(user) -> str:
    """The one-time set-password page for `user` (valid until the password is set, or
    PASSWORD_RESET_TIMEOUT)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


def _email_configured() -> bool:
    """Mail is sent only where an e-mail server was set up; the default SMTP to localhost is
    taken to mean there is none, and the researcher sends the links themselves."""
    smtp = settings.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend"
    return not smtp or settings.EMAIL_HOST not in ("", "localhost", "127.0.0.1")


def _row_problem(values: dict[str, str], line: int, seen: dict[str, int]) -> tuple[str, str] | str:
    """The row's (email, username) if it can be imported, else the reason it cannot."""
    User = get_user_model()
    name, email = values.get("name", ""), values.get("email", "")
    if not email:
        return ROW_NO_EMAIL
    try:
        validate_email(email)
    except ValidationError:
        return ROW_BAD_EMAIL.format(email=email[:100])
    max_length = User._meta.get_field("email").max_length
    if max_length is not None and len(email) > max_length:
        return ROW_BAD_EMAIL.format(email=email[:100])
    if len(name) > 150:
        return ROW_NAME_TOO_LONG
    username = values.get("username") or email
    try:
        User._meta.get_field("username").run_validators(username)
    except ValidationError as exc:
        return ROW_BAD_USERNAME.format(username=username[:100], reason=" ".join(exc.messages))
    user_key, email_key = "username:" + username.lower(), "email:" + email.lower()
    if user_key in seen:
        return ROW_USERNAME_TWICE.format(username=username, line=seen[user_key])
    if email_key in seen:
        return ROW_EMAIL_TWICE.format(email=email, line=seen[email_key])
    if User.objects.filter(username__iexact=username).exists():
        return ROW_USERNAME_TAKEN.format(username=username)
    if User.objects.filter(email__iexact=email).exists():
        return ROW_EMAIL_TAKEN.format(email=email)
    seen[user_key] = seen[email_key] = line
    return email, username


def accounts_import(*, study: Study, role: str, data: bytes, created_by) -> AccountsImport:
    """Create an account and a membership for each good row of a CSV (name, email[, username]).

    Each good row is its own transaction, so a bad row (reported with its line) never stops
    the others. The accounts have no usable password; each gets a set-password link, which
    is also e-mailed where an e-mail server is configured. Raises CsvError if the file as a
    whole cannot be read.
    """
    role = MemberRole(role)
    decoded = csv_decode(data, max_bytes=MAX_ACCOUNTS_CSV_BYTES)
    names, records = csv_header(decoded.text)
    if not {"name", "email"} <= set(names):
        raise CsvError(CSV_MISSING_COLUMNS.format(found=", ".join(names)[:200]))
    result = AccountsImport(notes=list(decoded.notes))
    seen: dict[str, int] = {}
    User = get_user_model()
    for count, record in enumerate(records, start=1):
        if count > MAX_ACCOUNTS_PER_FILE:
            result.notes.append(CSV_TOO_MANY_ROWS)
            break
        email = record.values.get("email", "")
        checked = _row_problem(record.values, record.line, seen)
        if isinstance(checked, str):
            result.problems.append(RowProblem(record.line, email, checked))
            continue
        email, username = checked
        first, _, last = record.values.get("name", "").partition(" ")
        try:
            with transaction.atomic():
                user = User(username=username, email=email, first_name=first, last_name=last)
                user.set_unusable_password()
                user.save()
                member_add(study=study, user=user, role=role)
        except IntegrityError:  # taken by someone else between the check and the insert
            result.problems.append(
                RowProblem(record.line, email, ROW_USERNAME_TAKEN.format(username=username))
            )
            continue
        result.made.append(
            AccountMade(
                record.line,
                record.values.get("name", ""),
                email,
                username,
                user.pk,
                set_password_path(user),
            )
        )
    logger.info(
        "accounts import into %s by %s: %d made, %d rows refused",
        study,
        created_by,
        len(result.made),
        len(result.problems),
    )
    return result


def accounts_email(*, study: Study, made: list[AccountMade], base_url: str) -> list[AccountMade]:
    """E-mail each new account its set-password link where an e-mail server is configured;
    returns the rows with `emailed` set. A failed send is logged and the link still shown."""
    if not _email_configured():
        return made
    sent = []
    for row in made:
        try:
            send_mail(
                f"Your account for {study.title}",
                f"You have been added to the study {study.title!r} on Facet as {row.username}.\n"
                f"Set your password here (the link works once): {base_url}{row.link}\n",
                None,
                [row.email],
            )
        except OSError:
            logger.exception("could not e-mail the set-password link to line %d", row.line)
            sent.append(row)
            continue
        sent.append(AccountMade(**{**row.__dict__, "emailed": True}))
    return sent


def set_password_links(*, study: Study, user_ids: list[int]) -> list[tuple[User, str]]:
    """Fresh set-password links for members of `study` among `user_ids` who have never set a
    password nor logged in (accounts made from a CSV); others are left out."""
    users = (
        get_user_model()
        .objects.filter(
            pk__in=user_ids, memberships__study=study, last_login__isnull=True, crowd_worker=None
        )
        .order_by("pk")
    )
    return [(user, set_password_path(user)) for user in users if not user.has_usable_password()]
