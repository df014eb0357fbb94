"""Access rules for every view. Each URL's view carries one; a test fails any that lacks it.

`role_required(...)` lists the roles that may open a view (admins may open everything); it is
always the outermost decorator, so a refused role never learns anything else about the URL;
`public` marks the few views anonymous visitors may open. Object-level checks (study
membership, a coder's own leases) are the `check_*` / `study_for_*` functions, called by views
with the object they load. A user's role is per study (`Membership.role`): researchers' pages
use `study_for_researcher` / `check_study_researcher`; coding uses `study_for_member`, which any
member passes unless paused there. Membership is read on every request, so a removal or pause
takes effect at the member's next request.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404

from annotate.models import MemberRole, Membership, Study
from annotate.roles import Role, user_roles

PUBLIC = "public"
ACCESS_ATTRIBUTE = "facet_access"
ROLE_REFUSED = "Your role does not allow this page."
NOT_A_MEMBER = "You are not a member of this study."
NOT_A_RESEARCHER = "Only researchers of this study may open this page."
PAUSED = "Your work on this study is paused ({reason}). Ask a researcher of the study to resume it."
NO_REASON = "no reason given"

View = Callable[..., HttpResponse]


def public(view: View) -> View:
    setattr(view, ACCESS_ATTRIBUTE, PUBLIC)
    return view


def role_required(*roles: Role) -> Callable[[View], View]:
    allowed = frozenset(roles) | {Role.ADMIN}

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
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
    return membership.study


def study_for_researcher(user, slug: str) -> Study:
    """study_for_member for researchers' pages: the user's role in this study is researcher."""
    return study_for_member(user, slug, role=MemberRole.RESEARCHER)


def is_admin(user) -> bool:
    return Role.ADMIN in user_roles(user)
