"""Batch prediction: every face once per version, keyed by version, resumable."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotate.models import Face, FaceStatus
from modeling.ml.errors import CHECKPOINT_CHANGED, CheckpointError
from modeling.models import Prediction
from modeling.services.prediction import predictions_run_create, predictions_run_execute
from modeling.services.training import artifact_storage
from tests.modeling.helpers import trained_version

pytestmark = pytest.mark.django_db


def test_prediction_writes_one_row_per_face_and_version_and_resumes(settings):
    version = trained_version(faces=60)
    study = version.study
    excluded = Face.objects.filter(study=study).first()
    excluded.coding_status = FaceStatus.EXCLUDED
    excluded.save()
    settings.FACET_PREDICT_CHUNK = 16
    run = predictions_run_create(version=version, enqueue=False)
    assert run.total == 59
    run = predictions_run_execute(run_id=run.pk)
    assert run.status == "succeeded" and run.done == 59
    rows = Prediction.objects.filter(version=version)
    assert rows.count() == 59 and not rows.filter(face=excluded).exists()
    assert all(0.0 <= p <= 1.0 for p in rows.values_list("probability", flat=True))
    assert set(rows.values_list("label", flat=True)) <= {"female", "male"}
    # A second run of the same version finds nothing missing and doubles nothing.
    again = predictions_run_execute(
        run_id=predictions_run_create(version=version, enqueue=False).pk
    )
    assert again.total == 0 and rows.count() == 59


def test_corrupted_checkpoint_fails_the_prediction_run_with_a_clear_error():
    version = trained_version(faces=60)
    path = Path(artifact_storage().path(version.artifact.name))
    path.write_bytes(path.read_bytes()[:1000])
    run = predictions_run_execute(run_id=predictions_run_create(version=version, enqueue=False).pk)
    assert run.status == "failed"
    assert run.error == CHECKPOINT_CHANGED.format(number=version.number)
    assert not Prediction.objects.exists()
    with pytest.raises(CheckpointError):
        from modeling.ml.checkpoint import checkpoint_load

        checkpoint_load(path)
