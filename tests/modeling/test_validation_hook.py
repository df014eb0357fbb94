"""The consensus service calls validation when a face is coded; a round's last face starts its
results."""

from __future__ import annotations

import logging

import pytest

from annotate.models import Face, Vote
from config.celery import BrokerUnavailable
from modeling.models import ValidationRound
from modeling.services import validation
from modeling.services.validation import validation_round_create, validation_rounds_after_consensus
from tests.annotate.coding_helpers import vote_next
from tests.factories import make_plain_faces, make_study, quick_users
from tests.modeling.validation_factories import make_version, plant

pytestmark = pytest.mark.django_db


@pytest.fixture
def round_of_two():
    """A round of two faces; the study's other faces wait behind them in the work queue."""
    study = make_study()
    faces = make_plain_faces(study, 20)
    version = make_version(study, active=True)
    plant(faces, version, coded=False)
    round = validation_round_create(version=version, size=2, seed=1, min_per_group=0)
    return study, round, quick_users(study, 3)


def _code_round(study, coders, capture) -> None:
    """Each coder votes "female" twice: the round's two faces come first (priority)."""
    for coder in coders:
        for _ in range(2):
            with capture(execute=True):
                vote_next(study, coder)


def test_the_vote_that_completes_a_round_requests_its_results(
    round_of_two, monkeypatch, django_capture_on_commit_callbacks
):
    study, round, coders = round_of_two
    requested = []
    monkeypatch.setattr(
        validation, "validation_results_request", lambda *, round: requested.append(round.pk)
    )
    for coder in coders[:2]:
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                vote_next(study, coder)
    assert requested == []  # two votes per face: not coded yet
    with django_capture_on_commit_callbacks(execute=True):
        vote_next(study, coders[2])
    assert requested == []  # one face of two is coded
    with django_capture_on_commit_callbacks(execute=True):
        vote_next(study, coders[2])
    assert requested == [round.pk]


def test_a_round_completed_while_the_broker_is_down_keeps_every_vote(
    round_of_two, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    study, round, coders = round_of_two

    def broker_down(*, round):
        raise BrokerUnavailable("the broker at redis://nowhere is not reachable")

    monkeypatch.setattr(validation, "validation_results_request", broker_down)
    with caplog.at_level(logging.WARNING, logger="modeling.services.validation"):
        _code_round(study, coders, django_capture_on_commit_callbacks)
    assert Vote.objects.filter(face__study=study).count() == 6
    assert "completed a validation round" in caplog.text and "not reachable" in caplog.text
    round.refresh_from_db()
    assert round.status == ValidationRound.Status.OPEN  # computed later, on the results page


def test_any_other_hook_error_is_logged_and_the_vote_stands(
    round_of_two, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    study, round, coders = round_of_two

    def broken(*, face):
        raise RuntimeError("boom")

    monkeypatch.setattr(validation, "validation_rounds_after_consensus", broken)
    with caplog.at_level(logging.ERROR, logger="django.db.backends.base"):
        _code_round(study, coders, django_capture_on_commit_callbacks)
    assert Vote.objects.filter(face__study=study).count() == 6
    assert "boom" in caplog.text


def test_every_coded_face_is_checked_and_only_the_round_starts_results(
    round_of_two, monkeypatch, django_capture_on_commit_callbacks
):
    study, round, coders = round_of_two
    checked: list[int] = []
    requested: list[int] = []
    real = validation.validation_rounds_after_consensus
    monkeypatch.setattr(
        validation, "validation_results_request", lambda *, round: requested.append(round.pk)
    )
    monkeypatch.setattr(
        validation,
        "validation_rounds_after_consensus",
        lambda *, face: checked.append(face.pk) or real(face=face),
    )
    for coder in coders:  # two round faces first, then two of the study's other faces
        for _ in range(4):
            with django_capture_on_commit_callbacks(execute=True):
                vote_next(study, coder)
    round_faces = set(round.items.values_list("face_id", flat=True))
    coded_outside = set(
        Vote.objects.filter(face__study=study)
        .exclude(face_id__in=round_faces)
        .values_list("face_id", flat=True)
    )
    assert len(coded_outside) == 2
    assert sorted(checked) == sorted(round_faces | coded_outside)
    assert requested == [round.pk]


def test_membership_is_one_query_on_open_rounds_samples(round_of_two, django_assert_num_queries):
    study, round, coders = round_of_two
    round_faces = list(round.items.values_list("face_id", flat=True))
    outside = Face.objects.filter(study=study).exclude(pk__in=round_faces).first()
    with django_assert_num_queries(1):
        assert validation_rounds_after_consensus(face=outside) == []
    ValidationRound.objects.filter(pk=round.pk).update(status=ValidationRound.Status.COMPLETE)
    sampled = Face.objects.get(pk=round_faces[0])
    with django_assert_num_queries(1):  # a round no longer open is no round to complete
        assert validation_rounds_after_consensus(face=sampled) == []
