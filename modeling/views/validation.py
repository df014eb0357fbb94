"""Validation pages: rounds of a study, a round's results, two versions side by side."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from annotate.access import check_study_researcher, role_required, study_for_researcher
from annotate.consensus import escalations_sweep
from annotate.params import bad_parameters_refused, param_int
from annotate.roles import Role
from annotate.selectors.waiting import faces_waiting
from config.celery import BrokerUnavailable
from modeling import charts
from modeling.evaluation import INTERSECTION_SEPARATOR
from modeling.forms import ValidationRoundForm
from modeling.models import ModelVersion, ValidationRound
from modeling.sampling import MIN_PER_GROUP
from modeling.selectors.compare import study_versions_predicted, versions_compare
from modeling.selectors.validation import validation_round_progress
from modeling.services.validation import (
    ValidationError,
    validation_results_request,
    validation_round_create,
)

DEFAULT_ROUND_SIZE = 300


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
@bad_parameters_refused
def validation_rounds(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    versions = study_versions_predicted(study=study)
    status = 200
    if request.method == "POST":
        form = ValidationRoundForm(request.POST, study=study)
        if not form.is_valid():
            messages.error(request, f"No round was opened. {form.errors_line()}")
            status = 400
        else:
            data = form.cleaned_data
            try:
                round = validation_round_create(
                    version=data["version"],
                    size=data["size"],
                    seed=data["seed"],
                    created_by=request.user,
                    min_per_group=(
                        MIN_PER_GROUP if data["min_per_group"] is None else data["min_per_group"]
                    ),
                )
            except ValidationError as exc:
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
            "versions": [v for v in versions if v.n_predictions],
            "unpredicted": [v for v in versions if not v.n_predictions],
            "chosen": param_int(request.GET, "version"),
            "rounds": rounds,
            "default_size": DEFAULT_ROUND_SIZE,
            "min_per_group": MIN_PER_GROUP,
        },
        status=status,
    )


def _split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    single = [r for r in rows if INTERSECTION_SEPARATOR not in r["attribute"]]
    pairs = [r for r in rows if INTERSECTION_SEPARATOR in r["attribute"]]
    return single, pairs


def _timestamp(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


@role_required(Role.RESEARCHER)
def validation_round(request: HttpRequest, round_id: int) -> HttpResponse:
    round = get_object_or_404(
        ValidationRound.objects.select_related("version", "study"), pk=round_id
    )
    check_study_researcher(request.user, round.study)
    # Splits that waited too long for an extra coder go to adjudication before they are listed.
    escalations_sweep(study=round.study)
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
        "waiting": faces_waiting(study=round.study, face_ids=round.items.values("face_id")),
    }
    if "overall" in results:
        cv = {(r["attribute"], r["group"]): r for r in results.get("cv_by_subgroup", [])}
        rows = [
            {**row, "cv": cv.get((row["attribute"], row["group"]))}
            for row in results.get("by_subgroup", [])
        ]
        single, pairs = _split(rows)
        context.update(
            computed_at=_timestamp(results.get("computed_at")),
            flagged=[row for row in rows if row["flagged"]],
            single=single,
            pairs=[row for row in pairs if not row["too_few"]],
            pairs_few=[row for row in pairs if row["too_few"]],
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
    check_study_researcher(request.user, round.study)
    try:
        validation_results_request(round=round)
    except BrokerUnavailable as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Computing the results; this page shows them when ready.")
    return redirect("modeling:validation_round", round_id=round.pk)


@role_required(Role.RESEARCHER)
@bad_parameters_refused
def version_compare(request: HttpRequest, slug: str) -> HttpResponse:
    """Two versions side by side: each one's newest validation round and CV by subgroup, and
    both on the faces they both predicted and humans labelled (paired, McNemar's exact test).
    """
    study = study_for_researcher(request.user, slug)
    versions = study_versions_predicted(study=study)
    by_pk: dict[int | None, ModelVersion] = {v.pk: v for v in versions}
    a, b = (by_pk.get(param_int(request.GET, key)) for key in ("a", "b"))
    # Default: the active version (else the one before) against the newest other one.
    active = next((v for v in versions if v.is_active), None)
    if b is None and versions:
        b = next((v for v in versions if v != (a or active)), None)
    if a is None and b is not None:
        a = (
            active
            if active is not None and active != b
            else next((v for v in versions if v.number < b.number), None)
        )
    context = {"study": study, "versions": versions, "a": a, "b": b}
    if a is not None and b is not None and a != b:
        comparison = versions_compare(a=a, b=b)
        context.update(
            comparison=comparison,
            chart=mark_safe(
                charts.paired_intervals_svg(
                    comparison.paired, label_a=f"v{a.number}", label_b=f"v{b.number}"
                )
            )
            if comparison.paired
            else "",
        )
    return render(request, "modeling/version_compare.html", context)
