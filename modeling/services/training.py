"""Training runs: create (and enqueue), execute on a worker, cancel, sweep runs whose worker died.

Status moves queued → running → succeeded / failed / cancelled through the life cycle every job
shares (`annotate.services.jobs`): claim, heartbeat with the progress, cancel, finish, sweep. A
run that fails records why in `error`; a run whose worker vanished is marked failed by the
sweep (a run has one attempt: a person starts the next).
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import uuid
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotate.access import is_admin
from annotate.labels import CLASSES, POSITIVE_CLASS, SUBGROUP_ATTRIBUTES
from annotate.models import JobStatus, Study
from annotate.selectors.attributes import face_attributes_frame
from annotate.services.jobs import (
    ClaimLost,
    job_beat,
    job_cancel,
    job_claim,
    job_finish,
    job_recover,
    jobs_lost,
    when,
)
from annotate.services.storage import crop_read
from config.celery import broker_check
from config.storage import ARTIFACTS, FEATURE_CACHE_FOLDER, StorageBlobs, storage_read
from modeling import evaluation
from modeling.ml.backbones import backbone_default
from modeling.ml.checkpoint import checkpoint_bytes
from modeling.ml.config import TrainConfig
from modeling.ml.data import CachedRead
from modeling.ml.device import device_choose, device_describe
from modeling.ml.errors import (
    CHECKPOINT_CHANGED,
    CHECKPOINT_CORRUPT,
    Cancelled,
    CheckpointError,
    TrainingDataError,
    WeightsMissing,
)
from modeling.ml.train import TrainItem, stage_weights, train_model
from modeling.models import CrossValidationPrediction, ModelVersion, TrainingRun
from modeling.selectors.training import TrainingSet, training_set_select
from modeling.services.validation import records

logger = logging.getLogger(__name__)

ADMIN_ONLY = "Only admins may retrain, activate or override the gate."
RUN_CANCELLED = "Cancelled by {user}."
WORKER_LOST = (
    "The worker running this job stopped answering (last heartbeat {heartbeat}); it was "
    "probably killed or lost. The run was marked failed; start a new one."
)
TIME_LIMIT = "The run went past its time limit and was stopped."
CANCELLED_ON_REQUEST = "Cancelled on request."
HEARTBEAT_EVERY_S = 2.0
# A lost run is failed, not run again: a redelivered message or a sweep never restarts it.
RUN_MAX_ATTEMPTS = 1
# The snapshot ends at 2 % and saving starts at 99 %; the stages between share the rest as
# `stage_weights` says.
SNAPSHOT_PERCENT = 2
SAVING_PERCENT = 99


def stage_spans(config: TrainConfig) -> dict[str, tuple[float, float]]:
    """Percent range of each stage, in the order they run, weighted by their expected work."""
    spans, at = {}, float(SNAPSHOT_PERCENT)
    for stage, share in stage_weights(config).items():
        width = share * (SAVING_PERCENT - SNAPSHOT_PERCENT)
        spans[stage] = (at, at + width)
        at += width
    spans[TrainingRun.Stage.SAVING] = (SAVING_PERCENT, SAVING_PERCENT)
    return spans


def artifact_storage() -> Storage:
    """Model files live in the "artifacts" storage (not media: they are never served)."""
    return storages[ARTIFACTS]


def feature_store() -> StorageBlobs:
    """The backbone feature cache: a folder of the artifacts storage, shared by all workers."""
    return StorageBlobs(artifact_storage(), FEATURE_CACHE_FOLDER)


def artifact_verified(version: ModelVersion) -> io.BytesIO:
    """The version's model file in memory, checked against the SHA-256 recorded when training
    wrote it, ready for modeling.ml.checkpoint.checkpoint_load (it carries the file's name).

    Every code path that loads a version's checkpoint goes through here, so a file that was
    replaced or damaged in storage raises CheckpointError naming the version instead of
    serving predictions from other weights; so does a missing one.
    """
    name = version.artifact.name or ""
    try:
        data = storage_read(artifact_storage(), name)
    except FileNotFoundError:
        raise CheckpointError(
            CHECKPOINT_CORRUPT.format(path=name, reason="file not found")
        ) from None
    if hashlib.sha256(data).hexdigest() != version.artifact_sha256:
        raise CheckpointError(CHECKPOINT_CHANGED.format(number=version.number))
    loaded = io.BytesIO(data)
    loaded.name = name
    return loaded


def run_stale_after() -> timedelta:
    """How long a training or prediction run may go without a heartbeat before it counts as
    lost (FACET_RUN_STALE_SECONDS)."""
    return timedelta(seconds=settings.FACET_RUN_STALE_SECONDS)


def training_run_create(
    *, study: Study, requested_by=None, config: dict | None = None, enqueue: bool = True
) -> TrainingRun:
    """Create a queued run and enqueue it on the gpu queue after commit.

    Checks the settings and the broker first: with the broker down nothing is created and
    BrokerUnavailable says so. `requested_by`, when given, must be an admin (None: the
    command line). With `enqueue=False` the caller runs `training_run_execute` itself
    (`train --inline`, tests) and no broker is needed.
    """
    from modeling.tasks import training_run_task

    if requested_by is not None and not is_admin(requested_by):
        raise PermissionDenied(ADMIN_ONLY)
    # No backbone named: the preferred one whose weights are on this machine, so the first
    # Retrain works offline.
    config = {
        "backbone": backbone_default(weights_file=settings.FACET_WEIGHTS_FILE),
        **(config or {}),
    }
    frozen = TrainConfig.from_dict(config)  # invalid settings fail before anything is written
    if enqueue:
        broker_check()
    training_runs_sweep()
    with transaction.atomic():
        run = TrainingRun.objects.create(
            study=study,
            requested_by=requested_by,
            config=frozen.to_dict(),
            task_id=str(uuid.uuid4()),
        )
        transaction.on_commit(lambda: training_run_task.apply_async((run.pk,), task_id=run.task_id))
    logger.info("training run %s queued for %s", run.pk, study)
    return run


def training_run_cancel(*, run: TrainingRun, user) -> TrainingRun:
    """Ask a run to stop. A queued run is cancelled at once; a running one at its next batch."""
    if not is_admin(user):
        raise PermissionDenied(ADMIN_ONLY)
    return job_cancel(TrainingRun, pk=run.pk, error=RUN_CANCELLED.format(user=user.get_username()))


def _run_fail_lost(run, *, now: datetime) -> int:
    """Fail a training or prediction run whose worker was lost; 1 when this call did."""

    def fail(same) -> bool:
        error = WORKER_LOST.format(heartbeat=when(run.heartbeat_at or run.started_at))
        return bool(same.update(status=JobStatus.FAILED, error=error, finished_at=now))

    where = f"{run._meta.verbose_name} {run.pk}"
    return job_recover(
        run, now=now, max_attempts=RUN_MAX_ATTEMPTS, fail=fail, send=None, where=where
    )


def training_runs_sweep(*, now=None, stale_after: timedelta | None = None) -> int:
    """Mark running runs whose heartbeat is older than `stale_after` failed. Returns how many.

    A worker killed mid-run (SIGKILL, OOM, lost machine) cannot record its own failure;
    this sweep does, so no run stays "running" forever. Called before a new run is created,
    when a page polls progress, and when a worker starts.
    """
    now = now or timezone.now()
    lost = jobs_lost(
        TrainingRun.objects.all(),
        stale_after=stale_after if stale_after is not None else run_stale_after(),
        now=now,
    )
    return sum(_run_fail_lost(run, now=now) for run in lost)


class _RunReporter:
    """Progress callback: writes stage, percent and heartbeat; raises Cancelled on request.

    Percent is weighted by stage (`stage_spans`) and never goes down, so a stage that ends
    early (fine-tuning stopped early) moves it forward, never back.
    """

    def __init__(self, run: TrainingRun, config: TrainConfig) -> None:
        self.run_id = run.pk
        self.token = run.claimed_by
        self.spans = stage_spans(config)
        self.last = 0.0
        self.percent = run.progress

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last < HEARTBEAT_EVERY_S and fraction < 1.0 and fraction > 0.0:
            return
        self.last = now
        lo, hi = self.spans.get(stage, (self.percent, self.percent))
        self.percent = max(self.percent, int(lo + (hi - lo) * min(max(fraction, 0.0), 1.0)))
        # Stop when asked to, or when the run is no longer ours (swept as lost meanwhile).
        try:
            cancel = job_beat(
                TrainingRun,
                pk=self.run_id,
                token=self.token,
                stage=stage,
                progress=self.percent,
            )
        except ClaimLost:
            raise Cancelled() from None
        if cancel:
            raise Cancelled()


def _claim(run_id: int) -> TrainingRun | None:
    """Move a queued run to running; None when it is not queued (cancelled, redelivered)."""
    token = job_claim(
        TrainingRun.objects.filter(pk=run_id),
        stale_after=run_stale_after(),
        max_attempts=RUN_MAX_ATTEMPTS,
        stage=TrainingRun.Stage.SNAPSHOT,
    )
    return None if token is None else TrainingRun.objects.get(pk=run_id)


def _finish(run: TrainingRun, **fields) -> None:
    job_finish(TrainingRun, pk=run.pk, token=run.claimed_by, **fields)


def _snapshot(study: Study, training: TrainingSet) -> dict:
    examples = training.examples
    face_ids = [e.face_id for e in examples]
    digest = hashlib.sha256()
    for e in examples:
        digest.update(f"{e.face_id}:{e.label}:{e.crop_sha256}\n".encode())
    frame = face_attributes_frame(face_ids=face_ids)
    subgroups = {
        name: {
            (str(value) or "unknown"): int(count)
            for value, count in frame[name].fillna("").astype(str).value_counts().items()
        }
        for name in SUBGROUP_ATTRIBUTES
        if name in frame
    }
    classes: dict[str, int] = {c: 0 for c in CLASSES}
    sources: dict[str, int] = {}
    for e in examples:
        classes[e.label] += 1
        sources[e.source] = sources.get(e.source, 0) + 1
    return {
        "face_ids": face_ids,
        "labels": [e.label for e in examples],
        "labels_hash": digest.hexdigest(),
        "n": len(examples),
        "class_counts": classes,
        "sources": sources,
        "subgroup_counts": subgroups,
        "excluded": training.excluded,
        "triage": training.triage,
        "aggregation": training.aggregation,
    }


def training_run_execute(*, run_id: int) -> TrainingRun:
    """Do the work of a queued run (on a worker, or inline in tests and `train --inline`).

    Returns the run as it ended. Never raises for bad data or missing weights: those end the
    run failed with the reason in `error`. Expects no lock; claims the run under a row lock.
    """
    run = _claim(run_id)
    if run is None:
        logger.info("training run %s is not queued; nothing to do", run_id)
        return TrainingRun.objects.get(pk=run_id)
    try:
        _execute(run)
    except Cancelled:
        _finish(run, status=JobStatus.CANCELLED, error=CANCELLED_ON_REQUEST)
    except (TrainingDataError, WeightsMissing, ValueError, OSError) as exc:
        logger.warning("training run %s failed: %s", run.pk, exc)
        _finish(run, status=JobStatus.FAILED, error=str(exc))
    except Exception as exc:  # SoftTimeLimitExceeded and the unexpected: record, then re-raise
        from celery.exceptions import SoftTimeLimitExceeded

        message = TIME_LIMIT if isinstance(exc, SoftTimeLimitExceeded) else repr(exc)
        logger.exception("training run %s failed", run.pk)
        _finish(run, status=JobStatus.FAILED, error=message)
        if not isinstance(exc, SoftTimeLimitExceeded):
            raise
    return TrainingRun.objects.get(pk=run.pk)


def _execute(run: TrainingRun) -> None:
    config = TrainConfig.from_dict(run.config)
    training = training_set_select(study=run.study)
    snapshot = _snapshot(run.study, training)
    TrainingRun.objects.filter(pk=run.pk).update(
        dataset=snapshot, labels_hash=snapshot["labels_hash"]
    )
    index = {c: i for i, c in enumerate(CLASSES)}
    items = [
        TrainItem(
            key=e.crop_name,
            content_hash=e.crop_sha256,
            label=index[e.label],
            group=e.group,
        )
        for e in training.examples
    ]
    # The device is shown while the run is going, not only when it has finished.
    TrainingRun.objects.filter(pk=run.pk).update(
        device=device_describe(device_choose(config.device))[:50]
    )
    reporter = _RunReporter(run, config)
    started = time.perf_counter()
    result = train_model(
        config=config,
        items=items,
        classes=CLASSES,
        cache=feature_store(),
        read=CachedRead(crop_read, max_bytes=settings.FACET_CROP_CACHE_MB * 1024**2),
        weights_file=settings.FACET_WEIGHTS_FILE,
        download=settings.FACET_WEIGHTS_DOWNLOAD,
        progress=reporter,
    )
    reporter(TrainingRun.Stage.SAVING, 0.0)
    frame = face_attributes_frame(face_ids=snapshot["face_ids"]).set_index("face_id")
    frame = frame.loc[snapshot["face_ids"]]
    frame["truth"] = [item.label for item in items]
    frame["predicted"] = (result.oof_probability >= config.threshold).astype(int)
    metrics = dict(result.metrics)
    # The rows the validation pages use (evaluation.RESULT_COLUMNS), overall row left out:
    # it is metrics["cv"] itself. One attribute at a time, so the gate compares like rows.
    by_group = evaluation.accuracy_by_group(
        frame,
        attributes=SUBGROUP_ATTRIBUTES,
        intersections=False,
        min_n=settings.FACET_GATE_MIN_N,
    )
    metrics["cv"]["by_subgroup"] = records(by_group.iloc[1:])
    metrics["cache"] = result.cache
    result.checkpoint["metrics"] = metrics
    result.checkpoint["dataset"] = {
        "labels_hash": snapshot["labels_hash"],
        "n": snapshot["n"],
        "study": run.study.slug,
        "run": run.pk,
    }
    timings = {**result.timings, "total_s": time.perf_counter() - started}
    oof = _cv_predictions(training, result.oof_probability, result.fold, config.threshold)
    _version_create(run, config, result.checkpoint, metrics, timings, result.device, oof)


def _cv_predictions(
    training: TrainingSet, probability: np.ndarray, fold: np.ndarray, threshold: float
) -> list[CrossValidationPrediction]:
    """One unsaved row per training face: its fold, label and out-of-fold prediction."""
    positive = CLASSES.index(POSITIVE_CLASS)
    return [
        CrossValidationPrediction(
            face_id=example.face_id,
            fold=int(k),
            label=example.label,
            label_source=example.source,
            probability=float(p),
            predicted=CLASSES[positive if p >= threshold else 1 - positive],
        )
        for example, p, k in zip(training.examples, probability, fold, strict=True)
    ]


def _version_create(
    run, config, checkpoint, metrics, timings, device, cv_predictions
) -> ModelVersion | None:
    """Save the artifact, then record the version, its out-of-fold predictions and the run's
    end in one transaction. None when the run was swept meanwhile (nothing is kept)."""
    storage = artifact_storage()
    data = checkpoint_bytes(checkpoint)
    name = storage.save(
        f"models/{run.study.slug}/run-{run.pk}-{uuid.uuid4().hex[:8]}.pt", ContentFile(data)
    )
    sha = hashlib.sha256(data).hexdigest()
    del data
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != JobStatus.RUNNING or locked.claimed_by != run.claimed_by:
            # swept, or taken over, meanwhile: keep nothing
            storage.delete(name)
            return None
        if locked.cancel_requested:
            storage.delete(name)
            raise Cancelled()
        number = (
            ModelVersion.objects.select_for_update()
            .filter(study=run.study)
            .aggregate(n=Max("number"))["n"]
            or 0
        ) + 1
        version = ModelVersion.objects.create(
            study=run.study,
            number=number,
            training_run=run,
            backbone=config.backbone,
            weights=checkpoint["weights_id"],
            artifact=name,
            artifact_sha256=sha,
            threshold=config.threshold,
            metrics=metrics,
        )
        for row in cv_predictions:
            row.version = version
        CrossValidationPrediction.objects.bulk_create(cv_predictions, batch_size=2000)
        locked.status = JobStatus.SUCCEEDED
        locked.stage = TrainingRun.Stage.DONE
        locked.progress = 100
        locked.metrics = metrics
        locked.timings = timings
        locked.device = device[:50]
        locked.finished_at = timezone.now()
        locked.save()
    logger.info(
        "training run %s → %s (CV accuracy %.3f)", run.pk, version, metrics["cv"]["accuracy"]
    )
    return version
