"""The coding flow's `face_coded` signal starts a round's results when its last face is coded."""

from __future__ import annotations

import logging

import pytest

from annotate.models import Vote
from config.celery import BrokerUnavailable
from modeling.models import ValidationRound
from modeling.services import validation
from modeling.services.validation import validation_round_create
from tests.annotate.coding_helpers import quick_users, vote_next
from tests.factories import make_study
from tests.modeling.validation_factories import make_plain_faces, make_version, plant

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
    with caplog.at_level(logging.WARNING, logger="modeling.receivers"):
        _code_round(study, coders, django_capture_on_commit_callbacks)
    assert Vote.objects.filter(face__study=study).count() == 6
    assert "completed a validation round" in caplog.text and "not reachable" in caplog.text
    round.refresh_from_db()
    assert round.status == ValidationRound.Status.OPEN  # computed later, on the results page


def test_any_other_receiver_error_is_logged_and_the_vote_stands(
    round_of_two, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    study, round, coders = round_of_two

    def broken(*, face_id):
        raise RuntimeError("boom")

    monkeypatch.setattr("modeling.receivers.validation_rounds_after_consensus", broken)
    with caplog.at_level(logging.ERROR, logger="django.db.backends.base"):
        _code_round(study, coders, django_capture_on_commit_callbacks)
    assert Vote.objects.filter(face__study=study).count() == 6
    assert "boom" in caplog.text


def test_faces_outside_every_round_do_not_look_for_rounds(
    round_of_two, monkeypatch, django_capture_on_commit_callbacks
):
    study, round, coders = round_of_two
    looked: list[int] = []
    real = validation.validation_rounds_after_consensus
    monkeypatch.setattr(
        "modeling.receivers.validation_rounds_after_consensus",
        lambda *, face_id: looked.append(face_id) or real(face_id=face_id),
    )
    for coder in coders:  # two round faces first, then two of the study's other faces
        for _ in range(4):
            with django_capture_on_commit_callbacks(execute=True):
                vote_next(study, coder)
    round_faces = set(round.items.values_list("face_id", flat=True))
    coded_outside = Vote.objects.filter(face__study=study).exclude(face_id__in=round_faces)
    assert coded_outside.values("face_id").distinct().count() == 2
    assert sorted(looked) == sorted(round_faces)
