"""Validation rounds: draw the stratified sample, hand it to the coders, compute results.

`validation_round_create` writes the round and its items and asks the coding flow to put the
faces first; `validation_results_compute` turns the round's coded faces into stored results
(the pages only read `ValidationRound.results`); `validation_results_request` enqueues that
computation on the default queue; `validation_rounds_after_consensus` is the hook the
consensus service (annotate.consensus) calls after the commit in which a face's coding became
final, so a round's results are computed as soon as its last face is coded.
"""

from __future__ import annotations

import logging
import math
import secrets
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from annotate.assignment import VALIDATION_PRIORITY, faces_prioritize
from annotate.compiled_sql import compiled_rows, queryset_sql
from annotate.labels import CLASSES, POSITIVE_CLASS, SUBGROUP_ATTRIBUTES
from annotate.models import Face
from config.celery import BrokerUnavailable, broker_check
from modeling import evaluation
from modeling.estimates import ErrorRates
from modeling.models import ModelVersion, ValidationItem, ValidationRound
from modeling.sampling import MIN_PER_GROUP, MINIMUM_PREFIX, STRATA_COLUMNS, stratified_sample
from modeling.selectors.validation import (
    BINARY,
    FINAL_STATUSES,
    validation_eligible,
    validation_round_frame,
    validation_round_progress,
)

logger = logging.getLogger(__name__)

NO_PREDICTIONS = (
    "{version} has no predictions yet, so there is nothing to validate: run prediction with "
    "this version first. No round was created."
)
TOO_FEW_ELIGIBLE = (
    "Only {eligible} faces are eligible for a validation round of {version} (predicted by it, "
    "never used to train it, not excluded, not already sampled); a round of {size} needs at "
    "least that many. No round was created."
)
SIZE_INVALID = "The round size must be a whole number of at least 1; got {size}."
SEED_MAX = 2**63 - 1  # the seed column is a bigint; the sampler takes no negative seed
SEED_INVALID = "The seed must be a whole number from 0 to {maximum}; got {seed}."
SAMPLED_ATTRIBUTES = ("race", "age_band", "glasses", "quality", "country")
CALIBRATION_BINS = 10


class ValidationError(ValueError):
    """A round cannot be created or computed; the message says why and what to do."""


@transaction.atomic
def validation_round_create(
    *,
    version: ModelVersion,
    size: int,
    seed: int | None = None,
    created_by=None,
    min_per_group: int = MIN_PER_GROUP,
) -> ValidationRound:
    """Draw a seeded stratified sample of `size` eligible faces and open a round on them.

    Raises ValidationError (nothing written) when the version has no predictions or fewer
    than `size` eligible faces. Takes no row locks: a concurrent round of the same version
    could sample the same faces, which only wastes coding, never corrupts results.
    """
    if not isinstance(size, int) or size < 1:
        raise ValidationError(SIZE_INVALID.format(size=size))
    if seed is not None and not (isinstance(seed, Integral) and 0 <= seed <= SEED_MAX):
        raise ValidationError(SEED_INVALID.format(maximum=SEED_MAX, seed=seed))
    eligibility = validation_eligible(version=version)
    if eligibility.predicted == 0:
        raise ValidationError(NO_PREDICTIONS.format(version=version))
    if len(eligibility.frame) < size:
        raise ValidationError(
            TOO_FEW_ELIGIBLE.format(eligible=len(eligibility.frame), version=version, size=size)
        )
    seed = secrets.randbits(31) if seed is None else int(seed)
    sample = stratified_sample(
        eligibility.frame,
        size=size,
        seed=seed,
        attributes=SAMPLED_ATTRIBUTES,
        min_per_group=min_per_group,
    )
    round = ValidationRound.objects.create(
        study_id=version.study_id,
        version=version,
        created_by=created_by,
        size=size,
        seed=seed,
        stratification={
            "strata_columns": list(STRATA_COLUMNS),
            "attributes": list(SAMPLED_ATTRIBUTES),
            "min_per_group": min_per_group,
            "eligible": len(eligibility.frame),
            "predicted": eligibility.predicted,
            "excluded": eligibility.excluded,
            "strata": {k: int(v) for k, v in sample["stratum"].value_counts().sort_index().items()},
            "by_reason": {k: int(v) for k, v in sample["reason"].value_counts().items()},
        },
    )
    ValidationItem.objects.bulk_create(
        ValidationItem(
            round=round,
            face_id=int(face_id),
            stratum=((MINIMUM_PREFIX if reason == "minimum" else "") + stratum)[:200],
        )
        for face_id, stratum, reason in zip(
            sample["face_id"], sample["stratum"], sample["reason"], strict=True
        )
    )
    faces_prioritize(face_ids=[int(i) for i in sample["face_id"]], priority=VALIDATION_PRIORITY)
    logger.info("validation round %s: %d faces of %s (seed %d)", round.pk, size, version, seed)
    return round


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf → None, numpy scalars → Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return _clean(frame.to_dict(orient="records"))


