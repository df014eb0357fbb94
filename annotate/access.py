"""Access rules for every view. Each URL's view carries one; a test fails any that lacks it.

`role_required(...)` lists the roles that may open a view (admins may open everything); it is
always the outermost decorator, so a refused role never learns anything else about the URL;
`public` marks the few views anonymous visitors may open. Object-level checks (study
membership, a coder's own leases) are the `check_*` / `study_for_*` functions, called by views
with the object they load. A user's role is per study (`Membership.role`): researchers' pages
use `study_for_researcher` / `check_study_researcher`; coding uses `study_for_member`, which any
member passes unless paused there. Membership is read on every request, so a removal or pause
takes effect at the member's next request.

The vote endpoint, the hot path of a crowd, reads none of it itself: `coder_grant` remembers
per process that a user codes in a study (a `Grant`, filled by `coder_study`, the one query
the other coding endpoints make for role, study and membership), and the statement that locks
the voted assignment checks that the grant still holds (`grant_checks`). A removal, a pause
or a changed role makes that check fail: the vote writes nothing, the grant is forgotten and
the request is decided the long way, so it is refused at once.

The grant also remembers the user as they were loaded and verified when it was made, so a vote
(`vote_endpoint`) whose session names that user with the same session hash acts as them
without loading their row: the lock statement checks that the row still has that password and
is active and no superuser (`grant_user`), which is all Django's session check and backend read
it for. A changed password, a deactivation or a new superuser makes the check fail like any
other, and the request is decided again with the user loaded as on any other request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Exists, OuterRef
from django.db.models.functions import MD5
from django.http import Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.utils.crypto import constant_time_compare

from annotate.compiled_sql import compiled_rows, from_db_row, queryset_sql
from annotate.models import CrowdWorker, MemberRole, Membership, Study
from annotate.roles import Role, user_roles

PUBLIC = "public"
ACCESS_ATTRIBUTE = "facet_access"
ROLE_REFUSED = "Your role does not allow this page."
NOT_A_MEMBER = "You are not a member of this study."
NOT_A_RESEARCHER = "Only researchers of this study may open this page."
PAUSED = "Your work on this study is paused ({reason}). Ask a researcher of the study to resume it."
NO_REASON = "no reason given"

View = Callable[..., HttpResponseBase]


def public(view: View) -> View:
    setattr(view, ACCESS_ATTRIBUTE, PUBLIC)
    return view


def role_required(*roles: Role) -> Callable[[View], View]:
    allowed = frozenset(roles) | {Role.ADMIN}

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (user_roles(request.user) & allowed):
                raise PermissionDenied(ROLE_REFUSED)
            try:
                return view(request, *args, **kwargs)
            except PermissionDenied as exc:
                # Pages show Django's 403 page; the coding page's JSON calls need the reason
                # as `{"error": ...}`, as for any other refusal, to show it to the coder.
                if request.content_type == "application/json":
                    return JsonResponse({"error": str(exc) or ROLE_REFUSED}, status=403)
                raise

        setattr(wrapper, ACCESS_ATTRIBUTE, allowed)
        return wrapper

    return decorator


def _refusal(membership: Membership | None, role: MemberRole | None) -> str | None:
    """Why this membership may not act as `role` in its study (None: it may).

    `role=None` is work any member may do (coding): it needs a membership that is not paused.
    `role=RESEARCHER` needs the researcher role in that study; a pause does not stop it.
    """
    if membership is None:
        return NOT_A_MEMBER
    if role is None:
        return (
            PAUSED.format(reason=membership.paused_reason or NO_REASON)
            if membership.is_paused
            else None
        )
    if membership.role != role:
        return NOT_A_RESEARCHER
    return None


def check_study_member(user, study: Study, *, role: MemberRole | None = None) -> None:
    """Coders and researchers act only on studies they belong to, researchers' pages only in
    studies where their membership's role is researcher; admins act on all."""
    if Role.ADMIN in user_roles(user):
        return
    membership = Membership.objects.filter(study=study, user=user.pk).first()
    refusal = _refusal(membership, role)
    if refusal is not None:
        raise PermissionDenied(refusal)


def check_study_researcher(user, study: Study) -> None:
    """check_study_member for researchers' pages."""
    check_study_member(user, study, role=MemberRole.RESEARCHER)


def study_for_member(user, slug: str, *, role: MemberRole | None = None) -> Study:
    """The study `slug` (404 if there is none) when `user` may act on it as `role`, else
    PermissionDenied; the rule of check_study_member.

    The membership is read with the study in one query: the coding endpoints call this on
    every vote, and a member removed or paused a moment ago is refused at their next request.
    """
    if Role.ADMIN in user_roles(user):
        return get_object_or_404(Study, slug=slug)
    membership = (
        Membership.objects.select_related("study").filter(study__slug=slug, user=user.pk).first()
    )
    if membership is None:
        get_object_or_404(Study, slug=slug)  # no such study: 404, not "not a member"
    refusal = _refusal(membership, role)
    if refusal is not None:
        raise PermissionDenied(refusal)
    assert membership is not None  # _refusal refuses a missing membership
    return membership.study


