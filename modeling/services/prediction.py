"""Batch prediction with a model version, split into chunks that any number of workers share.

A run is planned by one task (`predictions_run_plan`): it claims the run, checks the
checkpoint, and writes one PredictionChunk per FACET_PREDICT_CHUNK faces still missing a
prediction, each sent as its own task (`modeling.tasks.prediction_chunk_task`) to the gpu
queue, so several GPU or CPU workers share the run. A chunk task claims its chunk, predicts
its faces batch by batch, and writes its heartbeat and progress after each batch; the chunk
that finishes last ends the run (`_run_conclude`). Every step goes through the life cycle
every job shares (`annotate.services.jobs`).

Predictions are keyed by version, so a new version's never mix with an old one's. A chunk
predicts only the faces its version has not predicted yet and inserts with conflicts ignored,
so a redelivered or repeated chunk predicts nothing twice. A run that stops part-way (killed
worker, failure, cancel) keeps what it wrote; running the same version again predicts only the
faces still missing. Cancelling stops every chunk at its next batch.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from annotate.access import is_admin
from annotate.labels import CLASSES, POSITIVE_CLASS
from annotate.models import Face, FaceStatus, JobStatus
from annotate.services.jobs import (
    ERROR_MAX_CHARS,
    UNFINISHED,
    ClaimLost,
    job_beat,
    job_cancel,
    job_claim,
    job_finish,
    job_recover,
    jobs_lost,
    part_finish,
    parts_rollup,
    when,
)
from annotate.services.storage import crop_read
from config.celery import broker_check
from modeling.ml.device import device_choose
from modeling.ml.errors import CheckpointError
from modeling.ml.predict import LoadedClassifier, classifier_load, probabilities_iter
from modeling.models import ModelVersion, Prediction, PredictionChunk, PredictionRun
from modeling.services.training import (
    ADMIN_ONLY,
    CANCELLED_ON_REQUEST,
    RUN_CANCELLED,
    RUN_MAX_ATTEMPTS,
    WORKER_LOST,
    artifact_verified,
    run_stale_after,
)

logger = logging.getLogger(__name__)
BATCH_SIZE = 32
CHUNK_FAILED = "Faces {first}–{last} (ids): {reason}"

# The classifier a worker process loaded last, kept for the next chunk of the same version:
# (version id, checkpoint SHA-256, device) and the model.
_loaded: tuple[tuple[int, str, str], LoadedClassifier] | None = None


def faces_to_predict(*, version: ModelVersion):
    """Faces of the version's study without a prediction from it (not-a-face excluded)."""
    done = Prediction.objects.filter(version=version, face=OuterRef("pk"))
    return (
        Face.objects.filter(study=version.study)
        .exclude(coding_status=FaceStatus.EXCLUDED)
        .exclude(Exists(done))
    )


def predictions_run_create(*, version: ModelVersion, enqueue: bool = True) -> PredictionRun:
    """Create a queued prediction run and enqueue its planning after commit (BrokerUnavailable
    first).

    With `enqueue=False` the caller runs `predictions_run_execute` itself (no broker needed).
    """
    from modeling.tasks import prediction_run_task

    if enqueue:
        broker_check()
    predictions_runs_sweep()
    with transaction.atomic():
        run = PredictionRun.objects.create(
            version=version,
            total=faces_to_predict(version=version).count(),
            task_id=str(uuid.uuid4()),
        )
        if enqueue:
            transaction.on_commit(
                lambda: prediction_run_task.apply_async((run.pk,), task_id=run.task_id)
            )
    return run


def predictions_start(*, version: ModelVersion, user) -> PredictionRun | None:
    """Predict the version's faces that have no prediction from it, active or not.

    Admins only (`user` None: the command line). A candidate predicts in "shadow": the
    study's active version stays as it is, so the candidate can be validated and compared
    before anyone activates it; activation calls this too. Returns the version's run already queued or running (a second would
    redo its work), else a new run, or None when every face has a prediction. Locks the
    version row so two clicks start one run.
    """
    if user is not None and not is_admin(user):
        raise PermissionDenied(ADMIN_ONLY)
    predictions_runs_sweep()  # a run whose worker died is not "already running"
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(pk=version.pk).first()
        live = version.prediction_runs.filter(status__in=UNFINISHED).order_by("-pk").first()
        if live is not None:
            return live
        if not faces_to_predict(version=version).exists():
            return None
        return predictions_run_create(version=version)


