"""Roles are Django groups: coder, researcher, admin. Superusers count as admins."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, Group, User
from django.db import models


class Role(models.TextChoices):
    CODER = "coder", "Coder"
    RESEARCHER = "researcher", "Researcher"
    ADMIN = "admin", "Admin"


def user_roles(user: User | AnonymousUser) -> frozenset[str]:
    """The roles a user holds; cached on the user object for the request."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_facet_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        if user.is_superuser:
            names.add(Role.ADMIN)
        cached = frozenset(name for name in names if name in Role.values)
        user._facet_roles = cached  # type: ignore[attr-defined]  # a cache for the request
    return cached


def groups_ensure() -> dict[str, Group]:
    """Create the three role groups if missing (idempotent)."""
    return {role: Group.objects.get_or_create(name=role)[0] for role in Role.values}
