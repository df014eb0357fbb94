"""CSRF on forms. Login throttling: test_login_throttle; media: test_media_access."""

from __future__ import annotations

import pytest
from django.test import Client

from annotate.roles import Role
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def test_login_form_requires_csrf():
    strict = Client(enforce_csrf_checks=True)
    make_user(Role.CODER, username="csrf")
    response = strict.post("/login/", {"username": "csrf", "password": PASSWORD})
    assert response.status_code == 403
