"""The coder's controls in headless Chromium: the codebook before the first face and on H,
"question 2 of 3", Backspace back one question, live counts, an undo that names the answer it
undid, "Stop for now" and the session summary at the end."""

from __future__ import annotations

import pytest

from annotate.models import FaceStatus, KnownLabel, Vote
from annotate.roles import Role
from annotate.services.codebook import codebook_example_add
from tests.conftest import login
from tests.factories import PASSWORD, make_faces, make_study, make_user

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INSTRUCTIONS = "Code the apparent gender of the person pictured."
EXAMPLE_LOADED = (
    "() => { const img = document.querySelector('[data-testid=codebook-example]');"
    " return img && img.complete && img.naturalWidth > 0; }"
)


def _text(page, testid: str) -> str:
    return page.get_by_test_id(testid).inner_text()


def _wait_text(page, testid: str, text: str) -> None:
    page.wait_for_function(
        "([id, text]) => document.querySelector(`[data-testid=${id}]`).innerText.includes(text)",
        arg=[testid, text],
    )


def _next_face(page, keys: str) -> None:
    before = page.locator("#coding").get_attribute("data-assignment")
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_function(
        "before => document.getElementById('coding').dataset.assignment !== before", arg=before
    )


def test_codebook_steps_counts_undo_and_summary(page, live_server):
    study = make_study(
        "controls",
        attributes_asked=["glasses", "quality"],
        votes_per_face=1,
        instructions=INSTRUCTIONS,
    )
    (example_face,) = make_faces(study, 1, coding_status=FaceStatus.COMPLETE)
    KnownLabel.objects.create(face=example_face, source="set.csv", gender="female")
    codebook_example_add(
        study=study, face_id=example_face.pk, question="gender", answer="female", note="Example."
    )
    make_faces(study, 3, seed=7)
    coder = make_user(Role.CODER, username="controls-coder", study=study)
    login(page, live_server, coder.username, PASSWORD)
    page.goto(f"{live_server.url}/code/{study.slug}/")

    # Before the first face: the codebook, its example crop loaded, no face handed out yet.
    codebook = page.get_by_test_id("codebook")
    assert codebook.is_visible() and INSTRUCTIONS in codebook.inner_text()
    page.wait_for_function(EXAMPLE_LOADED)
    assert not page.locator("#work").is_visible()
    page.keyboard.press("f")  # answer keys do nothing while the codebook is open
    page.get_by_test_id("codebook-start").click()
    page.wait_for_selector("#crop:not([hidden])")
    assert not codebook.is_visible()

    # Question 1 of 3 → 2 of 3 → 3 of 3; Backspace goes back one question.
    assert _text(page, "step") == "Question 1 of 3"
    page.keyboard.press("f")
    assert _text(page, "step") == "Question 2 of 3"
    page.keyboard.press("1")
    assert _text(page, "step") == "Question 3 of 3"
    page.keyboard.press("Backspace")
    assert _text(page, "step") == "Question 2 of 3"
    assert "No glasses" in _text(page, "message")  # what the coder had answered there
    _next_face(page, "21")  # glasses: Glasses, quality: Good
    _wait_text(page, "done", "1")
    assert _text(page, "today") == "1" and _text(page, "available") == "2"
    assert _text(page, "step") == "Question 1 of 3"
    assert Vote.objects.get().glasses == "glasses"

    # H toggles the codebook at any time; the button does the same.
    page.keyboard.press("h")
    assert codebook.is_visible() and not page.locator("#work").is_visible()
    page.keyboard.press("h")
    assert not codebook.is_visible() and page.locator("#work").is_visible()
    page.get_by_test_id("codebook-open").click()
    assert codebook.is_visible()
    page.get_by_test_id("codebook-start").click()  # now "Back to coding"
    assert not codebook.is_visible()

    # Undo names what it undid.
    page.keyboard.press("u")
    _wait_text(page, "message", "Undone: Gender: Female, Glasses: Glasses, Image quality: Good")
    _wait_text(page, "done", "0")

    _next_face(page, "f11")
    _next_face(page, "m11")
    _wait_text(page, "done", "2")
    # Stop for now: a summary of the session, and a way back.
    page.get_by_test_id("stop").click()
    assert page.get_by_test_id("summary").is_visible()
    assert _text(page, "summary-count") == "2" and _text(page, "summary-total") == "2"
    page.keyboard.press("f")  # keys do nothing while stopped
    page.get_by_test_id("resume").click()
    assert not page.get_by_test_id("summary").is_visible()
    # Continue asks the server for faces again (Stop gave them back): wait for one.
    page.wait_for_function("() => document.getElementById('coding').dataset.assignment")

    # The last face: the summary comes up by itself.
    page.keyboard.press("c")
    page.keyboard.press("1")
    page.keyboard.press("1")
    page.wait_for_selector("[data-testid=summary]:not([hidden])")
    assert _text(page, "summary-count") == "3" and _text(page, "summary-total") == "3"
    assert _text(page, "summary-today") == "3"
    assert not page.get_by_test_id("resume").is_visible()
    assert Vote.objects.filter(retracted_at__isnull=True).count() == 3

    # After the first face the codebook no longer comes first.
    page.reload()
    page.wait_for_load_state("networkidle")
    assert not codebook.is_visible() and page.locator("#work").is_visible()
