"""Every URL declares who may open it, and the declaration holds for every role.

Generated from the URL configuration: a new URL whose view has no access rule fails here.
"""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from annotate.access import ACCESS_ATTRIBUTE, PUBLIC
from annotate.roles import Role
from tests.factories import make_user

pytestmark = pytest.mark.django_db

# Django's own admin guards itself with is_staff; it is tested below as a whole.
SELF_GUARDED_NAMESPACES = {"admin"}
DUMMY_VALUES = {
    "int": "999999",
    "slug": "no-such-thing",
    "str": "no-such-thing",
    "path": "no/such.jpg",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def _walk(patterns, prefix="", namespace=None):
    for p in patterns:
        if isinstance(p, URLResolver):
            if p.namespace in SELF_GUARDED_NAMESPACES:
                continue
            yield from _walk(p.url_patterns, prefix + str(p.pattern), p.namespace or namespace)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


def _concrete(route: str, pattern: URLPattern) -> str:
    converters = getattr(pattern.pattern, "converters", {})
    url = route
    for name, converter in converters.items():
        kind = type(converter).__name__.replace("Converter", "").lower()
        for token in (f"<{kind}:{name}>", f"<{name}>"):
            url = url.replace(token, DUMMY_VALUES.get(kind, "x"))
    return "/" + url


ROUTES = list(_walk(get_resolver().url_patterns))


def test_every_url_declares_an_access_rule():
    missing = [route for route, p in ROUTES if not hasattr(p.callback, ACCESS_ATTRIBUTE)]
    assert not missing, f"views without an access rule (use role_required or public): {missing}"


@pytest.mark.parametrize("route,pattern", ROUTES, ids=[r or "/" for r, _ in ROUTES])
def test_each_role_is_let_in_or_kept_out_as_declared(client, route, pattern):
    rule = getattr(pattern.callback, ACCESS_ATTRIBUTE)
    url = _concrete(route, pattern)
    anonymous = client.get(url)
    if rule == PUBLIC:
        assert anonymous.status_code != 403
        return
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"], (
        url,
        anonymous.status_code,
    )
    for role in Role:
        client.force_login(make_user(role))
        status = client.get(url).status_code
        if role in rule:
            assert status != 403, (url, role)
        else:
            assert status == 403, (url, role, status)
        client.logout()


def test_admin_site_is_for_admins_only(client):
    for role in (Role.CODER, Role.RESEARCHER):
        client.force_login(make_user(role))
        assert client.get("/admin/").status_code == 302
        client.logout()
    client.force_login(make_user(Role.ADMIN))
    assert client.get("/admin/").status_code == 200
