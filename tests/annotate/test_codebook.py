"""The codebook: researchers pick finished faces as examples of an answer; coders see it
before their first face (not after) and may open the example crops, and no other face's."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from annotate.models import CodebookExample, FaceStatus, KnownLabel
from annotate.roles import Role
from annotate.services.codebook import (
    FACE_NOT_IN_STUDY,
    FACE_STILL_OPEN,
    codebook_example_add,
)
from tests.annotate.coding_helpers import vote_next
from tests.factories import make_faces, make_study, make_user

pytestmark = pytest.mark.django_db

INSTRUCTIONS = "Code the apparent gender of the person, not the name in the caption."


@pytest.fixture
def study():
    return make_study(attributes_asked=["glasses"], votes_per_face=1, instructions=INSTRUCTIONS)


@pytest.fixture
def researcher(study):
    return make_user(Role.RESEARCHER, study=study)


@pytest.fixture
def labeled(study):
    """Three finished faces with imported labels: female, male, female (glasses: none)."""
    faces = make_faces(study, 3, coding_status=FaceStatus.COMPLETE)
    for face, gender in zip(faces, ["female", "male", "female"], strict=True):
        KnownLabel.objects.create(face=face, source="set.csv", gender=gender, glasses="none")
    return faces


def _page(client, study, **query):
    return client.get(reverse("annotate:codebook", args=[study.slug]), query)


def _add(client, study, face, answer, question="gender", note=""):
    return client.post(
        reverse("annotate:codebook_add", args=[study.slug]),
        {"face": face.pk, "question": question, "answer": answer, "note": note},
    )


def test_researcher_filters_faces_by_answer_and_picks_examples(client, study, researcher, labeled):
    client.force_login(researcher)
    study_page = client.get(reverse("annotate:study_detail", args=[study.slug]))
    assert reverse("annotate:codebook", args=[study.slug]) in study_page.content.decode()
    page = _page(client, study, question="gender", answer="female")
    assert [f.pk for f in page.context["candidates"]] == [labeled[0].pk, labeled[2].pk]

    response = _add(client, study, labeled[0], "female", note="Long hair is not the cue.")
    assert response.status_code == 302
    _add(client, study, labeled[1], "male")
    examples = list(CodebookExample.objects.order_by("order"))
    assert [(e.face_id, e.question, e.answer) for e in examples] == [
        (labeled[0].pk, "gender", "female"),
        (labeled[1].pk, "gender", "male"),
    ]
    html = _page(client, study).content.decode()
    assert "Long hair is not the cue." in html and INSTRUCTIONS in html
    # A picked face leaves the candidates of that question.
    assert [f.pk for f in _page(client, study).context["candidates"]] == [labeled[2].pk]


def test_faces_finished_by_coders_are_candidates_with_their_consensus(client, study, researcher):
    (face,) = make_faces(study, 1)
    coder = make_user(Role.CODER, study=study)
    vote_next(study, coder, gender="male")  # K = 1: the face is finished, consensus male
    client.force_login(researcher)
    assert [f.pk for f in _page(client, study, answer="male").context["candidates"]] == [face.pk]
    assert not _page(client, study, answer="female").context["candidates"]


def test_examples_are_reordered_within_their_answer_and_removed(client, study, researcher, labeled):
    client.force_login(researcher)
    _add(client, study, labeled[0], "female")
    _add(client, study, labeled[2], "female")
    last = CodebookExample.objects.get(face=labeled[2])
    client.post(
        reverse("annotate:codebook_move", args=[study.slug]),
        {"example": last.pk, "direction": "up"},
    )
    order = list(CodebookExample.objects.order_by("order").values_list("face_id", flat=True))
    assert order == [labeled[2].pk, labeled[0].pk]
    client.post(reverse("annotate:codebook_remove", args=[study.slug]), {"example": last.pk})
    assert list(CodebookExample.objects.values_list("face_id", flat=True)) == [labeled[0].pk]


@pytest.mark.parametrize(
    ("question", "answer", "message"),
    [
        ("race", "white", "does not ask 'race'"),
        ("gender", "robot", "'robot' is not an answer to Gender"),
    ],
)
def test_answers_outside_the_study_questions_are_refused(
    client, study, researcher, labeled, question, answer, message
):
    client.force_login(researcher)
    response = _add(client, study, labeled[0], answer, question=question)
    assert not CodebookExample.objects.exists()
    assert escape(message) in client.get(response["Location"]).content.decode()


def test_open_faces_and_other_studies_faces_cannot_be_examples(study):
    (open_face,) = make_faces(study, 1)
    other = make_faces(make_study(), 1, coding_status=FaceStatus.COMPLETE)[0]
    with pytest.raises(ValueError, match="still being coded"):
        codebook_example_add(study=study, face_id=open_face.pk, question="gender", answer="male")
    with pytest.raises(ValueError) as refused:
        codebook_example_add(study=study, face_id=other.pk, question="gender", answer="male")
    assert str(refused.value) == FACE_NOT_IN_STUDY.format(face=other.pk)
    assert FACE_STILL_OPEN.startswith("Face {face} is still being coded")
    assert not CodebookExample.objects.exists()


def test_coders_cannot_edit_the_codebook(client, study, labeled):
    client.force_login(make_user(Role.CODER, study=study))
    assert _page(client, study).status_code == 403
    assert _add(client, study, labeled[0], "female").status_code == 403
    assert not CodebookExample.objects.exists()


def _coding_page(client, study):
    response = client.get(reverse("annotate:code", args=[study.slug]))
    assert response.status_code == 200
    return response


def test_coder_sees_the_codebook_before_the_first_face_and_not_after(client, study, labeled):
    example = codebook_example_add(
        study=study, face_id=labeled[1].pk, question="gender", answer="male", note="Beard."
    )
    make_faces(study, 2)  # faces to code
    coder = make_user(Role.CODER, study=study)
    client.force_login(coder)
    first = _coding_page(client, study)
    assert first.context["codebook_first"] is True
    html = first.content.decode()
    assert 'data-codebook-first="1"' in html and INSTRUCTIONS in html and "Beard." in html
    assert reverse("annotate:codebook_crop", args=[study.slug, example.pk]) in html
    assert "Start coding" in html

    vote_next(study, coder)
    later = _coding_page(client, study)
    assert later.context["codebook_first"] is False
    html = later.content.decode()
    assert 'data-codebook-first="0"' in html
    # Still there on H, but hidden until asked for.
    assert 'data-testid="codebook" aria-labelledby="codebook-title" hidden' in html


def test_a_study_without_a_codebook_goes_straight_to_coding(client):
    study = make_study()
    make_faces(study, 1)
    client.force_login(make_user(Role.CODER, study=study))
    assert _coding_page(client, study).context["codebook_first"] is False


def test_coders_open_example_crops_but_not_other_faces(client, study, labeled):
    example = codebook_example_add(
        study=study, face_id=labeled[0].pk, question="gender", answer="female"
    )
    coder = make_user(Role.CODER, study=study)
    client.force_login(coder)
    crop = client.get(reverse("annotate:codebook_crop", args=[study.slug, example.pk]))
    assert crop.status_code == 200 and crop["Content-Type"] == "image/jpeg"
    assert b"".join(crop.streaming_content)[:2] == b"\xff\xd8"
    # Other faces of the study (not held, not coded, not examples) stay hidden.
    for face in labeled[1:]:
        assert client.get(reverse("annotate:face_crop", args=[face.pk])).status_code == 404


def test_example_crops_stay_within_their_study_and_its_members(client, study, labeled):
    example = codebook_example_add(
        study=study, face_id=labeled[0].pk, question="gender", answer="female"
    )
    other = make_study()
    url_elsewhere = reverse("annotate:codebook_crop", args=[other.slug, example.pk])
    client.force_login(make_user(Role.CODER, study=other))
    assert client.get(url_elsewhere).status_code == 404  # not an example of that study
    url = reverse("annotate:codebook_crop", args=[study.slug, example.pk])
    assert client.get(url).status_code == 403  # not a member of this one
