"""Validation pages: rounds of a study, a round's results, two versions side by side."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from annotate.access import check_study_member, role_required, study_for_member
from annotate.roles import Role
from config.celery import BrokerUnavailable
from modeling import charts
from modeling.evaluation import INTERSECTION_SEPARATOR
from modeling.models import ModelVersion, ValidationRound
from modeling.sampling import MIN_PER_GROUP
from modeling.selectors.validation import validation_round_latest, validation_round_progress
from modeling.services.coding_bridge import CodingFlowMissing
from modeling.services.validation import (
    ValidationError,
    validation_results_request,
    validation_round_create,
)

DEFAULT_ROUND_SIZE = 300


def _int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
def validation_rounds(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_member(request.user, slug)
    versions = list(study.model_versions.all())
    if request.method == "POST":
        version = study.model_versions.filter(pk=_int(request.POST.get("version"), 0)).first()
        if version is None:
            messages.error(request, "Choose a model version of this study.")
        else:
            try:
                round = validation_round_create(
                    version=version,
                    size=_int(request.POST.get("size"), -1),
                    seed=_int(request.POST.get("seed")),
                    created_by=request.user,
                    min_per_group=max(0, _int(request.POST.get("min_per_group"), MIN_PER_GROUP)),
                )
            except (ValidationError, CodingFlowMissing) as exc:
                messages.error(request, str(exc))
            else:
                messages.success(
                    request,
                    f"Validation round {round.pk} opened: {round.size} faces sent to the coders.",
                )
                return redirect("modeling:validation_round", round_id=round.pk)
    rounds = [
        (round, validation_round_progress(round=round))
        for round in study.validation_rounds.select_related("version")
    ]
    return render(
        request,
        "modeling/validation_rounds.html",
        {
            "study": study,
            "versions": versions,
            "rounds": rounds,
            "default_size": DEFAULT_ROUND_SIZE,
            "min_per_group": MIN_PER_GROUP,
        },
    )


def _split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    single = [r for r in rows if INTERSECTION_SEPARATOR not in r["attribute"]]
    pairs = [r for r in rows if INTERSECTION_SEPARATOR in r["attribute"]]
    return single, pairs


@role_required(Role.RESEARCHER)
def validation_round(request: HttpRequest, round_id: int) -> HttpResponse:
    round = get_object_or_404(
        ValidationRound.objects.select_related("version", "study"), pk=round_id
    )
    check_study_member(request.user, round.study)
    progress = validation_round_progress(round=round)
    if round.status == ValidationRound.Status.OPEN and progress.complete:
        # Fallback for a completion the consensus hook did not report: compute once now.
        try:
            validation_results_request(round=round)
            round.status = ValidationRound.Status.COMPUTING
        except BrokerUnavailable as exc:
            messages.error(request, str(exc))
    results = round.results or {}
    context = {
        "round": round,
        "study": round.study,
        "progress": progress,
        "results": results,
    }
    if "overall" in results:
        cv = {(r["attribute"], r["group"]): r for r in results.get("cv_by_subgroup", [])}
        rows = [
            {**row, "cv": cv.get((row["attribute"], row["group"]))}
            for row in results.get("by_subgroup", [])
        ]
        single, pairs = _split(rows)
        context.update(
            single=single,
            pairs=pairs,
            bars=mark_safe(
                charts.accuracy_bars_svg(single, overall=results["overall"]["accuracy"])
            ),
            confusion=mark_safe(
                charts.confusion_svg(
                    results["confusion"]["classes"], results["confusion"]["matrix"]
                )
            ),
            reliability=mark_safe(charts.reliability_svg(results.get("calibration", []))),
            confusion_rows=list(
                zip(results["confusion"]["classes"], results["confusion"]["matrix"], strict=True)
            ),
        )
    return render(request, "modeling/validation_round.html", context)


@role_required(Role.RESEARCHER)
@require_http_methods(["POST"])
def validation_compute(request: HttpRequest, round_id: int) -> HttpResponse:
    round = get_object_or_404(ValidationRound, pk=round_id)
    check_study_member(request.user, round.study)
    try:
        validation_results_request(round=round)
    except BrokerUnavailable as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Computing the results; this page shows them when ready.")
    return redirect("modeling:validation_round", round_id=round.pk)


@role_required(Role.RESEARCHER)
def version_compare(request: HttpRequest, slug: str) -> HttpResponse:
    """Two versions' latest validation results side by side, by subgroup."""
    study = study_for_member(request.user, slug)
    versions = list(study.model_versions.all())
    chosen: list[ModelVersion | None] = [
        study.model_versions.filter(pk=_int(request.GET.get(key), 0)).first() for key in ("a", "b")
    ]
    if chosen[0] is None and len(versions) >= 2:
        chosen = [versions[1], versions[0]]  # the previous version against the newest
    rounds = [validation_round_latest(version=v) if v else None for v in chosen]
    table: dict[tuple[str, str], dict] = {}
    for side, round in zip(("a", "b"), rounds, strict=True):
        for row in round.results.get("by_subgroup", []) if round else []:
            if INTERSECTION_SEPARATOR in row["attribute"]:
                continue
            table.setdefault((row["attribute"], row["group"]), {})[side] = row
    rows = []
    for (attribute, group), sides in sorted(table.items()):
        a, b = sides.get("a"), sides.get("b")
        change = (
            b["accuracy"] - a["accuracy"]
            if a and b and a.get("accuracy") is not None and b.get("accuracy") is not None
            else None
        )
        rows.append(
            {
                "attribute": attribute,
                "group": group,
                "a": a,
                "b": b,
                "change": change,
                "closed": bool(a and a.get("flagged") and b and not b.get("flagged")),
            }
        )
    return render(
        request,
        "modeling/version_compare.html",
        {
            "study": study,
            "versions": versions,
            "a": chosen[0],
            "b": chosen[1],
            "round_a": rounds[0],
            "round_b": rounds[1],
            "rows": rows,
        },
    )