def predictions_run_cancel(*, run: PredictionRun, user) -> PredictionRun:
    """Ask a run to stop (admins only). Queued, it ends at once; running, its queued chunks are
    cancelled at once and its running chunks stop at their next batch; the last to stop ends
    the run cancelled. Predictions written are kept."""
    if not is_admin(user):
        raise PermissionDenied(ADMIN_ONLY)
    error = RUN_CANCELLED.format(user=user.get_username())
    with transaction.atomic():
        run = job_cancel(PredictionRun, pk=run.pk, error=error)
        if run.status == JobStatus.RUNNING:
            run.chunks.filter(status=JobStatus.QUEUED).update(
                status=JobStatus.CANCELLED, error=CANCELLED_ON_REQUEST, finished_at=timezone.now()
            )
    if run.status == JobStatus.RUNNING:
        _run_conclude(run_id=run.pk)
    run.refresh_from_db()
    return run


# --- planning -----------------------------------------------------------------------------------


def predictions_run_plan(*, run_id: int, send: bool = True) -> list[int]:
    """Claim a queued run, check its checkpoint and split the faces still missing a prediction
    into chunks of FACET_PREDICT_CHUNK; the chunk ids, each sent as a task after commit when
    `send` (else the caller runs them). Nothing to do (redelivered, cancelled): [].

    A checkpoint that does not match its recorded SHA-256 fails the run before any chunk.
    """
    token = job_claim(
        PredictionRun.objects.filter(pk=run_id),
        stale_after=run_stale_after(),
        max_attempts=RUN_MAX_ATTEMPTS,
    )
    if token is None:
        logger.info("prediction run %s is not queued; this delivery does nothing", run_id)
        return []
    run = PredictionRun.objects.select_related("version").get(pk=run_id)
    try:
        artifact_verified(run.version)
    except CheckpointError as exc:
        logger.warning("prediction run %s failed: %s", run.pk, exc)
        job_finish(PredictionRun, pk=run.pk, token=token, status=JobStatus.FAILED, error=str(exc))
        return []
    ids = list(faces_to_predict(version=run.version).order_by("pk").values_list("pk", flat=True))
    size = settings.FACET_PREDICT_CHUNK
    parts = [ids[i : i + size] for i in range(0, len(ids), size)]
    try:
        with transaction.atomic():
            cancel = job_beat(PredictionRun, pk=run.pk, token=token, total=len(ids))
            if cancel or not parts:
                job_finish(
                    PredictionRun,
                    pk=run.pk,
                    token=token,
                    status=JobStatus.CANCELLED if cancel else JobStatus.SUCCEEDED,
                    error=CANCELLED_ON_REQUEST if cancel else "",
                )
                return []
            # While a chunk is queued, heartbeat_at is when its message was sent.
            chunks = PredictionChunk.objects.bulk_create(
                PredictionChunk(
                    run=run,
                    first_face_id=part[0],
                    last_face_id=part[-1],
                    total=len(part),
                    heartbeat_at=timezone.now(),
                )
                for part in parts
            )
            chunk_ids = [chunk.pk for chunk in chunks]
            if send:
                from modeling.tasks import prediction_chunk_task

                for chunk_id in chunk_ids:
                    transaction.on_commit(partial(prediction_chunk_task.delay, chunk_id))
    except ClaimLost:
        logger.warning("prediction run %s was swept meanwhile; it is not planned", run.pk)
        return []
    return chunk_ids


def predictions_run_execute(*, run_id: int) -> PredictionRun:
    """Plan a queued run and run all its chunks in this process (`predict --inline`, tests)."""
    for chunk_id in predictions_run_plan(run_id=run_id, send=False):
        predictions_chunk_execute(chunk_id=chunk_id)
    return PredictionRun.objects.get(pk=run_id)


# --- one chunk ----------------------------------------------------------------------------------