def study_for_researcher(user, slug: str) -> Study:
    """study_for_member for researchers' pages: the user's role in this study is researcher."""
    return study_for_member(user, slug, role=MemberRole.RESEARCHER)


def is_admin(user) -> bool:
    return Role.ADMIN in user_roles(user)


@dataclass(frozen=True)
class Grant:
    """A user who codes in a study: a member not paused there, with the coder role and not an
    admin. Remembered per process (`coder_grant`); each vote checks it still holds."""

    user_id: int
    study_id: int
    slug: str
    crowd: bool  # a crowd worker of the study (annotate.services.crowd: a quota applies)
    user_row: tuple  # the user's field values (`_user_fields()`) as loaded when granted
    session_hash: str  # the session hash those values give (Django's session check)
    password_md5: str  # `password_md5` of that user, what each vote's `grant_checks` compare

    def user(self):
        """The user as granted, a new object each call (a request may change its own)."""
        return get_user_model().from_db(DEFAULT_DB_ALIAS, _user_fields(), self.user_row)


_grants: dict[tuple[int, str], Grant] = {}
GRANTS_MAX = 50_000
# The one backend whose users a grant stands in for (settings.AUTHENTICATION_BACKENDS).
USER_BACKEND = "annotate.backends.ModelBackend"
# Set on a request whose user is a grant's (`vote_endpoint`), not yet checked by its vote.
USER_FROM_GRANT = "facet_user_from_grant"


class GrantedUserLapsed(Exception):
    """A grant no longer holds for a request that acts as the grant's user (`vote_endpoint`):
    nothing was written; the request is decided again with the user loaded."""


@cache
def _user_fields() -> tuple[str, ...]:
    return tuple(f.attname for f in get_user_model()._meta.concrete_fields)


def password_md5(user) -> str:
    """What `grant_checks` compares the user's row with: the digest of the password hash, so
    no statement (nor a log of one) carries the hash itself."""
    return hashlib.md5(user.password.encode(), usedforsecurity=False).hexdigest()


def coder_grant(user, slug: str) -> Grant | None:
    """The remembered grant of `user` in study `slug`, if this process has one."""
    return _grants.get((user.pk, slug)) if user.is_authenticated else None


def grant_forget(grant: Grant) -> None:
    """Drop a grant whose check failed: the user's next request is decided the long way."""
    _grants.pop((grant.user_id, grant.slug), None)


def grant_checks(*, user_id: int, password: str, study: str) -> dict[str, Exists]:
    """Annotations that say whether a grant still holds, for the statement that locks the
    voted assignment (`study`: the path from it to the study's id): `grant_user` (the user's
    row is active, no superuser, and has the password whose `password_md5` is `password`),
    `grant_member` (an unpaused membership), `grant_coder` (the coder group), `grant_admin`
    (the admin group; an admin's vote is flagged non-blind, so a grant never covers one) and
    `grant_crowd` (whether the user is a crowd worker there, which the grant remembers)."""
    users = get_user_model()._default_manager.annotate(password_md5=MD5("password"))
    return {
        "grant_user": Exists(
            users.filter(pk=user_id, is_active=True, is_superuser=False, password_md5=password)
        ),
        "grant_crowd": _crowd_worker(user_id=user_id, study=study),
        "grant_member": Exists(
            Membership.objects.filter(
                study_id=OuterRef(study), user_id=user_id, paused_at__isnull=True
            )
        ),
        **_role_checks(user_id),
    }


def _role_checks(user_id: int) -> dict[str, Exists]:
    """`grant_coder` and `grant_admin`: whether the user is in the coder, the admin group."""
    groups = Group.objects.filter(user=user_id)
    return {
        "grant_coder": Exists(groups.filter(name=Role.CODER)),
        "grant_admin": Exists(groups.filter(name=Role.ADMIN)),
    }


def _crowd_worker(*, user_id: int, study: str) -> Exists:
    return Exists(CrowdWorker.objects.filter(study_id=OuterRef(study), user_id=user_id))


def grant_holds(grant: Grant, row) -> bool:
    """Whether a row annotated with `grant_checks` (and carrying its study) still grants."""
    return (
        row.grant_user
        and row.grant_member
        and row.grant_coder
        and not row.grant_admin
        and row.grant_crowd == grant.crowd
        and row.face.study.slug == grant.slug
    )


def coder_study(user, slug: str) -> Study:
    """role_required(Role.CODER) and study_for_member in one query, for the coding endpoints:
    the study when `user` may code in it, else PermissionDenied (a refused role is told so
    before anything about the study) or 404. A user who codes as a plain coder is remembered
    (`coder_grant`) for the vote endpoint."""
    row = _study_with_checks(slug=slug, user_id=user.pk)
    admin = user.is_superuser or (row is not None and row.admin)
    if row is None:
        # Whether the role is refused does not depend on the study: say it before the 404.
        if not admin and Role.CODER not in user_roles(user):
            raise PermissionDenied(ROLE_REFUSED)
        raise Http404("No study with this name.")
    study = row.study
    if not admin and not row.coder:
        raise PermissionDenied(ROLE_REFUSED)
    if admin:
        return study
    if not row.member:
        raise PermissionDenied(NOT_A_MEMBER)
    if row.paused:
        membership = Membership.objects.get(study=study, user=user.pk)
        raise PermissionDenied(_refusal(membership, None))
    if connection.vendor != "postgresql":
        return study  # a grant's vote statement locks rows, which only PostgreSQL can
    if len(_grants) >= GRANTS_MAX:
        _grants.clear()
    _grants[(user.pk, slug)] = Grant(
        user.pk,
        study.pk,
        slug,
        row.crowd,
        user_row=tuple(getattr(user, name) for name in _user_fields()),
        session_hash=user.get_session_auth_hash(),
        password_md5=password_md5(user),
    )
    return study


