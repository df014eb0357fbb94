"""A real Celery worker on queue default computes and stores a round's results."""

from __future__ import annotations

import pytest

from modeling.models import ValidationRound
from modeling.services.validation import validation_results_request, validation_round_create
from tests.conftest import wait_for
from tests.factories import make_plain_faces, make_study
from tests.modeling.validation_factories import code_faces, make_version, plant

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_worker_on_the_default_queue_stores_the_results(
    coding_flow, filesystem_broker, start_worker
):
    study = make_study()
    faces = make_plain_faces(study, 120)
    version = make_version(study, active=True)
    truth = plant(faces, version, coded=False)
    round = validation_round_create(version=version, size=80, seed=2, min_per_group=0)
    code_faces(round.items.values_list("face_id", flat=True), truth)
    start_worker(filesystem_broker, queues="default")
    validation_results_request(round=round)

    def done():
        round.refresh_from_db()
        return round.status == ValidationRound.Status.COMPLETE

    wait_for(done, timeout=90, message="the worker to store the round's results")
    assert round.results["overall"]["n"] == 80 and not round.results["partial"]
