"""A crowd worker arrives from a platform link in headless Chromium, codes their quota in two
tabs with the keyboard, and ends on the completion code."""

from __future__ import annotations

import pytest

from annotate.models import CrowdWorker, Vote
from annotate.roles import Role
from annotate.services.crowd import crowd_link_create
from tests.factories import make_faces, make_study, make_user

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUOTA = 3
CODE = "FACET-E2E-7"


def label_current(page) -> str:
    """Answer the face on screen ("f": female, the only question) and return its assignment."""
    page.wait_for_function("() => document.getElementById('coding').dataset.assignment")
    assignment = page.locator("#coding").get_attribute("data-assignment")
    page.keyboard.press("f")
    return assignment


def test_crowd_worker_codes_their_quota_in_two_tabs_and_gets_the_code(page, live_server):
    study = make_study("crowd-e2e", title="Crowd E2E", attributes_asked=[])
    make_faces(study, QUOTA + 3)
    researcher = make_user(Role.RESEARCHER, username="crowdres", study=study)
    _, token = crowd_link_create(
        study=study, faces_per_worker=QUOTA, completion_code=CODE, created_by=researcher
    )
    link = f"{live_server.url}/crowd/{token}/?PROLIFIC_PID=prolific_5f3a"
    done_url = f"{live_server.url}/code/{study.slug}/done/"

    page.goto(link)
    assert page.url == f"{live_server.url}/code/{study.slug}/"
    first = label_current(page)
    page.wait_for_function(
        "a => document.getElementById('coding').dataset.assignment !== a", arg=first
    )

    # The worker opens the link again in a second tab and finishes there.
    tab = page.context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(link)
    second = label_current(tab)
    # The reply to that answer has come: the next face is on screen (or the page moved on).
    tab.wait_for_function(
        "a => !document.getElementById('coding') || document.getElementById('coding')"
        ".dataset.assignment !== a",
        arg=second,
    )
    label_current(tab)
    tab.wait_for_url(done_url)
    assert tab.get_by_test_id("completion-code").inner_text() == CODE

    # The first tab, reloaded, has nothing more to code either.
    page.reload()
    page.wait_for_url(done_url)
    assert page.get_by_test_id("completion-code").inner_text() == CODE
    assert not errors, errors

    worker = CrowdWorker.objects.get(participant_id="prolific_5f3a")
    votes = Vote.objects.filter(coder=worker.user, retracted_at__isnull=True)
    assert votes.count() == QUOTA
    assert votes.values("face").distinct().count() == QUOTA
