"""Login rate limit, media that cannot run as a page, CSRF on forms."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from annotate.roles import Role
from annotate.views.auth import TOO_MANY_ATTEMPTS
from tests.factories import PASSWORD, jpeg_bytes, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def test_login_is_rate_limited_after_repeated_failures(client, settings):
    settings.FACET_LOGIN_MAX_FAILURES = 3
    make_user(Role.CODER, username="victim")
    for _ in range(3):
        response = client.post("/login/", {"username": "victim", "password": "nope"})
        assert response.status_code == 200
    # Even the right password is refused while the limit holds.
    blocked = client.post("/login/", {"username": "victim", "password": PASSWORD})
    assert blocked.status_code == 429
    assert TOO_MANY_ATTEMPTS in blocked.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_successful_login_clears_the_failure_count(client, settings):
    settings.FACET_LOGIN_MAX_FAILURES = 2
    make_user(Role.CODER, username="forgetful")
    client.post("/login/", {"username": "forgetful", "password": "nope"})
    assert (
        client.post("/login/", {"username": "forgetful", "password": PASSWORD}).status_code == 302
    )
    client.logout()
    client.post("/login/", {"username": "forgetful", "password": "nope"})
    assert (
        client.post("/login/", {"username": "forgetful", "password": PASSWORD}).status_code == 302
    )


def test_login_form_requires_csrf():
    strict = Client(enforce_csrf_checks=True)
    make_user(Role.CODER, username="csrf")
    response = strict.post("/login/", {"username": "csrf", "password": PASSWORD})
    assert response.status_code == 403


def test_media_is_served_as_an_image_with_nosniff_and_sandbox(client):
    name = default_storage.save("faces/a.jpg", ContentFile(jpeg_bytes()))
    client.force_login(make_user(Role.CODER))
    response = client.get(f"/media/{name}")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert b"".join(response.streaming_content) == default_storage.open(name).read()


@pytest.mark.parametrize("name", ["evil.html", "evil.svg", "evil.js", "payload"])
def test_uploaded_files_of_other_types_are_never_served(client, name):
    default_storage.save(f"uploads/{name}", ContentFile(b"<script>alert(1)</script>"))
    client.force_login(make_user(Role.RESEARCHER))
    assert client.get(f"/media/uploads/{name}").status_code == 404


@pytest.mark.parametrize("path", ["../config/settings.py", "faces/../../x.jpg", ".hidden.jpg"])
def test_media_paths_cannot_escape_or_reach_hidden_files(client, path):
    client.force_login(make_user(Role.RESEARCHER))
    assert client.get(f"/media/{path}").status_code == 404


def test_media_needs_a_login(client):
    name = default_storage.save("faces/b.jpg", ContentFile(jpeg_bytes()))
    response = client.get(f"/media/{name}")
    assert response.status_code == 302 and "/login/" in response["Location"]
