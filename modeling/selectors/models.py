"""Reads for the models pages: versions, runs and their progress, a version's card."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from annotate.labels import SUBGROUP_ATTRIBUTES
from annotate.models import JobStatus, Study
from modeling.ml.backbones import BACKBONES, DEFAULT_BACKBONE
from modeling.ml.config import TrainConfig
from modeling.models import ModelVersion, PredictionRun, TrainingRun

LIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
# METHODS.md: a group is flagged when its interval lies below the overall accuracy, or its
# accuracy is more than this gap below it; groups under the minimum n are never flagged.
FLAG_GAP = 0.05
RECENT_RUNS = 20


def study_versions(*, study: Study) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(study=study).select_related("training_run", "activated_by")


def study_active_version(*, study: Study) -> ModelVersion | None:
    return ModelVersion.objects.filter(study=study, is_active=True).first()


def study_training_runs(*, study: Study, limit: int = RECENT_RUNS) -> list[TrainingRun]:
    return list(
        TrainingRun.objects.filter(study=study)
        .select_related("requested_by", "version")
        .defer("dataset")[:limit]
    )


def study_prediction_runs(*, study: Study, limit: int = RECENT_RUNS) -> list[PredictionRun]:
    return list(
        PredictionRun.objects.filter(version__study=study).select_related("version")[:limit]
    )


def version_get(*, study: Study, number: int) -> ModelVersion:
    return get_object_or_404(
        ModelVersion.objects.select_related("training_run", "activated_by"),
        study=study,
        number=number,
    )


def run_progress(run: TrainingRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "stage": run.stage,
        "stage_label": run.get_stage_display(),
        "progress": run.progress,
        "error": run.error,
        "live": run.status in LIVE,
        "version": getattr(getattr(run, "version", None), "number", None),
    }


def prediction_progress(run: PredictionRun) -> dict[str, Any]:
    percent = int(100 * run.done / run.total) if run.total else (100 if run.done else 0)
    return {
        "id": run.pk,
        "version": run.version.number,
        "status": run.status,
        "status_label": run.get_status_display(),
        "done": run.done,
        "total": run.total,
        "progress": min(percent, 100),
        "error": run.error,
        "live": run.status in LIVE,
    }


def study_progress(*, study: Study) -> dict[str, Any]:
    """What the models page polls: every recent run's status, stage and percent."""
    return {
        "training": [run_progress(run) for run in study_training_runs(study=study)],
        "prediction": [prediction_progress(run) for run in study_prediction_runs(study=study)],
    }


def retrain_choices() -> dict[str, Any]:
    defaults = TrainConfig()
    return {
        "backbones": sorted(BACKBONES),
        "default_backbone": DEFAULT_BACKBONE,
        "defaults": defaults,
    }


def version_card(*, version: ModelVersion) -> dict[str, Any]:
    """The model card: config, dataset snapshot, class balance, subgroup counts and metrics."""
    run = version.training_run
    dataset = run.dataset if run else {}
    cv = (version.metrics or {}).get("cv") or {}
    by_subgroup = cv.get("by_subgroup") or {}
    subgroup_counts = dataset.get("subgroup_counts") or {}
    return {
        "version": version,
        "run": run,
        "config": (run.config if run else {}),
        "dataset": {k: v for k, v in dataset.items() if k not in {"face_ids", "labels"}},
        "class_counts": dataset.get("class_counts") or {},
        "subgroup_counts": [
            (name, sorted(subgroup_counts.get(name, {}).items()))
            for name in SUBGROUP_ATTRIBUTES
            if name in subgroup_counts
        ],
        "cv": cv,
        "per_fold": cv.get("per_fold") or [],
        "by_subgroup": [
            (name, [_flagged(row, cv.get("accuracy")) for row in by_subgroup[name]])
            for name in SUBGROUP_ATTRIBUTES
            if name in by_subgroup
        ],
        "fine_tune": (version.metrics or {}).get("fine_tune"),
        "triage": dataset.get("triage") or {},
        "excluded": dataset.get("excluded") or {},
        "timings": (run.timings if run else {}),
        "prediction_runs": list(version.prediction_runs.all()[:5]),
        "predictions": version.predictions.count(),
    }


def _flagged(row: dict[str, Any], overall: float | None) -> dict[str, Any]:
    below = (
        overall is not None
        and not row.get("too_few")
        and row.get("accuracy") is not None
        and (row["accuracy"] < overall - FLAG_GAP or (row.get("high") or 1.0) < overall)
    )
    return {**row, "flag": below}
