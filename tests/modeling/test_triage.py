"""Triage of misclassified faces: one verdict per face and study, editable and undoable, with
history; label errors go back to coders; every reader goes through modeling.selectors.triage.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotate.models import Consensus, FaceStatus, Vote
from annotate.roles import Role
from modeling.models import Triage, TriageEvent
from modeling.selectors.estimates import estimates_faces_frame
from modeling.selectors.gallery import GalleryFilters, gallery_page
from modeling.selectors.training import training_set_select
from modeling.selectors.triage import (
    triage_counts,
    triage_current,
    triage_for_faces,
    triage_not_face_ids,
)
from modeling.services.triage import (
    NOTE_MAX,
    TriageError,
    triage_record,
    triage_undo,
)
from tests.annotate.coding_helpers import vote_next
from tests.factories import bare_faces, make_plain_faces, make_study, make_user
from tests.modeling.validation_factories import make_version, plant

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario():
    study = make_study()
    faces = make_plain_faces(study, 6)
    version = make_version(study, active=True)
    plant(faces, version, base_error=1.0, weak_error=1.0)  # every face misclassified
    researcher = make_user(Role.RESEARCHER, study=study)
    return study, version, faces, researcher


def _history(face) -> list[tuple[str, str]]:
    return list(
        TriageEvent.objects.filter(face=face).order_by("pk").values_list("action", "decision")
    )


def test_model_error_is_recorded_with_tags_note_and_history(coding_flow, scenario):
    study, version, faces, researcher = scenario
    triage = triage_record(
        face=faces[0],
        version=version,
        decision="model_error",
        decided_by=researcher,
        tags=["occluded", "blurry", "blurry"],
        note="  hat covers eyes ",
    )
    assert (triage.tags, triage.note, triage.version) == (
        ["blurry", "occluded"],
        "hat covers eyes",
        version,
    )
    event = TriageEvent.objects.get(face=faces[0])
    assert (event.action, event.decision, event.actor, event.version) == (
        "decided",
        "model_error",
        researcher,
        version,
    )
    assert (event.tags, event.note, event.votes_reset) == (
        ["blurry", "occluded"],
        "hat covers eyes",
        False,
    )
    assert coding_flow.reset == []


def test_label_error_sends_the_face_back_for_fresh_votes(coding_flow, scenario):
    study, version, faces, researcher = scenario
    triage_record(face=faces[1], version=version, decision="label_error", decided_by=researcher)
    assert [face_id for face_id, _ in coding_flow.reset] == [faces[1].pk]
    assert "label error" in coding_flow.reset[0][1]
    assert TriageEvent.objects.get(face=faces[1]).votes_reset


def test_not_face_made_on_v1_holds_for_v2_in_estimates_training_and_gallery(coding_flow, scenario):
    study, v1, faces, researcher = scenario
    junk = faces[2]
    triage_record(face=junk, version=v1, decision="not_face", decided_by=researcher)
    v1.is_active = False
    v1.save()
    v2 = make_version(study, active=True)
    plant(faces, v2, base_error=1.0, weak_error=1.0, coded=False)

    assert junk.pk not in set(estimates_faces_frame(version=v2)["face_id"])
    assert len(estimates_faces_frame(version=v2)) == len(faces) - 1
    training = training_set_select(study=study)
    assert junk.pk not in {e.face_id for e in training.examples}
    assert training.excluded["triaged_not_face"] == 1
    assert training.triage == {"model_error": 0, "label_error": 0, "not_face": 1}

    cards = {p.face_id: p for p in gallery_page(version=v2, filters=GalleryFilters()).object_list}
    assert cards[junk.pk].triage.current.decision == "not_face"
    assert cards[junk.pk].triage.current.version == v1
    client = Client()
    client.force_login(researcher)
    html = client.get(reverse("modeling:gallery", args=[v2.pk])).content.decode()
    card = html.split(f'data-face="{junk.pk}"')[1].split("</article>")[0]
    assert "Triaged: Not a face" in card and f"on v{v1.number}'s gallery" in card


def test_a_verdict_can_be_changed_and_undone_step_by_step_with_history(coding_flow, scenario):
    study, version, faces, researcher = scenario
    other = make_user(Role.RESEARCHER, study=study)
    face = faces[3]
    triage_record(
        face=face, version=version, decision="model_error", decided_by=researcher, tags=["child"]
    )
    v2 = make_version(study)
    changed = triage_record(face=face, version=v2, decision="not_face", decided_by=other)
    assert (changed.decision, changed.decided_by, changed.version) == ("not_face", other, v2)
    assert Triage.objects.filter(face=face).count() == 1
    assert triage_not_face_ids(study_id=study.pk) == {face.pk}

    back = triage_undo(face=face, version=v2, undone_by=other, note="misclick")
    assert (back.decision, back.tags, back.decided_by, back.version) == (
        "model_error",
        ["child"],
        researcher,
        version,
    )
    assert triage_not_face_ids(study_id=study.pk) == set()
    assert triage_undo(face=face, version=version, undone_by=researcher) is None
    assert not Triage.objects.filter(face=face).exists()
    assert triage_current(study=study) == {}

    assert _history(face) == [
        ("decided", "model_error"),
        ("decided", "not_face"),
        ("undone", "not_face"),
        ("undone", "model_error"),
    ]
    undo = TriageEvent.objects.get(face=face, action="undone", decision="not_face")
    assert (undo.undoes.decision, undo.actor, undo.note) == ("not_face", other, "misclick")
    history = triage_for_faces(face_ids=[face.pk])[face.pk]
    assert history.current is None and len(history.history) == 4
    with pytest.raises(TriageError, match="no triage decision to undo"):
        triage_undo(face=face, version=version, undone_by=researcher)
    assert len(_history(face)) == 4


def test_the_same_verdict_twice_is_refused_and_not_sent_back_twice(coding_flow, scenario):
    study, version, faces, researcher = scenario
    triage_record(face=faces[2], version=version, decision="label_error", decided_by=researcher)
    with pytest.raises(TriageError, match="already triaged as Label error"):
        triage_record(face=faces[2], version=version, decision="label_error", decided_by=researcher)
    # editing the note of a label error keeps the verdict and asks for no new votes
    triage_record(
        face=faces[2], version=version, decision="label_error", decided_by=researcher, note="x"
    )
    assert len(coding_flow.reset) == 1
    assert _history(faces[2]) == [("decided", "label_error"), ("decided", "label_error")]


def test_a_label_error_back_in_effect_through_undo_is_not_sent_back_again(coding_flow, scenario):
    study, version, faces, researcher = scenario
    face = faces[4]
    triage_record(face=face, version=version, decision="label_error", decided_by=researcher)
    triage_record(face=face, version=version, decision="model_error", decided_by=researcher)
    assert triage_undo(face=face, version=version, undone_by=researcher).decision == ("label_error")
    assert len(coding_flow.reset) == 1
    # a fresh label-error verdict (after another one) does send the face back again
    triage_record(face=face, version=version, decision="model_error", decided_by=researcher)
    triage_record(face=face, version=version, decision="label_error", decided_by=researcher)
    assert len(coding_flow.reset) == 2


def test_undoing_a_label_error_keeps_votes_retracted_and_the_fresh_votes():
    """With the real coding flow: undo withdraws the verdict, it does not undo the coding."""
    study = make_study(attributes_asked=[])
    (face,) = bare_faces(study, 1)
    coders = [make_user(Role.CODER, study=study) for _ in range(3)]
    for coder in coders:
        vote_next(study, coder, gender="female")
    version = make_version(study)
    researcher = make_user(Role.RESEARCHER, study=study)
    triage_record(face=face, version=version, decision="label_error", decided_by=researcher)
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.OPEN
    assert not Vote.objects.filter(face=face, retracted_at__isnull=True).exists()
    vote_next(study, coders[0], gender="male")

    assert triage_undo(face=face, version=version, undone_by=researcher) is None
    face.refresh_from_db()
    assert Vote.objects.filter(face=face).count() == 4  # never deleted
    assert Vote.objects.filter(face=face, retracted_at__isnull=False).count() == 3
    assert list(
        Vote.objects.filter(face=face, retracted_at__isnull=True).values_list("gender", flat=True)
    ) == ["male"]
    assert (
        face.coding_status == FaceStatus.OPEN and not Consensus.objects.filter(face=face).exists()
    )


def test_unknown_input_and_foreign_faces_are_refused_and_nothing_is_written(coding_flow, scenario):
    study, version, faces, researcher = scenario
    with pytest.raises(TriageError, match="Unknown decision 'oops'; choose one of: model_error"):
        triage_record(face=faces[0], version=version, decision="oops", decided_by=researcher)
    with pytest.raises(TriageError, match="Unknown tags x; choose from: blurry"):
        triage_record(
            face=faces[0],
            version=version,
            decision="model_error",
            decided_by=researcher,
            tags=["x"],
        )
    with pytest.raises(TriageError, match="keep it under"):
        triage_record(
            face=faces[0],
            version=version,
            decision="model_error",
            decided_by=researcher,
            note="n" * (NOTE_MAX + 1),
        )
    elsewhere = make_plain_faces(make_study(), 1)[0]
    with pytest.raises(TriageError, match="does not belong"):
        triage_record(
            face=elsewhere, version=version, decision="model_error", decided_by=researcher
        )
    with pytest.raises(TriageError, match="does not belong"):
        triage_undo(face=elsewhere, version=version, undone_by=researcher)
    with pytest.raises(TriageError, match="no triage decision to undo"):
        triage_undo(face=faces[0], version=version, undone_by=researcher)
    assert not Triage.objects.exists() and not TriageEvent.objects.exists()
    assert coding_flow.reset == []


def test_triage_change_and_undo_from_the_gallery(client, coding_flow, scenario):
    study, version, faces, researcher = scenario
    client.force_login(researcher)
    url = reverse("modeling:triage", args=[version.pk, faces[3].pk])
    undo = reverse("modeling:triage_undo", args=[version.pk, faces[3].pk])
    gallery = reverse("modeling:gallery", args=[version.pk]) + "?direction=female_to_male"
    response = client.post(
        url, {"decision": "not_face", "tags": ["child"], "next": gallery}, follow=True
    )
    assert response.redirect_chain[-1][0] == gallery
    assert Triage.objects.get(face=faces[3]).tags == ["child"]
    response = client.post(
        url, {"decision": "not_face", "tags": ["child"], "next": gallery}, follow=True
    )
    assert "already triaged as Not a face" in response.content.decode()
    client.post(url, {"decision": "model_error", "next": gallery})
    assert Triage.objects.get(face=faces[3]).decision == "model_error"
    response = client.post(undo, {"next": gallery}, follow=True)
    assert f"Face {faces[3].pk}: triage undone, now Not a face" in response.content.decode()
    assert Triage.objects.get(face=faces[3]).decision == "not_face"
    html = client.get(reverse("modeling:gallery", args=[version.pk]) + "?show=all")
    card = html.content.decode().split(f'data-face="{faces[3].pk}"')[1].split("</article>")[0]
    assert 'data-testid="triage-history"' in card and "Triage history (3)" in card
    assert "undid “Model error”" in card and "Change triage" in card and ">Undo<" in card
    response = client.post(url, {"decision": "oops", "next": gallery}, follow=True)
    assert "Unknown decision" in response.content.decode()
    assert len(_history(faces[3])) == 3


def test_triage_redirects_only_to_this_site(client, coding_flow, scenario):
    study, version, faces, researcher = scenario
    client.force_login(researcher)
    url = reverse("modeling:triage", args=[version.pk, faces[4].pk])
    response = client.post(url, {"decision": "model_error", "next": "https://evil.example/"})
    assert response["Location"] == reverse("modeling:gallery", args=[version.pk])
    undo = reverse("modeling:triage_undo", args=[version.pk, faces[4].pk])
    response = client.post(undo, {"next": "https://evil.example/"})
    assert response["Location"] == reverse("modeling:gallery", args=[version.pk])


def test_coders_and_non_members_cannot_triage_or_undo(client, coding_flow, scenario):
    study, version, faces, researcher = scenario
    triage_record(face=faces[0], version=version, decision="model_error", decided_by=researcher)
    url = reverse("modeling:triage", args=[version.pk, faces[5].pk])
    undo = reverse("modeling:triage_undo", args=[version.pk, faces[0].pk])
    client.force_login(make_user(Role.CODER, study=study))
    assert client.post(url, {"decision": "model_error"}).status_code == 403
    assert client.post(undo).status_code == 403
    client.force_login(make_user(Role.RESEARCHER))  # not a member
    assert client.post(url, {"decision": "model_error"}).status_code == 403
    assert client.post(undo).status_code == 403
    assert list(Triage.objects.values_list("face_id", flat=True)) == [faces[0].pk]
    assert TriageEvent.objects.count() == 1


def test_a_face_of_another_study_is_not_found_through_this_version(client, coding_flow, scenario):
    study, version, faces, researcher = scenario
    elsewhere = make_plain_faces(make_study(), 1)[0]
    client.force_login(researcher)
    url = reverse("modeling:triage", args=[version.pk, elsewhere.pk])
    assert client.post(url, {"decision": "model_error"}).status_code == 404
    assert not TriageEvent.objects.exists()


def test_triage_without_csrf_token_is_rejected(coding_flow, scenario):
    study, version, faces, researcher = scenario
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    url = reverse("modeling:triage", args=[version.pk, faces[0].pk])
    assert client.post(url, {"decision": "model_error"}).status_code == 403
    assert not Triage.objects.exists()


def test_triage_counts_and_current_verdicts_per_study(coding_flow, scenario):
    study, version, faces, researcher = scenario
    for face, decision in zip(faces, ["model_error", "model_error", "not_face"], strict=False):
        triage_record(face=face, version=version, decision=decision, decided_by=researcher)
    triage_record(face=faces[1], version=version, decision="not_face", decided_by=researcher)
    assert triage_counts(study=study) == {"model_error": 1, "label_error": 0, "not_face": 2}
    assert triage_current(study=study) == {
        faces[0].pk: "model_error",
        faces[1].pk: "not_face",
        faces[2].pk: "not_face",
    }
    assert triage_not_face_ids(study_id=study.pk) == {faces[1].pk, faces[2].pk}
    assert triage_current(study=make_study()) == {}


def test_faces_of_other_studies_do_not_leak_into_a_study_s_verdicts(coding_flow, scenario):
    study, version, faces, researcher = scenario
    other = make_study()
    other_face = make_plain_faces(other, 1)[0]
    other_version = make_version(other)
    triage_record(
        face=other_face,
        version=other_version,
        decision="not_face",
        decided_by=make_user(Role.RESEARCHER, study=other),
    )
    assert triage_not_face_ids(study_id=study.pk) == set()
    assert triage_not_face_ids(study_id=other.pk) == {other_face.pk}


@pytest.mark.django_db(transaction=True)
def test_migration_0003_turns_verdicts_per_version_into_history_and_back(coding_flow):
    """Backward: one row per face and version, undone verdicts gone. Forward: every row an
    event, the latest per face the verdict in effect."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("modeling", "0002_cv_predictions")]
    study = make_study()
    faces = make_plain_faces(study, 3)
    v1, v2 = make_version(study), make_version(study)
    who = make_user(Role.RESEARCHER, study=study)
    triage_record(face=faces[0], version=v1, decision="model_error", decided_by=who)
    triage_record(face=faces[0], version=v2, decision="not_face", decided_by=who, tags=["child"])
    triage_record(face=faces[1], version=v1, decision="label_error", decided_by=who)
    triage_undo(face=faces[1], version=v1, undone_by=who)
    triage_record(face=faces[2], version=v1, decision="model_error", decided_by=who)

    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("modeling")
    try:
        executor.migrate(before)
        old = MigrationExecutor(connection).loader.project_state(before).apps
        OldTriage = old.get_model("modeling", "Triage")
        rows = OldTriage.objects.order_by("face_id", "version_id")
        assert [(t.face_id, t.version_id, t.decision, t.tags) for t in rows] == [
            (faces[0].pk, v1.pk, "model_error", []),
            (faces[0].pk, v2.pk, "not_face", ["child"]),
            (faces[2].pk, v1.pk, "model_error", []),
        ]
        OldTriage.objects.create(
            face_id=faces[1].pk, version_id=v2.pk, decision="label_error", decided_by_id=who.pk
        )
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    finally:
        MigrationExecutor(connection).migrate(latest)

    assert triage_current(study=study) == {
        faces[0].pk: "not_face",
        faces[1].pk: "label_error",
        faces[2].pk: "model_error",
    }
    assert Triage.objects.get(face=faces[0]).version_id == v2.pk
    assert _history(faces[0]) == [("decided", "model_error"), ("decided", "not_face")]
    assert TriageEvent.objects.get(face=faces[1]).votes_reset
    # the history rebuilt from old rows is undoable like any other
    assert triage_undo(face=faces[0], version=v2, undone_by=who).decision == "model_error"
