"""A researcher filters the misclassification gallery by a subgroup and triages a face."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import Consensus, Face, FaceStatus, Vote
from annotate.roles import Role
from modeling.models import Triage
from tests.conftest import login
from tests.factories import PASSWORD, make_plain_faces, make_study, make_user
from tests.modeling.validation_factories import code_faces, make_version, plant

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _coding_state(face_id: int) -> tuple[str, bool, int]:
    """The face's coding status, whether it has a consensus, and its live votes."""
    face = Face.objects.get(pk=face_id)
    live = Vote.objects.filter(face=face, retracted_at__isnull=True).count()
    return face.coding_status, Consensus.objects.filter(face=face).exists(), live


def test_researcher_filters_gallery_by_subgroup_and_triages_a_face(page, live_server):
    study = make_study("gallery-study")
    faces = make_plain_faces(study, 200)
    version = make_version(study, active=True)
    truth = plant(faces, version, base_error=0.1, weak_error=0.6, seed=5)
    make_user(Role.RESEARCHER, username="rita", study=study)
    weak_errors = {
        i for i, t in truth.items() if t["age_band"] == "3-9" and t["truth"] != t["predicted"]
    }

    login(page, live_server, "rita", PASSWORD)
    page.goto(live_server.url + reverse("modeling:gallery", args=[version.pk]))
    page.select_option("select[name=group]", "3-9")  # picking a group picks its attribute
    assert page.locator("select[name=attribute]").input_value() == "age_band"
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state("networkidle")
    assert "attribute=age_band" in page.url and "group=3-9" in page.url
    count = page.get_by_test_id("gallery-count").inner_text()
    assert count.startswith(f"{len(weak_errors)} face")
    cards = page.get_by_test_id("face-card")
    shown = {int(cards.nth(i).get_attribute("data-face")) for i in range(cards.count())}
    assert shown and shown <= weak_errors

    card = cards.first
    face_id = int(card.get_attribute("data-face"))
    card.locator("select[name=decision]").select_option("label_error")
    card.locator("input[value=child]").check()
    card.locator("input[name=note]").fill("a child, coders disagreed")
    card.get_by_role("button", name="Triage").click()
    page.wait_for_load_state("networkidle")

    assert "group=3-9" in page.url  # back on the filtered gallery
    assert page.get_by_text(f"Face {face_id} triaged.").is_visible()
    triage = Triage.objects.get(face_id=face_id)
    assert (triage.decision, triage.tags, triage.decided_by.username) == (
        "label_error",
        ["child"],
        "rita",
    )
    # A label error sends the face back to the coders: its votes retracted, no consensus, so
    # it leaves the gallery until fresh votes code it again.
    assert _coding_state(face_id) == (FaceStatus.OPEN, False, 0)
    assert page.locator(f'[data-face="{face_id}"]').count() == 0

    code_faces([face_id], truth)  # the coders agree on the same label again
    page.reload()
    page.wait_for_load_state("networkidle")
    triaged = page.locator(f'[data-face="{face_id}"]').get_by_test_id("triaged")
    assert "Label error" in triaged.inner_text() and "child" in triaged.inner_text()

    page.locator(f'[data-face="{face_id}"]').get_by_role("button", name="Undo").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_text(f"Face {face_id}: triage undone, now untriaged.").is_visible()
    card = page.locator(f'[data-face="{face_id}"]')
    assert card.get_by_test_id("triaged").count() == 0
    assert "undid" in card.get_by_test_id("triage-history").text_content()  # folded
    assert not Triage.objects.filter(face_id=face_id).exists()
    # The fresh votes stay and the retracted ones are not put back.
    assert _coding_state(face_id) == (FaceStatus.COMPLETE, True, study.votes_per_face)
