"""Access rules for every view. Each URL's view carries one; a test fails any that lacks it.

`role_required(...)` lists the roles that may open a view (admins may open everything); it is
always the outermost decorator, so a refused role never learns anything else about the URL;
`public` marks the few views anonymous visitors may open. Object-level checks (study
membership, a coder's own leases) are the `check_*` functions, called by views with the
object they load.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from annotate.models import Study
from annotate.roles import Role, user_roles

PUBLIC = "public"
ACCESS_ATTRIBUTE = "facet_access"
NOT_A_MEMBER = "You are not a member of this study."

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
                raise PermissionDenied("Your role does not allow this page.")
            return view(request, *args, **kwargs)

        setattr(wrapper, ACCESS_ATTRIBUTE, allowed)
        return wrapper

    return decorator


def check_study_member(user, study) -> None:
    """Researchers and coders act only on studies they belong to; admins on all."""
    if Role.ADMIN in user_roles(user):
        return
    if not study.members.filter(pk=user.pk).exists():
        raise PermissionDenied(NOT_A_MEMBER)


def study_for_member(user, slug: str):
    """The study `slug` (404 if there is none) when `user` may act on it, else PermissionDenied.

    The same rule as check_study_member, read in the same query as the study: the coding
    endpoints call it on every vote.
    """
    if Role.ADMIN in user_roles(user):
        return get_object_or_404(Study, slug=slug)
    membership = Study.members.through.objects.filter(study=OuterRef("pk"), user=user.pk)
    study = get_object_or_404(Study.objects.annotate(is_member=Exists(membership)), slug=slug)
    if not study.is_member:
        raise PermissionDenied(NOT_A_MEMBER)
    return study


def is_admin(user) -> bool:
    return Role.ADMIN in user_roles(user)