def cv_by_subgroup(version: ModelVersion) -> list[dict[str, Any]]:
    """The version's cross-validation rows by subgroup, as training stored them in
    `metrics["cv"]["by_subgroup"]`: rows of evaluation.RESULT_COLUMNS, one attribute at a time.

    Versions trained before training stored that shape have no rows.
    """
    rows = ((version.metrics or {}).get("cv") or {}).get("by_subgroup")
    return rows if isinstance(rows, list) else []


def cv_overall(version: ModelVersion) -> float | None:
    """The version's overall cross-validation accuracy (None when it has none)."""
    return ((version.metrics or {}).get("cv") or {}).get("accuracy")


def results_from_frame(
    frame: pd.DataFrame,
    *,
    min_n: int = evaluation.MIN_N,
    gap: float = evaluation.GAP,
    alpha: float = evaluation.ALPHA,
    correction: str = evaluation.DEFAULT_CORRECTION,
    attributes: tuple[str, ...] = SUBGROUP_ATTRIBUTES,
) -> dict[str, Any]:
    """Everything the results page shows, from a round frame (see validation_round_frame).

    Keys (stored in ValidationRound.results; the pages, exports and appendix read them):
    n_sampled, n_coded, n_used, n_unusable, sample {minimum, proportional}, min_n, gap,
    flag {test, correction, correction_label, alpha, gap, min_n} (how groups were flagged),
    overall {n, accuracy, ci_low, ci_high}, by_subgroup [rows of evaluation.RESULT_COLUMNS],
    confusion {classes, matrix}, per_class [rows], calibration [bins], ece,
    error_rates {tp, fn, fp, tn, sensitivity, specificity, defined}. The compute service adds
    partial, computed_at, cv_overall and cv_by_subgroup.
    """
    coded = frame[frame["truth"].isin(BINARY) & frame["predicted"].isin(BINARY)]
    by_group = evaluation.accuracy_by_group(
        coded,
        attributes=list(attributes),
        min_n=min_n,
        gap=gap,
        alpha=alpha,
        correction=correction,
    )
    confusion = evaluation.confusion_matrix(coded["truth"], coded["predicted"], CLASSES)
    calibration = evaluation.calibration_bins(
        (coded["truth"] == POSITIVE_CLASS).to_numpy(),
        coded["probability"].astype(float).to_numpy(),
        bins=CALIBRATION_BINS,
    )
    rates = ErrorRates.from_labels(coded["truth"], coded["predicted"])
    overall = by_group.iloc[0]
    final = frame["consensus_status"].isin([str(s) for s in FINAL_STATUSES])
    return _clean(
        {
            "n_sampled": len(frame),
            "n_coded": int(final.sum()),
            "n_used": len(coded),
            "sample": {
                "minimum": int(frame["stratum"].str.startswith(MINIMUM_PREFIX).sum()),
                "proportional": int((~frame["stratum"].str.startswith(MINIMUM_PREFIX)).sum()),
            }
            if "stratum" in frame
            else {},
            "n_unusable": int((final & ~frame.index.isin(coded.index)).sum()),
            "min_n": min_n,
            "gap": gap,
            "flag": {
                "test": evaluation.FLAG_TEST,
                "correction": correction,
                "correction_label": evaluation.CORRECTIONS[correction],
                "alpha": alpha,
                "gap": gap,
                "min_n": min_n,
            },
            "overall": {
                "n": int(overall["n"]),
                "accuracy": overall["accuracy"],
                "ci_low": overall["ci_low"],
                "ci_high": overall["ci_high"],
            },
            "by_subgroup": records(by_group.iloc[1:]),
            "confusion": {
                "classes": list(CLASSES),
                "matrix": confusion.to_numpy().tolist(),
            },
            "per_class": records(
                evaluation.precision_recall(coded["truth"], coded["predicted"], CLASSES)
            ),
            "calibration": records(calibration),
            "ece": evaluation.expected_calibration_error(calibration),
            "error_rates": rates.as_dict(),
        }
    )


