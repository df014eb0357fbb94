"""Every URL declares who may open it, and the declaration holds for every role; media goes
only to the people each face and image is for.

Generated from the URL configuration: a new URL whose view has no access rule fails here.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from annotate.access import ACCESS_ATTRIBUTE, PUBLIC
from annotate.labels import Gender
from annotate.models import Assignment
from annotate.roles import Role
from annotate.services.team import member_remove
from tests.factories import (
    lease_take,
    make_faces,
    make_source_image,
    make_study,
    make_user,
    votes_cast,
)

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


# --- media: each face crop and source image, person by person ---------------------------------
#
# Columns: the face's crop, its source with the box drawn, the coder's source view (keyed by
# the person's own assignment on the face, else another coder's), and the source image file
# itself (display copy, original; researchers only). 404 refuses without saying whether the
# face exists; 403 refuses by role, or by study membership on the study-scoped coding URL.
MEDIA_VIEWS = ("face_crop", "face_source", "code_source", "image_display", "image_original")
MEDIA_MATRIX = {
    "anonymous": (302, 302, 302, 302, 302),
    "admin, not a member": (200, 200, 404, 200, 200),
    "researcher of the study": (200, 200, 403, 200, 200),
    "researcher of another study": (404, 404, 403, 404, 404),
    "researcher removed from the study": (404, 404, 403, 404, 404),
    "coder holding the face": (200, 200, 200, 403, 403),
    "coder who coded the face": (200, 200, 200, 403, 403),
    "coder whose lease expired": (404, 404, 404, 403, 403),
    "coder of the study, face not theirs": (404, 404, 404, 403, 403),
    "coder of another study": (404, 404, 403, 403, 403),
    "coder removed from the study": (404, 404, 403, 403, 403),
}
MEDIA_PEOPLE = {  # role, member of: "study" / "elsewhere" / None, own assignment, removed after
    "admin, not a member": (Role.ADMIN, None, None, False),
    "researcher of the study": (Role.RESEARCHER, "study", None, False),
    "researcher of another study": (Role.RESEARCHER, "elsewhere", None, False),
    "researcher removed from the study": (Role.RESEARCHER, "study", None, True),
    "coder holding the face": (Role.CODER, "study", "leased", False),
    "coder who coded the face": (Role.CODER, "study", "voted", False),
    "coder whose lease expired": (Role.CODER, "study", "expired", False),
    "coder of the study, face not theirs": (Role.CODER, "study", None, False),
    "coder of another study": (Role.CODER, "elsewhere", None, False),
    "coder removed from the study": (Role.CODER, "study", "voted", True),
}


def _assign(face, coder, kind: str) -> Assignment:
    """`coder`'s lease on `face`, then (by `kind`) their vote on it or a minute past its end."""
    if kind == "voted":
        votes_cast(face.pk, [{"gender": Gender.MALE}], coders=[coder])
        return Assignment.objects.get(face=face, coder=coder)
    assignment = lease_take(face, coder)
    if kind == "expired":  # not yet reclaimed
        Assignment.objects.filter(pk=assignment.pk).update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
    return assignment


@pytest.mark.parametrize("person", list(MEDIA_MATRIX))
def test_media_goes_only_to_members_and_to_coders_holding_the_face(client, person):
    study, elsewhere = make_study(), make_study()
    image = make_source_image(study)
    (face,) = make_faces(study, 1, source_image=image, box_x=10, box_y=10, box_w=40, box_h=40)
    other_coders = _assign(face, make_user(Role.CODER, study=study), "leased")
    own = None
    if person != "anonymous":
        role, member_of, assignment, removed = MEDIA_PEOPLE[person]
        user = make_user(role, study={"study": study, "elsewhere": elsewhere}.get(member_of))
        own = _assign(face, user, assignment) if assignment else None
        if removed:
            member_remove(study=study, user=user)
        client.force_login(user)
    args = {
        "face_crop": [face.pk],
        "face_source": [face.pk],
        "code_source": [study.slug, (own or other_coders).pk],
        "image_display": [image.pk],
        "image_original": [image.pk],
    }
    got = tuple(client.get(reverse(f"annotate:{v}", args=args[v])).status_code for v in MEDIA_VIEWS)
    assert got == MEDIA_MATRIX[person], dict(zip(MEDIA_VIEWS, got, strict=True))
