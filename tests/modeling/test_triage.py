"""Triage of misclassified faces: once per face and version, label errors go back to coders."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.roles import Role
from modeling.models import Triage
from modeling.services.triage import TriageError, triage_record
from tests.factories import make_study, make_user
from tests.modeling.validation_factories import make_plain_faces, make_version, plant

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario():
    study = make_study()
    faces = make_plain_faces(study, 6)
    version = make_version(study, active=True)
    plant(faces, version, base_error=1.0, weak_error=1.0)  # every face misclassified
    researcher = make_user(Role.RESEARCHER, study=study)
    return study, version, faces, researcher


def test_model_error_is_recorded_with_tags_and_note(coding_flow, scenario):
    study, version, faces, researcher = scenario
    triage = triage_record(
        face=faces[0],
        version=version,
        decision="model_error",
        decided_by=researcher,
        tags=["occluded", "blurry", "blurry"],
        note="  hat covers eyes ",
    )
    assert (triage.tags, triage.note) == (["blurry", "occluded"], "hat covers eyes")
    assert coding_flow.reset == []


def test_label_error_sends_the_face_back_for_fresh_votes(coding_flow, scenario):
    study, version, faces, researcher = scenario
    triage_record(face=faces[1], version=version, decision="label_error", decided_by=researcher)
    assert [face_id for face_id, _ in coding_flow.reset] == [faces[1].pk]
    assert "label error" in coding_flow.reset[0][1]


def test_a_face_triaged_twice_is_refused_and_the_first_verdict_stays(coding_flow, scenario):
    study, version, faces, researcher = scenario
    triage_record(face=faces[2], version=version, decision="label_error", decided_by=researcher)
    with pytest.raises(TriageError, match="already triaged"):
        triage_record(face=faces[2], version=version, decision="not_face", decided_by=researcher)
    assert Triage.objects.get(face=faces[2]).decision == "label_error"
    assert len(coding_flow.reset) == 1  # the fresh-votes request is not repeated
    other = make_version(study)
    triage_record(face=faces[2], version=other, decision="not_face", decided_by=researcher)


def test_unknown_decisions_tags_and_foreign_faces_are_refused(coding_flow, scenario):
    study, version, faces, researcher = scenario
    with pytest.raises(TriageError, match="Unknown decision"):
        triage_record(face=faces[0], version=version, decision="oops", decided_by=researcher)
    with pytest.raises(TriageError, match="Unknown tags"):
        triage_record(
            face=faces[0],
            version=version,
            decision="model_error",
            decided_by=researcher,
            tags=["x"],
        )
    elsewhere = make_plain_faces(make_study(), 1)[0]
    with pytest.raises(TriageError, match="does not belong"):
        triage_record(
            face=elsewhere, version=version, decision="model_error", decided_by=researcher
        )
    assert not Triage.objects.exists()


def test_triage_from_the_gallery_posts_and_twice_shows_a_clear_message(
    client, coding_flow, scenario
):
    study, version, faces, researcher = scenario
    client.force_login(researcher)
    url = reverse("modeling:triage", args=[version.pk, faces[3].pk])
    gallery = reverse("modeling:gallery", args=[version.pk]) + "?direction=female_to_male"
    response = client.post(
        url, {"decision": "not_face", "tags": ["child"], "next": gallery}, follow=True
    )
    assert response.redirect_chain[-1][0] == gallery
    assert Triage.objects.get(face=faces[3]).tags == ["child"]
    response = client.post(url, {"decision": "model_error", "next": gallery}, follow=True)
    assert "already triaged" in response.content.decode()
    assert Triage.objects.get(face=faces[3]).decision == "not_face"


def test_triage_redirects_only_to_this_site(client, coding_flow, scenario):
    study, version, faces, researcher = scenario
    client.force_login(researcher)
    url = reverse("modeling:triage", args=[version.pk, faces[4].pk])
    response = client.post(url, {"decision": "model_error", "next": "https://evil.example/"})
    assert response["Location"] == reverse("modeling:gallery", args=[version.pk])


def test_coders_and_non_members_cannot_triage(client, coding_flow, scenario):
    study, version, faces, researcher = scenario
    url = reverse("modeling:triage", args=[version.pk, faces[5].pk])
    client.force_login(make_user(Role.CODER, study=study))
    assert client.post(url, {"decision": "model_error"}).status_code == 403
    client.force_login(make_user(Role.RESEARCHER))
    assert client.post(url, {"decision": "model_error"}).status_code == 403
    assert not Triage.objects.exists()


def test_triage_without_csrf_token_is_rejected(coding_flow, scenario):
    from django.test import Client

    study, version, faces, researcher = scenario
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    url = reverse("modeling:triage", args=[version.pk, faces[0].pk])
    assert client.post(url, {"decision": "model_error"}).status_code == 403
    assert not Triage.objects.exists()


def test_triage_counts_by_decision_for_the_model_card(coding_flow, scenario):
    from modeling.selectors.triage import triage_counts, triage_not_face_ids

    study, version, faces, researcher = scenario
    for face, decision in zip(faces, ["model_error", "model_error", "not_face"], strict=False):
        triage_record(face=face, version=version, decision=decision, decided_by=researcher)
    assert triage_counts(version=version) == {"model_error": 2, "label_error": 0, "not_face": 1}
    assert triage_not_face_ids(study_id=study.pk) == {faces[2].pk}