@transaction.atomic
def validation_results_compute(
    *, round_id: int, min_n: int = evaluation.MIN_N, gap: float = evaluation.GAP
) -> ValidationRound:
    """Compute and store the round's results from its coded faces (partial if still open).

    Locks the round row (select_for_update) so two computations do not interleave.
    """
    round = ValidationRound.objects.select_for_update().select_related("version").get(pk=round_id)
    frame = validation_round_frame(round=round)
    results = results_from_frame(frame, min_n=min_n, gap=gap)
    progress = validation_round_progress(round=round)
    results["partial"] = not progress.complete
    results["computed_at"] = timezone.now().isoformat()
    results["cv_overall"] = cv_overall(round.version)
    results["cv_by_subgroup"] = cv_by_subgroup(round.version)
    round.results = results
    round.error = ""
    if progress.complete:
        round.status = ValidationRound.Status.COMPLETE
        round.completed_at = round.completed_at or timezone.now()
    else:
        round.status = ValidationRound.Status.OPEN
    round.save(update_fields=["results", "error", "status", "completed_at"])
    return round


def validation_results_fail(*, round_id: int, error: str) -> None:
    ValidationRound.objects.filter(pk=round_id).update(
        status=ValidationRound.Status.FAILED, error=error[:2000]
    )


def validation_results_request(*, round: ValidationRound) -> None:
    """Enqueue the results computation (queue default) after commit; raises BrokerUnavailable."""
    from modeling.tasks import validation_results

    broker_check()
    with transaction.atomic():
        ValidationRound.objects.filter(pk=round.pk).update(
            status=ValidationRound.Status.COMPUTING, error=""
        )
        transaction.on_commit(lambda: validation_results.delay(round.pk))


def validation_rounds_after_consensus(*, face: Face) -> list[int]:
    """Enqueue results for every open round whose sample holds `face` and is now fully coded;
    returns their ids.

    Called by the consensus service after the commit in which `face`'s coding became final.
    Round membership is one statement on the rounds' sample rows (ValidationItem), so a face
    in no round costs that statement and nothing more. An unreachable broker is logged, not
    raised: the vote is committed, and the results are computed when the round's page is
    opened.
    """
    # Every completing vote asks this, almost always of a face in no round: the statement is
    # built once per process, not by the ORM each time.
    rows = compiled_rows(
        "open_rounds_of_face",
        lambda face_id: queryset_sql(
            ValidationRound.objects.filter(
                items__face_id=face_id, status=ValidationRound.Status.OPEN
            )
            .values("pk")
            .distinct()
        ),
        face_id=face.pk,
    )
    round_ids = [row[0] for row in rows]
    if not round_ids:
        return []
    started = []
    for round in ValidationRound.objects.filter(pk__in=round_ids).order_by("pk"):
        if not validation_round_progress(round=round).complete:
            continue
        try:
            validation_results_request(round=round)
        except BrokerUnavailable as exc:
            logger.warning(
                "face %s completed a validation round (%s), but %s", face.pk, round.pk, exc
            )
            continue
        started.append(round.pk)
    return started
