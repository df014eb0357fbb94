"""The user of each request is loaded by annotate.backends.ModelBackend, whose statement is
compiled once per process: it must load the right user every time, with every field, and
refuse what Django's own backend refuses."""

from __future__ import annotations

import pytest
from django.contrib.auth import backends, get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotate.backends import ModelBackend
from annotate.roles import Role
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _fields(user) -> dict:
    return {f.attname: getattr(user, f.attname) for f in get_user_model()._meta.concrete_fields}


def test_each_call_loads_its_own_user_with_every_field_as_djangos_backend_does():
    first, second = make_user(Role.CODER), make_user(Role.ADMIN)
    get_user_model().objects.filter(pk=first.pk).update(first_name="Ada", email="a@example.org")
    ours, django_s = ModelBackend(), backends.ModelBackend()
    # Alternating: the kept statement must take each call's id, not the first one's.
    for user in (first, second, first, second):
        loaded = ours.get_user(user.pk)
        assert loaded is not None and loaded._state.adding is False
        assert _fields(loaded) == _fields(django_s.get_user(user.pk))
    assert ours.get_user(str(first.pk)).pk == first.pk  # the session keeps the id as text


def test_an_inactive_missing_or_malformed_user_id_has_no_user():
    inactive = make_user(Role.CODER)
    get_user_model().objects.filter(pk=inactive.pk).update(is_active=False)
    backend = ModelBackend()
    assert backend.get_user(inactive.pk) is None
    assert backend.get_user(inactive.pk + 1000) is None
    assert backend.get_user("not-an-id") is None


def test_a_request_loads_its_user_in_one_statement_and_a_deactivated_user_is_out_at_once(client):
    coder = make_user(Role.CODER)
    client.force_login(coder)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("home")).status_code == 200
    user_statements = [q["sql"] for q in captured.captured_queries if '"auth_user"' in q["sql"]]
    assert len(user_statements) == 1, user_statements
    get_user_model().objects.filter(pk=coder.pk).update(is_active=False)
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
