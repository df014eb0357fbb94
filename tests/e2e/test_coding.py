"""Three coders label faces in headless Chromium with the keyboard only; a researcher then
sees the consensus and the agreement."""

from __future__ import annotations

import pytest

from annotate.models import Consensus, ConsensusStatus, Vote
from annotate.roles import Role
from tests.conftest import login
from tests.factories import PASSWORD, make_faces, make_source_image, make_study, make_user

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FACES = 3
LOADED = (  # an <img> whose picture arrived and decoded
    "id => { const img = document.getElementById(id); return img.complete && img.naturalWidth > 0; }"
)


def label_current(page, keys: str) -> None:
    """Press one key per answer and wait until the next face (or the end) is on screen."""
    page.wait_for_function("() => document.getElementById('coding').dataset.assignment")
    before = page.locator("#coding").get_attribute("data-assignment")
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_function(
        "before => document.getElementById('coding').dataset.assignment !== before",
        arg=before,
    )


def test_three_coders_label_with_the_keyboard_and_a_researcher_sees_agreement(browser, live_server):
    study = make_study("e2e", title="E2E study", attributes_asked=["glasses"])
    image = make_source_image(study)
    make_faces(study, FACES, source_image=image, box_x=8, box_y=8, box_w=48, box_h=48)
    coders = [make_user(Role.CODER, username=f"kbcoder{i}", study=study) for i in range(3)]
    make_user(Role.RESEARCHER, username="kbresearcher", study=study)
    errors: list[str] = []

    for index, coder in enumerate(coders):
        context = browser.new_context()
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        login(page, live_server, coder.username, PASSWORD)
        page.goto(f"{live_server.url}/code/{study.slug}/")
        page.wait_for_selector("#crop:not([hidden])")
        if index == 0:
            # The crop arrives through the access-checked media view.
            page.wait_for_function(LOADED, arg="crop")
            # The source image with the box, on request, by keyboard.
            page.keyboard.press("s")
            page.wait_for_selector("#source-frame:not([hidden])")
            page.wait_for_function(LOADED, arg="source")
            # Label, undo, then label again: the undone face comes back.
            first = page.locator("#coding").get_attribute("data-assignment")
            label_current(page, "m1")
            page.keyboard.press("u")
            page.wait_for_function(
                "a => document.getElementById('coding').dataset.assignment === a", arg=first
            )
            assert page.get_by_test_id("done").inner_text() == "0"
        # Two say female, one says male on every face; attribute: glasses = none (key 1).
        for _ in range(FACES):
            label_current(page, "f1" if index < 2 else "m1")
        page.wait_for_selector("[data-testid=empty]:not([hidden])")
        assert page.get_by_test_id("done").inner_text() == str(FACES)
        context.close()

    assert not errors, errors
    assert Vote.objects.filter(retracted_at__isnull=True).count() == 3 * FACES
    assert Vote.objects.filter(retracted_at__isnull=False).count() == 1
    assert set(Consensus.objects.values_list("status", "label")) == {
        (ConsensusStatus.AGREED, "female")
    }

    context = browser.new_context()
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, live_server, "kbresearcher", PASSWORD)
    page.goto(f"{live_server.url}/studies/{study.slug}/")
    page.get_by_test_id("agreement-link").click()
    page.wait_for_load_state("networkidle")
    figures = page.get_by_test_id("agreement-figures").inner_text()
    assert f"{3 * FACES} on {FACES} faces" in figures
    assert "33 %" in page.get_by_test_id("percent-agreement").inner_text()
    assert page.get_by_test_id("kappa").inner_text().startswith("-")
    assert f"Majority: {FACES}" in page.get_by_test_id("consensus-statuses").inner_text()
    assert page.get_by_test_id("coder-table").get_by_text("kbcoder2").is_visible()
    context.close()
    assert not errors, errors
