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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.models import Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.http import Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404

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


_grants: dict[tuple[int, str], Grant] = {}
GRANTS_MAX = 50_000


def coder_grant(user, slug: str) -> Grant | None:
    """The remembered grant of `user` in study `slug`, if this process has one."""
    return _grants.get((user.pk, slug)) if user.is_authenticated else None


def grant_forget(grant: Grant) -> None:
    """Drop a grant whose check failed: the user's next request is decided the long way."""
    _grants.pop((grant.user_id, grant.slug), None)


def grant_checks(*, user_id: int, study: str) -> dict[str, Exists]:
    """Annotations that say whether a grant still holds, for the statement that locks the
    voted assignment (`study`: the path from it to the study's id): `grant_member` (an
    unpaused membership), `grant_coder` (the coder group), `grant_admin` (the admin group;
    an admin's vote is flagged non-blind, so a grant never covers one) and `grant_crowd`
    (whether the user is a crowd worker there, which the grant remembers)."""
    groups = Group.objects.filter(user=user_id)
    return {
        "grant_crowd": _crowd_worker(user_id=user_id, study=study),
        "grant_member": Exists(
            Membership.objects.filter(
                study_id=OuterRef(study), user_id=user_id, paused_at__isnull=True
            )
        ),
        "grant_coder": Exists(groups.filter(name=Role.CODER)),
        "grant_admin": Exists(groups.filter(name=Role.ADMIN)),
    }


def _crowd_worker(*, user_id: int, study: str) -> Exists:
    return Exists(CrowdWorker.objects.filter(study_id=OuterRef(study), user_id=user_id))


def grant_holds(grant: Grant, row) -> bool:
    """Whether a row annotated with `grant_checks` (and carrying its study) still grants."""
    return (
        row.grant_member
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
    groups = Group.objects.filter(user=user.pk)
    row = (
        Study.objects.filter(slug=slug)
        .annotate(
            grant_coder=Exists(groups.filter(name=Role.CODER)),
            grant_admin=Exists(groups.filter(name=Role.ADMIN)),
            grant_member=Exists(Membership.objects.filter(study=OuterRef("pk"), user=user.pk)),
            grant_crowd=_crowd_worker(user_id=user.pk, study="pk"),
            grant_paused=Exists(
                Membership.objects.filter(
                    Q(paused_at__isnull=False), study=OuterRef("pk"), user=user.pk
                )
            ),
        )
        .first()
    )
    admin = user.is_superuser or (row is not None and row.grant_admin)
    if row is None:
        # Whether the role is refused does not depend on the study: say it before the 404.
        if not admin and Role.CODER not in user_roles(user):
            raise PermissionDenied(ROLE_REFUSED)
        raise Http404("No study with this name.")
    if not admin and not row.grant_coder:
        raise PermissionDenied(ROLE_REFUSED)
    if admin:
        return row
    if not row.grant_member:
        raise PermissionDenied(NOT_A_MEMBER)
    if row.grant_paused:
        membership = Membership.objects.get(study=row, user=user.pk)
        raise PermissionDenied(_refusal(membership, None))
    if connection.vendor != "postgresql":
        return row  # a grant's vote statement locks rows, which only PostgreSQL can
    if len(_grants) >= GRANTS_MAX:
        _grants.clear()
    _grants[(user.pk, slug)] = Grant(user.pk, row.pk, slug, row.grant_crowd)
    return row


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
