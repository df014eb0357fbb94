"""Training and prediction through a real Celery worker process, and a worker killed mid-run.

Slow: each test starts `celery worker` subprocesses on the test database.
"""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from annotate.models import JobStatus, KnownLabel
from annotate.roles import Role
from annotate.services.demo import demo_study_load
from modeling.models import (
    ModelVersion,
    Prediction,
    PredictionChunk,
    PredictionRun,
    TrainingRun,
)
from modeling.services.activation import version_activate
from modeling.services.prediction import predictions_run_create
from modeling.services.training import training_run_create
from tests.conftest import wait_for
from tests.factories import make_user, untrained_version
from tests.modeling.conftest import TINY

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FINISHED = ("succeeded", "failed", "cancelled")


def _finished_run(model, pk, *, timeout=240):
    return wait_for(
        lambda: model.objects.filter(pk=pk, status__in=FINISHED).first(),
        timeout=timeout,
        message=f"{model.__name__} {pk} to finish",
    )


def test_small_backbone_learns_the_demo_signal_end_to_end(filesystem_broker, start_worker):
    study = demo_study_load(slug="e2e", faces=260, seed=3).study
    admin = make_user(Role.ADMIN)
    start_worker(filesystem_broker, queues="gpu", extra_env=ONE_THREAD)
    run = training_run_create(study=study, requested_by=admin, config={**TINY, "folds": 4})
    run = _finished_run(TrainingRun, run.pk)
    assert run.status == "succeeded", run.error
    cv = run.metrics["cv"]
    counts = run.dataset["class_counts"]
    majority = max(counts.values()) / sum(counts.values())
    assert cv["accuracy"] >= majority + 0.1, (cv["accuracy"], majority)
    assert cv["low"] > 0.5
    # Activation starts batch prediction on the worker; predictions match the hidden truth
    # of faces the model never saw far better than chance.
    version = run.version
    prediction = version_activate(version=version, user=admin)
    prediction = _finished_run(PredictionRun, prediction.pk)
    assert prediction.status == "succeeded", prediction.error
    assert prediction.done == prediction.total == study.faces.count()
    truth = dict(
        KnownLabel.objects.filter(face__study=study, usage="truth").values_list("face_id", "gender")
    )
    unseen = Prediction.objects.filter(version=version).exclude(face_id__in=run.dataset["face_ids"])
    correct = sum(p.label == truth[p.face_id] for p in unseen)
    assert correct / unseen.count() > 0.65


def _slow_checkpoint_version(study, number):
    """A version whose checkpoint is a ResNet-50 at 224 px: slow enough on CPU to kill."""
    return untrained_version(study, backbone="resnet50", number=number, seed=number)


@pytest.mark.redis
def test_worker_killed_during_training_ends_the_run_failed_and_keeps_the_active_model(
    redis_broker, start_worker, client, settings
):
    study = demo_study_load(slug="kill-train", faces=120, seed=4).study
    admin = make_user(Role.ADMIN)
    active = ModelVersion.objects.create(
        study=study, number=1, backbone="resnet18", weights="none", is_active=True
    )
    worker = start_worker(redis_broker, queues="gpu", extra_env=ONE_THREAD)
    slow = {"backbone": "resnet50", "weights": "none", "extract_batch_size": 4, "folds": 3}
    run = training_run_create(study=study, requested_by=admin, config=slow)
    wait_for(
        lambda: TrainingRun.objects.filter(pk=run.pk, stage="features", progress__gt=2).exists(),
        timeout=120,
        message="the run to be extracting features",
    )
    worker.kill()
    time.sleep(1.5)
    run.refresh_from_db()
    assert run.status == "running"  # nobody is left to say otherwise…
    settings.FACET_RUN_STALE_SECONDS = 1
    client.force_login(admin)
    status = client.get(reverse("modeling:status", args=[study.slug])).json()  # …until the sweep
    row = next(r for r in status["training"] if r["id"] == run.pk)
    assert row["status"] == "failed" and "stopped answering" in row["error"]
    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at is not None
    assert list(ModelVersion.objects.filter(study=study)) == [active]
    active.refresh_from_db()
    assert active.is_active


@pytest.mark.redis
def test_worker_killed_during_prediction_keeps_versions_apart_and_a_retry_completes(
    redis_broker, start_worker, settings
):
    study = demo_study_load(slug="kill-predict", faces=60, seed=6).study
    admin = make_user(Role.ADMIN)
    v1 = _slow_checkpoint_version(study, 1)
    v2 = _slow_checkpoint_version(study, 2)
    faces = study.faces.count()
    env = {**ONE_THREAD, "FACET_PREDICT_CHUNK": "4"}
    worker = start_worker(redis_broker, queues="gpu", extra_env=env)
    first = version_activate(version=v1, user=admin)
    # Killed while it works on a chunk: between two chunks nothing of the run is running,
    # and a run whose chunks only wait for a worker is not lost.
    wait_for(
        lambda: (
            PredictionRun.objects.filter(pk=first.pk, done__gte=4).exists()
            and PredictionChunk.objects.filter(run=first, status=JobStatus.RUNNING).exists()
        ),
        timeout=120,
        message="the first chunk of predictions, and a chunk at work",
    )
    worker.kill()
    partial = Prediction.objects.filter(version=v1).count()
    assert 4 <= partial < faces
    settings.FACET_RUN_STALE_SECONDS = 1
    time.sleep(1.5)
    from modeling.services.prediction import predictions_runs_sweep

    assert predictions_runs_sweep() == 1
    first.refresh_from_db()
    assert first.status == "failed" and "stopped answering" in first.error
    # A new version predicts every face on a fresh worker; v1's partial rows stay v1's.
    start_worker(redis_broker, queues="gpu", extra_env=env)
    second = _finished_run(PredictionRun, version_activate(version=v2, user=admin).pk)
    assert second.status == "succeeded", second.error
    assert Prediction.objects.filter(version=v2).count() == faces
    assert Prediction.objects.filter(version=v1).count() == partial
    # Retrying v1 fills in only what is missing; nothing is doubled.
    retry = _finished_run(PredictionRun, predictions_run_create(version=v1).pk)
    assert retry.status == "succeeded" and retry.total == faces - partial
    assert Prediction.objects.filter(version=v1).count() == faces
