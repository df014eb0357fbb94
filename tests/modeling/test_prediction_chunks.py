"""Chunked batch prediction: chunks shared by workers, each face predicted once, cancel and the
stale sweep across chunks, and two real Celery workers on one run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.models import JobStatus
from annotate.roles import Role
from annotate.services.demo import demo_study_load
from annotate.services.jobs import ClaimLost, job_beat, job_claim
from modeling.models import ModelVersion, Prediction, PredictionChunk, PredictionRun
from modeling.services import prediction
from modeling.services.prediction import (
    predictions_chunk_execute,
    predictions_run_cancel,
    predictions_run_create,
    predictions_run_execute,
    predictions_run_plan,
    predictions_runs_sweep,
)
from tests.conftest import wait_for
from tests.factories import make_user, untrained_version

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _version(study, *, backbone: str = "resnet18", image_size: int | None = 64) -> ModelVersion:
    """An untrained version of `backbone` (fast at 64 px); predictions need no training."""
    return untrained_version(study, backbone=backbone, image_size=image_size)


def _planned(settings, *, faces: int = 20, chunk: int = 6) -> tuple[PredictionRun, list[int]]:
    settings.FACET_PREDICT_CHUNK = chunk
    study = demo_study_load(slug="chunks", faces=faces, seed=2).study
    run = predictions_run_create(version=_version(study), enqueue=False)
    return run, predictions_run_plan(run_id=run.pk, send=False)


@pytest.mark.django_db
def test_a_run_is_split_into_chunks_that_predict_every_face_once(settings):
    run, chunk_ids = _planned(settings, faces=20, chunk=6)
    assert len(chunk_ids) == 4
    chunks = list(PredictionChunk.objects.filter(run=run))
    assert [c.total for c in chunks] == [6, 6, 6, 2]
    assert all(c.status == JobStatus.QUEUED for c in chunks)
    for chunk_id in reversed(chunk_ids):  # any order, any worker
        predictions_chunk_execute(chunk_id=chunk_id)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.done == run.total == 20
    assert Prediction.objects.filter(version=run.version).count() == 20
    assert set(PredictionChunk.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}


@pytest.mark.django_db
def test_a_redelivered_or_repeated_chunk_predicts_nothing_twice(settings):
    run, chunk_ids = _planned(settings, faces=12, chunk=6)
    first = chunk_ids[0]
    predictions_chunk_execute(chunk_id=first)
    rows = dict(Prediction.objects.values_list("face_id", "created_at"))
    assert len(rows) == 6
    predictions_chunk_execute(chunk_id=first)  # a second delivery: the chunk is finished
    # The same chunk run again from the start (a copy that lost its claim) finds its faces
    # predicted and predicts none of them again.
    PredictionChunk.objects.filter(pk=first).update(status=JobStatus.QUEUED, claimed_by="")
    predictions_chunk_execute(chunk_id=first)
    assert dict(Prediction.objects.values_list("face_id", "created_at")) == rows
    # A delivery while another copy holds the chunk with a fresh heartbeat does nothing.
    second = chunk_ids[1]
    holder = job_claim(
        PredictionChunk.objects.filter(pk=second), stale_after=timedelta(minutes=5), max_attempts=1
    )
    predictions_chunk_execute(chunk_id=second)
    assert Prediction.objects.count() == 6
    assert PredictionChunk.objects.get(pk=second).claimed_by == holder


@pytest.mark.django_db
def test_cancel_stops_the_running_chunk_at_its_next_batch_and_the_queued_ones_at_once(
    settings, monkeypatch
):
    run, chunk_ids = _planned(settings, faces=20, chunk=8)
    admin = make_user(Role.ADMIN)
    monkeypatch.setattr(prediction, "BATCH_SIZE", 3)
    real = prediction.probabilities_iter

    def cancelled_after_one_batch(*args, **kwargs):
        for n, batch in enumerate(real(*args, **kwargs)):
            yield batch
            if n == 0:  # an admin clicks Cancel while the second batch is computed
                predictions_run_cancel(run=run, user=admin)

    monkeypatch.setattr(prediction, "probabilities_iter", cancelled_after_one_batch)
    predictions_chunk_execute(chunk_id=chunk_ids[0])
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and run.finished_at is not None
    # The second batch is written, then its heartbeat sees the cancel: no third batch.
    assert run.done == 6 and Prediction.objects.count() == 6
    statuses = list(PredictionChunk.objects.filter(run=run).values_list("status", flat=True))
    assert statuses == [JobStatus.CANCELLED] * 3
    predictions_chunk_execute(chunk_id=chunk_ids[1])  # its message arrives late: nothing to do
    assert Prediction.objects.count() == 6
    # Predicting the version again fills in the rest only.
    again = predictions_run_execute(
        run_id=predictions_run_create(version=run.version, enqueue=False).pk
    )
    assert again.status == JobStatus.SUCCEEDED and again.total == 14
    assert Prediction.objects.count() == 20


@pytest.mark.django_db
def test_the_models_page_cancels_a_live_prediction_run_for_admins_only(settings, client):
    run, chunk_ids = _planned(settings, faces=20, chunk=8)
    slug = run.version.study.slug
    page = reverse("modeling:study_models", args=[slug])
    cancel = reverse("modeling:prediction_cancel", args=[slug, run.pk])
    researcher = make_user(Role.RESEARCHER)
    run.version.study.members.add(researcher, through_defaults={"role": "researcher"})
    client.force_login(researcher)
    assert cancel not in client.get(page).content.decode()
    assert client.post(cancel).status_code == 403
    client.force_login(make_user(Role.ADMIN))
    assert cancel in client.get(page).content.decode()
    response = client.post(cancel, follow=True)
    assert "cancel requested" in response.content.decode()
    run.refresh_from_db()
    assert run.cancel_requested
    chunks = PredictionChunk.objects.filter(run=run).values_list("status", flat=True)
    assert set(chunks) == {JobStatus.CANCELLED}  # none had started: all end at once
    assert cancel not in client.get(page).content.decode()  # no longer live


@pytest.mark.django_db
def test_a_lost_chunk_fails_its_run_and_stops_the_other_copies(settings):
    run, chunk_ids = _planned(settings, faces=12, chunk=6)
    stale = timedelta(seconds=settings.FACET_RUN_STALE_SECONDS)
    claim = PredictionChunk.objects.filter(pk=chunk_ids[0])
    lost = job_claim(claim, stale_after=stale, max_attempts=1)
    other = job_claim(
        PredictionChunk.objects.filter(pk=chunk_ids[1]), stale_after=stale, max_attempts=1
    )
    assert predictions_runs_sweep() == 0  # both heartbeats are fresh
    claim.update(heartbeat_at=timezone.now() - stale - timedelta(seconds=1))
    assert predictions_runs_sweep() == 1
    assert predictions_runs_sweep() == 0  # a second sweep finds nothing more to do
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "stopped answering" in run.error
    assert set(PredictionChunk.objects.values_list("status", flat=True)) == {JobStatus.FAILED}
    for token, chunk_id in ((lost, chunk_ids[0]), (other, chunk_ids[1])):
        with pytest.raises(ClaimLost):
            job_beat(PredictionChunk, pk=chunk_id, token=token)


@pytest.mark.django_db
def test_a_run_whose_planner_was_lost_is_failed_by_the_sweep(settings):
    study = demo_study_load(slug="planner", faces=6, seed=2).study
    run = predictions_run_create(version=_version(study), enqueue=False)
    stale = timedelta(seconds=settings.FACET_RUN_STALE_SECONDS)
    job_claim(PredictionRun.objects.filter(pk=run.pk), stale_after=stale, max_attempts=1)
    PredictionRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - stale - timedelta(seconds=1)
    )
    assert predictions_runs_sweep() == 1
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and not PredictionChunk.objects.exists()


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("storage", ["local", "s3"])
def test_two_workers_share_one_run_and_predict_every_face_exactly_once(
    redis_broker, start_worker, settings, storage, request
):
    bucket = request.getfixturevalue("s3_bucket") if storage == "s3" else None
    study = demo_study_load(slug="two-workers", faces=64, seed=7).study
    version = _version(study, backbone="resnet18", image_size=None)
    env = {
        **ONE_THREAD,
        "FACET_PREDICT_CHUNK": "4",
        "FACET_STORAGE_URL": settings.FACET_STORAGE_URL,
    }
    start_worker(redis_broker, queues="gpu", extra_env=env)
    start_worker(redis_broker, queues="gpu", extra_env=env)
    settings.FACET_PREDICT_CHUNK = 4
    run = predictions_run_create(version=version)
    run = wait_for(
        lambda: PredictionRun.objects.filter(
            pk=run.pk, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
        ).first(),
        timeout=300,
        message="the prediction run to finish",
    )
    faces = study.faces.count()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.done == run.total == faces
    predicted = list(Prediction.objects.filter(version=version).values_list("face_id", flat=True))
    assert sorted(predicted) == sorted(study.faces.values_list("pk", flat=True))
    chunks = list(PredictionChunk.objects.filter(run=run))
    assert len(chunks) == faces // 4
    # Every chunk claimed once, and the chunks' face counts add up to the faces: no face was
    # predicted by two chunks or twice by one.
    assert all(c.attempts == 1 and c.status == JobStatus.SUCCEEDED for c in chunks)
    assert sum(c.done for c in chunks) == faces
    # The claim token is host:pid:nonce; each worker's pool process has its own pid.
    processes = {c.claimed_by.split(":")[1] for c in chunks}
    assert len(processes) == 2, processes
    if bucket is not None:  # crops and checkpoint were read from the bucket, not local disk
        assert f"artifacts/{version.artifact.name}" in bucket.keys("artifacts")
        assert {f"media/{name}" for name in study.faces.values_list("crop", flat=True)} <= (
            bucket.keys("media")
        )
        assert not Path(settings.MEDIA_ROOT).exists() or not any(
            Path(settings.MEDIA_ROOT).rglob("*.*")
        )


class _Killed(BaseException):
    """What SIGKILL looks like from inside: nothing after it runs, no except clause sees it."""


@pytest.mark.django_db
def test_a_run_whose_last_worker_died_before_ending_it_is_ended_by_the_sweep(settings, monkeypatch):
    run, chunk_ids = _planned(settings, faces=12, chunk=6)
    predictions_chunk_execute(chunk_id=chunk_ids[0])
    real = prediction._run_conclude

    def killed(**kwargs):
        raise _Killed()

    monkeypatch.setattr(prediction, "_run_conclude", killed)
    with pytest.raises(_Killed):
        predictions_chunk_execute(chunk_id=chunk_ids[1])
    monkeypatch.setattr(prediction, "_run_conclude", real)
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING  # every chunk ended, the run did not
    assert predictions_runs_sweep() == 0  # its heartbeat is fresh: maybe still ending
    stale = timedelta(seconds=settings.FACET_RUN_STALE_SECONDS + 1)
    PredictionRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - stale)
    assert predictions_runs_sweep() == 1
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.done == run.total == 12