@dataclass(frozen=True)
class _StudyChecked:
    """A study and what coder_study decides on, for one user: the coder and admin groups,
    a membership (paused or not), the crowd worker there, a paused membership: the columns
    `_STUDY_CHECKS` names, in its order."""

    study: Study
    coder: bool
    admin: bool
    member: bool
    crowd: bool
    paused: bool


_STUDY_FIELDS = [f.attname for f in Study._meta.concrete_fields]
_STUDY_CHECKS = ("grant_coder", "grant_admin", "grant_member", "grant_crowd", "grant_paused")


def _study_with_checks(*, slug: str, user_id: int) -> _StudyChecked | None:
    """Study `slug` and its checks for the user, in one statement compiled once per process:
    every coding endpoint asks it, a crowd's first call in each web process among them."""
    rows = compiled_rows("coder_study", _study_with_checks_sql, slug=slug, user_id=user_id)
    if not rows:
        return None
    [row] = rows
    n = len(_STUDY_FIELDS)
    return _StudyChecked(from_db_row(Study, _STUDY_FIELDS, row[:n]), *map(bool, row[n:]))


def _study_with_checks_sql(slug: str, user_id: int) -> tuple[str, tuple]:
    mine = Membership.objects.filter(study=OuterRef("pk"), user=user_id)
    return queryset_sql(
        Study.objects.filter(slug=slug)
        .annotate(
            **_role_checks(user_id),
            grant_member=Exists(mine),
            grant_crowd=_crowd_worker(user_id=user_id, study="pk"),
            grant_paused=Exists(mine.filter(paused_at__isnull=False)),
        )
        .values(*_STUDY_FIELDS, *_STUDY_CHECKS)
    )


def _granted_user(request: HttpRequest, slug: str):
    """The user of a grant in study `slug` whose user the request's session names, with the
    session hash those values give and through `USER_BACKEND`; else None."""
    session = request.session
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend, session_hash = session[BACKEND_SESSION_KEY], session[HASH_SESSION_KEY]
    except (KeyError, ValidationError):
        return None
    grant = _grants.get((user_id, slug))
    if (
        grant is None
        or backend != USER_BACKEND
        or backend not in settings.AUTHENTICATION_BACKENDS
        or not isinstance(session_hash, str)
        or not constant_time_compare(session_hash, grant.session_hash)
    ):
        return None
    return grant.user()


def vote_endpoint(view: View) -> View:
    """`coder_endpoint` for the vote: when the process holds a grant for the session's user
    (`_granted_user`), the request acts as that user without loading their row, and the vote's
    lock statement checks the row (`grant_checks`). Where a grant lapses for such a request,
    the view raises GrantedUserLapsed before writing anything, and the request is decided
    again with the user loaded, as on any other request."""
    checked = coder_endpoint(view)

    @wraps(checked)
    def wrapper(request: HttpRequest, slug: str, *args, **kwargs) -> HttpResponseBase:
        user = _granted_user(request, slug)
        if user is not None:
            loaded = request.user  # the middleware's lazy user, not loaded yet
            request.user = user
            setattr(request, USER_FROM_GRANT, True)
            try:
                return checked(request, slug, *args, **kwargs)
            except GrantedUserLapsed:
                request.user = loaded
                setattr(request, USER_FROM_GRANT, False)
        return checked(request, slug, *args, **kwargs)

    return wrapper


def coder_endpoint(view: View) -> View:
    """The access rule of the coding endpoints: role_required(Role.CODER) (admins too) and
    study membership, which the view checks with `coder_study` (one query), or, for a vote,
    through its grant (`coder_grant`). A refusal of a JSON call comes back as {"error": ...}."""

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, *args, **kwargs) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        try:
            # A refused role learns nothing else about the URL (not even its method), as
            # with role_required; a grant was given to a coder, and each vote checks it.
            if coder_grant(request.user, slug) is None and not (
                user_roles(request.user) & {Role.CODER, Role.ADMIN}
            ):
                raise PermissionDenied(ROLE_REFUSED)
            return view(request, slug, *args, **kwargs)
        except PermissionDenied as exc:
            if request.content_type == "application/json":
                return JsonResponse({"error": str(exc) or ROLE_REFUSED}, status=403)
            raise

    setattr(wrapper, ACCESS_ATTRIBUTE, frozenset({Role.CODER, Role.ADMIN}))
    return wrapper
