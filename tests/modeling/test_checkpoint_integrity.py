"""A version's model file is checked against the SHA-256 recorded at training before it predicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeling.ml.checkpoint import checkpoint_load
from modeling.ml.errors import CHECKPOINT_CHANGED
from modeling.models import Prediction
from modeling.services.prediction import predictions_run_create, predictions_run_execute
from modeling.services.training import artifact_storage
from tests.modeling.helpers import trained_version

pytestmark = pytest.mark.django_db


def _predict(version):
    return predictions_run_execute(run_id=predictions_run_create(version=version, enqueue=False).pk)


def test_a_model_file_changed_by_one_byte_fails_the_run_and_the_intact_file_predicts():
    version = trained_version(faces=60)
    path = Path(artifact_storage().path(version.artifact.name))
    intact = path.read_bytes()
    changed = bytearray(intact)
    middle = len(changed) // 2  # inside the weights: the file still loads, with other numbers
    changed[middle] ^= 0xFF
    path.write_bytes(bytes(changed))
    checkpoint_load(path)  # the loader alone would not notice

    run = _predict(version)

    assert run.status == "failed"
    assert run.error == CHECKPOINT_CHANGED.format(number=version.number)
    assert "version 1 changed on disk (SHA-256 mismatch); retrain or restore it" in run.error
    assert not Prediction.objects.exists()

    path.write_bytes(intact)
    run = _predict(version)

    assert run.status == "succeeded" and run.error == ""
    assert Prediction.objects.filter(version=version).count() == 60