def predictions_chunk_execute(*, chunk_id: int) -> None:
    """Predict the faces of a chunk its version has not predicted yet, batch by batch.

    Claims the chunk first: a redelivered message finds it finished, or running with a fresh
    heartbeat, and does nothing. Each batch's rows are inserted with conflicts ignored, then
    the heartbeat and progress written (chunk and run); a cancel stops it there. The chunk that
    finishes last ends the run. Never raises for a bad checkpoint or unreadable crops: those
    fail the chunk, and so the run, with the reason.
    """
    token = job_claim(
        PredictionChunk.objects.filter(pk=chunk_id, run__status=JobStatus.RUNNING),
        stale_after=run_stale_after(),
        max_attempts=RUN_MAX_ATTEMPTS,
    )
    if token is None:
        logger.info("prediction chunk %s is not queued; this delivery does nothing", chunk_id)
        return
    chunk = PredictionChunk.objects.select_related("run__version").get(pk=chunk_id)
    status: str = JobStatus.SUCCEEDED
    error = ""
    try:
        status = _chunk_predict(chunk, token)
    except ClaimLost:
        logger.warning(
            "prediction chunk %s was swept or ended meanwhile; this copy stops", chunk_id
        )
        return
    except (CheckpointError, ValueError, OSError) as exc:
        logger.warning("prediction chunk %s failed: %s", chunk_id, exc)
        status, error = JobStatus.FAILED, str(exc)
    except Exception as exc:  # SoftTimeLimitExceeded and the unexpected: record, then re-raise
        logger.exception("prediction chunk %s failed", chunk_id)
        _chunk_end(chunk, token, status=JobStatus.FAILED, error=repr(exc))
        raise
    _chunk_end(chunk, token, status=status, error=error)


def _chunk_predict(chunk: PredictionChunk, token: str) -> str:
    """Predict the chunk's missing faces; SUCCEEDED, or CANCELLED when asked to stop."""
    run, version = chunk.run, chunk.run.version
    rollup = _rollup(run.pk)
    if _cancel_requested(run.pk):
        return JobStatus.CANCELLED
    faces = list(
        faces_to_predict(version=version)
        .filter(pk__range=(chunk.first_face_id, chunk.last_face_id))
        .order_by("pk")
        .values_list("pk", "crop")
    )
    if not faces:
        return JobStatus.SUCCEEDED
    classifier = _classifier(version)
    positive = CLASSES.index(POSITIVE_CLASS)
    done = chunk.total - len(faces)  # predicted by an earlier copy of this chunk
    for indices, probabilities in probabilities_iter(
        classifier, [crop for _, crop in faces], batch_size=BATCH_SIZE, read=crop_read
    ):
        rows = [
            Prediction(
                face_id=faces[int(i)][0],
                version=version,
                probability=float(p),
                label=CLASSES[positive if p >= version.threshold else 1 - positive],
            )
            for i, p in zip(indices, probabilities, strict=True)
        ]
        Prediction.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        done += len(rows)
        job_beat(PredictionChunk, pk=chunk.pk, token=token, done=done)
        rollup()
        if _cancel_requested(run.pk):  # the cancel is the run's: every chunk reads it there
            return JobStatus.CANCELLED
    return JobStatus.SUCCEEDED


def _classifier(version: ModelVersion) -> LoadedClassifier:
    """The version's classifier, checked against its SHA-256 and loaded once per worker
    process for all the chunks of that version it runs."""
    global _loaded
    device = device_choose(settings.FACET_DEVICE)
    key = (version.pk, version.artifact_sha256, str(device))
    if _loaded is None or _loaded[0] != key:
        _loaded = (key, classifier_load(artifact_verified(version), device=device))
    return _loaded[1]


def _rollup(run_id: int):
    parent = PredictionRun.objects.filter(pk=run_id, status=JobStatus.RUNNING)
    parts = PredictionChunk.objects.filter(run_id=run_id)
    return lambda: parts_rollup(parent, parts)


def _cancel_requested(run_id: int) -> bool:
    return PredictionRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def _chunk_end(chunk: PredictionChunk, token: str, *, status: str, error: str) -> None:
    """Record the chunk's end (done = its total when it succeeded); the last ends the run."""
    extra = {"done": chunk.total} if status == JobStatus.SUCCEEDED else {}
    error = (
        CHUNK_FAILED.format(first=chunk.first_face_id, last=chunk.last_face_id, reason=error)
        if error
        else (CANCELLED_ON_REQUEST if status == JobStatus.CANCELLED else "")
    )
    try:
        last = part_finish(
            PredictionChunk,
            parent=PredictionRun.objects.filter(pk=chunk.run_id),
            parts=PredictionChunk.objects.filter(run_id=chunk.run_id),
            pk=chunk.pk,
            token=token,
            status=status,
            error=error,
            **extra,
        )
    except ClaimLost:
        logger.warning("prediction chunk %s was swept meanwhile; its end is not recorded", chunk.pk)
        return
    _rollup(chunk.run_id)()
    if last:
        _run_conclude(run_id=chunk.run_id)


