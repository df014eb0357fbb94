"""Issue 15's "done when", in headless Chromium: a researcher with only a browser creates a
study, invites three coders by link (each joins in a browser of their own), imports a zip of
real photos through a real Celery worker and sees the coders on the team page; two coders
split on a face, the researcher decides it, marks it gold and turns gold checks on; the third
coder is served it blind among their faces, answers it wrong and is paused; the researcher is
told on the study page, reads that coder's accuracy and Wilson interval on the agreement page
and leaves their votes out of consensus with one click."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from annotate.models import (
    Assignment,
    AssignmentStatus,
    CoderExclusion,
    Face,
    FaceStatus,
    GoldAnswer,
    GoldFace,
    ImportBatch,
    MemberRole,
    Membership,
    SourceImage,
    Vote,
)
from annotate.roles import Role
from annotate.services.gold import PAUSE_REASON
from modeling.evaluation import wilson_bounds
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


def _code_all(page, live_url: str, key: str, limit: int | None = None) -> int:
    """Answer the faces the coding page hands out with `key`, one reply at a time, until the
    session summary comes up (nothing left, or the coder was paused) or `limit` faces are
    answered; returns how many."""
    page.goto(f"{live_url}/code/{SLUG}/")
    coded = 0
    while limit is None or coded < limit:
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
    return coded


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

    # 5. Ana answers every face; Bo answers one, differently, and stops (his other faces go
    # back): that face waits for a researcher, the others still need a second vote.
    assert faces >= 3  # the third coder's stream needs two faces besides the gold one
    assert _code_all(coders["ana"][0], live_url, "f") == faces
    bo = coders["bo"][0]
    assert _code_all(bo, live_url, "m", limit=1) == 1
    bo.get_by_test_id("stop").click()
    expect(bo.get_by_test_id("resume")).to_be_enabled()  # the server has answered
    assert Vote.objects.filter(face__study__slug=SLUG).count() == faces + 1
    waiting = Face.objects.filter(study__slug=SLUG, coding_status=FaceStatus.ADJUDICATION)
    assert waiting.count() == 1

    # 6. The researcher decides that face, marks it gold and turns gold checks on: one face in
    # two is gold, and a coder below 50 % after one gold face is paused.
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
    settings = page.get_by_test_id("gold-settings")
    settings.locator("input[name=gold_rate]").fill("0.5")
    settings.locator("input[name=gold_min_answers]").fill("1")
    settings.locator("input[name=gold_min_accuracy]").fill("0.5")
    with page.expect_navigation():
        settings.get_by_role("button", name="Save").click()
    assert "Gold settings saved" in page.content()
    gold = GoldFace.objects.get()
    assert (gold.gender, gold.face.coding_status) == ("female", FaceStatus.COMPLETE)

    # 7. Chen codes "male" throughout; the gold face comes within his first two faces, looking
    # like any other, and his wrong answer on it pauses him: the reply hands out nothing more.
    chen_page = coders["chen"][0]
    chen_coded = _code_all(chen_page, live_url, "m")
    chen = Membership.objects.get(study__slug=SLUG, user__username="chen")
    assert chen.paused_at is not None
    assert chen.paused_reason == PAUSE_REASON.format(accuracy=0.0, n=1, threshold=0.5)
    answer = GoldAnswer.objects.get()
    assert (answer.coder_id, answer.gender, answer.gold_id) == (chen.user_id, "male", gold.pk)
    chen_votes = Vote.objects.filter(coder_id=chen.user_id)
    assert chen_votes.count() == chen_coded - 1 <= 1  # the gold answer is no vote
    assert not chen_votes.filter(face=gold.face).exists()
    # A vote of Chen's on a face Ana called female is a split waiting for a researcher.
    split = [v.face_id for v in chen_votes]
    assert Face.objects.filter(pk__in=split, coding_status=FaceStatus.ADJUDICATION).count() == len(
        split
    )
    chen_page.goto(f"{live_url}/")
    assert chen_page.get_by_test_id("paused").is_visible()

    # 8. The researcher is told on the study page, and reads Chen's accuracy on gold.
    page.goto(f"{live_url}/studies/{SLUG}/")
    notice = page.get_by_test_id("study-paused-coders")
    expect(notice).to_contain_text("chen")
    expect(notice).to_contain_text(PAUSE_REASON.format(accuracy=0.0, n=1, threshold=0.5))
    page.goto(f"{live_url}/studies/{SLUG}/agreement/")
    quality = page.get_by_test_id("gold-accuracy")
    expect(quality.get_by_role("heading", name="Coder accuracy on gold faces")).to_be_visible()
    headers = quality.locator("thead th").all_inner_texts()
    assert headers[:6] == [
        "Coder",
        "Gold answered",
        "Correct",
        "Accuracy",
        "95 % interval",
        "State",
    ]
    rows = quality.locator("tbody tr[data-coder]")
    expect(rows).to_have_count(1)  # only Chen was served gold: Ana and Bo coded before it
    cells = rows.first.locator("td").all_inner_texts()
    low, high = wilson_bounds(0, 1)
    assert cells[:6] == ["chen", "1", "0", "0.000", f"{low:.3f}–{high:.3f}", "paused"]
    expect(page.get_by_test_id("paused-coders")).to_contain_text("chen")

    # 9. One click leaves Chen's votes out of consensus: recomputed, not deleted.
    with page.expect_navigation():
        rows.first.get_by_role("button", name="Exclude this coder's votes").click()
    expect(page.get_by_test_id("exclusions")).to_contain_text("chen")
    assert CoderExclusion.objects.get().coder_id == chen.user_id
    assert chen_votes.filter(retracted_at__isnull=True).count() == chen_coded - 1  # kept
    # Ana's vote alone counts again: those faces wait for a second vote, not a researcher.
    assert Face.objects.filter(pk__in=split, coding_status=FaceStatus.OPEN).count() == len(split)

    # What the browser did is in the database: nothing was made behind its back.
    members = Membership.objects.filter(study__slug=SLUG)
    coder_names = members.filter(role=MemberRole.CODER).values_list("user__username", flat=True)
    assert set(coder_names) == set(CODERS)
    assert members.get(user__username="lead").role == MemberRole.RESEARCHER
    assert SourceImage.objects.filter(study__slug=SLUG).count() == IMAGES
    assert ImportBatch.objects.filter(study__slug=SLUG).count() == 1
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
