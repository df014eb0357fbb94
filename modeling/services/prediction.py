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
from annotate.services.jobs import UNFINISHED, ClaimLost, job_beat, job_claim, job_finish, jobs_lost
from annotate.services.storage import crop_read
from config.celery import broker_check
from modeling.ml.device import device_choose
from modeling.ml.errors import Cancelled, CheckpointError
from modeling.ml.predict import classifier_load, probabilities_iter
from modeling.models import ModelVersion, Prediction, PredictionRun
from modeling.services.training import (
    ADMIN_ONLY,
    RUN_MAX_ATTEMPTS,
    artifact_verified,
    run_fail_lost,
    run_stale_after,
)

logger = logging.getLogger(__name__)
BATCH_SIZE = 32


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
        live = version.prediction_runs.filter(status__in=UNFINISHED).order_by("-pk").first()
        if live is not None:
            return live
        if not faces_to_predict(version=version).exists():
            return None
        return predictions_run_create(version=version)


def predictions_runs_sweep(*, now=None, stale_after: timedelta | None = None) -> int:
    """Mark running prediction runs with a stale heartbeat failed (their worker died)."""
    now = now or timezone.now()
    lost = jobs_lost(
        PredictionRun.objects.all(),
        stale_after=stale_after if stale_after is not None else run_stale_after(),
        now=now,
    )
    return sum(run_fail_lost(run, now=now) for run in lost)


def _claim(run_id: int) -> PredictionRun | None:
    token = job_claim(
        PredictionRun.objects.filter(pk=run_id),
        stale_after=run_stale_after(),
        max_attempts=RUN_MAX_ATTEMPTS,
    )
    return None if token is None else PredictionRun.objects.get(pk=run_id)


def predictions_run_execute(*, run_id: int) -> PredictionRun:
    """Predict every face still missing for the run's version, chunk by chunk.

    Each chunk's rows are written with one bulk insert (conflicts ignored, so a retry never
    doubles a row) before the next chunk is read; progress and heartbeat follow each chunk.
    """
    run = _claim(run_id)
    if run is None:
        return PredictionRun.objects.get(pk=run_id)
    version, token = run.version, run.claimed_by
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
            if job_beat(PredictionRun, pk=run.pk, token=token, done=run.done + start + len(chunk)):
                raise Cancelled()
        job_finish(PredictionRun, pk=run.pk, token=token, status=JobStatus.SUCCEEDED)
    except Cancelled:
        job_finish(PredictionRun, pk=run.pk, token=token, status=JobStatus.CANCELLED)
    except ClaimLost:
        logger.warning("prediction run %s was swept or ended meanwhile; this copy stops", run.pk)
    except (CheckpointError, ValueError, OSError) as exc:
        logger.warning("prediction run %s failed: %s", run.pk, exc)
        job_finish(PredictionRun, pk=run.pk, token=token, status=JobStatus.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("prediction run %s failed", run.pk)
        job_finish(PredictionRun, pk=run.pk, token=token, status=JobStatus.FAILED, error=repr(exc))
        raise
    return PredictionRun.objects.get(pk=run.pk)