def _run_conclude(*, run_id: int) -> None:
    """End a running run none of whose chunks is left to run (takes its row lock): cancelled
    when a cancel was requested, failed when a chunk failed (their reasons), else succeeded."""
    with transaction.atomic():
        run = PredictionRun.objects.select_for_update().get(pk=run_id)
        chunks = list(run.chunks.all())
        # No chunks yet: the planner holds the run and ends it itself.
        if (
            run.status != JobStatus.RUNNING
            or not chunks
            or any(c.status in UNFINISHED for c in chunks)
        ):
            return
        errors = [c.error for c in chunks if c.status == JobStatus.FAILED]
        if run.cancel_requested or any(c.status == JobStatus.CANCELLED for c in chunks):
            run.status, run.error = JobStatus.CANCELLED, CANCELLED_ON_REQUEST
        elif errors:
            run.status, run.error = JobStatus.FAILED, " ".join(errors)[:ERROR_MAX_CHARS]
        else:
            run.status = JobStatus.SUCCEEDED
        run.done = sum(c.done for c in chunks)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "done", "finished_at"])
    logger.info("prediction run %s %s: %d of %d faces", run.pk, run.status, run.done, run.total)


# --- the stale sweep ----------------------------------------------------------------------------


def predictions_runs_sweep(
    *, now: datetime | None = None, stale_after: timedelta | None = None
) -> int:
    """Fail prediction runs whose worker was lost; returns how many runs it failed or ended.

    Lost: a chunk running whose heartbeat is older than `stale_after` (FACET_RUN_STALE_SECONDS),
    or a run not yet split into chunks (its planner was lost). A run has one attempt, so its
    unfinished chunks end with it and other workers' copies stop at their next batch; the
    predictions written are kept. A run whose chunks are only waiting for a worker is not lost;
    one whose chunks all ended while its last worker was lost before ending it is ended here.
    """
    now = now or timezone.now()
    stale_after = stale_after if stale_after is not None else run_stale_after()
    swept = 0
    lost_chunks = jobs_lost(
        PredictionChunk.objects.filter(run__status=JobStatus.RUNNING),
        stale_after=stale_after,
        now=now,
    )
    for chunk in lost_chunks:
        swept += _run_fail_lost(chunk, run_id=chunk.run_id, now=now)
    chunks = PredictionChunk.objects.filter(run=OuterRef("pk"))
    for run in jobs_lost(
        PredictionRun.objects.annotate(
            split=Exists(chunks), left=Exists(chunks.filter(status__in=UNFINISHED))
        ),
        stale_after=stale_after,
        now=now,
    ):
        if not run.split:
            swept += _run_fail_lost(run, run_id=run.pk, now=now)
        elif not run.left:  # the worker of the last chunk was lost before it ended the run
            _run_conclude(run_id=run.pk)
            swept += 1
    return swept


def _run_fail_lost(lost: PredictionRun | PredictionChunk, *, run_id: int, now: datetime) -> int:
    """Fail a run whose planner or chunk (`lost`) was lost, and the run's unfinished chunks,
    in one transaction under the run's row lock; 1 when this call did."""

    def fail(same: QuerySet) -> bool:
        error = WORKER_LOST.format(heartbeat=when(lost.heartbeat_at or lost.started_at))
        with transaction.atomic():
            run = PredictionRun.objects.select_for_update().filter(pk=run_id).first()
            if run is None or run.status != JobStatus.RUNNING or not same.exists():
                return False
            PredictionChunk.objects.filter(run_id=run_id, status__in=UNFINISHED).update(
                status=JobStatus.FAILED, error=error, finished_at=now
            )
            PredictionRun.objects.filter(pk=run_id).update(
                status=JobStatus.FAILED, error=error, finished_at=now
            )
        return True

    return job_recover(
        lost,
        now=now,
        max_attempts=RUN_MAX_ATTEMPTS,
        fail=fail,
        send=None,
        where=f"prediction run {run_id}",
    )
