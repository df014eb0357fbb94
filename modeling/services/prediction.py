"""Batch prediction with a model version: faces stream through the model in chunks.

Predictions are keyed by version, so a new version's never mix with an old one's. A run that
stops part-way (killed worker, failure) keeps what it wrote; running the same version again
predicts only the faces still missing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from annotate.access import is_admin
from annotate.labels import CLASSES
from annotate.models import Face, FaceStatus, JobStatus
from annotate.services.storage import crop_read
from config.celery import broker_check
from modeling.ml.device import device_choose
from modeling.ml.errors import Cancelled, CheckpointError
from modeling.ml.predict import classifier_load, probabilities_iter
from modeling.models import ModelVersion, Prediction, PredictionRun
from modeling.services.training import ADMIN_ONLY, FINISHED, WORKER_LOST, artifact_verified

logger = logging.getLogger(__name__)
BATCH_SIZE = 32
LIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def faces_to_predict(*, version: ModelVersion):
    """Faces of the version's study without a prediction from it (not-a-face excluded)."""
    done = Prediction.objects.filter(version=version, face=OuterRef("pk"))
    return (
        Face.objects.filter(study=version.study)
        .exclude(coding_status=FaceStatus.EXCLUDED)
        .exclude(Exists(done))
    )


def predictions_run_create(*, version: ModelVersion, enqueue: bool = True) -> PredictionRun:
    """Create a queued prediction run and enqueue it after commit (BrokerUnavailable first).

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
        live = version.prediction_runs.filter(status__in=LIVE).order_by("-pk").first()
        if live is not None:
            return live
        if not faces_to_predict(version=version).exists():
            return None
        return predictions_run_create(version=version)


def predictions_runs_sweep(*, now=None, stale_after: timedelta | None = None) -> int:
    """Mark running prediction runs with a stale heartbeat failed (their worker died)."""
    now = now or timezone.now()
    stale_after = (
        stale_after
        if stale_after is not None
        else timedelta(seconds=settings.FACET_RUN_STALE_SECONDS)
    )
    swept = 0
    for run in PredictionRun.objects.filter(
        status=JobStatus.RUNNING, heartbeat_at__lt=now - stale_after
    ):
        swept += PredictionRun.objects.filter(
            pk=run.pk, status=JobStatus.RUNNING, heartbeat_at=run.heartbeat_at
        ).update(
            status=JobStatus.FAILED,
            error=WORKER_LOST.format(heartbeat=run.heartbeat_at.isoformat(timespec="seconds")),
            finished_at=now,
        )
    return swept


def _claim(run_id: int) -> PredictionRun | None:
    with transaction.atomic():
        run = PredictionRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status in FINISHED or run.status == JobStatus.RUNNING:
            return None
        run.status = JobStatus.RUNNING
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["status", "heartbeat_at"])
    return run


def predictions_run_execute(*, run_id: int) -> PredictionRun:
    """Predict every face still missing for the run's version, chunk by chunk.

    Each chunk's rows are written with one bulk insert (conflicts ignored, so a retry never
    doubles a row) before the next chunk is read; progress and heartbeat follow each chunk.
    """
    run = _claim(run_id)
    if run is None:
        return PredictionRun.objects.get(pk=run_id)
    version = run.version
    try:
        classifier = classifier_load(
            artifact_verified(version), device=device_choose(settings.FACET_DEVICE)
        )
        positive = CLASSES.index("female")
        negative = 1 - positive
        threshold = version.threshold
        ids = list(faces_to_predict(version=version).order_by("pk").values_list("pk", flat=True))
        PredictionRun.objects.filter(pk=run.pk).update(total=run.done + len(ids))
        chunk_faces = settings.FACET_PREDICT_CHUNK
        for start in range(0, len(ids), chunk_faces):
            chunk = list(
                Face.objects.filter(pk__in=ids[start : start + chunk_faces])
                .order_by("pk")
                .values_list("pk", "crop")
            )
            names = [crop for _, crop in chunk]
            rows = []
            for indices, probabilities in probabilities_iter(
                classifier, names, batch_size=BATCH_SIZE, read=crop_read
            ):
                for i, p in zip(indices, probabilities, strict=True):
                    label = CLASSES[positive] if p >= threshold else CLASSES[negative]
                    rows.append(
                        Prediction(
                            face_id=chunk[int(i)][0],
                            version=version,
                            probability=float(p),
                            label=label,
                        )
                    )
            Prediction.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
            PredictionRun.objects.filter(pk=run.pk).update(
                done=run.done + start + len(chunk), heartbeat_at=timezone.now()
            )
            if PredictionRun.objects.filter(pk=run.pk, status=JobStatus.CANCELLED).exists():
                raise Cancelled()
        PredictionRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.SUCCEEDED, finished_at=timezone.now()
        )
    except Cancelled:
        pass
    except (CheckpointError, ValueError, OSError) as exc:
        logger.warning("prediction run %s failed: %s", run.pk, exc)
        PredictionRun.objects.filter(pk=run.pk).update(
            status=JobStatus.FAILED, error=str(exc), finished_at=timezone.now()
        )
    except Exception as exc:
        logger.exception("prediction run %s failed", run.pk)
        PredictionRun.objects.filter(pk=run.pk).update(
            status=JobStatus.FAILED, error=repr(exc), finished_at=timezone.now()
        )
        raise
    return PredictionRun.objects.get(pk=run.pk)
