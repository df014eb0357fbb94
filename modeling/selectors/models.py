"""Reads for the models pages: versions, runs and their progress, a version's card."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from annotate.labels import ATTRIBUTE_QUESTIONS, CLASSES, POSITIVE_CLASS, SUBGROUP_ATTRIBUTES
from annotate.models import JobStatus, Study
from modeling.models import ModelVersion, PredictionRun, TrainingRun
from modeling.services.validation import cv_by_subgroup

LIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
RECENT_RUNS = 20


def study_versions(*, study: Study) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(study=study).select_related("training_run", "activated_by")


def study_training_runs(*, study: Study, limit: int = RECENT_RUNS) -> list[TrainingRun]:
    return list(
        TrainingRun.objects.filter(study=study)
        .select_related("requested_by", "version")
        .defer("dataset")[:limit]
    )


def study_last_training_config(*, study: Study) -> dict[str, Any] | None:
    """The settings of the study's newest training run (the Retrain form starts from them)."""
    run = TrainingRun.objects.filter(study=study).only("config").first()
    return run.config if run else None


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


# Below this percent an estimate of the time left is mostly noise (start-up, first batch).
ETA_FROM_PERCENT = 5


def run_progress(run: TrainingRun, *, now: datetime | None = None) -> dict[str, Any]:
    """A run's status for the page: stage, weighted percent, device, elapsed and time left."""
    elapsed = eta = None
    if run.started_at:
        end = run.finished_at or now or timezone.now()
        elapsed = max(0, int((end - run.started_at).total_seconds()))
        if run.status == JobStatus.RUNNING and run.progress >= ETA_FROM_PERCENT:
            eta = int(elapsed * (100 - run.progress) / run.progress)
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "stage": run.stage,
        "stage_label": run.get_stage_display(),
        "progress": run.progress,
        "device": run.device,
        "elapsed_s": elapsed,
        "eta_s": eta,
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


def version_card(*, version: ModelVersion) -> dict[str, Any]:
    """The model card: config, dataset snapshot, class balance, subgroup counts and metrics."""
    run = version.training_run
    dataset = run.dataset if run else {}
    cv = (version.metrics or {}).get("cv") or {}
    by_subgroup = cv_by_subgroup(version)
    subgroup_counts = dataset.get("subgroup_counts") or {}
    return {
        "version": version,
        "run": run,
        "config": (run.config if run else {}),
        "dataset": {k: v for k, v in dataset.items() if k not in {"face_ids", "labels"}},
        "class_counts": dataset.get("class_counts") or {},
        "subgroup_counts": [
            (name, _in_choice_order(name, list(subgroup_counts[name].items()), key=_first))
            for name in SUBGROUP_ATTRIBUTES
            if name in subgroup_counts
        ],
        "cv": cv,
        "per_fold": cv.get("per_fold") or [],
        "by_subgroup": [
            (name, _in_choice_order(name, [r for r in by_subgroup if r["attribute"] == name]))
            for name in SUBGROUP_ATTRIBUTES
            if any(row["attribute"] == name for row in by_subgroup)
        ],
        "fine_tune": (version.metrics or {}).get("fine_tune"),
        "cv_frozen": (version.metrics or {}).get("cv_frozen"),
        "class_balance": class_balance(cv),
        "weights": (version.metrics or {}).get("weights") or {},
        "triage": dataset.get("triage") or {},
        "excluded": dataset.get("excluded") or {},
        "timings": (run.timings if run else {}),
        "prediction_runs": list(version.prediction_runs.all()[:5]),
        "predictions": version.predictions.count(),
    }


def class_balance(cv: dict[str, Any]) -> list[dict[str, Any]]:
    """Per class: its share among the labels and among the out-of-fold predictions.

    A model that predicts one class less often than it is labeled biases every share it
    estimates; the card shows the two side by side.
    """
    counts: list[Any] = [cv.get(key) for key in ("tp", "fn", "fp", "tn")]  # JSON values
    if any(value is None for value in counts) or not sum(counts):
        return []
    tp, fn, fp, tn = counts
    n = tp + fn + fp + tn
    (negative,) = (c for c in CLASSES if c != POSITIVE_CLASS)
    rows = [
        {"class": POSITIVE_CLASS, "labeled": (tp + fn) / n, "predicted": (tp + fp) / n},
        {"class": negative, "labeled": (tn + fp) / n, "predicted": (tn + fn) / n},
    ]
    return [{**row, "difference": row["predicted"] - row["labeled"]} for row in rows]


def _group(row: dict[str, Any]) -> str:
    return row["group"]


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _in_choice_order(attribute: str, items: list, *, key: Callable = _group) -> list:
    """Items in the order coders see the answers (age bands young to old), not alphabetical;
    values outside the choices (and attributes without choices) alphabetically after them."""
    question = ATTRIBUTE_QUESTIONS.get(attribute)
    order = {value: i for i, value in enumerate(question.choices.values)} if question else {}
    return sorted(items, key=lambda item: (order.get(key(item), len(order)), key(item)))
