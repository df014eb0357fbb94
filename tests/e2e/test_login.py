"""A coder logs in with a real browser and lands on the coder page; failures lock the login."""

from __future__ import annotations

import pytest

from annotate.roles import Role
from annotate.views.auth import LOCKED_OUT
from tests.conftest import login
from tests.factories import PASSWORD, make_study, make_user

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_coder_logs_in_and_sees_start_coding(page, live_server):
    study = make_study("demo", title="Demo study")
    make_user(Role.CODER, username="coder1", study=study)
    login(page, live_server, "coder1", PASSWORD)
    assert page.url == f"{live_server.url}/"
    assert page.get_by_role("heading", name="Your coding work").is_visible()
    start = page.get_by_test_id("start-coding")
    assert start.is_visible() and start.inner_text() == "Start coding"
    assert page.get_by_text("Admin").count() == 0


def test_wrong_password_stays_on_login_with_an_error(page, live_server):
    make_user(Role.CODER, username="coder2")
    login(page, live_server, "coder2", "wrong")
    assert "/login/" in page.url
    assert page.get_by_role("alert").is_visible()


def test_repeated_failures_show_the_lockout_page_even_for_the_right_password(
    page, live_server, settings
):
    settings.AXES_FAILURE_LIMIT = 2
    make_user(Role.CODER, username="coder3")
    login(page, live_server, "coder3", "wrong")
    login(page, live_server, "coder3", "wrong")
    assert page.get_by_test_id("locked-out").inner_text() == LOCKED_OUT
    login(page, live_server, "coder3", PASSWORD)
    assert page.get_by_role("heading", name="Login locked").is_visible()
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
