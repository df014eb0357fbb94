"""Issue 15's "done when", in headless Chromium: a researcher with only a browser creates a
study, invites three coders by link (each joins in a browser of their own), imports a zip of
real photos through a real Celery worker and sees the coders on the team page; two coders
split on every face, the researcher decides one and marks it gold, and the agreement page
shows coder accuracy on gold faces."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from annotate.models import (
    Assignment,
    AssignmentStatus,
    Face,
    FaceStatus,
    GoldFace,
    ImportBatch,
    MemberRole,
    Membership,
    SourceImage,
    Vote,
)
from annotate.roles import Role
from tests.conftest import login
from tests.factories import PASSWORD, make_faces, make_study, make_user

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLUG = "street-jobs"
CODERS = ("ana", "bo", "chen")
CODER_PASSWORD = "Kx7-tulip-orbit-52"
IMAGES = 3
TIMEOUT_MS = 60_000


def _photos(fairface540: Path, n: int, archive: Path) -> Path:
    """A zip of the first n real photos of the FairFace sample."""
    with (fairface540 / "labels.csv").open(newline="") as handle:
        paths = [row["path"] for row in csv.DictReader(handle)][:n]
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in paths:
            zipped.write(fairface540 / path, Path(path).name)
    return archive


def _join(browser, link: str, username: str, live_url: str):
    """A new person opens the invitation link in a browser of their own and signs up; returns
    their page, signed in, and the list its JavaScript errors go to."""
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(link)
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", CODER_PASSWORD)
    page.fill("input[name=password2]", CODER_PASSWORD)
    page.get_by_test_id("join").click()
    page.wait_for_url(f"{live_url}/")
    assert "You joined Street jobs as a Coder." in page.content()
    return page, errors


def _code_all(page, live_url: str, key: str) -> int:
    """Answer every face the coding page hands out with `key`, one reply at a time; returns
    how many."""
    page.goto(f"{live_url}/code/{SLUG}/")
    coded = 0
    while True:
        page.wait_for_function(
            "() => document.getElementById('coding').dataset.assignment"
            " || !document.getElementById('summary').hidden"
        )
        assignment = page.locator("#coding").get_attribute("data-assignment")
        if not assignment:
            return coded
        # One answer at a time, at a person's pace: each waits for the server's reply.
        with page.expect_response(lambda response: response.url.endswith("/submit/")):
            page.keyboard.press(key)
        coded += 1
        page.wait_for_function(
            "a => document.getElementById('coding').dataset.assignment !== a", arg=assignment
        )


def test_a_researcher_runs_a_study_from_the_browser(
    browser, page, live_server, tmp_path, fairface540, filesystem_broker, start_worker
):
    live_url = live_server.url
    make_user(Role.RESEARCHER, username="lead")  # a researcher with no study yet
    start_worker(filesystem_broker, queues="default")
    login(page, live_server, "lead", PASSWORD)

    # 1. A study, through the web form: two votes per face, splits straight to a researcher.
    page.get_by_test_id("study-new").click()
    page.fill("input[name=slug]", SLUG)
    page.fill("input[name=title]", "Street jobs")
    page.fill("input[name=votes_per_face]", "2")
    page.fill("input[name=escalation_wait_minutes]", "0")
    for box in page.locator("input[name=attributes_asked]").all():
        box.uncheck()  # gender only: one key per face
    page.get_by_role("button", name="Create study").click()
    page.wait_for_url(f"{live_url}/studies/{SLUG}/members/")

    # 2. One invitation link for three coders; each joins in a fresh browser context.
    page.goto(f"{live_url}/studies/{SLUG}/")
    page.get_by_test_id("study-invitations").click()
    page.select_option("select[name=role]", MemberRole.CODER)
    page.fill("input[name=max_uses]", str(len(CODERS)))
    page.get_by_role("button", name="Make invitation link").click()
    link = page.get_by_test_id("invitation-link").input_value()
    assert link.startswith(f"{live_url}/join/")
    coders = {username: _join(browser, link, username, live_url) for username in CODERS}

    # 3. A zip of real photos, imported by the worker with the progress page and report.
    page.goto(f"{live_url}/studies/{SLUG}/")
    page.get_by_test_id("import-new-link").click()
    page.set_input_files(
        "input[name=archive]", str(_photos(fairface540, IMAGES, tmp_path / "p.zip"))
    )
    page.get_by_role("button", name="Start import").click()
    page.wait_for_url("**/imports/*/")
    report = page.get_by_test_id("import-report")
    report.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert page.get_by_test_id("import-status").inner_text() == "Succeeded"
    assert report.locator("[data-key=imported]").inner_text() == str(IMAGES)
    found = Face.objects.filter(study__slug=SLUG).count()
    assert found >= 1 and report.locator("[data-key=faces_found]").inner_text() == str(found)
    # Faces too small or too similar to another are set aside, not handed to coders.
    faces = Face.objects.filter(study__slug=SLUG, coding_status=FaceStatus.OPEN).count()
    assert faces >= 1

    # 4. The team page lists the three coders.
    page.goto(f"{live_url}/studies/{SLUG}/")
    page.get_by_test_id("study-members").click()
    for username in CODERS:
        row = page.locator(f"[data-testid=members] tr[data-username={username}]")
        assert row.locator("td").nth(1).inner_text() == "Coder"
        assert row.locator("td").nth(2).inner_text() == "Active"

    # 5. Two coders split on every face (female / male): every face waits for a researcher.
    assert _code_all(coders["ana"][0], live_url, "f") == faces
    assert _code_all(coders["bo"][0], live_url, "m") == faces
    assert Vote.objects.filter(face__study__slug=SLUG).count() == 2 * faces
    waiting = Face.objects.filter(study__slug=SLUG, coding_status=FaceStatus.ADJUDICATION)
    assert waiting.count() == faces

    # 6. The researcher decides one face, marks it gold, and finds accuracy on gold.
    page.goto(f"{live_url}/studies/{SLUG}/adjudication/")
    first = page.locator("[data-testid=adjudication-queue] tr.adjudicate-row").first
    first.locator("select[name=label]").select_option("female")
    with page.expect_navigation():
        first.get_by_role("button", name="Decide").click()
    page.goto(f"{live_url}/studies/{SLUG}/")
    page.get_by_test_id("gold-link").click()
    candidates = page.get_by_test_id("gold-candidates").locator("tbody tr.adjudicate-row")
    expect(candidates).to_have_count(1)
    with page.expect_navigation():
        candidates.get_by_role("button", name="Mark as gold").click()
    expect(page.get_by_test_id("gold-faces").locator("tbody tr.adjudicate-row")).to_have_count(1)
    page.goto(f"{live_url}/studies/{SLUG}/agreement/")
    gold = page.get_by_test_id("gold-accuracy")
    expect(gold.get_by_role("heading", name="Coder accuracy on gold faces")).to_be_visible()
    headers = gold.locator("thead th").all_inner_texts()
    assert headers[:5] == ["Coder", "Gold answered", "Correct", "Accuracy", "95 % interval"]

    # What the browser did is in the database: nothing was made behind its back.
    members = Membership.objects.filter(study__slug=SLUG)
    coder_names = members.filter(role=MemberRole.CODER).values_list("user__username", flat=True)
    assert set(coder_names) == set(CODERS)
    assert members.get(user__username="lead").role == MemberRole.RESEARCHER
    assert SourceImage.objects.filter(study__slug=SLUG).count() == IMAGES
    assert ImportBatch.objects.filter(study__slug=SLUG).count() == 1
    assert GoldFace.objects.get().gender == "female"
    for coder_page, errors in coders.values():
        coder_page.context.close()
        assert not errors, errors


def test_stop_for_now_gives_the_faces_back_and_continue_takes_faces_again(page, live_server):
    study = make_study("stop-e2e", title="Stop E2E", attributes_asked=[], votes_per_face=1)
    make_faces(study, 3)
    coder = make_user(Role.CODER, username="stopper", study=study)
    leased = Assignment.objects.filter(coder=coder, status=AssignmentStatus.LEASED)
    login(page, live_server, coder.username, PASSWORD)
    page.goto(f"{live_server.url}/code/{study.slug}/")
    page.wait_for_function("() => document.getElementById('coding').dataset.assignment")
    assert leased.count() == 2

    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("resume")).to_be_enabled()  # the server has answered
    assert page.get_by_test_id("summary").is_visible()
    assert leased.count() == 0  # at once, not when the leases lapse
    assert set(Face.objects.filter(study=study).values_list("slots_taken", flat=True)) == {0}

    page.get_by_test_id("resume").click()
    page.wait_for_function("() => document.getElementById('coding').dataset.assignment")
    assert leased.count() == 2
    page.keyboard.press("f")
    expect(page.get_by_test_id("done")).to_have_text("1")
    assert Vote.objects.filter(coder=coder).count() == 1
